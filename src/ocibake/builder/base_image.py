"""Base images (`--base REF`): the reference, and the image for one platform read from an OCI layout.

REF is ``oci:DIR[:TAG]``, ``oci:DIR@sha256:...`` (an OCI layout on disk) or a registry reference (pulled into
ocibake's cache by base_cache.py). Either way the reference is resolved to a digest (an index or a manifest), an index
gives the manifest of the platform being built (a missing platform is an error naming the ones it has), and the
layers are named by blob path, digest and diff_id. Docker media types are converted to their OCI equivalents (the
blobs stay byte for byte the same), so an image ocibake writes never mixes the two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocibake.errors import InputError
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, REF_NAME
from ocibake.oci.names import DIGEST_RE, refuse_credentials
from ocibake.oci.platform import Platform

REF_HINT = (
    "--base takes oci:DIR[:TAG] or oci:DIR@sha256:... (an OCI image layout, e.g. made with `skopeo copy "
    "docker://alpine:3.20 oci:bases/alpine:3.20`) or a registry reference such as alpine:3.20 or "
    "registry.example.com/base/alpine@sha256:..."
)

# Layer media types a base may use, and what ocibake writes for them (the same bytes, an OCI name).
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}


@dataclass(frozen=True)
class BaseRef:
    kind: str  # "oci" | "registry"
    text: str  # as given
    path: str = ""  # oci: the layout directory
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The reference without its digest: org.opencontainers.image.base.name."""
        if self.kind == "oci":
            return f"oci:{Path(self.path).name}" + (f":{self.tag}" if self.tag else "")
        return self.text.split("@", 1)[0]


def parse_base_ref(text: str) -> BaseRef:
    text = (text or "").strip()
    if not text:
        raise InputError("--base is empty (an unset variable?)", hint=REF_HINT)
    if "://" in text:
        raise InputError(f"--base {text!r}: give a reference, not a URL", hint=REF_HINT)
    if not text.startswith("oci:"):
        refuse_credentials(text, "--base")
        digest = text.split("@", 1)[1] if "@" in text else None
        if digest is not None and not DIGEST_RE.match(digest):
            raise InputError(f"--base {text!r} has an invalid digest", hint="digests look like sha256:<64 hex>")
        return BaseRef("registry", text, digest=digest)
    rest, digest = text[4:], None
    if "@" in rest:
        rest, digest = rest.rsplit("@", 1)
        if not DIGEST_RE.match(digest):
            raise InputError(f"--base {text!r} has an invalid digest", hint="digests look like sha256:<64 hex>")
    tag = None
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail:
        rest, tag = head, tail
    if not rest:
        raise InputError(f"--base {text!r} names no directory", hint=REF_HINT)
    return BaseRef("oci", text, path=rest, tag=tag, digest=digest)


@dataclass(frozen=True)
class BaseLayer:
    path: Path  # the blob on disk (in the layout or the cache)
    media_type: str  # as ocibake writes it (OCI)
    digest: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class BaseImage:
    name: str  # org.opencontainers.image.base.name
    digest: str  # what the reference resolved to (an index or a manifest): pin it with name@digest
    manifest_digest: str  # the platform's manifest: org.opencontainers.image.base.digest
    platform: Platform
    config: dict[str, Any]  # the base's whole config document
    layers: tuple[BaseLayer, ...]

    @property
    def runtime(self) -> dict[str, Any]:
        return self.config.get("config") or {}

    @property
    def history(self) -> list[dict[str, Any]]:
        return [h for h in self.config.get("history") or [] if isinstance(h, dict)]

    def record(self) -> dict[str, str | list[str]]:
        return {
            "name": self.name,
            "digest": self.digest,
            "manifest": self.manifest_digest,
            "layers": [layer.digest for layer in self.layers],
        }


def platform_matches(have: Mapping[str, Any], want: Platform) -> bool:
    if (have.get("os"), have.get("architecture")) != (want.os, want.architecture):
        return False
    variant = have.get("variant", "") or ""
    if not want.variant:
        # arm64 images name v8 or nothing; for the others no variant means the architecture's default
        return not variant or (want.architecture == "arm64" and variant == "v8")
    return variant == want.variant


