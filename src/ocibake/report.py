"""The build report: a table on stderr for people, the reference on stdout, or everything as JSON."""

from __future__ import annotations

import json
from typing import TextIO

from ocibake.bake import BuildResult

LAYER_TITLES = {"passwd": "passwd/group, /tmp", "zoneinfo": "zoneinfo", "ca-certificates": "CA bundle",
                "binary": "binary /app"}


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n} B"


def as_json(result: BuildResult) -> dict:
    image = result.image
    return {
        "name": result.name,
        "reference": result.reference,
        "digest": image.digest,
        "layout": str(result.layout),
        "tags": list(result.tags),
        "platform": str(image.platform),
        "size": image.compressed_size,
        "config": {"digest": image.config.digest, "size": len(image.config.data)},
        "layers": [{"kind": l.kind, "digest": l.digest, "size": l.size, "uncompressed_size": l.uncompressed_size}
                   for l in result.layers],
        "binary": {"size": result.binary_size, "check": result.binary_check},
        "module": {"path": result.module.path, "go": result.module.go_version,
                   "direct_dependencies": len(result.module.direct_deps), "main": result.package},
        "build_record": result.record,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }


def print_human(result: BuildResult, err: TextIO) -> None:
    image = result.image
    w = err.write
    w(f"\nimage     {result.name} {image.digest}\n")
    w(f"platform  {image.platform}\n")
    w(f"tags      {', '.join(result.tags)}  in {result.layout}\n")
    w(f"size      {human_size(image.compressed_size)} compressed ({len(result.layers)} layers)\n")
    w(f"binary    {human_size(result.binary_size)}; --version: {result.binary_check}\n\n")
    w(f"  {'layer':<22} {'compressed':>12} {'uncompressed':>13}  digest\n")
    for layer in result.layers:
        w(f"  {LAYER_TITLES.get(layer.kind, layer.kind):<22} {human_size(layer.size):>12} "
          f"{human_size(layer.uncompressed_size):>13}  {layer.digest[:19]}\n")
    secs = result.seconds
    w(f"\ntook {secs['total']:.2f}s (go build {secs['go_build']:.2f}s, layers {secs['layers']:.2f}s)\n")
    tag = result.tags[0]
    w("next:\n")
    w(f"  skopeo inspect oci:{result.layout}:{tag}\n")
    w(f"  ocibake push {result.layout} REGISTRY/REPO\n")
    w(f"  skopeo copy oci:{result.layout}:{tag} docker-archive:{result.name}.tar:{result.name}:{tag}"
      f"   # then: docker load < {result.name}.tar\n")


def print_result(result: BuildResult, *, out: TextIO, err: TextIO, json_output: bool, quiet: bool) -> None:
    if json_output:
        out.write(json.dumps(as_json(result), indent=2, sort_keys=True) + "\n")
        return
    if not quiet:
        print_human(result, err)
    out.write(result.reference + "\n")
