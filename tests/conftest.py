"""Shared helpers: run the real CLI, unpack with umoci, run a rootfs in a namespace with bubblewrap.

Every tool is real. A missing tool fails the test with the install command; nothing is skipped silently.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# fixtures shared by many modules: registries in every mode, the rootless account
pytest_plugins = ["conftest_registry", "rootless"]

REPO = Path(__file__).resolve().parent.parent

# Colour is chosen per test (test_cli_colour.py): a FORCE_COLOR or NO_COLOR in the environment the suite was started
# from must not change the stderr every other test reads.
for _variable in ("FORCE_COLOR", "NO_COLOR"):
    os.environ.pop(_variable, None)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLE = REPO / "services" / "emergency-service"


def require(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(
            f"{tool} is not installed: run `bash scripts/install-debian-deps.sh` (tests never skip a missing tool)"
        )
    return path


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300, prefix: list[str] | None = None
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    argv = [*(prefix or []), sys.executable, "-m", "ocibake", *args]
    return subprocess.run(
        argv, check=False, cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def build(service: Path, output: Path, *args: str, **kw) -> tuple[str, subprocess.CompletedProcess]:
    """Build and return (manifest digest, process). Fails the test with ocibake's stderr if the build fails."""
    proc = run_cli("build", str(service), "--output", str(output), *args, **kw)
    assert proc.returncode == 0, f"ocibake build failed ({proc.returncode}):\n{proc.stderr}"
    line = proc.stdout.strip().splitlines()[-1]
    assert "@sha256:" in line, proc.stdout
    return line.split("@", 1)[1], proc


def interrupt_build(args: list[str], env: dict, started, sig: int, settle: float) -> subprocess.CompletedProcess:
    """Start `ocibake build ARGS`, wait until ``started()`` is true (a staging directory appeared), let the build run
    ``settle`` seconds more, send ``sig`` and return the finished process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibake", "build", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not started():
        time.sleep(0.02)
    time.sleep(settle)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def layout_index(layout: Path) -> dict:
    return json.loads((layout / "index.json").read_text())


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def manifest_and_config(layout: Path, digest: str) -> tuple[dict, dict]:
    manifest = json.loads(blob(layout, digest))
    return manifest, json.loads(blob(layout, manifest["config"]["digest"]))


def unpack(layout: Path, tag: str, dest: Path) -> Path:
    require("umoci")
    proc = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", str(dest)],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    return dest / "rootfs"


def sandbox_argv(rootfs: Path, env: dict | None = None) -> list[str]:
    """bwrap: new user (uid/gid 1001), mount, pid, ipc and uts namespaces; only the rootfs, /proc and /dev exist."""
    argv = [
        require("bwrap"),
        "--unshare-user",
        "--uid",
        "1001",
        "--gid",
        "1001",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--bind",
        str(rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--clearenv",
        "--die-with-parent",
    ]
    for key, value in (env or {}).items():
        argv += ["--setenv", key, value]
    return argv


def run_in_rootfs(
    rootfs: Path, *args: str, env: dict | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*sandbox_argv(rootfs, env), "/app", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_check(rootfs: Path, timeout: float = 20) -> dict:
    """Start /app in the sandbox and GET /health on loopback; return the JSON it answered."""
    port = free_port()
    argv = [*sandbox_argv(rootfs, {"PORT": str(port)}), "/app"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"/app exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                        assert resp.status == 200
                        return json.loads(resp.read())
                except OSError:
                    time.sleep(0.05)
            pytest.fail("no answer from /health")
        finally:
            proc.kill()


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory) -> tuple[Path, str]:
    """The sample service built once: (layout, manifest digest)."""
    require("go")
    out = tmp_path_factory.mktemp("sample") / "layout"
    digest, _ = build(SAMPLE, out, "--version", "v1.0.0")
    return out, digest


@pytest.fixture(scope="session")
def toolchain(tmp_path_factory) -> tuple[str, Path]:
    """(reference, cache dir): a Go toolchain image (the host's GOROOT and upx, written by the tests with ocibake's own
    image code, offline) in an OCI layout under the tags `go` and `no-go`, and one cache shared by the session so the
    image is unpacked and the standard library compiled once."""
    from toolchain_image_builder import build_toolchain_image

    require("go"), require("upx"), require("bwrap"), require("unshare")
    base = tmp_path_factory.mktemp("toolchain")
    build_toolchain_image(base / "layout", tag="go")
    build_toolchain_image(base / "layout", tag="no-go", with_go=False)
    return f"oci:{base / 'layout'}:go", base / "xdg" / "ocibake"  # the cache `ocibake` uses under XDG_CACHE_HOME


@pytest.fixture(scope="session")
def toolchain_cache_env(toolchain) -> dict:
    """XDG_CACHE_HOME for `ocibake build --toolchain ...` runs: one cache for the session's command-line builds, so
    the toolchain is unpacked and its standard library compiled once."""
    _, cache = toolchain
    return {"XDG_CACHE_HOME": str(cache.parent)}


COMMIT_DATE = "2024-03-01T10:20:30Z"


def git(*args, cwd, env=None):
    """git with a fixed author, committer and date, so commits (and image digests) are the same every run."""
    full = {
        **os.environ,
        "GIT_AUTHOR_DATE": COMMIT_DATE,
        "GIT_COMMITTER_DATE": COMMIT_DATE,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@example.com",
        **(env or {}),
    }
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=full, check=True, stdout=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """hello-root as a git repository, and an image built from it: (source, layout, digest)."""
    base = tmp_path_factory.mktemp("audit")
    source = base / "hello"
    shutil.copytree(FIXTURES / "hello-root", source)
    git("init", "-q", cwd=source)
    git("add", ".", cwd=source)
    git("commit", "-qm", "fixture", cwd=source)
    digest, _ = build(source, base / "image", "--version", "v1", "--upx", "off", "--sbom", "none")
    return source, base / "image", digest
