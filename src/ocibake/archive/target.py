"""Where an archive goes: `docker-archive:FILE` or `oci-archive:FILE`, parsed and checked before any work is done."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ocibake.errors import InputError

KINDS = ("docker-archive", "oci-archive")


@dataclass(frozen=True)
class ArchiveTarget:
    kind: str  # "docker-archive" | "oci-archive"
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def is_archive(text: str) -> bool:
    return text.split(":", 1)[0] in KINDS and ":" in text


def parse_target(text: str, flag: str = "--output") -> ArchiveTarget:
    """``docker-archive:FILE`` or ``oci-archive:FILE``; the file's directory must exist or be creatable, and be
    writable; an existing directory is refused (an existing file is replaced, atomically)."""
    kind, sep, name = text.partition(":")
    if not sep or kind not in KINDS:
        raise InputError(f"{flag} {text!r} is not an archive", hint="use docker-archive:FILE or oci-archive:FILE")
    if not name:
        raise InputError(f"{flag} {text!r} names no file", hint=f"e.g. {kind}:image.tar")
    path = Path(name).absolute()
    if path.is_dir():
        raise InputError(f"{flag} {text}: {path} is a directory", hint=f"name a file, e.g. {kind}:{path}/image.tar")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{flag} {text}: {parent} is not a directory", hint=f"choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".ocibake-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise InputError(
            f"{flag} {text}: {parent} is not writable", hint=f"choose a writable place for {flag}"
        ) from None
    return ArchiveTarget(kind, path)
