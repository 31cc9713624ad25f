"""Compressed layers kept by their content, so a rebuild compresses only what changed.

A layer's tar stream is cheap to make and hash (its diff_id); compressing it is not. The cache (a builder.file_cache
under the private cache's layers/, $OCIBAKE_LAYER_CACHE_MIB, default 256; 0 turns it off) keeps the compressed
bytes under a key made of the diff_id, the compression setting and the library that compressed them, so an entry is
only ever used for the exact bytes that setting would produce again. Reading an entry checks its digest.

When the layout being written to already holds the compressed blob (checked by hashing it: a damaged blob is
rewritten), nothing is written at all: a no-op rebuild leaves every blob file, and its mtime, as it was.

A layer made from a pinned package (LayerContent.pin) is also known by its pin: the cache part ``pinned/`` keeps,
per pin, time and compression, the layer's diff_id and compressed digest, so a rebuild that finds that blob in the
layout (or in the layer cache) does not read the package's files at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ocibake.builder.file_cache import FileCache, file_sha256, make_key, mib_from_env
from ocibake.layers.content import LayerContent
from ocibake.layers.tar import (
    MEDIA_TYPES,
    Entry,
    LayerBlob,
    compression_library,
    compression_setting,
    write_layer,
    write_tar,
)
from ocibake.oci.layout import LayoutWriter
from ocibake.toolchain.json_memo import JsonMemo

LAYER_CACHE_ENV = "OCIBAKE_LAYER_CACHE_MIB"
LAYER_CACHE_DEFAULT_MIB = 256
PINNED = JsonMemo("pinned", 200)  # facts about layers from pinned packages (and their file trees), by pin


def layer_cache() -> FileCache:
    from ocibake.toolchain.cache import cache_home, private_cache

    bound = mib_from_env(LAYER_CACHE_ENV, LAYER_CACHE_DEFAULT_MIB)
    return FileCache(private_cache(cache_home()) / "layers" if bound else cache_home() / "layers", bound)


class _Hasher:
    """A write-only sink that hashes and counts (the tar stream, not kept)."""

    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return len(b)

    def flush(self) -> None:
        pass


def tar_digest(entries: Iterable[Entry], mtime: int) -> tuple[str, int]:
    """(diff_id, size) of the layer's uncompressed tar, without writing it anywhere."""
    sink = _Hasher()
    write_tar(entries, sink, mtime)
    return "sha256:" + sink.sha.hexdigest(), sink.size


def layer_blob(
    entries: tuple[Entry, ...], kind: str, writer: LayoutWriter, *, mtime: int, compression: str, cache: FileCache
) -> tuple[LayerBlob, bool]:
    """The compressed layer for ``entries``: already in the layout, from the cache, or written now (and cached).
    Returns it and whether it was staged in ``writer`` (False: the layout's own blob file is used as it is)."""
    if not cache.enabled:
        blob = write_layer(entries, writer.scratch_file(f"layer-{kind}-"), mtime=mtime, compression=compression)
        return blob, True
    diff_id, usize = tar_digest(entries, mtime)
    found = _cached_blob(diff_id, usize, kind, writer, compression, cache)
    if found is not None:
        return found
    scratch = writer.scratch_file(f"layer-{kind}-")
    blob = write_layer(entries, scratch, mtime=mtime, compression=compression)
    if blob.diff_id == diff_id:
        cache.put(_cache_key(diff_id, compression), scratch)
    return blob, True


def pinned_layer_blob(
    content: LayerContent, writer: LayoutWriter, *, mtime: int, compression: str, cache: FileCache
) -> tuple[LayerBlob, bool]:
    """layer_blob for a layer from a pinned package: known by its pin, it is taken from the layout or the cache
    without reading its files; else made from them (read now) and its facts kept under the pin."""
    assert content.pin is not None
    key = make_key(
        kind="pinned-layer",
        pin=content.pin,
        mtime=str(mtime),
        compression=compression_setting(compression),
        library=compression_library(compression),
    )
    kept = PINNED.get(key) if cache.enabled else None
    diff_id, usize = (kept or {}).get("diff_id"), (kept or {}).get("size")
    if isinstance(diff_id, str) and isinstance(usize, int) and not isinstance(usize, bool):
        found = _cached_blob(diff_id, usize, content.kind, writer, compression, cache)
        if found is not None:
            return found
    blob, staged = layer_blob(content.files(), content.kind, writer, mtime=mtime, compression=compression, cache=cache)
    if cache.enabled:
        PINNED.put(key, {"diff_id": blob.diff_id, "size": blob.uncompressed_size})
    return blob, staged


def _cache_key(diff_id: str, compression: str) -> str:
    return make_key(
        kind="layer",
        diff_id=diff_id,
        compression=compression_setting(compression),
        library=compression_library(compression),
    )


def _cached_blob(
    diff_id: str, usize: int, kind: str, writer: LayoutWriter, compression: str, cache: FileCache
) -> tuple[LayerBlob, bool] | None:
    """The compressed layer of ``diff_id``: the layout's own blob (its digest checked; not staged), or the cache's
    entry (checked as it is copied out; staged); None when neither has it."""
    key = _cache_key(diff_id, compression)
    known = cache.digest(key)
    if known is not None:
        existing = writer.blob_file(f"sha256:{known}")
        if existing.is_file() and file_sha256(existing) == known:
            return _blob(existing, known, diff_id, usize, compression), False
    scratch = writer.scratch_file(f"layer-{kind}-")
    got = cache.get(key, scratch)
    if got is not None:
        return _blob(scratch, got, diff_id, usize, compression), True
    return None


def _blob(path: Path, hexdigest: str, diff_id: str, usize: int, compression: str) -> LayerBlob:
    return LayerBlob(
        path=path,
        digest=f"sha256:{hexdigest}",
        size=path.stat().st_size,
        diff_id=diff_id,
        uncompressed_size=usize,
        media_type=MEDIA_TYPES[compression],
    )
