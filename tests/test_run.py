"""`ocibake run`: real images built by ocibake started under bubblewrap. The sample service answers /health on the
port given in its environment, as uid 1001, and stops gracefully (exit 0) on SIGINT; `-- ARGS` replace Cmd; the
production-alpine image (on a busybox base) opens a shell as 1001 with a read-only root, a writable /tmp and no host
file, and its Healthcheck goes healthy (inside the app's own network namespace with --network none); a non-root user
in a user namespace with no network runs an image; bad input is one line and exit 4."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from busybox_base import build_busybox_base
from conftest import SAMPLE, build, free_port, require, run_cli
from ocibake.run.process import children_of, scan_children
from regtools import ocibake, reg_env
from rootless import rootless_env
from run_helpers import get_json, ocibake_run


@pytest.fixture(scope="module")
def run_env(tmp_path_factory) -> dict:
    """A cache of the module's own (the unpacked images land in it)."""
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("run-cache"))}


@pytest.fixture(scope="module")
def alpine_image(tmp_path_factory) -> tuple[Path, int]:
    """The sample service as production-alpine on a busybox base, its health check on a port of its own."""
    require("busybox")
    base = tmp_path_factory.mktemp("run-alpine")
    build_busybox_base(base / "base", "1")
    port = free_port()
    args = ("--target", "production-alpine", "--base", f"oci:{base / 'base'}:1", "--upx", "off", "--sbom", "none")
    build(SAMPLE, base / "image", *args, "--port", str(port), "--version", "v2")
    return base / "image", port


def test_the_sample_answers_health_as_1001_and_stops_gracefully_on_sigint(sample_image, run_env, tmp_path):
    layout, digest = sample_image
    port = free_port()
    with ocibake_run(tmp_path, str(layout), "-e", f"PORT={port}", env=run_env) as app:
        health = app.wait_for("answer on /health", lambda: get_json(port), timeout=60)
        assert isinstance(health, dict)
        assert health["status"] == "ok" and health["uid"] == 1001 and health["version"] == "v1.0.0"
        assert health["certificates"] > 100 and health["new_york"] == "08:00 EDT"
        code, seconds = app.stop(signal.SIGINT, timeout=5)
        assert code == 0, app.stderr()
        assert seconds < 5
        err = app.stderr()
        assert f"{digest[:19]} (linux/amd64) as 1001:1001: /app" in err
        assert "ports 8080/tcp on every interface, as `-p 8080:8080` would give" in err
        assert f"listening on :{port} as uid 1001" in err and "stopping: finishing the requests in flight" in err


def test_ctrl_c_at_a_terminal_reaches_the_app_alone_and_it_stops_gracefully(sample_image, run_env, tmp_path):
    """At a terminal Ctrl-C signals the whole foreground process group: bubblewrap, in a group of its own, must not
    die of it (it would SIGKILL the app); ocibake sends it on to the app, which exits 0."""
    layout, _ = sample_image
    port = free_port()
    log = tmp_path / "terminal.log"
    # exec: no shell between the terminal and ocibake. A non-interactive dash (`script`'s shell when SHELL is unset)
    # dies of the same SIGINT however its child ends, so a shell's `echo $?` would test dash, not ocibake.
    inner = f"exec {sys.executable} -m ocibake run {layout} -e PORT={port}"
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [require("script"), "-qec", inner, "/dev/null"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **run_env},
        ) as proc,
    ):  # fmt: skip
        assert proc.stdin is not None
        try:
            deadline = time.monotonic() + 60
            while not _answers(port):
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.1)
            proc.stdin.write(b"\x03")  # Ctrl-C typed at the terminal
            proc.stdin.flush()
            # the app has 5 s to finish its requests; the rest is slack for a loaded CI machine
            try:
                code = proc.wait(timeout=30)  # script -e: ocibake's own exit code
            except subprocess.TimeoutExpired:
                raise AssertionError(log.read_text() + _processes()) from None
        finally:
            proc.stdin.close()
            proc.kill()
    text = log.read_text()
    assert code == 0 and "stopping: finishing the requests in flight" in text, (code, text)


def _processes() -> str:
    """What still runs, to tell a hung ocibake from a hung app or shell when the test fails."""
    ps = subprocess.run(["ps", "-eo", "pid,ppid,pgid,stat,wchan:20,args"], capture_output=True, text=True, check=False)
    return "\nprocesses:\n" + ps.stdout


