"""A content-addressed file cache: files stored under a key, checked on every read, bounded in size.

Used for what is slow to make and always the same for the same inputs (UPX's output, compressed layers). Each entry
is two files in the cache directory: ``<key>`` (the bytes) and ``<key>.sha256`` (their digest, written after the bytes,
so an entry without it is unfinished and never read). Both are written to a temporary name and renamed into place.

- ``get`` copies an entry out and checks its sha256 on the way: a damaged entry is removed and reported as a miss, so
  the caller makes the file again (and puts it back). A hit refreshes the entry's mtime, for LRU eviction.
- ``put`` stores a file, then evicts the least recently used entries until the cache is within its bound. A file
  bigger than the whole bound is not stored.
- A lock file (flock) keeps readers (shared) and writers (exclusive) of several ocibake processes apart.

Keys are 64 hex characters, made with ``make_key`` from whatever the stored file depends on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ocibake.errors import InputError

CHUNK = 1 << 20
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
LOCK_NAME = ".lock"


def make_key(**material: object) -> str:
    """A cache key from the inputs an entry depends on (JSON-serialisable values)."""
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def mib_from_env(name: str, default_mib: int) -> int:
    """A cache bound in bytes from ``$name`` (MiB, an integer >= 0; 0 turns the cache off), else ``default_mib``."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default_mib << 20
    if not text.isdigit():
        raise InputError(
            f"{name}={text!r} is not a whole number of MiB",
            hint=f"set {name} to a size in MiB such as 512 (0 turns the cache off), or unset it",
        )
    return int(text) << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class FileCache:
    """Files by key in ``root`` (created on first put), at most ``max_bytes`` in all; ``max_bytes`` 0: no cache."""

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not _KEY_RE.match(key):
            raise ValueError(f"cache key must be 64 lowercase hex digits: {key!r}")
        return self.root / key, self.root / f"{key}.sha256"

    @contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def digest(self, key: str) -> str | None:
        """The sha256 (hex) recorded for entry ``key``, without reading the entry; None when there is none."""
        _, digest_file = self._paths(key)
        if not self.enabled:
            return None
        try:
            text = digest_file.read_text().strip()
        except OSError:
            return None
        return text if _KEY_RE.match(text) else None

    def get(self, key: str, dest: Path) -> str | None:
        """Copy the entry ``key`` to ``dest`` (replacing it) if the cache holds it whole, and return its sha256 (hex);
        None on a miss. An entry whose bytes do not match their recorded digest is removed (and is a miss)."""
        data, digest_file = self._paths(key)
        if not self.enabled or not digest_file.is_file():
            return None
        with self._lock(exclusive=False):
            try:
                expected = digest_file.read_text().strip()
                src = open(data, "rb")  # noqa: SIM115 closed by the `with` below, once the open is known to work
            except OSError:
                return None
            h = hashlib.sha256()
            tmp = dest.with_name(f".{dest.name}.cache-{os.getpid()}-{threading.get_ident()}")
            with src, open(tmp, "wb") as out:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
            good = h.hexdigest() == expected
        if not good:
            tmp.unlink(missing_ok=True)
            self.drop(key)
            return None
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(dest).st_mode))  # the file it replaces keeps its mode
        os.replace(tmp, dest)
        with contextlib.suppress(OSError):
            os.utime(data)  # most recently used
        return expected

    def put(self, key: str, source: Path) -> bool:
        """Store a copy of ``source`` as ``key``, then keep the cache within its bound. False when not stored (cache
        off, or the file is bigger than the whole cache)."""
        if not self.enabled:
            return False
        size = os.stat(source).st_size
        if size > self.max_bytes:
            return False
        data, digest_file = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        h = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(prefix=".put-", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
            dfd, dtmp_name = tempfile.mkstemp(prefix=".put-", dir=self.root)
            with os.fdopen(dfd, "w") as out:
                out.write(h.hexdigest() + "\n")
            with self._lock(exclusive=True):
                os.replace(tmp_name, data)
                os.replace(dtmp_name, digest_file)
                self._evict()
        except BaseException:
            for name in (tmp_name, locals().get("dtmp_name")):
                if name:
                    with suppress(OSError):
                        os.unlink(name)
            raise
        return True

    def drop(self, key: str) -> None:
        data, digest_file = self._paths(key)
        with self._lock(exclusive=True):
            for p in (digest_file, data):
                p.unlink(missing_ok=True)

    def entries(self) -> list[tuple[str, int, float]]:
        """(key, size, last use) of every finished entry."""
        out: list[tuple[str, int, float]] = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return out
        for name in names:
            if _KEY_RE.match(name) and f"{name}.sha256" in names:
                try:
                    st = os.stat(self.root / name)
                except OSError:
                    continue
                out.append((name, st.st_size, max(st.st_mtime, st.st_atime)))
        return out

    def _evict(self) -> None:
        """With the exclusive lock held: remove least recently used entries until the total fits the bound."""
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        for key, size, _ in entries:
            if total <= self.max_bytes:
                break
            for p in (self.root / f"{key}.sha256", self.root / key):
                p.unlink(missing_ok=True)
            total -= size
