"""`ocibake run` of hand-made images: the layers are applied in order with their whiteouts (a file and a directory's
lower contents hidden), and a layer that would write outside the root is refused (exit 4) with nothing written
anywhere. Layers are raw tars (ocibake's own tar writer refuses bad paths itself)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import require, run_cli
from test_rootfs import make_layer


def write_layout(root: Path, layers: list[list[tuple]]) -> Path:
    """An OCI layout of one linux/amd64 image made of ``layers`` (make_layer entries), tagged `t`."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    sources = [make_layer(blobs, entries) for entries in layers]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "1001:1001", "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [s.diff_id for s in sources]},
    }

    def blob(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [{"mediaType": s.media_type, "digest": s.digest, "size": s.path.stat().st_size} for s in sources],
    }
    manifest_bytes = json.dumps(manifest).encode()
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(manifest_bytes),
        "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": "t"},
    }
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root


def busybox_layer() -> list[tuple]:
    busybox = Path(require("busybox")).read_bytes()
    return [
        ("bin", "dir"),
        ("bin/busybox", "file", busybox, 0o755),
        *[(f"bin/{applet}", "symlink", "busybox") for applet in ("sh", "ls", "cat")],
        ("etc", "dir"),
        ("etc/gone", "file", b"lower\n"),
        ("etc/kept", "file", b"lower\n"),
        ("data", "dir"),
        ("data/old", "file", b"lower\n"),
    ]


def test_layers_are_applied_with_their_whiteouts(tmp_path):
    upper = [("etc/.wh.gone", "file"), ("etc/kept", "file", b"upper\n"), ("data/.wh..wh..opq", "file")]
    upper.append(("data/new", "file", b"upper\n"))
    layout = write_layout(tmp_path / "layout", [busybox_layer(), upper])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = run_cli(
        "run", f"oci:{layout}:t", "--network", "none", "--shell", "--", "-c", "ls /etc /data; cat /etc/kept", env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/data:", "new", "/etc:", "kept", "upper"], proc.stdout


def test_a_layer_that_climbs_out_of_the_root_is_refused_and_writes_nothing(tmp_path):
    hostile = [("../../escaped", "file", b"x\n")]
    layout = write_layout(tmp_path / "layout", [busybox_layer(), hostile])
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = run_cli("run", str(layout), env=env)
    assert proc.returncode == 4, proc.stderr
    assert "climbs out of the root through '..'; refused" in proc.stderr and "toolchain" not in proc.stderr
    assert "run only images from a source you trust" in proc.stderr
    assert not list(tmp_path.rglob("escaped")) and not Path("/escaped").exists()
    assert not list((tmp_path / "cache" / "ocibake" / "rootfs").iterdir())  # no half-unpacked root left