def _answers(port: int) -> bool:
    try:
        return get_json(port)["status"] == "ok"
    except OSError:
        return False


def test_arguments_replace_cmd_and_the_second_run_unpacks_nothing(sample_image, run_env):
    layout, _ = sample_image
    proc = run_cli("run", f"oci:{layout}:v1.0.0", "-e", "ENV=production", "--", "--version", env=run_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("emergency-service v1.0.0 (built ")
    unpacked = list(Path(run_env["XDG_CACHE_HOME"], "ocibake", "rootfs").iterdir())
    assert len(unpacked) >= 1
    stamps = {p: p.stat().st_mtime_ns for p in unpacked}
    again = run_cli("run", str(layout), "--", "--version", env=run_env)
    assert again.returncode == 0 and again.stdout == proc.stdout
    assert {p: p.stat().st_mtime_ns for p in Path(run_env["XDG_CACHE_HOME"], "ocibake", "rootfs").iterdir()} == stamps
    # the app's own exit code is ocibake's (go's flag package exits 2 on an unknown flag)
    bad = run_cli("run", str(layout), "--", "--no-such-flag", env=run_env)
    assert bad.returncode == 2 and "flag provided but not defined: -no-such-flag" in bad.stderr


def test_shell_in_production_alpine_is_1001_on_a_read_only_root_with_no_host_file(alpine_image, run_env, tmp_path):
    layout, _ = alpine_image
    marker = Path(tempfile.mkdtemp(prefix="host-marker-", dir="/tmp"))
    env_file = tmp_path / "app.env"
    env_file.write_text("# settings\nFROM_FILE=yes\n\nENV=overridden-below\n")
    script = (
        'id; echo "env=$ENV file=$FROM_FILE base=$BASE_GREETING"; pwd; '
        "touch /probe 2>&1 || true; touch /tmp/probe && echo tmp-writable; "
        f"ls -a /; test -e {marker} && echo host-visible; test -e /etc/shadow && echo shadow-visible; "
        "ls /proc | grep -c '^[0-9]'"
    )
    try:
        proc = run_cli(
            "run", str(layout), "--shell", "--env-file", str(env_file), "-e", "ENV=production",
            "--", "-c", script, env=run_env,
        )  # fmt: skip
    finally:
        marker.rmdir()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "uid=1001(goapp) gid=1001(goapp)"
    assert lines[1] == "env=production file=yes base=from-base" and lines[2] == "/srv"
    assert "Read-only file system" in lines[3] and lines[4] == "tmp-writable"
    listed = set(lines[5:-1])
    assert listed == {".", "..", "app", "bin", "dev", "etc", "home", "proc", "root", "srv", "tmp", "usr"}, listed
    assert "host-visible" not in proc.stdout and "shadow-visible" not in proc.stdout
    assert int(lines[-1]) <= 4  # its own pid namespace: bwrap's init, sh, ls, grep
    assert "as 1001:1001: /bin/sh -c" in proc.stderr


def test_environment_values_are_in_no_command_line(alpine_image, run_env, tmp_path):
    """-e and --env-file values (passwords, often) reach the app through its environment, never through bubblewrap's
    arguments: no `ps` on the host and no /proc/*/cmdline in the sandbox shows them."""
    layout, _ = alpine_image
    secret = "pw-" + os.urandom(6).hex()
    env_file = tmp_path / "secret.env"
    env_file.write_text(f"FROM_FILE={secret}-file\n")
    script = 'echo "$DB_PASSWORD $FROM_FILE"; cat /proc/[0-9]*/cmdline | tr "\\0" " "; echo; sleep 2'
    # -e NAME passes the host's value: then not even ocibake's own command line holds it (-e NAME=VALUE would)
    argv = [sys.executable, "-m", "ocibake", "run", str(layout), "--shell", "-e", "DB_PASSWORD"]
    argv += ["--env-file", str(env_file), "--", "-c", script]
    env = {**os.environ, **run_env, "DB_PASSWORD": secret}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        time.sleep(1.5)
        host_cmdlines = []
        for pid in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                host_cmdlines.append(Path("/proc", pid, "cmdline").read_bytes())
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    first, inside = out.splitlines()[:2]
    assert first == f"{secret} {secret}-file"
    assert secret not in inside and all(secret.encode() not in c for c in host_cmdlines)


def test_healthcheck_goes_healthy_inside_the_apps_own_network(alpine_image, run_env, tmp_path):
    layout, port = alpine_image
    with ocibake_run(tmp_path, str(layout), "--network", "none", "-e", f"PORT={port}", env=run_env) as app:
        app.wait_for_line("health: starting", timeout=60)
        app.wait_for_line("health: healthy", timeout=60)  # wget localhost:PORT in the app's own namespaces
        assert "network: none (a loopback of its own)" in app.stderr()
        with pytest.raises(OSError, match="refused"):
            get_json(port)  # nothing of it is on the host's loopback
        code, _ = app.stop(signal.SIGTERM, timeout=10)
        assert code == 0, app.stderr()


def test_a_failing_healthcheck_goes_unhealthy(alpine_image, run_env, tmp_path):
    """--health-interval 1s in place of the config's 30s: three failures after the 5 s start period come in seconds
    (with the config's interval, not before 95 s)."""
    layout, port = alpine_image
    other = free_port()  # the app listens elsewhere: the config's check on PORT fails
    with ocibake_run(tmp_path, str(layout), "-e", f"PORT={other}", "--health-interval", "1s", env=run_env) as app:
        app.wait_for("answer on /health", lambda: get_json(other), timeout=60)
        assert port != other
        app.wait_for_line("health: unhealthy (exit 1", timeout=45)
        assert "health: healthy" not in app.stderr()


def test_bad_input_is_one_line_and_exit_4(sample_image, run_env, tmp_path):
    layout, _ = sample_image
    cases = [
        ((str(tmp_path),), "is a directory but not an OCI image layout"),
        ((str(SAMPLE),), "`ocibake run"),
        ((str(layout), "--network", "bridge"), "--network 'bridge' is not host or none"),
        ((str(layout), "--shell"), "the image has no /bin/sh for --shell"),
        ((str(layout), "--target", "development"), "--target only apply with --watch"),
        ((str(layout), "-e", "=x"), "'' is not a variable name"),
        ((str(layout), "-e", "API KEY=hunter2"), "'API KEY' is not a variable name"),
        ((str(layout), "--env-file", str(tmp_path / "none")), "--env-file"),
        ((str(layout), "--entrypoint", "/bin/sh"), "'/bin/sh' is not an executable in the image"),
        ((f"oci:{layout}:v9",), "tag 'v9' is not in"),
    ]
    for args, message in cases:
        proc = run_cli("run", *args, env=run_env)
        assert proc.returncode == 4, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "hunter2" not in proc.stderr + proc.stdout  # a value never shows in an error
        assert proc.stderr.startswith("ocibake: error: ") and "  hint: " in proc.stderr
    usage = [
        (("--health-interval", "soon"), "--health-interval 'soon' is not a duration"),
        (("--health-interval", "10"), "--health-interval '10' is not a duration"),
        (("--health-interval", "0s"), "--health-interval '0s' is out of range"),
        (("--health-interval", "10000000h"), "--health-interval '10000000h' is out of range"),
        (("--health-interval", "1s", "--no-healthcheck"), "does not apply with --no-healthcheck"),
        (("--health-interval", "1s", "--shell"), "does not apply with --shell"),
    ]
    for args, message in usage:
        proc = run_cli("run", str(layout), *args, env=run_env)
        assert proc.returncode == 2 and message in proc.stderr and "  hint: " in proc.stderr, (args, proc.stderr)
    as_json = run_cli("run", str(layout), "--json", "--", "--version", env=run_env)
    assert as_json.returncode == 2 and "stdout is the app's" in as_json.stderr
    assert json.loads(as_json.stdout)["error"]["exit_code"] == 2  # the one JSON document --json promises


def test_a_non_root_user_runs_an_image_with_no_network(sample_image, rootless_account):
    """As the unprivileged account (its own HOME and cache), the app in bubblewrap's user namespace with a network
    namespace of its own (--network none). Not under an outer `unshare -r`: there every directory above the cache
    shows as the overflow uid and the cache's privacy check refuses it (toolchain/cache.py; see the README)."""
    layout, _ = sample_image
    shared = Path(tempfile.mkdtemp(prefix="ocibake-run-", dir="/tmp"))
    account = rootless_account
    try:
        os.chmod(shared, 0o755)
        shutil.copytree(layout, shared / "layout")
        for args, expect in (
            (("--", "--version"), "emergency-service v1.0.0"),
            (("--", "--selfcheck"), '"uid":1001'),
        ):
            proc = subprocess.run(
                ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups", "--",
                 sys.executable, "-m", "ocibake", "run", str(shared / "layout"), "--network", "none", *args],
                env=rootless_env(account.home), cwd="/", capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            assert expect in proc.stdout and "network: none" in proc.stderr
        assert os.stat(shared / "layout" / "index.json").st_uid == 0  # read, not written
        assert any((account.home / ".cache" / "ocibake" / "rootfs").iterdir())
    finally:
        shutil.rmtree(shared)


def test_an_image_from_a_registry_is_pulled_verified_and_run(sample_image, plain_registry, run_env, tmp_path):
    layout, digest = sample_image
    env = {**reg_env(plain_registry, tmp_path / "home"), **run_env}
    assert ocibake("push", str(layout), f"{plain_registry.host}/sos/es", "-t", "v1.0.0", env=env).returncode == 0
    proc = ocibake("run", f"{plain_registry.host}/sos/es:v1.0.0", "--", "--version", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("emergency-service v1.0.0") and digest[:19] in proc.stderr


def test_an_image_of_another_architecture_runs_under_qemu_user(run_env, tmp_path):
    require("qemu-aarch64-static")
    build(SAMPLE, tmp_path / "arm", "--platform", "linux/arm64", "--upx", "off", "--sbom", "none", "--version", "v3")
    proc = run_cli("run", str(tmp_path / "arm"), "--", "--version", env=run_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("emergency-service v3") and "(linux/arm64 under qemu-aarch64-static)" in proc.stderr
    # without the emulator on PATH: refused before anything starts, exit 3, with what to install
    only_bwrap = tmp_path / "bin"
    only_bwrap.mkdir()
    (only_bwrap / "bwrap").symlink_to(require("bwrap"))
    refused = run_cli("run", str(tmp_path / "arm"), "--", "--version", env={**run_env, "PATH": str(only_bwrap)})
    assert refused.returncode == 3 and refused.stdout == "", refused.stderr
    assert "the image is for linux/arm64 and this host is linux/amd64" in refused.stderr
    assert "apt-get install qemu-user-static" in refused.stderr


def test_the_app_is_found_with_or_without_the_kernels_children_list():
    """Signals go to bubblewrap's init's child: read from /proc/PID/task/PID/children, or where a kernel lacks that
    (CONFIG_PROC_CHILDREN), from every process's parent in /proc/*/stat. Both find the same processes."""
    with subprocess.Popen(["sleep", "30"]) as first, subprocess.Popen(["sleep", "30"]) as second:
        try:
            listed = children_of(os.getpid())
            assert {first.pid, second.pid} <= set(listed)
            assert {first.pid, second.pid} <= set(scan_children(os.getpid()))
            assert scan_children(first.pid) == [] == children_of(first.pid)
        finally:
            first.kill()
            second.kill()


def test_a_non_root_users_healthcheck_goes_healthy_and_with_no_network_says_it_is_not_checked(
    alpine_image, rootless_account, tmp_path
):
    """A non-root user cannot enter the namespaces bubblewrap made for the app: on the host's network each probe
    runs in a sandbox of its own on the same image (it reaches the app on localhost) and the app goes healthy; with
    --network none that cannot reach the app, and the run says the check is not run instead of going unhealthy."""
    layout, port = alpine_image
    account = rootless_account
    shared = Path(tempfile.mkdtemp(prefix="ocibake-health-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        shutil.copytree(layout, shared / "layout")
        as_user = ("setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups", "--")
        env = rootless_env(account.home)
        with ocibake_run(tmp_path, str(shared / "layout"), "-e", f"PORT={port}", env=env, prefix=as_user) as app:
            app.wait_for_line("health: healthy", timeout=90)
            assert "probes run in a sandbox of their own" in app.stderr()
            code, _ = app.stop(signal.SIGTERM, timeout=10)
            assert code == 0, app.stderr()
        args = (str(shared / "layout"), "--network", "none", "-e", f"PORT={port}")
        with ocibake_run(tmp_path, *args, env=env, prefix=as_user) as app:
            app.wait_for_line("health: not checked", timeout=90)
            assert "unhealthy" not in app.stderr()
            code, _ = app.stop(signal.SIGTERM, timeout=10)
            assert code == 0, app.stderr()
    finally:
        shutil.rmtree(shared)
