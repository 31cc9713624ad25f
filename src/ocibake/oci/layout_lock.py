"""The writers' lock of an OCI layout, so concurrent builds, pulls and repairs never lose each other's tags or blobs.

Every read-modify-write of index.json and every blob cleanup runs under an exclusive advisory ``flock``: on the layout
directory itself (no file is added to the layout), or, where a filesystem refuses flock on a directory, on the file
``.ocibake.lock`` inside it. A layout that does not exist yet is created under the same lock on its parent directory,
so two first builds into one new directory are serialised too (the second one then adds to what the first made).
Readers take no lock: index.json is only ever replaced by rename, so they see the old or the new one, never half.

The lock is held only for the commit (moving staged blobs in, the index swap, the cleanup), never during go build or
a download. A writer that waits says so after a second and gives up after ``LOCK_WAIT`` seconds.
"""

from __future__ import annotations

import errno
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ocibake.errors import InputError

LOCK_FILE = ".ocibake.lock"
LOCK_WAIT = 300.0


def _stderr(line: str) -> None:
    print(f"ocibake: {line}", file=sys.stderr, flush=True)  # noqa: T201 a wait notice, before any report


def _open_lock(directory: Path) -> int:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # probe: does this filesystem lock directories?
        fcntl.flock(fd, fcntl.LOCK_UN)
        return fd
    except BlockingIOError:
        return fd  # it does, and someone holds it
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)


@contextmanager
def locked(directory: Path, log: Callable[[str], None] | None = None, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the writers' lock of ``directory`` (a layout, or the parent a new layout is created in)."""
    try:
        fd = _open_lock(directory)
    except OSError as exc:
        raise InputError(
            f"cannot lock {directory} for writing: {exc.strerror}",
            hint="check that the directory exists and that you may write in it",
        ) from None
    try:
        started = time.monotonic()
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= wait:
                    raise InputError(
                        f"{directory} stayed locked by another ocibake for {wait:.0f}s",
                        hint="another build, pull or repair is writing there; wait for it, or choose another --output",
                    ) from None
                if not told and waited >= 1.0:
                    (log or _stderr)(f"waiting for another ocibake writing {directory}")
                    told = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock
