"""OCI 1.1 referrers in a layout: artifacts whose manifest names an image as its `subject` (SBOMs, signatures),
listed in index.json untagged, where `oras discover --oci-layout` finds them; and the artifact manifest itself."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ocibake.oci.image import Blob, Descriptor, canonical_json
from ocibake.oci.layout import Layout, LayoutWriter
from ocibake.oci.media_types import OCI_MANIFEST

EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


@dataclass(frozen=True)
class Artifact:
    """An artifact manifest and the blobs it names (the empty config and its layers)."""

    manifest: Blob
    blobs: tuple[tuple[str, bytes], ...]        # (digest, bytes)
    artifact_type: str

    def descriptor(self) -> Descriptor:
        return Descriptor(OCI_MANIFEST, self.manifest.digest, len(self.manifest.data))

    @property
    def annotations(self) -> dict:
        return json.loads(self.manifest.data).get("annotations") or {}


def make_artifact(artifact_type: str, subject: Descriptor, layer_type: str, data: bytes,
                  annotations: dict[str, str]) -> Artifact:
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
    return Artifact(Blob(OCI_MANIFEST, canonical_json(manifest)),
                    ((empty.digest, EMPTY_JSON), (layer.digest, data)), artifact_type)


def add_to_layout(root: Path, artifact: Artifact) -> Descriptor:
    """Write the artifact's blobs and list its manifest untagged in index.json (atomically, as every layout write)."""
    desc = Descriptor(OCI_MANIFEST, artifact.manifest.digest, len(artifact.manifest.data))
    with LayoutWriter(root) as writer:
        for _, data in artifact.blobs:
            writer.add_blob(Blob("", data))
        writer.add_blob(artifact.manifest)
        writer.commit([], [desc])
    prune_stale_referrers(root)
    return desc


def layout_referrers(layout: Layout, digest: str) -> list[dict]:
    """Descriptors (as the referrers API answers them) of the manifests in ``layout`` whose subject is ``digest``."""
    found = []
    for d in layout.manifests():
        if d.media_type != OCI_MANIFEST:
            continue
        try:
            doc = json.loads(layout.blob_path(d.digest).read_bytes())
        except (OSError, ValueError):
            continue
        if (doc.get("subject") or {}).get("digest") != digest:
            continue
        entry = {"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                 "artifactType": doc.get("artifactType") or (doc.get("config") or {}).get("mediaType", "")}
        if doc.get("annotations"):
            entry["annotations"] = doc["annotations"]
        found.append(entry)
    return sorted(found, key=lambda e: e["digest"])


def prune_stale_referrers(root: Path) -> None:
    """Drop untagged referrer entries of index.json whose subject is no longer an image of the layout (a rebuilt tag
    leaves its old SBOM behind otherwise); index.json is replaced by rename, as every layout write."""
    layout = Layout.open(root)
    present = {d.digest for d in layout.manifests()}
    kept, dropped = [], False
    for entry in layout.index.get("manifests", []):
        if not (entry.get("annotations") or {}).get("org.opencontainers.image.ref.name"):
            try:
                doc = json.loads(layout.blob_path(entry["digest"]).read_bytes())
            except (OSError, ValueError, KeyError):
                doc = {}
            subject = (doc.get("subject") or {}).get("digest")
            if subject and subject not in present:
                dropped = True
                continue
        kept.append(entry)
    if dropped:
        index = dict(layout.index, manifests=kept)
        tmp = root / f".index.json.ocibake-{os.getpid()}"
        tmp.write_bytes(canonical_json(index))
        os.chmod(tmp, 0o644)
        os.replace(tmp, root / "index.json")
