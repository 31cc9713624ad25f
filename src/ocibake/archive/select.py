"""Which images of a layout go into an archive: the tags asked for, and for a tag that names an index (several
platforms), the one platform a docker-archive can hold: --platform's, else this host's, and a note that says so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES
from ocibake.oci.platform import Platform, host_architecture


@dataclass(frozen=True)
class Chosen:
    tag: str
    top: Descriptor  # what the tag names in the layout (a manifest or an index)
    manifest: Descriptor  # the one single-platform manifest under it
    note: str = ""  # how the platform was picked, when there was a choice


def host_platform() -> Platform:
    return Platform("linux", host_architecture())


def choose(layout: Layout, tags: Sequence[str] | None, platform: Platform | None = None) -> list[Chosen]:
    """``tags`` of ``layout`` (None: every tag in it), each down to one manifest."""
    tagged = layout.tags()
    if tags is None:
        if not tagged:
            raise InputError(
                f"{layout.root} has no tagged image",
                hint="name images in a layout with tags (ocibake build --tag, skopeo copy ... oci:DIR:TAG)",
            )
        tags = list(tagged)
    chosen = []
    for tag in dict.fromkeys(tags):
        top = layout.resolve(tag)
        manifest, note = pick_manifest(layout, top, tag, platform)
        chosen.append(Chosen(tag, top, manifest, note))
    return chosen


def _matches(have: Platform | None, want: Platform) -> bool:
    return (
        have is not None
        and have.os == want.os
        and have.architecture == want.architecture
        and (not want.variant or have.variant == want.variant)
    )


def pick_manifest(layout: Layout, top: Descriptor, tag: str, platform: Platform | None) -> tuple[Descriptor, str]:
    if top.media_type in MANIFEST_TYPES:
        if platform is not None and top.platform is not None and not _matches(top.platform, platform):
            raise InputError(
                f"{tag} is a {top.platform} image, not {platform}",
                hint="drop --platform, or name a tag that holds that platform",
            )
        return top, ""
    if top.media_type not in INDEX_TYPES:
        raise InputError(
            f"{tag} in {layout.root} is a {top.media_type}, not an image",
            hint="name a tag whose entry is an image manifest or index",
        )
    try:
        children = [Descriptor.from_json(m) for m in json_doc.loads(layout.read_blob(top.digest)).get("manifests", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"the index of {tag} in {layout.root} cannot be read: {exc}",
            hint="the layout is damaged; rebuild or re-pull it",
        ) from None
    images = [
        c
        for c in children
        if c.media_type in MANIFEST_TYPES + INDEX_TYPES and c.platform is not None and c.platform.os != "unknown"
    ]
    names = ", ".join(str(c.platform) for c in images) or "none"
    want = platform or host_platform()
    match = next((c for c in images if _matches(c.platform, want)), None)
    if match is None:
        raise InputError(
            f"{tag} holds no {want} image (platforms: {names})",
            hint="choose one with --platform OS/ARCH"
            if platform is None
            else "choose one of its platforms with --platform",
        )
    if match.media_type in INDEX_TYPES:
        return pick_manifest(layout, match, tag, platform)
    if len(images) == 1:
        return match, ""
    why = "--platform" if platform is not None else "this host's platform; --platform picks another"
    return match, f"{tag} holds {len(images)} platforms ({names}): the archive holds {match.platform} ({why})"
