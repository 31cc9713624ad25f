"""The SBOM of an image, as stored beside it: the SPDX referrer in its layout, or in its registry (referrers API or
fallback tag). The image is read through the verified reader first, and the SBOM's manifest and document are checked
against their digests and against the image they claim to describe (cosign's `download sbom` habit, verified)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from ocibake.audit.image_source import OpenedImage
from ocibake.audit.inspect import OptionsFactory, remote_referrers
from ocibake.audit.referrers import layout_referrers
from ocibake.audit.sbom import SPDX_TYPE
from ocibake.audit.sbom_attach import check_sbom
from ocibake.errors import InputError

if TYPE_CHECKING:
    from ocibake.registry.artifacts import Remote


def _document(read: Callable[[str], bytes], manifest_digest: str, image_digest: str) -> bytes:
    try:
        manifest = json.loads(read(manifest_digest))
        layer = (manifest.get("layers") or [{}])[0]
        data = read(str(layer.get("digest")))
    except (ValueError, AttributeError):
        raise InputError(
            f"the SBOM referrer {manifest_digest} is not a JSON manifest", hint="build or push the image again"
        ) from None
    check_sbom(data, image_digest)
    return data


def _remote_read(remote: Remote, manifest_digest: str) -> Callable[[str], bytes]:
    def read(digest: str) -> bytes:
        if digest != manifest_digest:
            return remote.blob(digest)
        got = remote.manifest(digest)
        if got is None:
            raise InputError(f"the registry lists SBOM referrer {digest} but has no such manifest")
        return got[0]

    return read


def image_sbom_document(image: OpenedImage, registry_options: OptionsFactory | None = None) -> bytes:
    """The SPDX document that refers to ``image`` (its bytes as stored); InputError when there is none."""
    if image.remote is None:
        found = [r for r in layout_referrers(image.layout, image.digest) if r.get("artifactType") == SPDX_TYPE]
        if found:
            return _document(image.layout.read_blob, found[0]["digest"], image.digest)
    else:
        referrers, _how = remote_referrers(image.remote, image.digest, registry_options)
        found = [r for r in referrers if r.get("artifactType") == SPDX_TYPE]
        if found:
            from ocibake.registry.artifacts import Remote

            with Remote(image.remote, registry_options() if registry_options else None) as remote:
                return _document(_remote_read(remote, found[0]["digest"]), found[0]["digest"], image.digest)
    raise InputError(
        f"{image.reference} ({image.digest}) has no SBOM referrer",
        hint="`ocibake build` writes one unless --sbom none; `ocibake pull` brings it along from a registry",
    )
