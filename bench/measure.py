"""Run a command and report its wall time and the peak memory of the Python process itself (not of go).

The peak is VmHWM from /proc/self/status: the high-water mark of this process's own memory. getrusage's ru_maxrss
would not do: Linux carries it across exec, so a child started by a big parent reports the parent's peak.

Usage: python bench/measure.py OUT.json -- ocibake ARGS...   (runs `python -m ocibake ARGS` in this interpreter)
"""

from __future__ import annotations

import atexit
import json
import runpy
import sys
import time

out_path = sys.argv[1]
assert sys.argv[2] == "--"
sys.argv = ["ocibake", *sys.argv[3:]]
started = time.monotonic()


def _report() -> None:
    with open(out_path, "w") as f:
        json.dump(
            {
                "seconds": time.monotonic() - started,
                "peak_rss_mb": _high_water_kib() / 1024,
            },
            f,
        )


def _high_water_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


atexit.register(_report)
runpy.run_module("ocibake", run_name="__main__")
