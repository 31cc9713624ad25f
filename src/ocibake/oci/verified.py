"""The one verified way to read an image from a layout: every blob an answer relies on (index, manifest, config,
layers) is checked against its descriptor's digest and size as it is read, and every layer, decompressed, against the
config's `diff_ids`. A mismatch is a DamagedImageError naming the blob, what it should hash to and what it does.

Commands that report on an image (inspect, diff, audit, sign, verify, export, sbom) read through here; a registry
image is pulled (every download checked as it streams) into a private layout and read through here too, so layouts
and registries get the same checks. Modelled on go-containerregistry's `validate` and its verifying readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import zstandard

from ocibake.errors import InputError
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.oci.layout_check import entry_problem, open_blob
from ocibake.oci.limits import CONFIG_MAX_BYTES, MANIFEST_MAX_BYTES, too_large
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES

CHUNK = 1 << 20
DAMAGED_HINT = (
    "the image is damaged or was tampered with: do not trust it; pull it again from where it was published, or "
    "rebuild it"
)
CHECKED = "every blob against its digest and size, every layer against its diff_id"


class DamagedImageError(InputError):
    """A blob of an image does not match what its descriptor (or the config's diff_ids) says: exit 4."""

    def __init__(self, message: str, hint: str = DAMAGED_HINT):
        super().__init__(message, hint=hint)


def _mismatch(what: str, desc: Descriptor, got: str, size: int) -> DamagedImageError:
    return DamagedImageError(
        f"{what} is damaged: it should hash to {desc.digest} ({desc.size} bytes), "
        f"its bytes hash to {got} ({size} bytes)"
    )


def read_document(layout: Layout, desc: Descriptor, what: str, limit: int = MANIFEST_MAX_BYTES) -> bytes:
    """The bytes of a manifest, index or config, checked against ``desc`` (digest and size) before they are used."""
    if desc.size > limit:
        raise DamagedImageError(too_large(f"{what} {desc.digest}", desc.size, limit))
    try:
        with open_blob(layout.root, layout.blob_path(desc.digest)) as f:
            raw = _Hashing(f)
            data = raw.read(desc.size + 1)
            got = raw.drain()
    except FileNotFoundError:
        raise DamagedImageError(
            f"{what} {desc.digest} is missing from {layout.root}",
            hint="the layout is incomplete; pull the image again, or rebuild it",
        ) from None
    if raw.n != desc.size or got != desc.digest:
        raise _mismatch(what, desc, got, raw.n)
    return data


class _Hashing:
    """A layer blob read in chunks through sha256, counting bytes (the compressed digest and size)."""

    def __init__(self, f: Any):
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.f.read(n)
        self.h.update(data)
        self.n += len(data)
        return data

    def drain(self) -> str:
        while self.read(CHUNK):
            pass
        return "sha256:" + self.h.hexdigest()


def _gunzip(raw: _Hashing, out: Callable[[bytes], None]) -> None:
    """Every gzip member in turn (a parallel gzip writes several), as `gzip -d` reads them."""
    d, started = zlib.decompressobj(zlib.MAX_WBITS | 16), False
    while chunk := raw.read(CHUNK):
        while chunk:
            started = True
            out(d.decompress(chunk))
            if not d.eof:
                break
            chunk = d.unused_data
            d, started = zlib.decompressobj(zlib.MAX_WBITS | 16), False
    if started:
        out(d.flush())
        if not d.eof:
            raise zlib.error("the gzip stream ends early")


def _unzstd(raw: _Hashing, out: Callable[[bytes], None]) -> None:
    reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)  # type: ignore[arg-type]  # the reader only calls read()
    while chunk := reader.read(CHUNK):
        out(chunk)


def _plain(raw: _Hashing, out: Callable[[bytes], None]) -> None:
    while chunk := raw.read(CHUNK):
        out(chunk)


def _decompressor(media_type: str, magic: bytes) -> Callable[[_Hashing, Callable[[bytes], None]], None]:
    if media_type.endswith(("gzip", "+gzip")) or magic[:2] == b"\x1f\x8b":
        return _gunzip
    if media_type.endswith("zstd") or magic == b"\x28\xb5\x2f\xfd":
        return _unzstd
    return _plain


_CHECKED: set[tuple[object, ...]] = set()
"""Layer files already checked in this process, by file identity: `diff A B` of images that share layers (or an
image read twice) decompresses each shared layer once."""


