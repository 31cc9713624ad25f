"""`make bench` for archives: time and size of `ocibake export` to docker-archive and oci-archive for the sample
service (production default), against `skopeo copy` of the same layout to the same formats. Median of 5 runs."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OCIBAKE = str(Path(sys.executable).with_name("ocibake"))
SAMPLE = REPO / "services" / "emergency-service"
RUNS = 5


def timed(argv: list[str], dest: Path) -> tuple[float, int]:
    times = []
    for _ in range(RUNS):
        dest.unlink(missing_ok=True)
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), dest.stat().st_size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Path(tmp) / "layout"
        subprocess.run(
            [OCIBAKE, "build", str(SAMPLE), "--output", str(layout), "--version", "v1.0.0", "-q"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"archives of the sample service (production default): median of {RUNS} runs")
        print(f"  {'command':<42} {'wall':>8} {'size':>12}")
        for kind in ("docker-archive", "oci-archive"):
            dest = Path(tmp) / f"{kind}.tar"
            ours = timed([OCIBAKE, "export", f"{layout}:v1.0.0", f"{kind}:{dest}", "-q"], dest)
            ref = ":emergency-service:v1.0.0" if kind == "docker-archive" else ":v1.0.0"
            theirs = timed(["skopeo", "copy", "-q", f"oci:{layout}:v1.0.0", f"{kind}:{dest}{ref}"], dest)
            for name, (seconds, size) in ((f"ocibake export -> {kind}", ours), (f"skopeo copy -> {kind}", theirs)):
                print(f"  {name:<42} {seconds * 1000:>6.0f}ms {size:>12,}")


if __name__ == "__main__":
    main()
