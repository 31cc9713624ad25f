"""The rootless sandbox, with both backends (bubblewrap and the unshare fallback), on a busybox rootfs: nothing of
the host visible, the service dir read-only, only the output dir writable, no network unless asked, the environment
exactly as given; and a clear error with a hint when no backend can create a user namespace."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import REPO, require
from ocibake.errors import ToolchainError
from ocibake.toolchain.sandbox import Bind, Sandbox, SandboxRun


@pytest.fixture(scope="module")
def busybox_root(tmp_path_factory) -> Path:
    busybox = None
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(candidate):
            busybox = candidate
            break
    if busybox is None:
        pytest.fail("busybox-static is not installed: run `bash scripts/install-debian-deps.sh`")
    root = tmp_path_factory.mktemp("bbroot") / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in ("sh", "cat", "ls", "env", "id", "nc", "touch", "ip", "grep"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "usr").symlink_to("/")  # a top-level symlink, as merged-/usr images have
    return root


@pytest.fixture(params=["bwrap", "unshare"])
def sandbox(request) -> Sandbox:
    if request.param == "bwrap":
        require("bwrap")
        box = Sandbox()
    else:
        require("unshare")
        box = Sandbox(bwrap=None)
    assert box.backend() == request.param
    return box


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "service"
    src.mkdir()
    (src / "main.go").write_text("package main\n")
    out = tmp_path / "out"
    out.mkdir()
    return src, out


def sh(sandbox: Sandbox, root: Path, script: str, tmp_path: Path, network: bool = False, check=True):
    src, out = dirs(tmp_path) if not (tmp_path / "service").exists() else (tmp_path / "service", tmp_path / "out")
    run = SandboxRun(
        rootfs=root,
        argv=["sh", "-c", script],
        env={"PATH": "/bin", "MARK": "m"},
        binds=[Bind(src, "/src"), Bind(out, "/out", writable=True)],
        cwd="/src",
        network=network,
    )
    if check:
        return sandbox.run(run, what="test").stdout
    return subprocess.run(
        sandbox.argv(run, tmp_path / "stage"),
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={},
    )


def test_only_the_image_and_the_binds_are_visible(sandbox, busybox_root, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("secret")
    out = sh(
        sandbox,
        busybox_root,
        f"echo $(ls /); cat /etc/hostname {marker} /root/.bashrc /etc/passwd 2>&1; ls /proc | grep -c '^[0-9]' ; id -u",
        tmp_path,
    )
    lines = out.splitlines()
    assert set(lines[0].split()) == {"bin", "etc", "usr", "src", "out", "proc", "dev", "tmp"}
    assert "secret" not in out and "root:x:0:0:root:/:/bin/sh" in out  # the image's passwd, not the host's
    assert os.uname().nodename not in out.replace("root:x", "")
    assert "can't open '/etc/hostname'" in out and f"can't open '{marker}'" in out
    assert int(lines[-2]) <= 4  # own pid namespace: sh, ls, grep and little else
    assert lines[-1] == "0"


def test_service_read_only_output_writable_root_read_only(sandbox, busybox_root, tmp_path):
    out = sh(
        sandbox,
        busybox_root,
        "touch /src/new 2>&1; touch /bin/new 2>&1; touch /new 2>&1; "
        "echo built > /out/app && echo ok; touch /tmp/scratch && echo tmp-ok",
        tmp_path,
    )
    assert out.count("Read-only file system") == 3, out
    assert "ok" in out and "tmp-ok" in out
    assert (tmp_path / "out" / "app").read_text() == "built\n"
    assert not (tmp_path / "service" / "new").exists() and not (busybox_root / "bin" / "new").exists()


def test_no_setuid_file_survives_and_no_privileges_are_left(sandbox, busybox_root, tmp_path):
    """uid 0 inside is the invoking user outside: a toolchain may chmod u+s what it writes, and run by root that
    would be a setuid-root program on the host. The bits are gone when the run ends; bwrap also drops every
    capability, and neither backend lets exec gain privileges."""
    for applet in ("chmod", "hostname"):
        if not (busybox_root / "bin" / applet).exists():
            (busybox_root / "bin" / applet).symlink_to("busybox")
    out = sh(
        sandbox,
        busybox_root,
        "cp /bin/busybox /out/suid && chmod 6755 /out/suid && ls -l /out/suid; "
        "mkdir /out/d && chmod 2775 /out/d; hostname; cat /proc/self/status",
        tmp_path,
    )
    assert "-rwsr-sr-x" in out, out  # it did set the bits inside...
    for path in (tmp_path / "out" / "suid", tmp_path / "out" / "d"):
        assert path.stat().st_mode & 0o6000 == 0, oct(path.stat().st_mode)  # ...and they are gone outside
    status = dict(line.split(":", 1) for line in out.splitlines() if ":" in line and line.startswith(("Cap", "NoNew")))
    assert status["NoNewPrivs"].strip() == "1"
    if sandbox.backend() == "bwrap":
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
    assert "\nocibake\n" in out


def test_environment_is_exactly_what_was_given(sandbox, busybox_root, tmp_path):
    src, _out = dirs(tmp_path)
    run = SandboxRun(
        rootfs=busybox_root,
        argv=["env"],
        env={"PATH": "/bin", "GOCACHE": "/cache/go-build"},
        binds=[Bind(src, "/src")],
        cwd="/src",
    )
    # PWD is the one addition (bwrap sets it with --chdir; the unshare backend matches it)
    assert sorted(sandbox.run(run, what="env").stdout.split()) == ["GOCACHE=/cache/go-build", "PATH=/bin", "PWD=/src"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_network_only_when_asked(sandbox, busybox_root, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        script = (
            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 127.0.0.1 {port} | grep -q 'HTTP/1' "
            "&& echo REACHED || echo UNREACHABLE; ip -o link"
        )
        closed = sh(sandbox, busybox_root, script, tmp_path)
        assert "UNREACHABLE" in closed and "REACHED\n" not in closed
        links = [line.split(":")[1].strip() for line in closed.splitlines() if line[:1].isdigit()]
        assert links == ["lo"], closed
        opened = sh(sandbox, busybox_root, script, tmp_path, network=True)
        assert "REACHED" in opened.replace("UNREACHABLE", "")
    finally:
        server.shutdown()
        server.server_close()


def test_no_backend_installed():
    with pytest.raises(ToolchainError) as info:
        Sandbox(bwrap=None, unshare=None).backend()
    assert "bubblewrap (bwrap) is not installed" in info.value.message
    assert info.value.exit_code == 3 and "apt-get install bubblewrap" in info.value.hint


def test_no_user_namespaces_is_a_clear_error(tmp_path):
    """Really without user namespaces: inside `unshare --user` with no uid mapping the kernel refuses a nested one
    (EPERM), exactly as on a host that forbids them. bwrap is taken off the list, so the unshare fallback is tried."""
    require("unshare")
    code = (
        "import sys\nfrom ocibake.toolchain.sandbox import Sandbox\nfrom ocibake.errors import ToolchainError\n"
        "try:\n    Sandbox(bwrap=None).backend()\nexcept ToolchainError as e:\n"
        "    print(e.exit_code); print(e.message); print(e.hint); sys.exit(0)\nsys.exit('no error')\n"
    )
    proc = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", code],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stdout
    code_line, message, hint = proc.stdout.splitlines()[:3]
    assert code_line == "3"
    assert message.startswith("cannot create a rootless sandbox") and "unshare failed" in message
    assert "bubblewrap (bwrap) is not installed" in message
    assert "user.max_user_namespaces" in hint and "--toolchain local" in hint


def test_bits_left_by_a_killed_run_are_cleared_before_the_next_one(sandbox, busybox_root, tmp_path):
    """A run killed with SIGKILL never reaches its clean-up: its marker stays, and the next run into the same
    directory clears the bits before the sandbox starts (here it sees the file without them)."""
    _src, out = dirs(tmp_path)
    planted = out / "left"
    planted.write_bytes(b"x")
    planted.chmod(0o6777)
    (out / ".ocibake-sandbox-running-999999999").touch()  # a process that is gone
    listing = sh(sandbox, busybox_root, "ls -l /out/left", tmp_path)
    assert listing.startswith("-rwxr-xr-x"), listing
    assert not list(out.glob(".ocibake-sandbox-running-*"))


def test_directories_the_toolchain_locked_are_opened_and_cleaned(tmp_path):
    from ocibake.toolchain.sandbox import strip_privilege_bits

    locked = tmp_path / "d" / "locked"
    locked.mkdir(parents=True)
    (locked / "suid").write_bytes(b"x")
    (locked / "suid").chmod(0o4777)
    locked.chmod(0o311)
    strip_privilege_bits(tmp_path / "d")
    assert locked.stat().st_mode & 0o777 == 0o711 and (locked / "suid").stat().st_mode & 0o7777 == 0o755