def _json(layout: Layout, digest: str, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(layout.read_blob(digest))
    except ValueError:
        raise InputError(
            f"base {what}: {digest} is not JSON", hint="the base image is damaged; copy it again"
        ) from None
    if not isinstance(doc, dict):
        raise InputError(f"base {what}: {digest} is not a JSON object", hint="the base image is damaged; copy it again")
    return doc


def image_from_layout(layout: Layout, digest: str, name: str, platform: Platform, what: str) -> BaseImage:
    """The image for ``platform`` that ``digest`` (an index or a manifest blob in ``layout``) names."""
    manifest_digest, doc = _platform_manifest(layout, digest, platform, what)
    media_type = doc.get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
    if media_type not in MANIFEST_TYPES or not isinstance(doc.get("config"), dict):
        raise InputError(f"base {what} is a {media_type}, not an image", hint=REF_HINT)
    config = _json(layout, doc["config"]["digest"], what)
    have = Platform(str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant") or ""))
    if not platform_matches(have.as_json(), platform):
        raise InputError(
            f"base {what} is a {have} image, not {platform}",
            hint="use a base for the platform being built (an index holding it, or a matching image)",
        )
    return BaseImage(
        name=name,
        digest=digest,
        manifest_digest=manifest_digest,
        platform=platform,
        config=config,
        layers=_layers(layout, doc, config, what),
    )


def _platform_manifest(layout: Layout, digest: str, platform: Platform, what: str) -> tuple[str, dict[str, Any]]:
    """(digest, document) of the manifest for ``platform``: ``digest``'s own, or the one an index picks."""
    doc = _json(layout, digest, what)
    if not (doc.get("mediaType") in INDEX_TYPES or isinstance(doc.get("manifests"), list)):
        return digest, doc
    children = [c for c in doc.get("manifests") or [] if isinstance(c, dict)]
    picks = [
        c
        for c in children
        if c.get("mediaType") in MANIFEST_TYPES and platform_matches(c.get("platform") or {}, platform)
    ]
    if not picks:
        raise InputError(
            f"base {what} has no image for {platform}",
            hint=f"platforms in it: {', '.join(_platform_names(children)) or 'none'}; build for one of those, or use "
            "a base that has this platform",
        )
    manifest_digest: str = picks[0]["digest"]
    return manifest_digest, _json(layout, manifest_digest, what)


def _platform_names(children: list[dict[str, Any]]) -> list[str]:
    """os/architecture[/variant] of every child of an index that names its platform, sorted."""
    return sorted(
        {
            "/".join(
                p
                for p in (
                    c.get("platform", {}).get("os", ""),
                    c.get("platform", {}).get("architecture", ""),
                    c.get("platform", {}).get("variant", ""),
                )
                if p
            )
            for c in children
            if c.get("platform")
        }
    )


def _layers(layout: Layout, manifest: dict[str, Any], config: dict[str, Any], what: str) -> tuple[BaseLayer, ...]:
    """The manifest's layers with the config's diff_ids, each a blob present in ``layout``."""
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    descs = manifest.get("layers") or []
    if len(diff_ids) != len(descs):
        raise InputError(
            f"base {what}: the config lists {len(diff_ids)} layers, the manifest {len(descs)}",
            hint="the base image is damaged; copy it again",
        )
    return tuple(_layer(layout, desc, diff_id, what) for desc, diff_id in zip(descs, diff_ids, strict=True))


def _layer(layout: Layout, desc: dict[str, Any], diff_id: str, what: str) -> BaseLayer:
    mt = LAYER_TYPES.get(desc.get("mediaType", ""))
    if mt is None:
        raise InputError(
            f"base {what}: layer media type {desc.get('mediaType')!r} is not supported",
            hint=f"ocibake takes base layers of these types: {', '.join(sorted(LAYER_TYPES))}",
        )
    path = layout.blob_path(str(desc.get("digest", "")))
    if not path.is_file():
        raise InputError(
            f"base {what}: layer {desc.get('digest')} is missing",
            hint="the base image is incomplete; copy it again",
        )
    return BaseLayer(path, mt, desc["digest"], int(desc.get("size", 0)), diff_id)


def resolve_layout_base(ref: BaseRef, platform: Platform) -> BaseImage:
    """An oci:DIR[:TAG|@sha256:...] base, from the layout on disk (no network, no cache)."""
    root = Path(ref.path)
    if not root.exists():
        raise InputError(f"--base {ref.text}: {root} does not exist", hint=REF_HINT)
    layout = Layout.open(root)
    if ref.digest:
        entries = [
            d
            for d in layout.manifests()
            if d.digest == ref.digest and (ref.tag is None or d.annotations.get(REF_NAME) == ref.tag)
        ]
        if not entries and not layout.blob_path(ref.digest).is_file():
            raise InputError(
                f"--base {ref.text}: {ref.digest} is not in {root}",
                hint="the layout holds a different image than the one pinned; copy the pinned one",
            )
        digest = ref.digest
    else:
        digest = layout.resolve(ref.tag).digest
    return image_from_layout(layout, digest, ref.name, platform, ref.text)
