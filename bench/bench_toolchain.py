"""`make bench` for toolchain images: build time of the sample service with the toolchain image against the local
toolchain, warm caches (median of RUNS builds each), plus the one-off costs (unpacking the image, the first build
with an empty GOCACHE). Target (from the issue): the toolchain image within 1.2x the local build.

The toolchain image is made as the tests make it (tests/toolchain_image_builder.py: the host's GOROOT and upx), so
both sides run the very same Go release. Usage: python bench/bench_toolchain.py
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from ocibake.builder.bake import bake  # noqa: E402
from ocibake.builder.spec import BuildSpec  # noqa: E402
from ocibake.toolchain.image import ImageToolchain  # noqa: E402
from ocibake.toolchain.local import LocalToolchain  # noqa: E402
from ocibake.toolchain.sandbox import Sandbox  # noqa: E402
from toolchain_image_builder import build_toolchain_image  # noqa: E402

SAMPLE = REPO / "services" / "emergency-service"
RUNS = 7


def timed_bake(toolchain, out: Path, upx: str = "off"):
    spec = BuildSpec(
        service_dir=SAMPLE, name="emergency-service", version="v1.0.0", output=out, source_date_epoch=0, upx=upx
    )
    t0 = time.monotonic()
    result = bake(spec, toolchain)
    return time.monotonic() - t0, result.seconds["go_build"], result.image.layers[-1].descriptor.digest, result


def config_differences(a: dict, b: dict, path: str = "") -> list[str]:
    """Where two JSON documents differ (the build record label is parsed, so the difference is named precisely)."""
    if isinstance(a, str) and isinstance(b, str) and a.startswith("{") and b.startswith("{"):
        with contextlib.suppress(ValueError):
            a, b = json.loads(a), json.loads(b)
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += config_differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        return out
    return [] if a == b else [path]


def same_release_comparison(ref: str, cache: Path, work: Path) -> None:
    """The production default (UPX included) with both toolchains: which bytes are equal, and where they differ."""
    _, _, _, local = timed_bake(LocalToolchain(), work / "cmp-local", upx="best-lzma")
    _, _, _, image = timed_bake(ImageToolchain(ref, cache=cache), work / "cmp-image", upx="best-lzma")
    cfg_local, cfg_image = json.loads(local.image.config.data), json.loads(image.image.config.data)
    same_layers = [layer.descriptor.digest for layer in local.image.layers] == [
        layer.descriptor.digest for layer in image.image.layers
    ]
    print("\n  same source, same Go release, --upx best-lzma, local toolchain vs toolchain image:")
    print(
        f"    layers (binary included) identical: {'yes' if same_layers else 'NO'}; "
        f"diff_ids identical: {'yes' if cfg_local['rootfs'] == cfg_image['rootfs'] else 'NO'}"
    )
    print(f"    image digests: local {local.image.digest[:19]}, image {image.image.digest[:19]}")
    print(f"    config fields that differ: {', '.join(config_differences(cfg_local, cfg_image)) or 'none'}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ocibake-bench-tc-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        build_toolchain_image(work / "layout")
        make_image = time.monotonic() - t0
        ref = f"oci:{work / 'layout'}:latest"
        cache = work / "cache"
        rows = []
        for label, factory in (
            ("local", LocalToolchain),
            ("image (bwrap)", lambda: ImageToolchain(ref, cache=cache)),
            ("image (unshare)", lambda: ImageToolchain(ref, cache=cache, sandbox=Sandbox(bwrap=None))),
        ):
            extra = ""
            if label == "image (bwrap)":
                tc = factory()
                t0 = time.monotonic()
                tc.prepare()
                unpack = time.monotonic() - t0
                cold, _cold_go, _, _ = timed_bake(tc, work / "cold")
                extra = f"one-off: unpack {unpack:.1f}s, first build (empty GOCACHE) {cold:.1f}s"
            else:
                timed_bake(factory(), work / "warm")
            totals, gos, digests = [], [], set()
            for i in range(RUNS):
                total, go, digest, _ = timed_bake(factory(), work / f"{label.split()[0]}-{i}")
                totals.append(total)
                gos.append(go)
                digests.add(digest)
            rows.append((label, statistics.median(totals), statistics.median(gos), digests, extra))

        local_total, local_go = rows[0][1], rows[0][2]
        print(
            f"\nbuild of {SAMPLE.relative_to(REPO)}, warm caches, median of {RUNS} (test toolchain image made in "
            f"{make_image:.1f}s)\n"
        )
        print(f"  {'toolchain':<16} {'build':>8} {'x local':>8} {'go build':>9} {'x local':>8}  binary layer")
        for label, total, go, digests, _extra in rows:
            print(
                f"  {label:<16} {total:>7.2f}s {total / local_total:>8.2f} {go:>8.2f}s {go / local_go:>8.2f}  "
                f"{', '.join(d[:19] for d in sorted(digests))}"
            )
        for label, *_, extra in rows:
            if extra:
                print(f"  {label}: {extra}")
        same = len({d for row in rows for d in row[3]}) == 1
        print(f"\n  same binary layer with every toolchain: {'yes' if same else 'NO'}")
        default = rows[1][1] / local_total
        fallback = rows[2][1] / local_total
        print(
            f"  {'ok  ' if default <= 1.2 else 'MISS'} toolchain image (bubblewrap, the default) within 1.2x the "
            f"local build: {default:.2f}"
        )
        print(
            f"  {'ok  ' if fallback <= 1.2 else 'MISS'} the unshare fallback (no bubblewrap) within 1.2x: "
            f"{fallback:.2f}"
        )
        same_release_comparison(ref, cache, work)


if __name__ == "__main__":
    main()
