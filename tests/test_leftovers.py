"""Every staging place has an owner record and is cleaned by the next run that passes by: a SIGKILLed export (its
staging directory beside the archive), a SIGKILLed toolchain unpack (`rootfs/.<key>-unpacking-*`, also once that
toolchain, or another, is unpacked), a SIGKILLed sandbox run (its stage, in the cache, never in $TMPDIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, require
from ocibake.workdirs import OWNER_FILE
from registry_servers import write_layout
from regtools import base_env

MiB = 1 << 20


def kill_when(argv: list[str], appeared, env: dict, timeout: float = 120) -> None:
    """Start ``argv``, SIGKILL it as soon as ``appeared()`` is true (it must become true)."""
    with subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + timeout
        while not appeared():
            assert proc.poll() is None, f"finished before the kill: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "never got there"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


def claimed(directory: Path, prefix: str) -> bool:
    """A stage ``prefix*`` in ``directory`` holds its owner record (a kill in the microseconds between mkdtemp and
    the record leaves a stage only the hour-old rule removes: not what these tests are about)."""
    return directory.is_dir() and any(
        n.startswith(prefix) and (directory / n / OWNER_FILE).exists() for n in os.listdir(directory)
    )


def entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.mark.slow
def test_a_sigkilled_export_leaves_nothing_after_the_next_export(tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",), layer_sizes=(48 * MiB, 48 * MiB), seed=3)
    dest_dir = tmp_path / "archives"
    dest_dir.mkdir()
    dest = dest_dir / "app.tar"
    env = {**base_env(tmp_path / "home"), "TMPDIR": str(_tmpdir(tmp_path))}
    argv = [sys.executable, "-m", "ocibake", "export", str(layout), f"docker-archive:{dest}"]
    for _ in range(2):
        kill_when(argv, lambda: claimed(dest_dir, ".app.tar.ocibake-"), env)
    assert len(entries(dest_dir)) >= 1 and "app.tar" not in entries(dest_dir)
    proc = subprocess.run(argv, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert entries(dest_dir) == ["app.tar"]
    assert entries(tmp_path / "tmp") == []


UNPACK = r"""
import json, sys
from pathlib import Path
from ocibake.toolchain.rootfs import LayerSource, unpack_image
layout, tag, cache = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
index = json.loads((layout / "index.json").read_text())
desc = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)
blob = lambda d: layout / "blobs" / "sha256" / d.split(":")[1]
manifest = json.loads(blob(desc["digest"]).read_text())
diff_ids = json.loads(blob(manifest["config"]["digest"]).read_text())["rootfs"]["diff_ids"]
layers = [LayerSource(blob(l["digest"]), l["mediaType"], l["digest"], d) for l, d in zip(manifest["layers"], diff_ids)]
print(unpack_image(layers, cache))
"""


@pytest.mark.slow
def test_a_sigkilled_toolchain_unpack_is_removed_by_the_next_unpack_even_of_another(toolchain, tmp_path):
    ref, _ = toolchain
    layout = Path(ref.removeprefix("oci:").rsplit(":", 1)[0])
    cache = tmp_path / "cache"
    rootfs = cache / "rootfs"
    env = {**base_env(tmp_path / "home"), "TMPDIR": str(_tmpdir(tmp_path))}

    def unpack(tag: str) -> list[str]:
        return [sys.executable, "-c", UNPACK, str(layout), tag, str(cache)]

    def unpacking() -> bool:
        stages = [rootfs / n for n in os.listdir(rootfs)] if rootfs.is_dir() else []
        return any(s.name.startswith(".") and (s / "rootfs" / "usr").exists() for s in stages)

    kill_when(unpack("go"), unpacking, env)
    assert any(n.startswith(".") for n in entries(rootfs)), "the killed unpack left nothing to clean"
    done = subprocess.run(unpack("go"), check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert entries(rootfs) == [Path(done.stdout.strip()).name]
    # killed while unpacking another toolchain; the next run needs no unpack (go's is there) and still cleans up
    kill_when(unpack("no-go"), unpacking, env)
    assert len(entries(rootfs)) == 2
    again = subprocess.run(unpack("go"), check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert entries(rootfs) == [Path(done.stdout.strip()).name]
    assert entries(tmp_path / "tmp") == []


SANDBOX = r"""
import sys
from pathlib import Path
from ocibake.toolchain.sandbox import Sandbox, SandboxRun
root, backend = Path(sys.argv[1]), sys.argv[2]
box = Sandbox() if backend == "bwrap" else Sandbox(bwrap=None)
box.run(SandboxRun(rootfs=root, argv=["sleep", sys.argv[3]], env={"PATH": "/bin"}, binds=[], cwd="/"), what="sleep")
"""


@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_a_sigkilled_sandbox_run_leaves_nothing_in_tmpdir_and_its_stage_goes_next_time(backend, tmp_path):
    require(backend)
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
    assert busybox, "busybox-static is not installed: run `bash scripts/install-debian-deps.sh`"
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "busybox").write_bytes(Path(busybox).read_bytes())
    os.chmod(root / "bin" / "busybox", 0o755)
    (root / "bin" / "sleep").symlink_to("busybox")
    xdg = tmp_path / "xdg"
    env = {**base_env(tmp_path / "home"), "TMPDIR": str(_tmpdir(tmp_path)), "XDG_CACHE_HOME": str(xdg)}
    stages = xdg / "ocibake" / "sandbox"

    def running() -> bool:
        return claimed(stages, "run-")

    kill_when([sys.executable, "-c", SANDBOX, str(root), backend, "30"], running, env)
    assert any(n.startswith("run-") for n in entries(stages))
    done = subprocess.run(
        [sys.executable, "-c", SANDBOX, str(root), backend, "0"], check=False, cwd=REPO, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert [n for n in entries(stages) if n.startswith("run-")] == []
    assert entries(tmp_path / "tmp") == [], "a sandbox run wrote into $TMPDIR"


def _tmpdir(tmp_path: Path) -> Path:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return tmp
