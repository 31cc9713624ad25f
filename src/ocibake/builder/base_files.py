"""What a base image's filesystem holds, read once from its layers (every layer's digest and diff_id verified).

The recipes ask it: the base's /etc/passwd and /etc/group (the app user is appended to them), whether it has a CA
bundle and zoneinfo (then ocibake's layers are skipped), curl or wget (for the health check), a shell. Whiteouts are
applied in layer order, so a file a later layer deletes is not there.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

from ocibake.builder.base_image import BaseImage, BaseLayer
from ocibake.errors import InputError

KEEP = ("etc/passwd", "etc/group")
MAX_KEEP = 1 << 20
CA_PATHS = ("etc/ssl/certs/ca-certificates.crt", "etc/pki/tls/certs/ca-bundle.crt", "etc/ssl/cert.pem")
ZONEINFO = "usr/share/zoneinfo/"
BIN_DIRS = ("usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin")


@dataclass(frozen=True)
class BaseFiles:
    paths: frozenset[str]  # every path in the final filesystem, without a leading /
    contents: dict = field(default_factory=dict)  # KEEP path -> bytes
    sizes: dict = field(default_factory=dict)  # layer digest -> uncompressed size

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


class _Hashing:
    """A read-only stream that hashes what is read through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
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
    for layer in image.layers:
        with open(layer.path, "rb") as raw_file:
            raw = _Hashing(raw_file)
            try:
                if layer.media_type.endswith("gzip"):
                    stream = gzip.GzipFile(fileobj=raw, mode="rb")
                elif layer.media_type.endswith("zstd"):
                    stream = zstandard.ZstdDecompressor().stream_reader(raw)
                else:
                    stream = raw
                tar_in = _Hashing(stream)
                added: set[str] = set()
                with tarfile.open(fileobj=tar_in, mode="r|") as tar:
                    for member in tar:
                        name = _norm(member.name)
                        head, _, base = name.rpartition("/")
                        if base == ".wh..wh..opq":
                            prefix = f"{head}/" if head else ""
                            paths.difference_update({p for p in paths if p.startswith(prefix) and p not in added})
                            continue
                        if base.startswith(".wh."):
                            gone = f"{head}/{base[4:]}" if head else base[4:]
                            paths.difference_update({p for p in paths if p == gone or p.startswith(gone + "/")})
                            contents.pop(gone, None)
                            continue
                        if not name:
                            continue
                        paths.add(name)
                        added.add(name)
                        if name in KEEP:
                            if member.isfile() and member.size <= MAX_KEEP:
                                contents[name] = tar.extractfile(member).read()
                            else:
                                contents.pop(name, None)
                tar_in.drain()
                raw.drain()
            except (OSError, EOFError, tarfile.TarError, zstandard.ZstdError) as exc:
                raise _damaged(image, layer, f"cannot be read: {exc}") from None
        if f"sha256:{raw.sha.hexdigest()}" != layer.digest or raw.size != layer.size:
            raise _damaged(image, layer, "its bytes do not match its digest")
        if f"sha256:{tar_in.sha.hexdigest()}" != layer.diff_id:
            raise _damaged(image, layer, "its content does not match the config's diff_id")
        sizes[layer.digest] = tar_in.size
    return BaseFiles(frozenset(paths), contents, sizes)
