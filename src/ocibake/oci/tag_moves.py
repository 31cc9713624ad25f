"""Tags that move from one image to another in a layout, and the moves that are refused without --force-tags.

A tag may move to a newer build of the same image (same name, same version): that is what rebuilding does, and the
report says `moved`. It may not silently move to an image of another name (two services built into one --output), or,
when the tag is the version the old image carries, to an image of another version (v2.0.0 pointing at a v2.0.1 build).
Names and versions are the images' `org.opencontainers.image.title` and `.version` labels; a tag whose old image
carries neither (a pulled image, say) moves freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import MANIFEST_TYPES

TITLE = "org.opencontainers.image.title"
VERSION = "org.opencontainers.image.version"
MAX_JSON = 4 << 20


@dataclass(frozen=True)
class TagMove:
    tag: str
    old_digest: str
    new_digest: str
    old_name: str | None
    old_version: str | None

    def line(self) -> str:
        return f"moved tag {self.tag} from {self.old_digest[:19]} to {self.new_digest[:19]}"


def _labels(layout: Layout, digest: str, media_type: str) -> dict[str, Any]:
    """The config labels of a single image in the layout ({} when there are none or they cannot be read)."""
    if media_type not in MANIFEST_TYPES:
        return {}
    try:
        manifest = json_doc.loads(layout.read_blob(digest))
        config = json_doc.loads(layout.read_blob(str(manifest["config"]["digest"])))
        labels = (config.get("config") or {}).get("Labels") or {}
        return labels if isinstance(labels, dict) else {}
    except (InputError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def tag_moves(layout: Layout, tags: Sequence[str], new_digest: str) -> list[TagMove]:
    """The tags among ``tags`` that point at another image than ``new_digest`` now."""
    current = layout.tags()
    moves = []
    for tag in tags:
        old = current.get(tag)
        if old is None or old.digest == new_digest:
            continue
        labels = _labels(layout, old.digest, old.media_type)
        moves.append(TagMove(tag, old.digest, new_digest, labels.get(TITLE), labels.get(VERSION)))
    return moves


def refuse_unsafe_moves(
    layout: Layout, tags: Sequence[str], new_digest: str | None, name: str, version: str, force: bool
) -> list[TagMove]:
    """Raise InputError for the first tag that would move to an image of another name or version; return the moves.
    ``new_digest`` None: the image is not built yet (the pre-check), so every existing tag counts as a move."""
    moves = tag_moves(layout, tags, new_digest or "")
    if force:
        return moves
    for m in moves:
        old = f"{m.old_name or '?'} {m.old_version or '?'} ({m.old_digest[:19]})"
        if m.old_name is not None and m.old_name != name:
            why = f"another image name ({name}, was {m.old_name})"
        elif m.old_version is not None and m.tag == m.old_version and version != m.tag:
            why = f"version {version} (the tag names version {m.tag})"
        else:
            continue
        raise InputError(
            f"tag {m.tag!r} in {layout.root} would move from {old} to {name} {version}: {why}; refused",
            hint="choose other tags or another --output, or pass --force-tags (force-tags = true in "
            "ocibake.toml) to move it",
        )
    return moves
