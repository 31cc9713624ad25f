"""The report of a multi-platform build: the index and every platform's image (size, layers, binary check, UPX), on
stderr for people, the index reference (or one REPO:TAG@DIGEST line per pushed tag) on stdout, or all of it as JSON."""

from __future__ import annotations

import json
from typing import TextIO

from ocibake.builder.multi import MultiResult
from ocibake.report import LAYER_TITLES, as_json
from ocibake.units import human_size


def platforms_json(result: MultiResult) -> dict:
    return {
        "name": result.name,
        "reference": result.reference,
        "digest": result.digest,
        "layout": str(result.layout),
        "tags": list(result.tags),
        "index": {"mediaType": result.index.media_type, "digest": result.digest, "size": len(result.index.data)},
        "platforms": [str(r.image.platform) for r in result.images],
        "images": [{**as_json(r), "upx_note": r.upx_note} for r in result.images],
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }


def print_platforms_human(result: MultiResult, err: TextIO) -> None:
    w = err.write
    w(f"\nindex     {result.name} {result.digest} ({len(result.images)} platforms)\n")
    w(f"tags      {', '.join(result.tags)}  in {result.layout}\n")
    for r in result.images:
        image = r.image
        w(
            f"\n{image.platform!s:<14} {image.digest}  {human_size(image.compressed_size)} compressed, "
            f"{len(r.layers)} layers\n"
        )
        w(f"  binary   {human_size(r.binary.size)}; --version: {r.binary.final_check.line}\n")
        upx = r.upx_note or (
            f"upx {r.binary.upx.mode}: {human_size(r.binary.upx.size_before)} -> {human_size(r.binary.upx.size_after)}"
            if r.binary.upx.mode != "off"
            else "upx off"
        )
        w(f"  {upx}\n")
        for layer in r.layers:
            w(f"  {LAYER_TITLES.get(layer.kind, layer.kind):<22} {human_size(layer.size):>12}  {layer.digest[:19]}\n")
    w(f"\ntook {result.seconds['total']:.2f}s ({result.seconds['workers']} platform builds at a time)\n")


def print_platforms_result(
    result: MultiResult, *, out: TextIO, err: TextIO, json_output: bool, quiet: bool, pushed=None
) -> None:
    if json_output:
        doc = platforms_json(result)
        if pushed is not None:
            doc["push"] = pushed.as_json()
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    if pushed is not None and not quiet:
        err.write(pushed.summary() + "\n")
    out.write("\n".join(pushed.lines() if pushed is not None else [result.reference]) + "\n")
