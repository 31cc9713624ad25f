"""`make bench` for multi-platform builds: the wall time of one `--platform linux/amd64,linux/arm64` build against two
single-platform builds one after the other (target: at most 0.65 of their sum on 2 cores), with the Go build cache
warm (as in CI after the first build), for UPX off and the production default (UPX --best --lzma).

Median of RUNS runs of the installed `ocibake` script.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OCIBAKE = str(Path(sys.executable).with_name("ocibake"))
SAMPLE = REPO / "services" / "emergency-service"
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def timed(out: Path, platform: str, upx: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [
            OCIBAKE,
            "build",
            str(SAMPLE),
            "--output",
            str(out),
            "--platform",
            platform,
            "--upx",
            upx,
            "--version",
            "v1",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"multi-platform build of {SAMPLE.name}: median of {RUNS} runs, {cores} cores, Go build cache warm")
    print(f"  {'upx':<10} {'amd64':>8} {'arm64':>8} {'sum':>8} {'both':>8} {'ratio':>6}  target")
    with tempfile.TemporaryDirectory() as tmp:
        for upx in ("off", "best-lzma"):
            timed(Path(tmp, "warm"), "linux/amd64,linux/arm64", upx)  # warm the Go build cache
            singles_a, singles_b, both = [], [], []
            for i in range(RUNS):
                singles_a.append(timed(Path(tmp, f"a-{upx}-{i}"), "linux/amd64", upx))
                singles_b.append(timed(Path(tmp, f"b-{upx}-{i}"), "linux/arm64", upx))
                both.append(timed(Path(tmp, f"both-{upx}-{i}"), "linux/amd64,linux/arm64", upx))
            a, b, m = (statistics.median(x) for x in (singles_a, singles_b, both))
            ratio = m / (a + b)
            print(
                f"  {upx:<10} {a:>7.2f}s {b:>7.2f}s {a + b:>7.2f}s {m:>7.2f}s {ratio:>6.2f}  <= 0.65 "
                f"{'ok' if ratio <= 0.65 else 'MISSED'}"
            )


if __name__ == "__main__":
    main()
