"""A multi-platform build (`--platform A,B`): its run, and its report: the index and every platform's image (size,
layers, binary check, UPX) on stderr for people, the index reference (or one REPO:TAG@DIGEST line per pushed tag) on
stdout, or all of it as JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, TextIO

from ocibake.builder.multi import MultiResult
from ocibake.report import LAYER_TITLES, as_json
from ocibake.units import human_size

if TYPE_CHECKING:
    from ocibake.cli.attachments import AttachChoices, Attached
    from ocibake.cli.build_plan import BuildPlan
    from ocibake.registry.push import PushResult


def platforms_json(result: MultiResult) -> dict[str, object]:
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
        w(f"  binary   {human_size(r.binary.size)}; --version: {r.binary.final_check.display()}\n")
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
    result: MultiResult,
    *,
    out: TextIO,
    err: TextIO,
    json_output: bool,
    quiet: bool,
    pushed: PushResult | None = None,
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


def platform_provenance(plan: BuildPlan, attach: AttachChoices, result: MultiResult) -> list[Attached]:
    """Each platform image's provenance (its subject is that image, not the index), in the layout."""
    from dataclasses import replace

    from ocibake.cli.attachments import Attached, make_provenance

    made = []
    for r in result.images:
        spec = replace(plan.spec, platform=r.image.platform)
        artifact, statement = make_provenance(attach, spec, r, plan.toolchain, plan.toolchain_ref, plan.out.log)
        if artifact is not None:
            made.append(Attached(None, artifact, statement, subject=r.image.digest))
    return made


def run_platforms(plan: BuildPlan, attach: AttachChoices) -> int:
    """Build one image per platform and the index that joins them, push them with --push, write the archive --output
    names; stdout: the index's reference, or one REPO:TAG@DIGEST line per pushed tag, or the JSON report."""
    from ocibake.builder.multi import bake_platforms
    from ocibake.cli.attachments import make_sbom, push_layout_referrers
    from ocibake.cli.build_plan import push_built
    from ocibake.cli.export import write_build_archive
    from ocibake.cli.registry_options import make_options

    out = plan.out
    result = bake_platforms(
        plan.spec,
        plan.platforms,
        plan.toolchain,
        log=plan.log,
        registry_options=plan.registry_options,
        toolchain_ref=plan.toolchain_ref,
    )
    if not out.json and not out.quiet:
        print_platforms_human(result, sys.stderr)
    if attach.sbom != "none":  # one SBOM per platform image, each the referrer of its platform manifest (as ko does)
        for r in result.images:
            make_sbom(
                attach.sbom, result.layout, r.image.digest, result.name, plan.toolchain, out.log, plan.spec.service_dir
            )
    provenance = platform_provenance(plan, attach, result)
    pushed = push_built(plan, result, None)
    if pushed is not None:  # the SBOMs and provenance statements the layout holds for the platform images
        push_layout_referrers(result.layout, pushed, make_options(plan.registry), out.log)
    if pushed is not None and provenance:
        from ocibake.cli.attachments import push_platform_provenance

        push_platform_provenance(provenance, pushed, plan.key, plan.registry_options(), out.log)
    if plan.archive is not None:  # a docker-archive takes this host's platform from the index, and says so
        write_build_archive(plan.archive, result, None, log=out.log)
    print_platforms_result(result, out=sys.stdout, err=sys.stderr, json_output=out.json, quiet=out.quiet, pushed=pushed)
    return 0
