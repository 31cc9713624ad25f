"""The files of a layer blob: each tar entry's path, type, size, mode, owner, mtime, link target and content digest,
read as a stream (gzip, zstd or plain tar), never unpacked to disk."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import zstandard

from ocibake.errors import InputError

TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, without a trailing slash
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: int
    link: str = ""
    digest: str = ""  # sha256 of the content, for regular files

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["mode"] = f"{self.mode:04o}"
        return d


class _Hashing:
    """A read-only file read through sha256: the layer's digest is checked as its files are listed."""

    def __init__(self, path: Path):
        self.f = open(path, "rb")  # noqa: SIM115 closed by close() / __exit__
        self.h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.h.update(data)
        return data

    def seek(self, pos: int) -> None:  # only to rewind after the magic check
        self.f.seek(pos)
        self.h = hashlib.sha256()

    def tell(self) -> int:
        return self.f.tell()

    def write(self, data: bytes) -> int:
        raise io.UnsupportedOperation("a layer blob is read, never written")

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rest(self) -> str:
        for chunk in iter(lambda: self.f.read(1 << 20), b""):
            self.h.update(chunk)
        return "sha256:" + self.h.hexdigest()


TarStream = _Hashing | gzip.GzipFile | zstandard.ZstdDecompressionReader


def _open_stream(f: _Hashing) -> TarStream:
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic == b"\x28\xb5\x2f\xfd":
        # zstandard's stub asks for IO[bytes]; the decompressor only ever calls read() on its source
        return zstandard.ZstdDecompressor().stream_reader(f, closefd=False)  # type: ignore[arg-type]  # zstandard's stub wants IO[bytes]; it only calls read()/write()
    return f


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "/" + name if name not in ("", ".") else "/"


def _content_digest(src: IO[bytes] | None) -> str:
    """The sha256 of a regular file's content, read in chunks."""
    h = hashlib.sha256()
    if src is not None:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def layer_files(path: Path, media_type: str = "") -> Iterator[FileEntry]:
    """Every entry of the layer at ``path``, in tar order; the blob's bytes must match its name (the digest)."""
    try:
        raw = _Hashing(path)
    except FileNotFoundError:
        raise InputError(
            f"layer blob {path.name[:12]} is missing", hint="the layout is incomplete; re-pull it"
        ) from None
    try:
        stream = _open_stream(raw)
        with raw, stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                digest = _content_digest(tar.extractfile(info)) if info.isreg() else ""
                name = _clean(info.name)
                yield FileEntry(
                    path=name,
                    type=TYPES.get(info.type, "other"),
                    size=info.size if info.isreg() else 0,
                    mode=info.mode & 0o7777,
                    uid=info.uid,
                    gid=info.gid,
                    mtime=int(info.mtime),
                    link=info.linkname,
                    digest=digest,
                )
            if raw.rest() != "sha256:" + path.name:
                raise InputError(
                    f"layer sha256:{path.name} does not match its digest",
                    hint="the blob is damaged; rebuild or re-pull the image",
                )
    except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError) as exc:
        raise InputError(
            f"layer sha256:{path.name[:12]} is not a readable tar stream ({exc})",
            hint="the blob is damaged or not a layer",
        ) from None


def read_file(path: Path, wanted: str) -> bytes | None:
    """The content of the regular file ``wanted`` (absolute path) in the layer at ``path``, or None."""
    with _Hashing(path) as raw, _open_stream(raw) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            if info.isreg() and _clean(info.name) == wanted:
                src = tar.extractfile(info)
                return src.read() if src is not None else b""
    return None
