"""A resolved base image put under ocibake's layers: the base (oci: layout or registry, via the cache) read and
verified once, its layers copied into the output layout as they are (OCI media types), and its history kept."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocibake.builder.base_cache import resolve_registry_base
from ocibake.builder.base_files import BaseFiles, read_base_files
from ocibake.builder.base_image import BaseImage, parse_base_ref, resolve_layout_base
from ocibake.oci.image import Descriptor, LayerRecord, rfc3339
from ocibake.oci.layout import LayoutWriter
from ocibake.oci.platform import Platform

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


@dataclass(frozen=True)
class Base:
    image: BaseImage
    files: BaseFiles

    def annotations(self) -> dict[str, str]:
        return {BASE_NAME: self.image.name, BASE_DIGEST: self.image.manifest_digest}


def resolve_base(
    text: str,
    platform: Platform,
    options_factory: Callable[[], RegistryOptions] | None,
    log: Callable[[str], None] = lambda s: None,
) -> Base:
    """Resolve, fetch (registry bases: into the cache) and verify the base for ``platform``."""
    ref = parse_base_ref(text)
    if ref.kind == "oci":
        image = resolve_layout_base(ref, platform)
    else:
        if options_factory is None:
            from ocibake.registry.options import RegistryOptions

            options_factory = RegistryOptions
        image = resolve_registry_base(ref, platform, options_factory, log=log)
    return Base(image, read_base_files(image))


def base_history(base: Base, epoch: int) -> list[dict[str, Any]]:
    """The base's history when it covers its layers (every entry given a `created`: umoci needs one), else one entry
    per base layer."""
    history = [dict(h) for h in base.image.history]
    layers_in_history = sum(1 for h in history if not h.get("empty_layer"))
    if layers_in_history != len(base.image.layers):
        history = [{"created_by": f"base {base.image.name} layer {i + 1}"} for i in range(len(base.image.layers))]
    for h in history:
        h.setdefault("created", rfc3339(epoch))
    return history


def write_base_layers(base: Base, writer: LayoutWriter) -> list[LayerRecord]:
    """Copy the base's layer blobs into the layout (verified already by read_base_files)."""
    records = []
    for layer in base.image.layers:
        target = writer.scratch_file("base-")
        shutil.copyfile(layer.path, target)
        writer.add_blob_file(target, layer.digest)
        records.append(
            LayerRecord(
                Descriptor(layer.media_type, layer.digest, layer.size),
                layer.diff_id,
                base.files.sizes.get(layer.digest, 0),
                f"base {base.image.name}",
                "base",
            )
        )
    return records
