"""What makes a layout's index.json and blobs safe to read: the shape of every index entry, and blobs that are
regular files inside the layout, never read through a symlink (a layout from an untrusted source must not make
ocibake read, push or hash a host file).

Every problem is an InputError (exit 4) that names the file and the entry, with a hint that works: move the layout
aside, or `ocibake layout repair DIR`, which keeps every intact image and drops the rest.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from ocibake.errors import InputError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def repair_hint(root: Path) -> str:
    return (
        f"run `ocibake layout repair {root}` (keeps every intact image, drops the rest), or move {root} aside "
        "and write to another directory"
    )


def entry_problem(entry: object) -> str | None:
    """Why an index.json entry (or any descriptor) is not a usable descriptor, or None."""
    if not isinstance(entry, dict):
        return f"is {type(entry).__name__}, not an object"
    if not isinstance(entry.get("mediaType"), str):
        return "has no mediaType" if "mediaType" not in entry else "has a mediaType that is not a string"
    if "digest" not in entry:
        return "has no digest"
    if not isinstance(entry["digest"], str) or not DIGEST.match(entry["digest"]):
        return f"has an invalid digest {str(entry['digest'])[:80]!r}"
    size = entry.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        return "has no size" if size is None else f"has a size that is not a number ({type(size).__name__})"
    if size < 0:
        return "has a negative size"
    ann = entry.get("annotations")
    if ann is not None and (
        not isinstance(ann, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ann.items())
    ):
        return "has annotations that are not an object of strings"
    plat = entry.get("platform")
    if plat is not None and (
        not isinstance(plat, dict)
        or not isinstance(plat.get("os"), str)
        or not isinstance(plat.get("architecture"), str)
        or not isinstance(plat.get("variant", ""), str)
    ):
        return "has a platform that is not an object with os and architecture"
    return None


def check_index(root: Path, index: object) -> None:
    """Refuse an index.json whose shape is not an OCI image index with valid descriptors."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
        raise InputError(f"{root}/index.json is not an OCI image index", hint=repair_hint(root))
    for i, entry in enumerate(index.get("manifests", [])):
        problem = entry_problem(entry)
        if problem:
            raise InputError(f"{root}/index.json: entry {i} {problem}", hint=repair_hint(root))


def check_blob_dirs(root: Path) -> None:
    """blobs/ and blobs/sha256/ must be real directories of the layout, not symlinks to elsewhere."""
    for d in (root / "blobs", root / "blobs" / "sha256"):
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(
                f"{d} is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'}; a layout's "
                "blobs must be inside it",
                hint=f"replace {d} by a real directory, or move {root} aside",
            )


def open_blob(root: Path, path: Path) -> BinaryIO:
    """Open a blob file for reading: a regular file inside the layout, never through a symlink.
    FileNotFoundError when it is not there; InputError when it is something else."""
    check_blob_dirs(root)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise InputError(
                f"blob {path.name[:12]} in {root} is a symlink; a layout's blobs must be regular files "
                "inside it, nothing was read through it",
                hint=f"remove {path} (a later build or pull writes it again), or move {root} aside",
            ) from None
        if isinstance(exc, PermissionError):
            raise InputError(
                f"blob {path.name[:12]} in {root} cannot be read: permission denied",
                hint="check the layout's permissions",
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InputError(
            f"blob {path.name[:12]} in {root} is not a regular file",
            hint=f"remove {path} (a later build or pull writes it again), or move {root} aside",
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def blob_is_regular(root: Path, path: Path) -> bool | None:
    """True: a regular file; None: absent; InputError: a symlink or something else."""
    try:
        open_blob(root, path).close()
    except FileNotFoundError:
        return None
    return True
