"""`make bench` for big layouts: `ocibake build` and `ocibake pull` of one more image into OCI layouts that already
hold 20, 2,000 and 20,000 entries (each its own tag and manifest), against a docker-registry on 127.0.0.1 started
here. Layout work must be linear in the number of entries: 20,000 entries should cost about what 20 do, plus the
reading of index.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from registry_servers import start_registry, write_layout  # noqa: E402

SIZES = (20, 2_000, 20_000)
SERVICE = REPO / "tests" / "fixtures" / "hello-root"


def cj(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def big_layout(root: Path, entries: int) -> None:
    """A layout of ``entries`` tags, each on a manifest of its own (one shared config and layer)."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    layer = b"\0" * 1024
    ld = put(layer)
    config = cj(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [ld]},
            "created": "1970-01-01T00:00:00Z",
            "history": [{"created": "1970-01-01T00:00:00Z"}],
        }
    )
    cd = put(config)
    index = []
    for i in range(entries):
        manifest = cj(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}],
                "annotations": {"n": str(i)},
            }
        )
        index.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": f"t{i}"},
            }
        )
    (root / "oci-layout").write_bytes(cj({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_bytes(
        cj({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index})
    )


def timed(args: list[str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake", *args], check=False, capture_output=True, text=True, cwd=REPO
    )
    if proc.returncode != 0:
        sys.exit(f"ocibake {' '.join(args[:2])} failed:\n{proc.stderr}")
    return time.monotonic() - t0


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="ocibake-bench-layout-"))
    reg = start_registry("plain", work / "registry")
    try:
        src = work / "src"
        write_layout(src, tags=("v1",), layer_sizes=(200_000,), seed=5)
        timed(["push", str(src), f"{reg.host}/bench/pulled"])
        timed(["build", str(SERVICE), "--output", str(work / "warm"), "--upx", "off"])  # warm go's cache
        rows = []
        for n in SIZES:
            layout = work / f"L{n}"
            big_layout(layout, n)
            build_s = timed(["build", str(SERVICE), "--output", str(layout), "--upx", "off", "--version", "bench"])
            pull_s = timed(["pull", f"{reg.host}/bench/pulled:v1", str(layout)])
            rows.append((n, build_s, pull_s))
            shutil.rmtree(layout)
        print("\nlayout with N entries: one more build (--upx off, warm go cache) and one more pull")
        print(f"{'entries':>8}  {'build s':>8}  {'pull s':>8}")
        for n, b, p in rows:
            print(f"{n:>8}  {b:>8.2f}  {p:>8.2f}")
    finally:
        reg.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
