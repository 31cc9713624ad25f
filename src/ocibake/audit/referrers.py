"""OCI 1.1 referrers in a layout: artifacts whose manifest names an image as its `subject` (SBOMs, signatures),
listed in index.json untagged, where `oras discover --oci-layout` finds them; and the artifact manifest itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocibake.errors import InputError
from ocibake.oci.image import Blob, Descriptor, canonical_json
from ocibake.oci.layout import Layout, LayoutWriter
from ocibake.oci.limits import ARTIFACT_BLOB_MAX_BYTES
from ocibake.oci.media_types import OCI_MANIFEST

EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


@dataclass(frozen=True)
class Artifact:
    """An artifact manifest and the blobs it names (the empty config and its layers)."""

    manifest: Blob
    blobs: tuple[tuple[str, bytes], ...]  # (digest, bytes)
    artifact_type: str

    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_MANIFEST, self.manifest.digest, len(self.manifest.data))

    @property
    def annotations(self) -> dict[str, str]:
        manifest: dict[str, Any] = json.loads(self.manifest.data)
        annotations: dict[str, str] = manifest.get("annotations") or {}
        return annotations


def make_artifact(
    artifact_type: str, subject: Descriptor, layer_type: str, data: bytes, annotations: dict[str, str]
) -> Artifact:
    layer = Blob(layer_type, data)
    empty = Blob(EMPTY_TYPE, EMPTY_JSON)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor().as_json(),
        "layers": [layer.descriptor().as_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).as_json(),
        "annotations": dict(annotations),
    }
    return Artifact(
        Blob(OCI_MANIFEST, canonical_json(manifest)), ((empty.digest, EMPTY_JSON), (layer.digest, data)), artifact_type
    )


def add_to_layout(root: Path, artifact: Artifact) -> Descriptor:
    """Write the artifact's blobs and list its manifest untagged in index.json (atomically, as every layout write)."""
    desc = Descriptor(OCI_MANIFEST, artifact.manifest.digest, len(artifact.manifest.data))
    with LayoutWriter(root) as writer:
        for _, data in artifact.blobs:
            writer.add_blob(Blob("", data))
        writer.add_blob(artifact.manifest)
        writer.commit([], [desc])  # under the writers' lock, referrers whose image is gone are dropped too
    return desc


def stored_artifact(root: Path, subject: str, artifact_type: str) -> Artifact | None:
    """The artifact of ``artifact_type`` that ``root`` already holds for ``subject``, every blob checked; None when
    there is none (or it is damaged, and is then made again)."""
    layout = Layout.open(root)
    for entry in layout_referrers(layout, subject):
        if entry["artifactType"] != artifact_type:
            continue
        try:
            data = layout.read_blob(entry["digest"])
            doc = json.loads(data)
            blobs = tuple(
                (d["digest"], layout.read_blob(d["digest"], ARTIFACT_BLOB_MAX_BYTES))
                for d in [doc["config"], *doc["layers"]]
            )
        except (InputError, OSError, ValueError, KeyError, TypeError):
            continue
        return Artifact(Blob(OCI_MANIFEST, data), blobs, artifact_type)
    return None


def layout_referrers(layout: Layout, digest: str) -> list[dict[str, Any]]:
    """Descriptors (as the referrers API answers them) of the manifests in ``layout`` whose subject is ``digest``."""
    found: list[dict[str, Any]] = []
    for d in layout.manifests():
        if d.media_type != OCI_MANIFEST:
            continue
        try:
            doc = json.loads(layout.read_blob(d.digest))  # bounded (limits.py), checked
        except (InputError, OSError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if (doc.get("subject") or {}).get("digest") != digest:
            continue
        entry = {
            "mediaType": d.media_type,
            "digest": d.digest,
            "size": d.size,
            "artifactType": doc.get("artifactType") or (doc.get("config") or {}).get("mediaType", ""),
        }
        if doc.get("annotations"):
            entry["annotations"] = doc["annotations"]
        found.append(entry)
    return sorted(found, key=lambda e: e["digest"])
