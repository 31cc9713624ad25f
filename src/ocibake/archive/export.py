"""Export: the tags of an OCI layout into a docker-archive or oci-archive file (the one entry point for the build
command's --output docker-archive:FILE and for `ocibake export`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocibake.archive.docker import write_docker_archive
from ocibake.archive.oci import write_oci_archive
from ocibake.archive.select import Chosen, choose
from ocibake.archive.target import ArchiveTarget
from ocibake.archive.write import ArchiveResult
from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.layout import Layout
from ocibake.oci.names import NAME_RE
from ocibake.oci.platform import Platform

TITLE = "org.opencontainers.image.title"


def default_name(layout: Layout, chosen: Chosen) -> str:
    """An image's title annotation (ocibake sets it to the image name), else the layout directory's name."""
    try:
        title = json_doc.loads(layout.read_blob(chosen.manifest.digest)).get("annotations", {}).get(TITLE)
    except (ValueError, AttributeError):
        title = None
    return title if isinstance(title, str) and NAME_RE.match(title) else layout.root.resolve().name.lower()


def export(
    layout_path: Path | str,
    tags: Sequence[str] | None,
    target: ArchiveTarget,
    name: str | None = None,
    platform: Platform | None = None,
) -> ArchiveResult:
    """Write ``tags`` of the layout (None: all) to ``target``. ``name``: the repository in RepoTags (docker-archive);
    ``platform``: which image of a multi-platform tag a docker-archive holds (default: this host's)."""
    layout = Layout.open(layout_path)
    if target.kind == "oci-archive":
        return write_oci_archive(layout, choose(layout, tags, None), target.path)
    chosen = choose(layout, tags, platform)
    # each image under its own name (a layout may hold several services); --name renames them all
    names = {c.manifest.digest: name or default_name(layout, c) for c in chosen}
    for each in sorted(set(names.values())):
        if not NAME_RE.match(each):
            raise InputError(
                f"image name {each!r} is not a valid repository name",
                hint="name it with --name, e.g. --name emergency-service",
            )
    return write_docker_archive(layout, chosen, names, target.path)
