"""Run a command and report its wall time and the peak memory of the Python process itself (not of go).

Usage: python bench/measure.py OUT.json -- ocibake ARGS...   (runs `python -m ocibake ARGS` in this interpreter)
"""

from __future__ import annotations

import atexit
import json
import resource
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
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            },
            f,
        )


atexit.register(_report)
runpy.run_module("ocibake", run_name="__main__")
