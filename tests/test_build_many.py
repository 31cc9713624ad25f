"""Several services in one `ocibake build` run: one failing does not stop the others (exit code, summary, stdout in
the order given, --json list); Ctrl-C stops every go process and leaves every layout as it was; --push PREFIX/ pushes
each service to PREFIX/NAME and mounts the blobs they share. Real go, docker-registry and skopeo."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FIXTURES, REPO, layout_index, require, run_cli
from regtools import reg_env, skopeo_digest

OK_A, BAD, OK_B = FIXTURES / "hello-root", FIXTURES / "compile-error", FIXTURES / "cmd-main"


def test_one_failing_service_does_not_stop_the_others(tmp_path):
    require("go")
    proc = run_cli(
        "build", str(OK_A), str(BAD), str(OK_B), "--upx", "off", "--version", "v3.0.0", "-j", "2", cwd=tmp_path
    )
    assert proc.returncode == 3, proc.stderr  # the worst: go build failed
    lines = proc.stdout.splitlines()
    assert [line.split("@")[0] for line in lines] == ["hello-root", "cmd-main"]  # the order given
    for line, name in zip(lines, ("hello-root", "cmd-main"), strict=True):
        digest = line.split("@")[1]
        assert layout_index(tmp_path / "dist" / "oci" / name)["manifests"][0]["digest"] == digest
    assert not (tmp_path / "dist" / "oci" / "compile-error").exists()
    table = proc.stderr[proc.stderr.index("service ") :]
    assert "compile-error  exit 3" in table and "undefined: undefinedFunction" in table
    assert "2 built, 1 failed" in table and "Traceback" not in proc.stderr

    # --json: one list, in the order given, the failure with its exit code; a missing directory fails alone
    proc = run_cli(
        "build", str(OK_B), str(tmp_path / "missing"), "--upx", "off", "--version", "v3.0.0", "--json", cwd=tmp_path
    )
    assert proc.returncode == 4, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["service"] for d in docs] == [str(OK_B), str(tmp_path / "missing")]
    assert docs[0]["reference"] == lines[1]  # same inputs, same digest as in the parallel run
    assert docs[1]["error"]["exit_code"] == 4 and "not found" in docs[1]["error"]["message"]


def test_flags_for_one_image_are_refused_with_several(tmp_path):
    for args in (["--output", str(tmp_path / "o")], ["--name", "x"], ["--push", "127.0.0.1:5000/one-repo"]):
        proc = run_cli("build", str(OK_A), str(OK_B), *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "dist").exists()


def _processes_under(path: Path) -> list[str]:
    """Command lines of live processes (not Python) that mention ``path`` or run in it: go in a service's directory,
    compile and link working in a build's directory."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cmd.startswith((sys.executable, "python")) or " -m pytest" in cmd:
            continue
        if str(path) in cmd or cwd.startswith(str(path)):
            found.append(cmd)
    return found


def _snapshot(layout: Path) -> tuple[bytes, list[str], list[str]]:
    return (
        (layout / "index.json").read_bytes(),
        sorted(os.listdir(layout / "blobs" / "sha256")),
        sorted(os.listdir(layout.parent)),
    )


def test_ctrl_c_stops_every_child_and_leaves_every_layout_as_it_was(tmp_path):
    require("go")
    services = []
    for name in ("alpha", "beta"):
        shutil.copytree(OK_A, tmp_path / name)
        services.append(tmp_path / name)
    args = ["build", *map(str, services), "--upx", "off", "-j", "2"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    first = subprocess.run(
        [sys.executable, "-m", "ocibake", *args],
        check=False,
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr
    layouts = [tmp_path / "dist" / "oci" / name for name in ("alpha", "beta")]
    before = [_snapshot(layout) for layout in layouts]

    # A change and an empty Go build cache: go compiles the standard library for a long while.
    for service in services:
        main = service / "main.go"
        main.write_text(main.read_text().replace("hello from the root", "hello again"))
    env["GOCACHE"] = str(tmp_path / "cold-gocache")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibake", *args],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and len({c for c in _processes_under(tmp_path) if "/compile" in c or "go build" in c}) < 2
    ):
        time.sleep(0.05)
    assert _processes_under(tmp_path), "go never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert out == ""
    time.sleep(0.2)
    assert _processes_under(tmp_path) == []
    assert [_snapshot(layout) for layout in layouts] == before  # index, blobs, no staging directory left


def test_push_prefix_pushes_each_service_to_its_repository_and_mounts_shared_blobs(plain_registry, tmp_path):
    reg = plain_registry
    env = reg_env(reg, tmp_path / "home")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocibake",
            "build",
            str(OK_A),
            str(OK_B),
            "--upx",
            "off",
            "--version",
            "v1.0.0",
            "--push",
            f"{reg.host}/many/",
            "--json",
        ],
        check=False,
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    for doc, name in zip(docs, ("hello-root", "cmd-main"), strict=True):
        assert skopeo_digest(reg, f"many/{name}:v1.0.0") == doc["digest"]
        assert next(t["repository"] for t in doc["push"]["tags"]) == f"{reg.host}/many/{name}"
    # Whichever service is pushed second finds the passwd, zoneinfo and CA layers in the first one's repository:
    # mounted, not uploaded again (the two build in parallel, so either may finish first).
    assert sorted(d["push"]["blobs"]["mounted"] for d in docs) == [0, 3], [d["push"] for d in docs]
    assert docs[0]["layers"][:3] == docs[1]["layers"][:3]
    assert REPO.exists()
