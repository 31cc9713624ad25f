"""Faults injected by a loopback proxy in front of a real registry. Each ends with an intact image or a clear exit 5,
and a second push completes it; a tag never points at an incomplete image."""

from __future__ import annotations

import json
import threading

from registry_servers import write_layout
from regtools import ocibake, reg_env, skopeo_copy_back, skopeo_digest, tag_exists

# Faults injected into PATCH requests test the streamed upload: small blobs otherwise go in one body, without PATCH
# (registry/monolithic.py; its faults are tested in test_push_round_trips.py).
STREAMED = {"OCIBAKE_REGISTRY_MONOLITHIC_MAX": "0"}


def _intact(reg, proxy, info, tmp_path, repo="f/app"):
    assert skopeo_digest(reg, f"{repo}:v1") == info["manifest"]
    assert skopeo_copy_back(reg, f"{repo}:v1", tmp_path / "back", "v1") == info["manifest"]


def _repush_is_noop(proxy, layout, env, repo="f/app"):
    proxy.fault = lambda m, p: None
    again = ocibake("push", str(layout), f"{proxy.host}/{repo}", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["bytes_uploaded"] == 0


def test_connection_cut_in_the_middle_of_a_blob_upload(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(600_000,))
    cuts = []

    def fault(method, path):
        if method == "PATCH" and not cuts:
            cuts.append(path)
            return ("cut", 200_000)
        return None

    proxy.fault = fault
    env = {**reg_env(reg, tmp_path / "home"), **STREAMED}
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert cuts, "the fault never fired"
    assert proc.returncode == 0, proc.stderr
    assert "upload interrupted" in proc.stderr
    _intact(reg, proxy, info, tmp_path)
    _repush_is_noop(proxy, layout, env)


def test_500_on_the_first_attempt_at_a_blob(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    failed = []

    def fault(method, path):
        if method == "POST" and "/blobs/uploads/" in path and not failed:
            failed.append(path)
            return ("status", 500, {})
        return None

    proxy.fault = fault
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert failed and proc.returncode == 0, proc.stderr
    assert "HTTP 500; retry 1/" in proc.stderr
    _intact(reg, proxy, info, tmp_path)


def test_429_with_retry_after_is_honoured(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    limited = []

    def fault(method, path):
        if method == "PATCH" and not limited:
            limited.append(path)
            return ("status", 429, {"Retry-After": "1"})
        return None

    proxy.fault = fault
    env = {**reg_env(reg, tmp_path / "home"), **STREAMED}
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert limited and proc.returncode == 0, proc.stderr
    assert "HTTP 429" in proc.stderr and "in 1.0s" in proc.stderr
    _intact(reg, proxy, info, tmp_path)


def test_registry_stopped_and_restarted_between_two_blobs(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(200_000, 100_000, 50_000))
    done = []

    def after(method, path, status):
        if method == "PUT" and "digest=" in path and status == 201 and not done:
            done.append(path)
            reg.stop()
            threading.Timer(1.0, reg.start).start()

    proxy.after = after
    env = {**reg_env(reg, tmp_path / "home"), "OCIBAKE_REGISTRY_BACKOFF": "0.3"}
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", "--json", env=env)
    assert done, "the registry was never stopped"
    assert proc.returncode in (0, 5), proc.stderr
    if proc.returncode == 5:
        assert "registry 127.0.0.1" in proc.stderr and "connection error" in proc.stderr
        assert not tag_exists(reg, "f/app:v1")
        proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
        assert proc.returncode == 0, proc.stderr
    assert "retry" in proc.stderr or "interrupted" in proc.stderr
    _intact(reg, proxy, info, tmp_path)
    _repush_is_noop(proxy, layout, env)


def test_registry_failing_for_good_exits_5_without_a_tag_then_a_second_push_completes(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    proxy.fault = lambda m, p: ("status", 503, {}) if m == "PATCH" else None
    env = {**reg_env(reg, tmp_path / "home"), **STREAMED}
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert proc.returncode == 5, proc.stderr
    last = [line for line in proc.stderr.splitlines() if line.startswith("ocibake: error:")]
    assert len(last) == 1 and f"registry {proxy.host}" in last[0] and "503" in last[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not tag_exists(reg, "f/app:v1")
    assert not any(s.method == "PUT" and "/manifests/" in s.path for s in proxy.seen)
    proxy.fault = lambda m, p: None
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert proc.returncode == 0, proc.stderr
    _intact(reg, proxy, info, tmp_path)


def test_connection_cut_on_every_upload_is_bounded(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proxy.fault = lambda m, p: ("cut", 1000) if m == "PATCH" else None
    env = {
        **reg_env(reg, tmp_path / "home"),
        "OCIBAKE_REGISTRY_RETRIES": "2",
        "OCIBAKE_REGISTRY_BACKOFF": "0.05",
        **STREAMED,
    }
    proc = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env, timeout=60)
    assert proc.returncode == 5, proc.stderr
    assert "connection error" in proc.stderr and "run the same command again" in proc.stderr
    assert sum(1 for s in proxy.seen if s.method == "PATCH") <= 3 * 3
    assert not tag_exists(reg, "f/app:v1")


def test_sigterm_during_a_slow_upload_stops_at_once_and_leaves_no_tag(proxied_registry, tmp_path):
    """A cancelled CI job must not wait for a big blob to finish: the upload in flight is abandoned within seconds,
    exit 143, and no tag points at the incomplete image; pushing again completes it."""
    import signal
    import subprocess
    import sys
    import time

    from regtools import REPO_ROOT

    reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",), layer_sizes=(40_000_000,))
    proxy.fault = lambda m, p: ("slow", 2_000_000) if m == "PATCH" else None  # ~20 s for the blob
    env = reg_env(reg, tmp_path / "home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibake", "push", str(layout), f"{proxy.host}/f/app"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(s.method == "POST" for s in proxy.seen):
        time.sleep(0.05)
    time.sleep(1.0)  # the PATCH is streaming now
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert proc.returncode == 143, err
    assert stopped_after < 5, f"took {stopped_after:.1f}s to stop"
    assert "terminated" in err and "Traceback" not in err
    assert not tag_exists(reg, "f/app:v1")
    proxy.fault = lambda m, p: None
    again = ocibake("push", str(layout), f"{proxy.host}/f/app", env=env)
    assert again.returncode == 0, again.stderr
    _intact(reg, proxy, info, tmp_path)
