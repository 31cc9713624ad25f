"""ocibake push/pull against a real docker-registry in plain, htpasswd, TLS and token modes, read back with skopeo."""

from __future__ import annotations

import json
import subprocess
import time

from registry_servers import FaultProxy, write_layout
from regtools import ocibake, reg_args, reg_env, remote_digest, skopeo_copy_back, skopeo_digest, tag_exists


def test_push_then_skopeo_reads_the_same_digests(any_registry, tmp_path):
    reg = any_registry
    layout = tmp_path / "layout"
    info = write_layout(layout)
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{reg.host}/team/app-{reg.mode}", *reg_args(reg), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{reg.host}/team/app-{reg.mode}:{t}@{info['manifest']}" for t in sorted(info["tags"])
    ]
    assert "3 blob(s) uploaded" in proc.stderr
    for tag in info["tags"]:
        assert skopeo_digest(reg, f"team/app-{reg.mode}:{tag}") == info["manifest"]
        assert remote_digest(reg, f"team/app-{reg.mode}:{tag}") == info["manifest"]
    copied = tmp_path / "copied"
    assert skopeo_copy_back(reg, f"team/app-{reg.mode}:v1", copied, "v1") == info["manifest"]
    for digest in info["blobs"]:
        assert (copied / "blobs" / "sha256" / digest[7:]).read_bytes() == (
            layout / "blobs" / "sha256" / digest[7:]
        ).read_bytes()

    # a re-push sends no blob bytes, and says so
    again = ocibake("push", str(layout), f"{reg.host}/team/app-{reg.mode}", "--json", *reg_args(reg), env=env)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["bytes_uploaded"] == 0 and report["blobs"] == {"uploaded": 0, "skipped": 3, "mounted": 0}
    assert "0 blob(s) uploaded (0 B), 3 skipped" in again.stderr

    # and ocibake pull brings back the same image into a layout skopeo reads
    pulled = tmp_path / "pulled"
    proc = ocibake("pull", f"{reg.host}/team/app-{reg.mode}:v1", str(pulled), *reg_args(reg), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{reg.host}/team/app-{reg.mode}:v1@{info['manifest']}"
    index = json.loads((pulled / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [info["manifest"]]
    for digest in info["blobs"] + [info["manifest"]]:
        assert (pulled / "blobs" / "sha256" / digest[7:]).read_bytes() == (
            layout / "blobs" / "sha256" / digest[7:]
        ).read_bytes()


def test_push_selected_tag_and_retag(plain_registry, tmp_path):
    reg = plain_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v2", "latest"))
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{reg.host}/sel/app", "--tag", "v2", "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{reg.host}/sel/app:v2@{info['manifest']}"]
    assert proc.stderr == "" and not tag_exists(reg, "sel/app:latest")
    # REPO:NEWTAG gives the image another tag in the registry, as `crane push` does
    proc = ocibake("push", str(layout), f"{reg.host}/sel/app:stable", "--tag", "v2", "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"{reg.host}/sel/app:stable@{info['manifest']}"]
    assert skopeo_digest(reg, "sel/app:stable") == info["manifest"]
    # a tag the layout does not have (a typo) publishes nothing
    proc = ocibake("push", str(layout), f"{reg.host}/sel/app", "--tag", "v3", env=env)
    assert proc.returncode == 4 and "tag 'v3' is not in" in proc.stderr and "v2" in proc.stderr
    assert not tag_exists(reg, "sel/app:v3")


def test_bare_name_uses_ocibake_registry(plain_registry, tmp_path):
    reg = plain_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = {**reg_env(reg, tmp_path / "home"), "OCIBAKE_REGISTRY": f"{reg.host}/sos-app"}
    proc = ocibake("push", str(layout), "emergency-service", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{reg.host}/sos-app/emergency-service:v1@{info['manifest']}"


def test_index_pushed_whole_and_pulled_whole_or_per_platform(token_registry, tmp_path):
    reg = token_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("multi",), platforms=("linux/amd64", "linux/arm64"))
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{reg.host}/multi/app", env=env)
    assert proc.returncode == 0, proc.stderr
    assert skopeo_digest(reg, "multi/app:multi") == info["manifest"]
    assert skopeo_copy_back(reg, "multi/app:multi", tmp_path / "copied", "multi") == info["manifest"]

    whole = tmp_path / "whole"
    proc = ocibake("pull", f"{reg.host}/multi/app:multi", str(whole), env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((whole / "index.json").read_text())["manifests"][0]["digest"] == info["manifest"]
    assert sorted(p.name for p in (whole / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (layout / "blobs" / "sha256").iterdir()
    )

    arm = tmp_path / "arm"
    proc = ocibake("pull", f"{reg.host}/multi/app:multi", str(arm), "--platform", "linux/arm64", env=env)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((layout / "blobs" / "sha256" / info["manifest"][7:]).read_text())
    arm_digest = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")
    entry = json.loads((arm / "index.json").read_text())["manifests"]
    assert [m["digest"] for m in entry] == [arm_digest]
    from registry_servers import skopeo

    assert skopeo("inspect", "--format", "{{.Architecture}}", f"oci:{arm}:multi").stdout.strip() == "arm64"

    missing = ocibake(
        "pull", f"{reg.host}/multi/app:multi", str(tmp_path / "none"), "--platform", "linux/s390x", env=env
    )
    assert missing.returncode == 4 and "linux/amd64" in missing.stderr and not (tmp_path / "none").exists()


def test_several_repositories_in_one_run_and_cross_repo_mount(token_registry, tmp_path):
    reg = token_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(layout), f"{reg.host}/one/app", f"{reg.host}/two/app", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["references"] == [
        f"{reg.host}/one/app:v1@{info['manifest']}",
        f"{reg.host}/two/app:v1@{info['manifest']}",
    ]
    # the second repository mounts what the first one received instead of uploading it again
    assert report["blobs"] == {"uploaded": 3, "skipped": 0, "mounted": 3}
    for repo in ("one/app", "two/app"):
        assert skopeo_digest(reg, f"{repo}:v1") == info["manifest"]
    # each repository got its own push-scoped token
    scopes = {a["name"] for c in reg.token_server.issued for a in c["access"] if "push" in a["actions"]}
    assert {"one/app", "two/app"} <= scopes

    proc = ocibake("push", str(layout), f"{reg.host}/three/app", "--mount-from", "one/app", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["blobs"] == {"uploaded": 0, "skipped": 0, "mounted": 3} and report["bytes_uploaded"] == 0
    assert skopeo_digest(reg, "three/app:v1") == info["manifest"]

    # a --mount-from repository that lacks the blobs: uploaded, and the lines say why
    proc = ocibake("push", str(layout), f"{reg.host}/four/app", "--mount-from", "nothing/here", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["blobs"] == {"uploaded": 3, "skipped": 0, "mounted": 0}
    assert proc.stderr.count("uploaded (not mountable from nothing/here)") == 3, proc.stderr


def test_token_expiring_during_a_long_push_is_refreshed(short_token_registry, tmp_path):
    reg = short_token_registry
    proxy = FaultProxy(reg)
    try:
        layout = tmp_path / "layout"
        info = write_layout(layout, tags=("v1",))
        # the manifest PUT comes 3 s after the first token: it has expired (tokens live 2 s)
        delayed = []

        def fault(method, path):
            if method == "PUT" and "/manifests/" in path and not delayed:
                delayed.append(path)
                return ("delay", 3.0)
            return None

        proxy.fault = fault
        env = reg_env(reg, tmp_path / "home")
        started = time.monotonic()
        proc = ocibake("push", str(layout), f"{proxy.host}/long/app", "-v", env=env)
        assert proc.returncode == 0, proc.stderr
        assert time.monotonic() - started > 3
        assert any(s.status == 401 and s.method == "PUT" for s in proxy.seen), proxy.seen
        assert "refreshing the token" in proc.stderr
        assert skopeo_digest(reg, "long/app:v1") == info["manifest"]
    finally:
        proxy.close()


def test_a_bar_per_blob_on_a_terminal_and_a_line_per_blob_otherwise(plain_registry, tmp_path):
    """On a terminal (`script` gives ocibake a pty) the blobs in flight each have a bar, redrawn in place; piped,
    there is one plain line per blob and no terminal control codes."""
    import shlex
    import subprocess
    import sys

    from conftest import require
    from regtools import REPO_ROOT

    reg = plain_registry
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",), layer_sizes=(8_000_000, 6_000_000, 4_000_000))
    env = reg_env(reg, tmp_path / "home")
    log = tmp_path / "tty.log"
    command = shlex.join([sys.executable, "-m", "ocibake", "push", str(layout), f"{reg.host}/tty/app"])
    proc = subprocess.run(
        [require("script"), "-qec", command, str(log)],
        check=False,
        env={**env, "TERM": "xterm"},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    assert proc.returncode == 0, log.read_text(errors="replace")
    screen = log.read_text(errors="replace")
    finished = [line for line in screen.replace("\r", "").split("\n") if line.endswith("  uploaded")]
    assert len(finished) == 4
    # each redraw (after an erase) shows the bars in flight: at some point two or more at once
    redraws = screen.split("\x1b[J")
    assert any(chunk.count("MiB/") >= 2 and chunk.count("[") >= 2 for chunk in redraws), "never two bars at once"
    piped = ocibake("push", str(layout), f"{reg.host}/tty/app2", env=env)
    assert piped.returncode == 0 and "\x1b[" not in piped.stderr
    assert len([line for line in piped.stderr.splitlines() if line.endswith("  uploaded")]) == 4


def test_a_failure_after_some_repositories_reports_those_that_completed(plain_registry, basic_registry, tmp_path):
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = reg_env(plain_registry, tmp_path / "home")  # no credentials for the basic-auth registry
    proc = ocibake("push", str(layout), f"{plain_registry.host}/ok/app", f"{basic_registry.host}/no/app", env=env)
    assert proc.returncode == 5 and "UNAUTHORIZED" in proc.stderr
    assert proc.stdout.splitlines() == [f"{plain_registry.host}/ok/app:v1@{info['manifest']}"]
    assert "pushed before the failure: 1 tag(s)" in proc.stderr
    # with --json, stdout stays one JSON document; the repositories after the failing one are named as not tried
    proc = ocibake(
        "push",
        str(layout),
        f"{plain_registry.host}/ok/app",
        f"{basic_registry.host}/no/app",
        f"{plain_registry.host}/later/app",
        "--json",
        env=env,
    )
    assert proc.returncode == 5
    doc = json.loads(proc.stdout)
    assert doc["references"] == [f"{plain_registry.host}/ok/app:v1@{info['manifest']}"]
    assert doc["error"]["code"] == "UNAUTHORIZED" and doc["error"]["exit_code"] == 5
    assert f"not tried: {plain_registry.host}/later/app" in proc.stderr


def test_pull_platform_of_a_single_image_must_match(plain_registry, tmp_path):
    reg = plain_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = reg_env(reg, tmp_path / "home")
    assert ocibake("push", str(layout), f"{reg.host}/single/app", env=env).returncode == 0
    proc = ocibake("pull", f"{reg.host}/single/app:v1", str(tmp_path / "p"), "--platform", "linux/arm64", env=env)
    assert proc.returncode == 4 and "is a single linux/amd64 image, not linux/arm64" in proc.stderr
    assert not (tmp_path / "p").exists()
    proc = ocibake("pull", f"{reg.host}/single/app:v1", str(tmp_path / "p"), "--platform", "linux/amd64", env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(info["manifest"])


def test_pull_repairs_a_damaged_blob_and_names_the_platform(plain_registry, tmp_path):
    """A blob already in the destination counts only with the right size and bytes; a damaged one is fetched again.
    The pulled image's entry in index.json names its platform, as build writes it."""
    reg = plain_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = reg_env(reg, tmp_path / "home")
    assert ocibake("push", str(layout), f"{reg.host}/repair/app", env=env).returncode == 0
    pulled = tmp_path / "pulled"
    assert ocibake("pull", f"{reg.host}/repair/app:v1", str(pulled), env=env).returncode == 0
    entry = json.loads((pulled / "index.json").read_text())["manifests"][0]
    assert entry["platform"] == {"os": "linux", "architecture": "amd64"}
    manifest = json.loads((pulled / "blobs" / "sha256" / info["manifest"].split(":")[1]).read_bytes())
    emptied, flipped = (pulled / "blobs" / "sha256" / d["digest"].split(":")[1] for d in manifest["layers"][:2])
    emptied.write_bytes(b"")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    proc = ocibake("pull", f"{reg.host}/repair/app:v1", str(pulled), env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("does not match its digest; downloading it again") == 2
    check = subprocess.run(
        ["skopeo", "copy", f"oci:{pulled}:v1", f"dir:{tmp_path / 'dir'}"],
        check=False,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    again = ocibake("pull", f"{reg.host}/repair/app:v1", str(pulled), env=env)
    assert again.returncode == 0 and "downloading it again" not in again.stderr
