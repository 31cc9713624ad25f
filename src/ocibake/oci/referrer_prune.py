"""Referrers left without their subject: an SBOM or signature manifest in index.json whose image no longer is.

A build that moves a tag replaces the image it pointed at; that image's SBOM (an untagged index entry whose manifest
names it as `subject`) would otherwise stay behind forever, pointing at nothing, with its blobs. Found while the
writers' lock is held, the entries are dropped from index.json and their blobs go with the replaced image's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocibake.oci import json_doc
from ocibake.oci.layout_check import open_blob
from ocibake.oci.limits import MANIFEST_MAX_BYTES
from ocibake.oci.media_types import INDEX_TYPES, REF_NAME


def _document(root: Path, digest: str) -> dict[str, Any] | None:
    try:
        with open_blob(root, root / "blobs" / "sha256" / digest.split(":", 1)[-1]) as f:
            doc = json_doc.loads(f.read(MANIFEST_MAX_BYTES + 1))  # over the limit: not JSON, kept
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def orphaned_referrers(root: Path, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The untagged entries of ``entries`` whose manifest's subject is neither an entry nor a child of an index
    entry (repeated, so a signature of an orphaned SBOM goes too). Entries that cannot be read are kept."""
    subjects: dict[int, str] = {}
    for i, m in enumerate(entries):
        if REF_NAME in (m.get("annotations") or {}):
            continue
        doc = _document(root, str(m.get("digest", "")))
        subject = (doc or {}).get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            subjects[i] = subject["digest"]
    if not subjects:
        return []
    children = _index_children(root, entries)
    orphans: set[int] = set()
    while True:
        live = {m.get("digest") for i, m in enumerate(entries) if i not in orphans} | children
        more = {i for i, s in subjects.items() if i not in orphans and s not in live}
        if not more:
            break
        orphans |= more
    return [entries[i] for i in sorted(orphans)]


def _index_children(root: Path, entries: list[dict[str, Any]]) -> set[str]:
    """The digests the index entries of ``entries`` list as their manifests."""
    children: set[str] = set()
    for m in entries:
        if m.get("mediaType") in INDEX_TYPES:
            doc = _document(root, str(m.get("digest", "")))
            for child in (doc or {}).get("manifests") or []:
                if isinstance(child, dict) and isinstance(child.get("digest"), str):
                    children.add(child["digest"])
    return children
