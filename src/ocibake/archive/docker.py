"""docker-archive: what `docker load` and `podman load` read. manifest.json lists each image with its config file,
its layer files in order and RepoTags (NAME:TAG for every tag); layers are stored uncompressed, as `docker save`
and `podman save` write them, named by their diff_id so that a layer shared by two images is stored once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ocibake.archive.select import Chosen
from ocibake.archive.write import ArchiveResult, Staging, uncompressed_layer
from ocibake.errors import InputError
from ocibake.layers.tar import Entry
from ocibake.oci import json_doc
from ocibake.oci.image import canonical_json
from ocibake.oci.layout import Layout


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def write_docker_archive(
    layout: Layout, chosen: Sequence[Chosen], names: Mapping[str, str], dest: Path
) -> ArchiveResult:
    """``names``: the repository of each manifest digest's RepoTags."""
    by_manifest: dict[str, list[Chosen]] = {}
    for c in chosen:
        by_manifest.setdefault(c.manifest.digest, []).append(c)
    with Staging(dest) as staging:
        entries: dict[str, Entry] = {}
        images = []
        for digest, group in by_manifest.items():
            manifest = _json(layout, digest)
            try:
                config_digest = manifest["config"]["digest"]
                layers = manifest["layers"]
            except (KeyError, TypeError):
                raise InputError(
                    f"manifest {digest} in {layout.root} is not an image manifest",
                    hint="the layout is damaged; rebuild or re-pull it",
                ) from None
            config_bytes = layout.read_blob(config_digest)
            try:
                diff_ids = json_doc.loads(config_bytes)["rootfs"]["diff_ids"]
            except (ValueError, KeyError, TypeError):
                raise InputError(
                    f"config {config_digest} in {layout.root} has no rootfs.diff_ids",
                    hint="the layout is damaged; rebuild or re-pull it",
                ) from None
            if len(diff_ids) != len(layers):
                raise InputError(
                    f"image {digest} in {layout.root} has {len(layers)} layers but {len(diff_ids)} diff_ids",
                    hint="the layout is damaged; rebuild it",
                )
            config_name = f"{_hex(config_digest)}.json"
            entries[config_name] = Entry.file(f"/{config_name}", config_bytes)
            layer_names = []
            for layer, diff_id in zip(layers, diff_ids, strict=True):
                layer_name = f"{_hex(diff_id)}.tar"
                if layer_name not in entries:
                    path = uncompressed_layer(
                        layout, layer["digest"], layer["mediaType"], diff_id, staging.work / layer_name
                    )
                    entries[layer_name] = Entry.from_path(f"/{layer_name}", path)
                layer_names.append(layer_name)
            tags = tuple(c.tag for c in group)
            images.append(
                {"Config": config_name, "RepoTags": [f"{names[digest]}:{t}" for t in tags], "Layers": layer_names}
            )
        entries["manifest.json"] = Entry.file("/manifest.json", canonical_json(images))
        size, file_digest = staging.write(entries.values())
    return ArchiveResult(
        "docker-archive",
        dest,
        size,
        file_digest,
        tuple((d, tuple(c.tag for c in g)) for d, g in by_manifest.items()),
        tuple(c.note for c in chosen if c.note),
    )


def _json(layout: Layout, digest: str) -> dict[str, Any]:
    """A JSON object from the layout (an image config or manifest): its fields are read as the OCI spec says."""
    try:
        value = json_doc.loads(layout.read_blob(digest))
    except ValueError:
        raise InputError(
            f"blob {digest} in {layout.root} is not JSON", hint="the layout is damaged; rebuild it"
        ) from None
    if not isinstance(value, dict):
        raise InputError(
            f"blob {digest} in {layout.root} is not a JSON object", hint="the layout is damaged; rebuild it"
        )
    return value
