"""An image from its parts, staged in a layout being written: every layer written once (from the layer cache when
it holds it, or shared by the platforms of one run), then the build record, the config and the manifest."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ocibake.builder import layer_cache
from ocibake.builder.base_layers import Base, base_history, write_base_layers
from ocibake.builder.file_cache import FileCache
from ocibake.builder.prepare import Prepared
from ocibake.builder.record import Provenance, build_record, oci_annotations, runtime_config
from ocibake.builder.shared_layers import SharedLayers
from ocibake.builder.spec import BuildSpec
from ocibake.builder.targets import recipe_for
from ocibake.builder.targets.common import support_layers
from ocibake.layers.binary import binary_layer
from ocibake.layers.content import LayerContent
from ocibake.oci.image import Descriptor, Image, LayerRecord, make_image
from ocibake.oci.layout import LayoutWriter


def base_layer_contents(spec: BuildSpec) -> list[LayerContent]:
    """The layers that do not depend on the binary, from the one that changes least (FROM scratch)."""
    return support_layers(spec, None)[0]


def binary_layer_content(spec: BuildSpec, binary: Path, prov: Provenance) -> LayerContent:
    return binary_layer(binary, f"{prov.module.path} {spec.version} ({prov.package}) for {spec.platform}")


def write_layers_below(
    contents: list[LayerContent],
    writer: LayoutWriter,
    epoch: int,
    compression: str,
    base: Base | None = None,
    shared: SharedLayers | None = None,
) -> list[LayerRecord]:
    """The layers under the binary: the base's (copied once for all the platforms of a run with ``shared``), then
    ``contents``."""
    records: list[LayerRecord] = []
    if base is not None:
        write_base = partial(write_base_layers, base, writer)
        records = shared.base_records(base, write_base) if shared is not None else write_base()
    return records + write_layers(contents, writer, epoch, compression, shared)


def write_layers(
    contents: list[LayerContent], writer: LayoutWriter, epoch: int, compression: str, shared: SharedLayers | None = None
) -> list[LayerRecord]:
    """Each layer's blob staged in ``writer``; with ``shared``, a layer another platform of the run wrote already is
    taken from there."""
    cache = layer_cache.layer_cache()
    if shared is None:
        return [_write_layer(content, writer, epoch, compression, cache) for content in contents]
    return [
        shared.record(content, epoch, compression, partial(_write_layer, content, writer, epoch, compression, cache))
        for content in contents
    ]


def _write_layer(
    content: LayerContent, writer: LayoutWriter, epoch: int, compression: str, cache: FileCache
) -> LayerRecord:
    mtime = content.mtime_for(epoch)
    if content.pin is not None:
        blob, staged = layer_cache.pinned_layer_blob(content, writer, mtime=mtime, compression=compression, cache=cache)
    else:
        blob, staged = layer_cache.layer_blob(
            content.entries, content.kind, writer, mtime=mtime, compression=compression, cache=cache
        )
    if staged:
        writer.add_blob_file(blob.path, blob.digest)
    return LayerRecord(
        Descriptor(blob.media_type, blob.digest, blob.size),
        blob.diff_id,
        blob.uncompressed_size,
        content.created_by,
        content.kind,
    )


def finish_image(
    spec: BuildSpec,
    prov: Provenance,
    contents: list[LayerContent],
    records: list[LayerRecord],
    writer: LayoutWriter,
    prep: Prepared | None = None,
    extra_record: dict[str, Any] | None = None,
) -> tuple[Image, dict[str, Any]]:
    """Config and manifest for the written layers, staged in ``writer`` (not yet committed); and the build record."""
    recipe = prep.recipe if prep else recipe_for(spec.target)
    base = prep.base if prep else None
    record = build_record(spec, prov, contents)
    record.update(extra_record or {})
    if base is not None:
        record["base"] = base.image.record()
    files = base.files if base else None
    _, facts = recipe.runtime(spec, runtime_config(spec, prov, record), base.image if base else None, files)
    record.update(facts)
    runtime, _ = recipe.runtime(spec, runtime_config(spec, prov, record), base.image if base else None, files)
    annotations = oci_annotations(spec, prov)
    if base is not None:
        annotations.update(base.annotations())
        runtime = replace(runtime, labels={**runtime.labels, **base.annotations()})
    image = make_image(
        platform=spec.platform,
        layers=records,
        created=prov.epoch,
        runtime=runtime,
        annotations=annotations,
        base_history=base_history(base, prov.epoch) if base else (),
    )
    for blob in (image.config, image.manifest):
        existing = writer.blob_file(blob.digest)
        if not (existing.is_file() and existing.read_bytes() == blob.data):  # a no-op rebuild rewrites nothing
            writer.add_blob(blob)
    return image, record


def assemble(spec: BuildSpec, binary: Path, prov: Provenance, writer: LayoutWriter) -> tuple[Image, dict[str, Any]]:
    """Every layer, the config and the manifest for an already built ``binary``, staged in ``writer``."""
    contents = [*base_layer_contents(spec), binary_layer_content(spec, binary, prov)]
    return finish_image(spec, prov, contents, write_layers(contents, writer, prov.epoch, spec.compression), writer)
