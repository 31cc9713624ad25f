"""`make bench` for `ocibake build`: timings, image size against its floor, and peak memory.

Prints a table. Targets (from the build issue): ocibake's overhead <= 0.5 s, image <= 1.03 x floor, ocibake's own
peak memory <= 150 MB whatever the binary's size.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "services" / "emergency-service"
RUNS = 5


def ocibake(*args: str, work: Path) -> tuple[dict, dict]:
    """Run ocibake under measure.py; return (its --json report, {seconds, peak_rss_mb})."""
    stats = work / "stats.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "measure.py"), str(stats), "--", *args, "--json"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"ocibake failed:\n{proc.stderr}")
    measured = json.loads(stats.read_text())
    measured["wall"] = wall
    return json.loads(proc.stdout), measured


def gz9(data: bytes) -> int:
    return len(zlib.compress(data, 9))


def floor_size(binary: Path) -> int:
    """gzip -9 of the binary, the CA bundle and the zone files (concatenated): no tar, no JSON."""
    import certifi
    import tzdata

    from ocibake.layers.zoneinfo import _zone_files

    zones = b"".join(p.read_bytes() for _, p in _zone_files(Path(tzdata.__file__).parent / "zoneinfo"))
    return gz9(binary.read_bytes()) + gz9(Path(certifi.where()).read_bytes()) + gz9(zones)


def extract_binary(layout: Path, report: dict, dest: Path) -> Path:
    import tarfile

    binary_layer = next(layer for layer in report["layers"] if layer["kind"] == "binary")
    with tarfile.open(layout / "blobs" / "sha256" / binary_layer["digest"].split(":")[1]) as tar:
        member = tar.getmember("app")
        with tar.extractfile(member) as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    return dest


def big_service(root: Path, megabytes: int) -> Path:
    """A Go service that embeds `megabytes` of random bytes, for a binary of that size or more."""
    svc = root / "big-service"
    svc.mkdir()
    (svc / "go.mod").write_text("module example.com/bench/big\n\ngo 1.21\n")
    with open(svc / "blob.bin", "wb") as f:
        f.writelines(os.urandom(1 << 20) for _ in range(megabytes))
    (svc / "main.go").write_text("""package main

import (
	_ "embed"
	"fmt"
	"os"
)

//go:embed blob.bin
var blob []byte

var Version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println("big", Version, len(blob))
	}
}
""")
    return svc


def row(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"| {name:<44} | {value:>16} | {target:>12} | {verdict:>6} |")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ocibake-bench-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        plain = ("--upx", "off")
        ocibake("build", str(SAMPLE), "--output", str(layout), "--version", "v1.0.0", *plain, work=work)  # warm cache
        go_times, totals, overheads, rss = [], [], [], []
        for _ in range(RUNS):
            report, measured = ocibake(
                "build", str(SAMPLE), "--output", str(layout), "--version", "v1.0.0", *plain, work=work
            )
            go_times.append(report["seconds"]["go_build"])
            totals.append(measured["wall"])
            overheads.append(measured["wall"] - report["seconds"]["go_build"])
            rss.append(measured["peak_rss_mb"])
        binary = extract_binary(layout, report, work / "app")
        floor = floor_size(binary)
        size = report["size"]

        print(
            f"ocibake build --upx off, sample service ({report['binary']['size'] / 2**20:.2f} MiB binary), warm Go "
            f"cache, median of {RUNS} runs"
        )
        print(f"| {'measure':<44} | {'value':>16} | {'target':>12} | {'':>6} |")
        print(f"|{'-' * 46}|{'-' * 18}|{'-' * 14}|{'-' * 8}|")
        row("go build", f"{statistics.median(go_times):.3f} s")
        row("total (process start to exit)", f"{statistics.median(totals):.3f} s")
        med_over = statistics.median(overheads)
        row("ocibake overhead (total - go build)", f"{med_over:.3f} s", "<= 0.5 s", med_over <= 0.5)
        row("image size (compressed, all blobs)", f"{size / 2**20:.3f} MiB")
        row("floor: gzip -9 of binary + CA + zoneinfo", f"{floor / 2**20:.3f} MiB")
        row("image / floor", f"{size / floor:.4f}", "<= 1.03", size / floor <= 1.03)
        peak = max(rss)
        row("peak memory of ocibake (RSS, not go)", f"{peak:.1f} MB", "<= 150 MB", peak <= 150)

        report, measured = ocibake(
            "build", str(SAMPLE), "--output", str(work / "default"), "--version", "v1.0.0", work=work
        )
        secs = report["seconds"]
        upx_floor = floor_size(extract_binary(work / "default", report, work / "app-upx"))
        row("production default (upx best-lzma): total", f"{measured['wall']:.3f} s")
        row("  of which go build + upx", f"{secs['go_build'] + secs['upx']:.3f} s")
        row(
            "  ocibake overhead (total - go build - upx)",
            f"{measured['wall'] - secs['go_build'] - secs['upx']:.3f} s",
            "<= 0.5 s",
            measured["wall"] - secs["go_build"] - secs["upx"] <= 0.5,
        )
        row(
            "  image size / its floor",
            f"{report['size'] / 2**20:.3f} MiB / {report['size'] / upx_floor:.4f}",
            "<= 1.03",
            report["size"] / upx_floor <= 1.03,
        )

        big = big_service(work, 200)
        report, measured = ocibake(
            "build", str(big), "--output", str(work / "big-layout"), "--version", "v1", *plain, work=work
        )
        row("200 MB binary: binary size", f"{report['binary']['size'] / 2**20:.1f} MiB")
        row("200 MB binary: go build", f"{report['seconds']['go_build']:.2f} s")
        row("200 MB binary: ocibake overhead", f"{measured['wall'] - report['seconds']['go_build']:.2f} s")
        row(
            "200 MB binary: peak memory of ocibake",
            f"{measured['peak_rss_mb']:.1f} MB",
            "<= 150 MB",
            measured["peak_rss_mb"] <= 150,
        )


if __name__ == "__main__":
    main()
