"""Compressed layers kept by their content, so a rebuild compresses only what changed.

A layer's tar stream is cheap to make and hash (its diff_id); compressing it is not. The cache (a builder.file_cache
under the private cache's layers/, $OCIBAKE_LAYER_CACHE_MIB, default 256; 0 turns it off) keeps the compressed
bytes under a key made of the diff_id, the compression setting and the library that compressed them, so an entry is
only ever used for the exact bytes that setting would produce again. Reading an entry checks its digest.

When the layout being written to already holds the compressed blob (checked by hashing it: a damaged blob is
rewritten), nothing is written at all: a no-op rebuild leaves every blob file, and its mtime, as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from ocibake.builder.file_cache import FileCache, file_sha256, make_key, mib_from_env
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

LAYER_CACHE_ENV = "OCIBAKE_LAYER_CACHE_MIB"
LAYER_CACHE_DEFAULT_MIB = 256


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
    key = make_key(
        kind="layer",
        diff_id=diff_id,
        compression=compression_setting(compression),
        library=compression_library(compression),
    )
    known = cache.digest(key)
    if known is not None:
        existing = writer.blob_file(f"sha256:{known}")
        if existing.is_file() and file_sha256(existing) == known:
            return _blob(existing, known, diff_id, usize, compression), False
    scratch = writer.scratch_file(f"layer-{kind}-")
    got = cache.get(key, scratch)
    if got is not None:
        return _blob(scratch, got, diff_id, usize, compression), True
    blob = write_layer(entries, scratch, mtime=mtime, compression=compression)
    if blob.diff_id == diff_id:
        cache.put(key, scratch)
    return blob, True


def _blob(path: Path, hexdigest: str, diff_id: str, usize: int, compression: str) -> LayerBlob:
    return LayerBlob(
        path=path,
        digest=f"sha256:{hexdigest}",
        size=path.stat().st_size,
        diff_id=diff_id,
        uncompressed_size=usize,
        media_type=MEDIA_TYPES[compression],
    )
