"""Frozen image values: descriptors, the config, the manifest and the index.

JSON is serialised once, canonically (sorted keys, no spaces), and those exact bytes are what get hashed, written
and pushed. Nothing here reads the clock or the host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocibake.oci.limits import CONFIG_MAX_BYTES, MANIFEST_MAX_BYTES, check_written
from ocibake.oci.media_types import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from ocibake.oci.platform import Platform


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        if self.platform:
            d["platform"] = self.platform.as_json()
        return d

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> Descriptor:
        plat = d.get("platform")
        return Descriptor(
            media_type=d["mediaType"],
            digest=d["digest"],
            size=int(d["size"]),
            annotations=dict(d.get("annotations") or {}),
            platform=Platform(plat["os"], plat["architecture"], plat.get("variant", "")) if plat else None,
        )

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, dict(annotations), self.platform)


@dataclass(frozen=True)
class Blob:
    """A JSON document (config, manifest or index) as the exact bytes that are hashed, stored and pushed."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(
        self, *, annotations: Mapping[str, str] | None = None, platform: Platform | None = None
    ) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.data), annotations or {}, platform)


@dataclass(frozen=True)
class LayerRecord:
    """A layer as the config and manifest see it, plus what it is (for history and the report)."""

    descriptor: Descriptor  # compressed blob
    diff_id: str
    uncompressed_size: int
    created_by: str
    kind: str


@dataclass(frozen=True)
class ImageConfig:
    """The runtime settings of the image (the `config` object of the OCI config)."""

    user: str = "1001:1001"
    entrypoint: tuple[str, ...] = ("/app",)
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    exposed_ports: tuple[str, ...] = ("8080/tcp",)
    working_dir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)
    # Docker's Healthcheck object (Test, Interval...), when there is one
    healthcheck: Mapping[str, object] | None = None

    def as_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "User": self.user,
            "Entrypoint": list(self.entrypoint),
            "Env": list(self.env),
            "WorkingDir": self.working_dir,
        }
        if self.cmd:
            d["Cmd"] = list(self.cmd)
        if self.exposed_ports:
            d["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.labels:
            d["Labels"] = dict(self.labels)
        if self.healthcheck:
            d["Healthcheck"] = dict(self.healthcheck)
        return d


@dataclass(frozen=True)
class Image:
    platform: Platform
    config: Blob
    manifest: Blob
    layers: tuple[LayerRecord, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def compressed_size(self) -> int:
        return len(self.config.data) + len(self.manifest.data) + sum(layer.descriptor.size for layer in self.layers)


def make_image(
    *,
    platform: Platform,
    layers: Sequence[LayerRecord],
    runtime: ImageConfig,
    created: int,
    annotations: Mapping[str, str],
    base_history: Sequence[Mapping[str, object]] = (),
) -> Image:
    """Assemble config and manifest for ``layers`` with every time set to ``created``. Layers of kind "base" come
    from a base image: their history is ``base_history`` (the base's own, as it was)."""
    created_s = rfc3339(created)
    history: list[dict[str, object]] = [dict(h) for h in base_history] + [
        {"created": created_s, "created_by": layer.created_by, "comment": f"ocibake {layer.kind} layer"}
        for layer in layers
        if layer.kind != "base"
    ]
    config = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": created_s,
        "config": runtime.as_json(),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": history,
    }
    if platform.variant:
        config["variant"] = platform.variant
    config_blob = Blob(OCI_CONFIG, canonical_json(config))
    check_written("config", config_blob.data, CONFIG_MAX_BYTES)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor().as_json(),
        "layers": [layer.descriptor.as_json() for layer in layers],
        "annotations": dict(annotations),
    }
    manifest_blob = Blob(OCI_MANIFEST, canonical_json(manifest))
    check_written("manifest", manifest_blob.data, MANIFEST_MAX_BYTES)
    return Image(platform=platform, config=config_blob, manifest=manifest_blob, layers=tuple(layers))


def make_index(manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None) -> Blob:
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [m.as_json() for m in manifests]}
    if annotations:
        index["annotations"] = dict(annotations)
    blob = Blob(OCI_INDEX, canonical_json(index))
    check_written("index", blob.data, MANIFEST_MAX_BYTES)
    return blob
