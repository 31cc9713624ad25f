"""Writing an archive file: deterministic tar entries (layers/tar.py) into a temporary file beside the destination,
renamed into place only when complete, so a failed or interrupted export never leaves a half-written archive."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

import zstandard

from ocibake.errors import InputError, disk_error
from ocibake.layers.tar import Entry, write_tar
from ocibake.oci.layout import Layout
from ocibake.oci.layout_check import open_blob
from ocibake.workdirs import owned_stage

ARCHIVE_MTIME = 0  # every entry's mtime: an archive of the same image is the same bytes on any day
CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveResult:
    kind: str
    path: Path
    size: int
    digest: str  # sha256 of the archive file
    images: tuple[tuple[str, tuple[str, ...]], ...]  # (manifest digest, tags)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def summary(self) -> str:
        from ocibake.units import human_size

        tags = ", ".join(t for _, ts in self.images for t in ts)
        first = next((ts[0] for _, ts in self.images if ts), "TAG")
        load = {
            "docker-archive": f"`docker load -i {self.path}` or `podman load -i {self.path}`",
            "oci-archive": f"`skopeo copy oci-archive:{self.path}:{first} oci:DIR:{first}` (for docker or "
            f"podman, write a docker-archive)",
        }[self.kind]
        return f"wrote {self.kind}:{self.path} ({human_size(self.size)}; {tags}): load it with {load}"


class Staging:
    """A private directory and a temporary archive path beside ``dest``; both removed unless committed."""

    def __init__(self, dest: Path):
        self.dest = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        # one directory beside the destination, with an owner record: the next export or build into the same place
        # removes what a killed one left (the archive being written is inside it, renamed out when complete)
        self.work = owned_stage(dest.parent, f".{dest.name}.ocibake-")
        self.tmp = self.work / "archive.tar.partial"

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.work, ignore_errors=True)

    def write(self, entries: Iterable[Entry]) -> tuple[int, str]:
        """Write the tar, then rename it over the destination; returns (size, sha256 digest)."""
        sha = hashlib.sha256()
        size = 0
        with open(self.tmp, "wb") as f:

            class Sink:  # hashes the archive as it is written: no second read
                def write(self, b: bytes, /) -> int:
                    nonlocal size
                    sha.update(b)
                    size += len(b)
                    return f.write(b)

            write_tar(entries, Sink(), ARCHIVE_MTIME)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o644 & ~umask)  # as any new file: the user's umask decides who may read it
        os.replace(self.tmp, self.dest)
        return size, "sha256:" + sha.hexdigest()


def verified_blob(layout: Layout, digest: str) -> Path:
    """The path of a blob in ``layout`` whose bytes match its digest: a regular file inside the layout, never read
    through a symlink (a layout from elsewhere must not put a host file into an archive)."""
    path = layout.blob_path(digest)
    try:
        with open_blob(Path(layout.root), path) as f:
            h = hashlib.sha256()
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise InputError(
            f"blob {digest} is missing from {layout.root}", hint="the layout is incomplete; rebuild or re-pull it"
        ) from None
    if "sha256:" + h.hexdigest() != digest:
        raise InputError(
            f"blob {digest} in {layout.root} does not match its digest",
            hint="the layout is damaged; rebuild or re-pull it",
        )
    return path


class _LayerReader(Protocol):
    """A layer's uncompressed bytes, read in chunks inside a `with` block."""

    def read(self, size: int = -1, /) -> bytes: ...

    def __enter__(self) -> _LayerReader: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /
    ) -> object: ...


def _opener(media_type: str) -> Callable[[IO[bytes]], _LayerReader]:
    if media_type.endswith(("+gzip", ".gzip")):
        return lambda f: gzip.GzipFile(fileobj=f, mode="rb")
    if media_type.endswith("+zstd"):
        return lambda f: zstandard.ZstdDecompressor().stream_reader(f)
    if media_type.endswith((".tar", "layer.v1.tar")):
        return lambda f: f
    raise InputError(
        f"layer media type {media_type} cannot go into a docker-archive",
        hint="layers must be tar, tar+gzip or tar+zstd",
    )


def uncompressed_layer(layout: Layout, digest: str, media_type: str, diff_id: str, dest: Path) -> Path:
    """Decompress a layer of ``layout`` to ``dest``, checking both its digest and its diff_id."""
    source = verified_blob(layout, digest)
    h = hashlib.sha256()
    try:
        with open_blob(Path(layout.root), source) as raw, _opener(media_type)(raw) as stream, open(dest, "wb") as out:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
    except OSError as exc:
        disk = disk_error(exc)  # ENOSPC, EROFS, EACCES...: the disk refused, the layout is not to blame
        if disk is not None:
            raise disk from None
        raise InputError(
            f"layer {digest} in {layout.root} cannot be decompressed: {exc}",
            hint="the layout is damaged; rebuild or re-pull it",
        ) from None
    except (EOFError, zstandard.ZstdError) as exc:
        raise InputError(
            f"layer {digest} in {layout.root} cannot be decompressed: {exc}",
            hint="the layout is damaged; rebuild or re-pull it",
        ) from None
    if "sha256:" + h.hexdigest() != diff_id:
        raise InputError(
            f"layer {digest} in {layout.root} does not uncompress to its diff_id {diff_id}",
            hint="the image's config and layers disagree; rebuild it",
        )
    return dest
