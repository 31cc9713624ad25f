"""`make bench` for the command line: start-up of `ocibake --version` and `ocibake --help` (target: 80 ms each), and
what `build` (no --push) and `push` import: their module counts, and whether the HTTP libraries are among them.

Median of 15 runs of the installed `ocibake` script, as a user runs it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OCIBAKE = str(Path(sys.executable).with_name("ocibake"))
HELLO = REPO / "tests" / "fixtures" / "hello-root"
HTTP = ("requests", "oras", "urllib3")
RUNS = 15


def wall(*args: str) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run([OCIBAKE, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def imports(*args: str) -> tuple[list[str], float]:
    """Modules `python -X importtime` saw, and the cumulative import time (s) of the top-level ones."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ocibake", *args],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    names, total = [], 0
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line[len("import time:") :].split("|"))
            if name == "imported package":
                continue
            names.append(name)
            if not line.rsplit("|", 1)[1].startswith("  "):
                total += int(cumulative)
    return names, total / 1e6


def main() -> None:
    print(f"ocibake command line: median of {RUNS} runs of {OCIBAKE}")
    print(f"  {'command':<32} {'wall':>9}  target")
    for args in (("--version",), ("--help",), ("push", "--help")):
        seconds = wall(*args)
        target = "<= 80 ms" if args[0] in ("--version", "--help") else ""
        verdict = ("ok" if seconds <= 0.080 else "MISSED") if target else ""
        print(f"  {'ocibake ' + ' '.join(args):<32} {seconds * 1000:>6.1f} ms  {target} {verdict}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "build (no --push)": ("build", str(HELLO), "--output", f"{tmp}/out", "--upx", "off", "-q"),
            "push (to a closed port)": ("push", f"{tmp}/out", "127.0.0.1:9/bench", "-q"),
        }
        print(f"\n  {'what it imports':<26} {'modules':>8} {'ocibake.*':>10} {'import time':>12}  HTTP libraries")
        for what, args in runs.items():
            names, seconds = imports(*args)
            http = sorted({n.split(".")[0] for n in names if n.split(".")[0] in HTTP})
            ours = [n for n in names if n.startswith("ocibake")]
            print(
                f"  {what:<26} {len(names):>8} {len(ours):>10} {seconds * 1000:>9.0f} ms  "
                f"{', '.join(http) if http else 'none'}"
            )
            print(f"    ocibake modules: {' '.join(sorted(ours))}")


if __name__ == "__main__":
    main()
