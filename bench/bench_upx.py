"""`make bench` for UPX: binary size, image size (gzip and zstd layers) and UPX time for off, fast, best and
best-lzma; and time from start to the first successful health check (median of RUNS starts) for the plain and the
best-lzma binary, next to the bytes saved.

Targets (from the issue): best-lzma binary <= 0.4 and image <= 0.85 of upx off; start-up < 150 ms with UPX and
< 50 ms without. Usage: python bench/bench_upx.py [--quick]   (--quick leaves out `--best`, which takes ~50 s)
"""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ocibake.builder.bake import bake  # noqa: E402
from ocibake.builder.gobuild import go_build_request, ldflags  # noqa: E402
from ocibake.builder.spec import BuildSpec  # noqa: E402
from ocibake.builder.upx import compress  # noqa: E402
from ocibake.layers.tar import Entry, write_layer  # noqa: E402
from ocibake.oci.image import Platform  # noqa: E402
from ocibake.toolchain.local import LocalToolchain  # noqa: E402

SAMPLE = REPO / "services" / "emergency-service"
RUNS = 15
MODES = ("off", "fast", "best", "best-lzma")


def mib(n: float) -> str:
    return f"{n / (1 << 20):.2f} MiB"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def startup_ms(binary: Path) -> float:
    """From exec to the first 200 on /health, polling every millisecond."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/health"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary)],
        env={"PORT": str(port), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return (time.perf_counter() - t0) * 1000
            except OSError:
                if proc.poll() is not None:
                    sys.exit(f"{binary} exited {proc.returncode}")
                time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()


def image_sizes(base_sizes: dict[str, int], binary: Path, work: Path) -> dict[str, int]:
    """Image size with this binary: the base layers and JSON of a real build, plus this binary's layer."""
    sizes = {}
    for comp in ("gzip", "zstd"):
        blob = write_layer(
            [Entry.from_path("/app", binary, mode=0o555)], work / f"layer.{comp}", mtime=0, compression=comp
        )
        sizes[comp] = base_sizes[comp] + blob.size
    return sizes


def main() -> None:
    quick = "--quick" in sys.argv
    modes = [m for m in MODES if not (quick and m == "best")]
    with tempfile.TemporaryDirectory(prefix="ocibake-bench-upx-") as tmp:
        work = Path(tmp)
        base_sizes = {}
        for comp in ("gzip", "zstd"):
            r = bake(
                BuildSpec(
                    service_dir=SAMPLE,
                    name="emergency-service",
                    version="v1.0.0",
                    output=work / f"layout-{comp}",
                    compression=comp,
                    source_date_epoch=0,
                    upx="off",
                ),
                LocalToolchain(),
            )
            base_sizes[comp] = r.image.compressed_size - r.image.layers[-1].descriptor.size
        plain = work / "plain"
        LocalToolchain().go_build(
            go_build_request(
                service_dir=SAMPLE,
                package="./cmd/emergency-service",
                output=plain,
                platform=Platform("linux", "amd64"),
                ld=ldflags("main", "v1.0.0", "1970-01-01T00:00:00Z", "unknown"),
            )
        )
        rows = {}
        for mode in modes:
            binary = work / f"app-{mode}"
            shutil.copy2(plain, binary)
            result = compress(LocalToolchain(), binary, mode)
            rows[mode] = (result, image_sizes(base_sizes, binary, work), binary)

        off_bin = rows["off"][0].size_after
        off_img = rows["off"][1]
        print(f"\nUPX on {SAMPLE.relative_to(REPO)} ({mib(off_bin)} stripped, {LocalToolchain().upx_version()})\n")
        print(
            f"  {'--upx':<10} {'binary':>10} {'ratio':>6} {'upx time':>9} {'image gzip':>11} {'ratio':>6} "
            f"{'image zstd':>11} {'ratio':>6}"
        )
        for mode in modes:
            res, img, _ = rows[mode]
            print(
                f"  {mode:<10} {mib(res.size_after):>10} {res.size_after / off_bin:>6.2f} {res.seconds:>8.1f}s "
                f"{mib(img['gzip']):>11} {img['gzip'] / off_img['gzip']:>6.2f} {mib(img['zstd']):>11} "
                f"{img['zstd'] / off_img['zstd']:>6.2f}"
            )

        print(f"\nstart-up to the first successful /health, median of {RUNS} starts (host, no sandbox)\n")
        print(f"  {'--upx':<10} {'median':>9} {'min':>9} {'max':>9} {'binary':>10} {'image gzip':>11} {'saved':>10}")
        medians = {}
        for mode in ("off", "best-lzma"):
            res, img, binary = rows[mode]
            startup_ms(binary)  # page cache warm
            times = [startup_ms(binary) for _ in range(RUNS)]
            medians[mode] = statistics.median(times)
            saved = off_img["gzip"] - img["gzip"]
            print(
                f"  {mode:<10} {medians[mode]:>7.1f}ms {min(times):>7.1f}ms {max(times):>7.1f}ms "
                f"{mib(res.size_after):>10} {mib(img['gzip']):>11} {mib(saved):>10}"
            )

        lz = rows["best-lzma"]
        print("\ntargets")
        checks = [
            ("best-lzma binary <= 0.40 of off", lz[0].size_after / off_bin, 0.40),
            ("best-lzma image (gzip) <= 0.85 of off", lz[1]["gzip"] / off_img["gzip"], 0.85),
            ("start-up with best-lzma < 150 ms", medians["best-lzma"], 150),
            ("start-up without UPX < 50 ms", medians["off"], 50),
        ]
        for what, value, limit in checks:
            print(f"  {'ok  ' if value <= limit else 'MISS'} {what}: {value:.2f}")


if __name__ == "__main__":
    main()
