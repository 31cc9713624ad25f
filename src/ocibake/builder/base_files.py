"""What a base image's filesystem holds, read once from its layers (every layer's digest and diff_id verified).

The recipes ask it: the base's /etc/passwd and /etc/group (the app user is appended to them), whether it has a CA
bundle and zoneinfo (then ocibake's layers are skipped), curl or wget (for the health check), a shell. Whiteouts are
applied in layer order, so a file a later layer deletes is not there.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import zstandard

from ocibake.builder.base_image import BaseImage, BaseLayer
from ocibake.errors import InputError
from ocibake.oci.limits import UnpackLimits

KEEP = ("etc/passwd", "etc/group")
MAX_KEEP = 1 << 20
CA_PATHS = ("etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/cert.pem")
ZONEINFO = "usr/share/zoneinfo/"
BIN_DIRS = ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin")


@dataclass(frozen=True)
class BaseFiles:
    paths: frozenset[str]  # every path in the final filesystem, without a leading /
    contents: dict[str, bytes] = field(default_factory=dict)  # KEEP path -> bytes
    sizes: dict[str, int] = field(default_factory=dict)  # layer digest -> uncompressed size

    def has(self, path: str) -> bool:
        return path.strip("/") in self.paths

    def text(self, path: str) -> str | None:
        data = self.contents.get(path.strip("/"))
        return None if data is None else data.decode("utf-8", errors="replace")

    def program(self, name: str) -> str | None:
        """The absolute path of ``name`` in the usual bin directories, or None."""
        for d in BIN_DIRS:
            if f"{d}/{name}" in self.paths:
                return f"/{d}/{name}"
        return None

    @property
    def ca_bundle(self) -> str | None:
        return next((f"/{p}" for p in CA_PATHS if p in self.paths), None)

    @property
    def zoneinfo(self) -> bool:
        return f"{ZONEINFO}UTC" in self.paths or any(p.startswith(ZONEINFO + "Etc/") for p in self.paths)


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Hashing(io.RawIOBase):
    """A read-only stream that hashes what is read through it."""

    def __init__(self, raw: _Readable):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
        self.after_read: Callable[[], None] | None = None

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        if self.after_read is not None:
            self.after_read()
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _damaged(image: BaseImage, layer: BaseLayer, why: str) -> InputError:
    return InputError(
        f"base {image.name}: layer {layer.digest[:19]} is damaged ({why})",
        hint="copy or pull the base again (a cached registry base: `ocibake cache clean`)",
    )


def _norm(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def read_base_files(image: BaseImage) -> BaseFiles:
    paths: set[str] = set()
    contents: dict[str, bytes] = {}
    sizes: dict[str, int] = {}
    limits = UnpackLimits.from_env(os.environ)
    for layer in image.layers:
        sizes[layer.digest] = _read_layer(image, layer, paths, contents, (limits, sum(sizes.values())))
    return BaseFiles(frozenset(paths), contents, sizes)


def _read_layer(
    image: BaseImage,
    layer: BaseLayer,
    paths: set[str],
    contents: dict[str, bytes],
    budget: tuple[UnpackLimits, int],
) -> int:
    """Apply ``layer`` to ``paths`` and ``contents``, checking its digest and diff_id, and that it stays within the
    unpack limits (``budget``: the limits, and what the layers below unpacked to); returns its uncompressed size."""
    limits, before = budget
    with open(layer.path, "rb") as raw_file:
        raw = _Hashing(raw_file)
        try:
            tar_in = _Hashing(_decompressed(layer, raw))
            what = f"base {image.name} layer {layer.digest[:19]}"
            tar_in.after_read = lambda: limits.check(what, raw.size, tar_in.size, before)
            added: set[str] = set()
            with tarfile.open(fileobj=tar_in, mode="r|") as tar:
                for member in tar:
                    _apply_member(tar, member, paths, contents, added)
            tar_in.drain()
            raw.drain()
        except (OSError, EOFError, tarfile.TarError, zstandard.ZstdError) as exc:
            raise _damaged(image, layer, f"cannot be read: {exc}") from None
    if f"sha256:{raw.sha.hexdigest()}" != layer.digest or raw.size != layer.size:
        raise _damaged(image, layer, "its bytes do not match its digest")
    if f"sha256:{tar_in.sha.hexdigest()}" != layer.diff_id:
        raise _damaged(image, layer, "its content does not match the config's diff_id")
    return tar_in.size


def _decompressed(layer: BaseLayer, raw: _Hashing) -> _Readable:
    if layer.media_type.endswith("gzip"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if layer.media_type.endswith("zstd"):
        # zstandard's stub asks for IO[bytes]; any object with read() will do
        return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[arg-type]  # zstandard's stub wants IO[bytes]; it only calls read()/write()
    return raw


def _apply_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, paths: set[str], contents: dict[str, bytes], added: set[str]
) -> None:
    """One entry of a layer: a whiteout hides what lower layers put there (``added``: this layer's own paths),
    anything else is a path, and the files of KEEP are read."""
    name = _norm(member.name)
    head, _, base = name.rpartition("/")
    if base == ".wh..wh..opq":
        prefix = f"{head}/" if head else ""
        paths.difference_update({p for p in paths if p.startswith(prefix) and p not in added})
    elif base.startswith(".wh."):
        gone = f"{head}/{base[4:]}" if head else base[4:]
        paths.difference_update({p for p in paths if p == gone or p.startswith(gone + "/")})
        contents.pop(gone, None)
    elif name:
        paths.add(name)
        added.add(name)
        if name in KEEP:
            kept = tar.extractfile(member) if member.isfile() and member.size <= MAX_KEEP else None
            if kept is not None:
                contents[name] = kept.read()
            else:
                contents.pop(name, None)
