"""`make bench` for multi-platform builds: the wall time of one `--platform linux/amd64,linux/arm64` build against two
single-platform builds one after the other (target: at most 0.65 of their sum on 2 cores), with the Go build cache
warm (as in CI after the first build), for UPX off and the production default (UPX --best --lzma).

Every timed build starts from an empty ocibake cache of its own (XDG_CACHE_HOME), so UPX really packs and every check
really runs: with one shared cache the UPX row would time cache hits. GOCACHE stays warm and shared. Each row also
says where the two-platform build's time went (go build, UPX and layers, summed over the platforms, from the build
record's timings).

Median of RUNS runs (paired: single, single, both, in turn) of the installed `ocibake` script.
"""

from __future__ import annotations

import json
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


def timed(out: Path, platform: str, upx: str, gocache: Path, record: list[dict] | None = None) -> float:
    """Seconds of one build from an empty ocibake cache of its own; its `--json` result appended to ``record``."""
    env = {**os.environ, "GOCACHE": str(gocache), "XDG_CACHE_HOME": str(out.with_name(out.name + "-cache"))}
    argv = [OCIBAKE, "build", str(SAMPLE), "--output", str(out), "--platform", platform, "--upx", upx]
    t0 = time.perf_counter()
    proc = subprocess.run([*argv, "--version", "v1", "-q", "--json"], capture_output=True, check=True, env=env)
    seconds = time.perf_counter() - t0
    if record is not None:
        record.append(json.loads(proc.stdout))
    return seconds


def phases(results: list[dict]) -> str:
    """Where the two-platform builds' time went (medians over the runs, summed over the platforms), from their
    `--json` results, e.g. "go build 3.1s, upx 9.8s, layers 0.4s (of 6.2s)"."""
    keys = ("go_build", "upx", "layers")
    sums = {k: statistics.median(sum(i["seconds"].get(k, 0.0) for i in r["images"]) for r in results) for k in keys}
    total = statistics.median(r["seconds"]["total"] for r in results)
    parts = ", ".join(f"{k.replace('_', ' ')} {v:.1f}s" for k, v in sums.items())
    return f"summed over the platforms: {parts} (the build took {total:.1f}s)"


def main() -> None:
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so ocibake runs without cached bytecode (slower start-up than "
              "users have); `make bench` clears it", file=sys.stderr)  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    print(f"multi-platform build of {SAMPLE.name}: median of {RUNS} runs, {cores} cores, Go build cache warm")
    print(f"  {'upx':<10} {'amd64':>8} {'arm64':>8} {'sum':>8} {'both':>8} {'ratio':>6}  target")
    with tempfile.TemporaryDirectory() as tmp:
        gocache = Path(tmp, "gocache")
        for upx in ("off", "best-lzma"):
            timed(Path(tmp, f"warm-{upx}"), "linux/amd64,linux/arm64", upx, gocache)  # warm the Go build cache
            singles_a, singles_b, both, records = [], [], [], []
            for i in range(RUNS):
                singles_a.append(timed(Path(tmp, f"a-{upx}-{i}", "layout"), "linux/amd64", upx, gocache))
                singles_b.append(timed(Path(tmp, f"b-{upx}-{i}", "layout"), "linux/arm64", upx, gocache))
                both_out = Path(tmp, f"both-{upx}-{i}", "layout")
                both.append(timed(both_out, "linux/amd64,linux/arm64", upx, gocache, records))
            a, b, m = (statistics.median(x) for x in (singles_a, singles_b, both))
            ratio = m / (a + b)
            # the goal is the UPX build's (where the time is); without UPX the row only shows the overheads
            goal = "<= 0.65 " + ("ok" if ratio <= 0.65 else "MISSED") if upx != "off" else "(no goal)"
            print(f"  {upx:<10} {a:>7.2f}s {b:>7.2f}s {a + b:>7.2f}s {m:>7.2f}s {ratio:>6.2f}  {goal}")
            print(f"  {'':<10} {phases(records)}")


if __name__ == "__main__":
    main()
