"""`ocibake export LAYOUT[:TAG] docker-archive:FILE|oci-archive:FILE`, and the build command's archive --output.

stdout carries only the archive written (`KIND:PATH`, or JSON with --json); the summary goes to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.errors import DiskError, InputError, UsageError, disk_error
from ocibake.oci.names import TAG_RE

if TYPE_CHECKING:
    from ocibake.archive.target import ArchiveTarget
    from ocibake.archive.write import ArchiveResult
    from ocibake.builder.bake import BuildResult
    from ocibake.builder.multi import MultiResult
    from ocibake.cli.settings import Flags, ServiceSettings
    from ocibake.oci.platform import Platform

OUTPUT_METAVAR = "DIR|docker-archive:FILE|oci-archive:FILE"


def split_layout_arg(text: str) -> tuple[Path, str | None]:
    """LAYOUT or LAYOUT:TAG (a directory whose own name holds ':' is taken whole)."""
    if Path(text).is_dir():
        return Path(text), None
    base, sep, tag = text.rpartition(":")
    if sep and base and "/" not in tag:
        if not TAG_RE.match(tag):
            raise InputError(f"{tag!r} is not a valid tag", hint="LAYOUT:TAG, e.g. dist/oci/emergency-service:v1.0.0")
        return Path(base), tag
    return Path(text), None


def archive_output(flags: Flags, settings: ServiceSettings) -> tuple[ArchiveTarget | None, Flags, ServiceSettings]:
    """The build's --output (or ocibake.toml's output) when it names an archive: (target, flags, settings) with the
    archive taken out, so the layout goes to its default place; (None, flags, settings) otherwise."""
    from ocibake.archive.target import is_archive, parse_target

    flag = flags.get("output")
    if flag is not None:
        if not is_archive(str(flag)):
            return None, flags, settings
        rest = {k: v for k, v in flags.items() if k != "output"}
        return parse_target(str(flag), "--output"), rest, settings
    setting = settings.common.get("output")
    if setting is None or not is_archive(str(setting)):
        return None, flags, settings
    common = {k: v for k, v in settings.common.items() if k != "output"}
    return parse_target(str(setting), "output in ocibake.toml"), flags, replace(settings, common=common)


def write_build_archive(
    target: ArchiveTarget,
    result: BuildResult | MultiResult,
    platform: Platform | None,
    log: Callable[[str], None],
) -> dict[str, object]:
    """The build's archive, from its layout; returns what --json reports of it."""
    from ocibake.archive.export import export

    try:
        archive = export(result.layout, list(result.tags), target, name=result.name, platform=platform)
    except OSError as exc:
        disk = disk_error(exc)
        if disk is None:
            raise
        raise _archive_not_written(disk, target, result) from exc
    except DiskError as exc:
        raise _archive_not_written(exc, target, result) from exc
    for note in archive.notes:
        log(note)
    log(archive.summary())
    return archive_json(archive)


def _archive_not_written(exc: DiskError, target: ArchiveTarget, result: BuildResult | MultiResult) -> DiskError:
    """The disk refused the archive after the build wrote its layout: say what was written, and how to finish."""
    tag = next(iter(result.tags), "TAG")
    return DiskError(
        f"{target.kind}:{target.path} not written: {exc.message}",
        hint=f"the image is built and tagged in {result.layout}; free some space, then run `ocibake export "
        f"{result.layout}:{tag} {target.kind}:{target.path}`",
    )


def archive_json(result: ArchiveResult) -> dict[str, object]:
    return {
        "kind": result.kind,
        "path": str(result.path),
        "size": result.size,
        "sha256": result.digest,
        "notes": list(result.notes),
        "images": [{"digest": d, "tags": list(t)} for d, t in result.images],
    }


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake export dist/oci/emergency-service docker-archive:emergency.tar",
        "ocibake export dist/oci/emergency-service:v1.0.0 oci-archive:emergency.oci.tar",
        "ocibake export dist/oci/emergency-service:v1.0.0 docker-archive:e.tar --name sos/emergency "
        "--platform linux/arm64",
    ),
)
@click.argument("layout", metavar="LAYOUT[:TAG]")
@click.argument("destination", metavar="docker-archive:FILE|oci-archive:FILE")
@click.option(
    "--name",
    help="repository for RepoTags in a docker-archive (default: the image's title, else the layout directory's name)",
)
@click.option("--platform", help="the platform a docker-archive takes from a multi-platform tag (default: this host's)")
@output_options()
def export(
    layout: str, destination: str, name: str | None, platform: str | None, verbose: bool, quiet: bool, json_output: bool
) -> int:
    """Write images of an OCI layout to a docker-archive or oci-archive file.

    LAYOUT alone exports every tag; LAYOUT:TAG one. The file is written deterministically (the same image gives the
    same bytes) and atomically (a temporary file renamed into place).
    """
    from ocibake.archive.export import export as write
    from ocibake.archive.target import parse_target
    from ocibake.oci.names import NAME_RE
    from ocibake.oci.platform import Platform

    out = output(verbose, quiet, json_output)
    target = parse_target(destination, "destination")
    path, tag = split_layout_arg(layout)
    if name is not None and not NAME_RE.match(name):
        raise InputError(f"--name {name!r} is not a valid repository name", hint="e.g. --name sos/emergency-service")
    want = None
    if platform and target.kind == "oci-archive":
        raise UsageError(
            "--platform picks the image of a docker-archive; an oci-archive keeps every platform",
            hint="drop --platform, or write a docker-archive",
        )
    if platform:
        try:
            want = Platform.parse(platform)
        except ValueError as exc:
            raise InputError(str(exc), hint="for example --platform linux/arm64") from None
    result = write(path, [tag] if tag else None, target, name=name, platform=want)
    for note in result.notes:
        out.log(note)
    if out.json:
        print(json.dumps({"archive": str(target), **archive_json(result)}, indent=2, sort_keys=True))
    else:
        print(f"{result.kind}:{result.path}")
    out.log(result.summary())
    return 0
