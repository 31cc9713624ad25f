"""The index.json a commit writes into an existing layout.

Each new entry takes the place of the entry it replaces (the same tag, or the same digest untagged), so a rebuild of
the same images leaves index.json entry for entry as it was; entries new to the layout go at the end, and every other
entry is kept as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ocibake.oci.image import Descriptor
from ocibake.oci.media_types import OCI_INDEX, REF_NAME


def merged_index(
    old_index: dict[str, Any],
    tagged: Sequence[tuple[str, Descriptor]],
    untagged: Sequence[Descriptor],
    new_entries: Sequence[Descriptor],
) -> tuple[dict[str, Any], list[Descriptor]]:
    """(the new index, the entries of ``old_index`` it replaces). ``new_entries``: ``tagged`` with their tags as
    annotations, then ``untagged``."""
    names = {tag for tag, _ in tagged}
    again = {d.digest for d in untagged}
    fresh = {
        (d.annotations.get(REF_NAME), None if d.annotations.get(REF_NAME) else d.digest): d.as_json()
        for d in new_entries
    }
    manifests: list[dict[str, Any]] = []
    replaced: list[Descriptor] = []
    for m in old_index.get("manifests", []):
        ref = (m.get("annotations") or {}).get(REF_NAME)
        if ref in names or (ref is None and m.get("digest") in again):
            replaced.append(Descriptor.from_json(m))
            take = fresh.pop((ref, None if ref else m.get("digest")), None)
            if take is not None:
                manifests.append(take)
        else:
            manifests.append(m)
    index = dict(old_index)
    index["manifests"] = manifests + list(fresh.values())
    index.setdefault("schemaVersion", 2)
    index["mediaType"] = OCI_INDEX
    return index, replaced
