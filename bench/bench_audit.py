"""`make bench` for auditing: what the SBOM costs a build (`--sbom spdx` against `--sbom none`, UPX off and the
production default, whose binary is unpacked with `upx -d` to read its build information), its size, and the wall
time of `inspect`, `diff` and `audit` on the sample service. Median of 3 runs (`audit` rebuilds the image)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "services" / "emergency-service"
RUNS = 3


def run(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake", *args], check=False, capture_output=True, text=True, cwd=REPO
    )
    return time.perf_counter() - t0, proc


def median(*args: str, fresh: Path | None = None) -> float:
    times = []
    for _ in range(RUNS):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        seconds, proc = run(*args)
        if proc.returncode not in (0, 6):
            sys.exit(f"ocibake {' '.join(args)} failed:\n{proc.stderr}")
        times.append(seconds)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        out = Path(tmp)
        print(f"{'step':<44} {'seconds':>8}")
        for upx in ("off", "best-lzma"):
            for sbom in ("none", "spdx"):
                layout = out / f"{upx}-{sbom}"
                s = median(
                    "build",
                    str(SAMPLE),
                    "--output",
                    str(layout),
                    "--version",
                    "v1.0.0",
                    "--upx",
                    upx,
                    "--sbom",
                    sbom,
                    "-q",
                    fresh=layout,
                )
                print(f"{'build --upx ' + upx + ' --sbom ' + sbom:<44} {s:>8.2f}")
        index = json.loads((out / "best-lzma-spdx" / "index.json").read_text())
        sizes = [m["size"] for m in index["manifests"] if "annotations" not in m]
        a, b = f"oci:{out / 'off-spdx'}:v1.0.0", f"oci:{out / 'best-lzma-spdx'}:v1.0.0"
        print(f"{'inspect (files of every layer, JSON)':<44} {median('inspect', a, '--json'):>8.2f}")
        print(f"{'diff (UPX off against best-lzma)':<44} {median('diff', a, b, '-q'):>8.2f}")
        print(f"{'audit (rebuild, UPX best-lzma)':<44} {median('audit', b, '--source', str(SAMPLE), '-q'):>8.2f}")
        sbom_manifest = next(m for m in index["manifests"] if "annotations" not in m)
        doc = json.loads((out / "best-lzma-spdx" / "blobs" / "sha256" / sbom_manifest["digest"][7:]).read_text())
        print(f"SBOM: {doc['layers'][0]['size']} bytes of SPDX JSON, referrer manifest {sizes[0]} bytes")


if __name__ == "__main__":
    main()
