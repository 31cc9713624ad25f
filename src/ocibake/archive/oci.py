"""oci-archive: an OCI image layout in a tar file (oci-layout, index.json, blobs/sha256/...), as skopeo, podman and
buildah read it. Blobs are copied unchanged, so every digest (an index of several platforms included) is the
layout's; index.json names each tag with org.opencontainers.image.ref.name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ocibake.archive.select import Chosen
from ocibake.archive.write import ArchiveResult, Staging, verified_blob
from ocibake.layers.tar import Entry
from ocibake.oci.image import canonical_json
from ocibake.oci.layout import LAYOUT_BYTES, Layout
from ocibake.oci.media_types import OCI_INDEX, REF_NAME


def write_oci_archive(layout: Layout, chosen: Sequence[Chosen], dest: Path) -> ArchiveResult:
    tops = [c.top.with_annotations({**c.top.annotations, REF_NAME: c.tag}) for c in chosen]
    digests = sorted(layout.reachable([c.top for c in chosen]))
    entries = [
        Entry.file("/oci-layout", LAYOUT_BYTES),
        Entry.file(
            "/index.json",
            canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [t.as_json() for t in tops]}),
        ),
    ]
    entries += [Entry.from_path(f"/blobs/sha256/{d.split(':', 1)[1]}", verified_blob(layout, d)) for d in digests]
    with Staging(dest) as staging:
        size, file_digest = staging.write(entries)
    images: dict[str, list[str]] = {}
    for c in chosen:
        images.setdefault(c.top.digest, []).append(c.tag)
    return ArchiveResult("oci-archive", dest, size, file_digest, tuple((d, tuple(t)) for d, t in images.items()))
