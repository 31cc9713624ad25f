"""The files of a layer blob: each tar entry's path, type, size, mode, owner, mtime, link target and content digest,
read as a stream (gzip, zstd or plain tar), never unpacked to disk."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

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

    def as_json(self) -> dict:
        d = asdict(self)
        d["mode"] = f"{self.mode:04o}"
        return d


class _Hashing:
    """A file read through sha256: the layer's digest is checked as its files are listed."""

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

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> _Hashing:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rest(self) -> str:
        for chunk in iter(lambda: self.f.read(1 << 20), b""):
            self.h.update(chunk)
        return "sha256:" + self.h.hexdigest()


def _open_stream(f: _Hashing) -> BinaryIO:
    magic = f.read(4)
    f.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[arg-type,return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(f, closefd=False)  # type: ignore[return-value]
    return f  # type: ignore[return-value]


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "/" + name if name not in ("", ".") else "/"


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
                digest = ""
                if info.isreg():
                    h = hashlib.sha256()
                    src = tar.extractfile(info)
                    if src is not None:
                        for chunk in iter(lambda src=src: src.read(1 << 20), b""):
                            h.update(chunk)
                    digest = "sha256:" + h.hexdigest()
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
