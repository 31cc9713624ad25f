"""`ocibake index --output DIR`: join single-platform images from OCI layouts into one index in a layout, with every
child's blobs copied in. The index is the one a multi-platform build of the same children writes (oci/index.py)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.image import Blob, Descriptor
from ocibake.oci.index import platform_index
from ocibake.oci.layout import Layout, LayoutWriter, check_output_path
from ocibake.oci.media_types import MANIFEST_TYPES
from ocibake.oci.platform import Platform


def parse_layout_ref(text: str) -> tuple[Path, str | None]:
    """oci:DIR[:TAG] -> (DIR, TAG)."""
    if not text.startswith("oci:") or len(text) == 4:
        raise InputError(f"{text!r} is not an OCI layout reference", hint="name each image as oci:DIR:TAG")
    rest = text[4:]
    head, sep, tail = rest.rpartition(":")
    if sep and head and "/" not in tail:
        return Path(head), tail
    return Path(rest), None


def layout_child(text: str) -> tuple[Layout, Descriptor]:
    """The image oci:DIR[:TAG] names, as an index entry: its manifest's descriptor with the config's platform."""
    root, tag = parse_layout_ref(text)
    layout = Layout.open(root)
    desc = layout.resolve(tag)
    if desc.media_type not in MANIFEST_TYPES:
        raise InputError(
            f"{text} is a {desc.media_type}, not a single image",
            hint="an index joins single-platform images; give each platform's image",
        )
    manifest = json_doc.loads(layout.read_blob(desc.digest))
    config = json_doc.loads(layout.read_blob(manifest["config"]["digest"]))
    for d in manifest.get("layers") or []:
        if not layout.blob_path(d["digest"]).is_file():
            raise InputError(
                f"{text}: layer {d['digest'][:19]} is missing", hint="the layout is incomplete; rebuild it"
            )
    platform = Platform(
        str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant") or "")
    )
    if not platform.os or not platform.architecture:
        raise InputError(f"{text}: its config names no platform", hint="an index joins images of known platforms")
    return layout, Descriptor(desc.media_type, desc.digest, desc.size, platform=platform)


def write_index_layout(output: Path, tags: Sequence[str], children: Sequence[str]) -> Blob:
    check_output_path(output)
    resolved = [layout_child(c) for c in children]
    index = platform_index([d for _, d in resolved])
    with LayoutWriter(output) as writer:
        for layout, desc in resolved:
            for digest in sorted(layout.reachable([desc])):
                target = writer.scratch_file("blob-")
                shutil.copyfile(layout.blob_path(digest), target)
                writer.add_blob_file(target, digest)
        desc = writer.add_blob(index)
        writer.commit([(tag, desc) for tag in tags])
    return index
