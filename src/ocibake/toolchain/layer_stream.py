"""One streaming pass over a layer blob of a toolchain image: its compressed bytes hashed, decompressed, its tar
bytes hashed and counted against the unpack limits (oci/limits.py), so a gzip bomb is stopped at the limit."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import zstandard

from ocibake.errors import InputError
from ocibake.oci.limits import UnpackLimits

_DECOMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

BAD_LAYER_HINT = "the toolchain image is unsafe or damaged; use a trusted toolchain image pinned by digest"


@dataclass(frozen=True)
class LayerSource:
    """One layer blob on disk and what it must hash to."""

    path: Path
    media_type: str
    digest: str  # sha256 of the blob as stored (compressed)
    diff_id: str | None  # sha256 of the uncompressed tar (from the image config); None: not checked


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _HashingReader(io.RawIOBase):
    """Hashes everything read through it (a read-only file object that cannot seek)."""

    def __init__(self, raw: _Readable, after_read: Callable[[], None] | None = None):
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
        self._after_read = after_read

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self._after_read is not None:
            self._after_read()
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class LayerStream:
    """A layer blob opened for one streaming pass: compressed bytes hashed, decompressed, tar bytes hashed."""

    def __init__(self, layer: LayerSource, limits: UnpackLimits, before: int = 0):
        kind = _DECOMPRESSION.get(layer.media_type)
        if kind is None:
            raise InputError(
                f"layer {layer.digest} has an unsupported media type {layer.media_type!r}",
                hint="toolchain image layers must be tar, tar+gzip or tar+zstd",
            )
        self.layer = layer
        try:  # a regular file, never read through a symlink (a layout from elsewhere must not read host files)
            self._file = os.fdopen(os.open(layer.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
        except FileNotFoundError:
            raise InputError(
                f"layer blob {layer.digest} is missing", hint="the image layout is incomplete; re-copy it"
            ) from None
        except OSError as exc:
            raise InputError(
                f"layer blob {layer.digest} cannot be read: {'it is a symlink' if exc.errno == 40 else exc.strerror}",
                hint="a layout's blobs must be regular files inside it; re-copy the image",
            ) from None
        if not stat.S_ISREG(os.fstat(self._file.fileno()).st_mode):
            self._file.close()
            raise InputError(f"layer blob {layer.digest} is not a regular file", hint="re-copy the image")
        self.compressed = _HashingReader(self._file)
        self._decomp: _Readable
        if kind == "gzip":
            self._decomp = gzip.GzipFile(fileobj=self.compressed, mode="rb")
        elif kind == "zstd":
            # zstandard's stub asks for IO[bytes]; any object with read() will do
            self._decomp = zstandard.ZstdDecompressor().stream_reader(
                self.compressed,  # type: ignore[arg-type]  # zstandard's stub wants IO[bytes]; it only calls read()/write()
                read_across_frames=True,
            )
        else:
            self._decomp = self.compressed
        self.tar_bytes = _HashingReader(self._decomp, self._check_limits)
        self._limits = limits
        self._before = before

    def _check_limits(self) -> None:
        """The layer, as it streams, within the unpack limits (limits.py): a gzip bomb stops at the limit."""
        self._limits.check(
            f"toolchain layer {self.layer.digest[:19]}", self.compressed.size, self.tar_bytes.size, self._before
        )

    def members(self) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
        try:
            with tarfile.open(fileobj=self.tar_bytes, mode="r|") as tar:
                for member in tar:
                    yield member, tar
        except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError) as exc:
            raise InputError(f"layer {self.layer.digest} is not a readable tar ({exc})", hint=BAD_LAYER_HINT) from exc

    def verify(self) -> None:
        """Read to the end and compare both digests (call after members() is exhausted)."""
        try:
            self.tar_bytes.drain()
            self.compressed.drain()
        except (OSError, EOFError, zstandard.ZstdError) as exc:
            raise InputError(f"layer {self.layer.digest} is not readable ({exc})", hint=BAD_LAYER_HINT) from exc
        got = "sha256:" + self.compressed.sha.hexdigest()
        if got != self.layer.digest:
            raise InputError(
                f"layer blob {self.layer.digest} does not match its digest (got {got})", hint=BAD_LAYER_HINT
            )
        got = "sha256:" + self.tar_bytes.sha.hexdigest()
        if self.layer.diff_id and got != self.layer.diff_id:
            raise InputError(
                f"layer {self.layer.digest} does not match its diff_id {self.layer.diff_id} (got {got})",
                hint=BAD_LAYER_HINT,
            )

    def close(self) -> None:
        self._file.close()
