"""cosign signatures kept in an OCI layout, for checking offline: `ocibake pull` copies an image's `sha256-<hex>.sig`
manifest (and its blobs) into the layout under that same tag, as `oras copy` and skopeo keep tags; this reads them
back with the same checks a registry's answers get (every manifest and blob against its digest)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ocibake.errors import InputError
from ocibake.oci.image import Blob
from ocibake.oci.layout import Layout

ARTIFACT_TAG = re.compile(r"^sha256-[0-9a-f]{64}(\.[a-z]+)?$")
"""Tags that name artifacts about an image, never an image: cosign's `.sig`, `.att`, `.sbom` and the referrers
fallback tag (`sha256-<hex>`)."""


def is_artifact_tag(tag: str) -> bool:
    return bool(ARTIFACT_TAG.match(tag))


class LayoutSignatures:
    """A read-only SignatureRepository (audit/cosign_sign.py) over a layout's tags and blobs."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def manifest(self, ref: str) -> tuple[bytes, str] | None:
        desc = self.layout.tags().get(ref)
        if desc is None:
            return None
        return self.layout.read_blob(desc.digest), desc.media_type

    def blob(self, digest: str) -> bytes:
        return self.layout.read_blob(digest)

    def put_blobs(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        raise InputError("signing into a layout is not supported", hint="push the image, then sign it there")

    def put_manifest(self, ref: str, blob: Blob) -> str:
        raise InputError("signing into a layout is not supported", hint="push the image, then sign it there")