def check_layer(layout: Layout, desc: Descriptor, diff_id: str | None, what: str) -> None:
    """The layer blob's digest and size, and (``diff_id`` given) the digest of its decompressed bytes, in one pass."""
    path = layout.blob_path(desc.digest)
    try:
        with open_blob(layout.root, path) as f:
            st = os.fstat(f.fileno())
            key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, desc.digest, desc.size, diff_id)
            if key in _CHECKED:
                return
            magic = f.read(4)
            f.seek(0)
            raw = _Hashing(f)
            unpacked = hashlib.sha256()
            problem = ""
            if diff_id is not None:
                try:
                    _decompressor(desc.media_type, magic)(raw, unpacked.update)
                except (zlib.error, zstandard.ZstdError, OSError, EOFError) as exc:
                    problem = str(exc) or type(exc).__name__
            got = raw.drain()
    except FileNotFoundError:
        raise DamagedImageError(
            f"{what} {desc.digest} is missing from {layout.root}",
            hint="the layout is incomplete; pull the image again, or rebuild it",
        ) from None
    if got != desc.digest or raw.n != desc.size:
        raise _mismatch(what, desc, got, raw.n)
    if diff_id is None:
        _CHECKED.add(key)
        return
    if problem:
        raise DamagedImageError(f"{what} {desc.digest} cannot be decompressed ({problem})")
    if "sha256:" + unpacked.hexdigest() != diff_id:
        raise DamagedImageError(
            f"{what} {desc.digest} decompresses to sha256:{unpacked.hexdigest()}, but the config's diff_ids say "
            f"it should be {diff_id}"
        )
    _CHECKED.add(key)


@dataclass(frozen=True)
class VerifiedImage:
    """An image manifest and its config, with every blob checked (``checked`` says what was)."""

    descriptor: Descriptor  # of the manifest
    manifest: dict[str, Any]
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]
    blobs: int  # how many blobs were checked (manifest, config, layers; the index too when there was one)
    checked: str = CHECKED


def _document(data: bytes, what: str, desc: Descriptor) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise DamagedImageError(f"{what} {desc.digest} is not JSON") from None
    if not isinstance(doc, dict):
        raise DamagedImageError(f"{what} {desc.digest} is not a JSON object")
    return doc


def _descriptors(doc: dict[str, Any], key: str, what: str) -> list[Descriptor]:
    entries = doc.get(key) or []
    if not isinstance(entries, list):
        raise DamagedImageError(f"{what}: its {key} are not a list")
    for entry in entries:
        problem = entry_problem(entry)
        if problem:
            raise DamagedImageError(f"{what}: an entry of its {key} {problem}")
    return [Descriptor.from_json(e) for e in entries]


def verified_image(layout: Layout, desc: Descriptor, where: str, layers: bool = True) -> VerifiedImage:
    """The image manifest ``desc`` of ``layout``: manifest, config and (``layers``) every layer and diff_id checked.
    ``where`` names the image in errors (the reference the user gave)."""
    manifest = _document(read_document(layout, desc, f"{where}: manifest"), f"{where}: manifest", desc)
    config_desc = _descriptors({"config": [manifest.get("config")]}, "config", f"{where}: manifest")[0]
    config = _document(
        read_document(layout, config_desc, f"{where}: config", CONFIG_MAX_BYTES), f"{where}: config", config_desc
    )
    layer_descs = _descriptors(manifest, "layers", f"{where}: manifest {desc.digest}")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_descs):
        count = len(diff_ids) if isinstance(diff_ids, list) else 0
        raise DamagedImageError(
            f"{where}: config {config_desc.digest} lists {count} diff_ids for the manifest's {len(layer_descs)} layers"
        )
    if layers:
        for i, (layer, diff_id) in enumerate(zip(layer_descs, diff_ids, strict=True)):
            check_layer(layout, layer, str(diff_id), f"{where}: layer {i + 1} of {len(layer_descs)}")
    return VerifiedImage(desc, manifest, config, tuple(layer_descs), 2 + (len(layer_descs) if layers else 0))


def read_index(layout: Layout, desc: Descriptor, where: str) -> list[Descriptor]:
    """The manifests an image index names, the index checked against ``desc``."""
    doc = _document(read_document(layout, desc, f"{where}: index"), f"{where}: index", desc)
    return _descriptors(doc, "manifests", f"{where}: index {desc.digest}")


def verify_tree(layout: Layout, desc: Descriptor, where: str) -> int:
    """Check everything under ``desc`` (an index: every image in it) -> how many blobs were checked."""
    if desc.media_type in INDEX_TYPES:
        return 1 + sum(
            verify_tree(layout, child, where)
            for child in read_index(layout, desc, where)
            if child.media_type in MANIFEST_TYPES + INDEX_TYPES
        )
    return verified_image(layout, desc, where).blobs
