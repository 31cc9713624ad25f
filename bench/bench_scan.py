"""`make bench` for provenance and the scan: what the SLSA provenance adds to a build (`--provenance slsa` against
`none`, UPX off, SBOM off, so only the statement differs), and what `ocibake scan` takes on the sample service
(UPX best-lzma, so the scan unpacks it) against an offline database: the golang.org/x/vulndb module's OSV directory
(indexed by ocibake on each scan) and the same directory already in vuln.go.dev's layout. Median of 3 runs; the first
scan's `go install` of govulncheck is timed once, apart."""

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
VULNDB = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"
RUNS = 3


def run(*args: str, env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
    import os

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - t0, proc


def median(*args: str, fresh: Path | None = None, env: dict[str, str] | None = None) -> float:
    times = []
    for _ in range(RUNS):
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        seconds, proc = run(*args, env=env)
        if proc.returncode not in (0, 8):
            sys.exit(f"ocibake {' '.join(args)} failed:\n{proc.stderr}")
        times.append(seconds)
    return statistics.median(times)


def indexed_copy(osv: Path, dest: Path) -> None:
    """The OSV directory in vuln.go.dev's layout, as ocibake indexes it."""
    sys.path.insert(0, str(REPO / "src"))
    from ocibake.audit.vulndb import _index_osv

    _index_osv(sorted(osv.glob("*.json")), osv, dest)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        out = Path(tmp)
        env = {"XDG_CACHE_HOME": str(out / "cache")}
        print(f"{'step':<52} {'seconds':>8}")
        for provenance in ("none", "slsa"):
            layout = out / f"prov-{provenance}"
            args = ["build", str(SAMPLE), "--output", str(layout), "--upx", "off", "--sbom", "none", "-q"]
            s = median(*args, "--version", "v1.0.0", "--provenance", provenance, fresh=layout)
            print(f"{'build --upx off --sbom none --provenance ' + provenance:<52} {s:>8.2f}")
        packed = out / "packed"
        run("build", str(SAMPLE), "--output", str(packed), "--version", "v1.0.0", "-q")
        got = subprocess.run(["go", "mod", "download", "-json", VULNDB], check=True, capture_output=True, text=True)
        osv = Path(json.loads(got.stdout)["Dir"]) / "data" / "osv"
        indexed_copy(osv, out / "indexed")
        ref = f"oci:{packed}:v1.0.0"
        first, _ = run("scan", ref, "--db", str(out / "indexed"), "--fail-on", "none", "-q", env=env)
        print(f"{'first scan (go install govulncheck, then scan)':<52} {first:>8.2f}")
        s = median("scan", ref, "--db", str(osv), "--fail-on", "none", "-q", env=env)
        print(f"{'scan, --db OSV directory (indexed each time)':<52} {s:>8.2f}")
        s = median("scan", ref, "--db", str(out / "indexed"), "--fail-on", "none", "-q", env=env)
        print(f"{'scan, --db in vuln.go.dev layout':<52} {s:>8.2f}")
        print(f"OSV entries: {len(list(osv.glob('*.json')))}")


if __name__ == "__main__":
    main()
