"""What a push sends, read and verified before the first request: the tags chosen from a layout, every manifest
under them and every blob they name, each checked against its digest and size."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.oci.layout_check import open_blob
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES
from ocibake.oci.names import TAG_RE


@dataclass
class _PushPlan:
    blobs: dict[str, tuple[int, Path]] = field(default_factory=dict)  # digest -> (size, path)
    children: list[tuple[Descriptor, bytes]] = field(default_factory=list)  # manifests under an index (by digest)
    tops: list[tuple[str, Descriptor, bytes]] = field(default_factory=list)  # (tag, descriptor, bytes)


def _media_type(desc: Descriptor, data: bytes) -> str:
    try:
        declared = json_doc.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared or desc.media_type


def _verified_bytes(layout: Layout, desc: Descriptor) -> bytes:
    path = layout.blob_path(desc.digest)
    try:
        with open_blob(layout.root, path) as f:  # a regular file inside the layout, never through a symlink
            data = f.read(desc.size + 1)
    except FileNotFoundError:
        raise InputError(
            f"{desc.digest} is missing from {layout.root}", hint="the layout is incomplete; rebuild it"
        ) from None
    if len(data) != desc.size or "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise InputError(
            f"manifest {desc.digest} in {layout.root} does not match its digest or size; nothing was pushed",
            hint="the layout is damaged; rebuild or re-pull it",
        )
    return data


def _file_digest(root: Path, path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open_blob(root, path) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def plan_push(
    layout: Layout, tagged: Sequence[tuple[str, Descriptor]], verified: dict[str, tuple[str, int]] | None = None
) -> _PushPlan:
    """Read and verify everything that will be pushed, before anything is sent (``verified`` caches blob hashes)."""
    planner = _Planner(layout, {} if verified is None else verified)
    for tag, desc in tagged:
        data = _verified_bytes(layout, desc)
        try:
            planner.walk(desc, data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(
                f"{desc.digest} in {layout.root} is not a valid manifest ({type(exc).__name__})",
                hint="the layout is damaged; rebuild it",
            ) from None
        planner.plan.tops.append((tag, desc, data))
    return planner.plan


@dataclass
class _Planner:
    """Walks the manifests and indexes under the tags being pushed, filling ``plan``; every blob is hashed once
    (``verified``: digest -> (computed digest, size)), every child manifest planned once."""

    layout: Layout
    verified: dict[str, tuple[str, int]]
    plan: _PushPlan = field(default_factory=_PushPlan)
    seen_children: set[str] = field(default_factory=set)

    def walk(self, desc: Descriptor, data: bytes) -> None:
        mt = _media_type(desc, data)
        if mt in INDEX_TYPES:
            for child in json_doc.loads(data).get("manifests") or []:
                cd = Descriptor.from_json(child)
                if cd.digest in self.seen_children:
                    continue
                self.seen_children.add(cd.digest)
                cdata = _verified_bytes(self.layout, cd)
                self.walk(cd, cdata)
                self.plan.children.append((cd, cdata))
        elif mt in MANIFEST_TYPES:
            self.add_blobs(data)
        else:
            raise InputError(
                f"{desc.digest} in {self.layout.root} has media type {mt!r}, not a manifest or index",
                hint="ocibake pushes OCI/Docker image manifests and indexes",
            )

    def add_blobs(self, manifest: bytes) -> None:
        """The config and layers of an image manifest, each checked against its digest and size."""
        doc = json_doc.loads(manifest)
        for d in [doc.get("config"), *list(doc.get("layers") or [])]:
            if not d:
                continue
            blob = Descriptor.from_json(d)
            if blob.digest in self.plan.blobs:
                continue
            path = self.layout.blob_path(blob.digest)
            digest, size = self._hash(blob.digest, path)
            if digest != blob.digest or size != blob.size:
                raise InputError(
                    f"blob {blob.digest} in {self.layout.root} does not match its digest or size; nothing was pushed",
                    hint="the layout is damaged; rebuild or re-pull it",
                )
            self.plan.blobs[blob.digest] = (size, path)

    def _hash(self, digest: str, path: Path) -> tuple[str, int]:
        if digest not in self.verified:
            try:
                self.verified[digest] = _file_digest(self.layout.root, path)
            except FileNotFoundError:
                raise InputError(
                    f"blob {digest} is missing from {self.layout.root}; nothing was pushed",
                    hint="the layout is incomplete; rebuild or re-pull it",
                ) from None
        return self.verified[digest]


def select_tags(layout: Layout, tags: Sequence[str] | None, as_tag: str | None = None) -> list[tuple[str, Descriptor]]:
    """Which (registry tag, descriptor) pairs to push to one repository.

    Without ``as_tag``: the layout tags named by ``tags`` (each must be there; a layout holding one untagged image
    may give it any tag), or all of them. With ``as_tag`` (REPO:TAG): one image pushed as that tag, like `crane push`:
    the one ``tags`` names, else the layout's own tag of that name, else the layout's only image.
    """
    available = layout.tags()
    manifests = layout.manifests()
    only = manifests[0] if len({m.digest for m in manifests}) == 1 else None
    here = f"tags here: {', '.join(sorted(available)) or 'none'}"
    for tag in list(tags or []) + ([as_tag] if as_tag else []):
        if not TAG_RE.match(tag):
            raise InputError(f"tag {tag!r} is not valid", hint="tags are 1-128 letters, digits, '_', '.', '-'")
    if as_tag:
        if tags and len(tags) > 1:
            raise InputError(
                f"REPO:{as_tag} pushes one image, and --tag names {len(tags)}",
                hint="give one --tag (the image to push as that tag), or drop :TAG from the repository",
            )
        if tags:
            source = tags[0]
            if source not in available:
                raise InputError(f"tag {source!r} is not in {layout.root}", hint=here)
            return [(as_tag, available[source])]
        if as_tag in available:
            return [(as_tag, available[as_tag])]
        if only is not None:
            return [(as_tag, Descriptor(only.media_type, only.digest, only.size, {}, only.platform))]
        raise InputError(
            f"{layout.root} holds {len(manifests)} images; which one is {as_tag!r}?",
            hint=f"name it with --tag TAG ({here})",
        )
    if not tags:
        if not available:
            raise InputError(
                f"{layout.root} has no tagged images" + (f" ({len(manifests)} untagged)" if manifests else ""),
                hint="push to REPO:TAG to give the image a tag",
            )
        return sorted(available.items())
    out = []
    for tag in dict.fromkeys(tags):
        if tag in available:
            out.append((tag, available[tag]))
        elif only is not None and not available:
            out.append((tag, Descriptor(only.media_type, only.digest, only.size, {}, only.platform)))
        else:
            raise InputError(
                f"tag {tag!r} is not in {layout.root}; nothing was pushed",
                hint=f"{here}; to push an image under a new tag, push to REPO:NEWTAG --tag OLD",
            )
    return out
