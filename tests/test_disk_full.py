"""A full disk is a clear one-line error (exit 4), not an internal error, and the layout stays as it was: a
pull into a layout on a tiny tmpfs (mounted in a user and mount namespace of the test's own, no root needed) that
fills up."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import FIXTURES, REPO, require
from registry_servers import write_layout
from regtools import base_env, ocibake

INNER = r"""
import hashlib, json, os, subprocess, sys
d, host = sys.argv[1], sys.argv[2]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d], check=True)
def run(*a):
    return subprocess.run([sys.executable, "-m", "ocibake", *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
def snap():
    out = {}
    for dp, dn, fn in os.walk(d):
        for n in fn:
            p = os.path.join(dp, n)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out
first = run("pull", f"{host}/diskfull/img:small", f"{d}/L")
fd = os.open(f"{d}/filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"x" * 4096)
except OSError:
    os.ftruncate(fd, os.fstat(fd).st_size - 65536)     # room for the stage, not for the 600 kB layer
    os.close(fd)
before = snap()
second = run("pull", f"{host}/diskfull/img:big", f"{d}/L")
print(json.dumps({"first": first.returncode, "first_err": first.stderr, "code": second.returncode,
                  "stderr": second.stderr, "same": snap() == before,
                  "diff": sorted(set(snap().items()) ^ set(before.items()))}))
"""


def test_a_full_disk_is_a_clear_error_and_leaves_the_layout_intact(plain_registry, tmp_path):
    require("unshare")
    env = base_env(tmp_path / "home")
    for tag, size in (("small", 4000), ("big", 600_000)):
        src = tmp_path / tag
        write_layout(src, tags=(tag,), layer_sizes=(size,), seed=size)
        assert ocibake("push", str(src), f"{plain_registry.host}/diskfull/img", env=env).returncode == 0
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c", INNER, str(mnt), plain_registry.host],
        check=False,
        cwd=REPO,
        env={**env, "OCIBAKE_REGISTRY_RETRIES": "0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["first"] == 0, result["first_err"]
    assert result["code"] == 4, result["stderr"]
    errors = [line for line in result["stderr"].splitlines() if line.startswith("ocibake: error:")]
    assert len(errors) == 1 and "no space left on device" in errors[0], result["stderr"]
    assert "internal error" not in result["stderr"] and "Traceback" not in result["stderr"]
    assert result["same"], result["diff"]


BUILD_INNER = r"""
import json, os, subprocess, sys
mnt, service, out = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], check=True)
def run(*a, cwd=None):
    p = subprocess.run([sys.executable, "-m", "ocibake", *a], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd=cwd)
    return {"code": p.returncode, "stderr": p.stderr}
# the layers fit in 2 MB, the 5.7 MB binary go links does not: go build itself hits the full disk
go = run("build", service, "--upx", "off", "--output", f"{mnt}/L")
# the layout is written elsewhere; the docker-archive (7 MB uncompressed) does not fit
archive = run("build", service, "--upx", "off", "--output", f"docker-archive:{mnt}/a.tar", cwd=out)
print(json.dumps({"go": go, "archive": archive, "left": sorted(os.listdir(mnt))}))
"""


def test_a_disk_that_fills_during_go_build_or_the_archive_is_exit_4_and_says_what_was_written(tmp_path):
    require("unshare")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    service = FIXTURES / "hello-root"
    unshare = ["unshare", "--user", "--map-root-user", "--mount"]
    proc = subprocess.run(
        [*unshare, sys.executable, "-c", BUILD_INNER, str(mnt), str(service), str(out)],
        check=False,
        cwd=REPO,
        env=base_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for case in ("go", "archive"):
        stderr = result[case]["stderr"]
        assert result[case]["code"] == 4, stderr
        errors = [line for line in stderr.splitlines() if line.startswith("ocibake: error:")]
        assert len(errors) == 1 and "no space left on device" in errors[0], stderr
        assert "internal error" not in stderr and "Traceback" not in stderr
    assert "go build failed" in result["go"]["stderr"]
    archive_err = result["archive"]["stderr"]
    assert "a.tar not written" in archive_err and "nothing was changed" not in archive_err
    layout = out / "dist" / "oci" / "hello-root"
    assert f"the image is built and tagged in {layout}" in archive_err
    assert (layout / "index.json").is_file()
    assert result["left"] == ["L"] or result["left"] == [], result["left"]


def test_a_read_only_cache_is_named_as_the_cache_with_a_hint_that_helps(tmp_path):
    """The cache mounted read-only (in a mount namespace of the test's own): exit 4, and the hint names the cache and
    XDG_CACHE_HOME, not --output (which is writable and not the problem)."""
    require("go"), require("unshare")
    cache = tmp_path / "xdg"
    env = {**base_env(tmp_path / "h"), "XDG_CACHE_HOME": str(cache)}
    first = subprocess.run(
        [sys.executable, "-m", "ocibake", "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "a"),
         "--upx", "off"],
        env=env, capture_output=True, text=True, check=False, cwd=REPO,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    inner = (
        f"mount --bind -o ro {cache}/ocibake {cache}/ocibake && exec {sys.executable} -m ocibake build "
        f"{FIXTURES / 'hello-root'} --output {tmp_path / 'b'} --upx off"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", inner], env=env, capture_output=True, text=True, check=False, cwd=REPO
    )
    assert proc.returncode == 4 and "Traceback" not in proc.stderr, proc.stderr
    assert "read-only file system" in proc.stderr and f"ocibake's cache {cache}/ocibake" in proc.stderr
    assert "XDG_CACHE_HOME" in proc.stderr and "--output" not in proc.stderr
