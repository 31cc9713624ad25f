"""The one error family of ocibake.

Library code raises these; only ``cli.py`` turns them into messages and exit codes. Every error carries a one-line
human message and, where there is something the user can do, a hint.
"""

from __future__ import annotations


class OcibakeError(Exception):
    """Base class: a message for humans, an optional hint, and the exit code the CLI uses."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Extra output shown under the message (a compiler's output, say). Must never hold secrets.
        self.detail = detail
        # Results completed before the failure (pushed references, say): the CLI prints them on stdout.
        self.results: tuple[str, ...] = ()
        # Images built before a failure that kept them from being pushed: in the JSON report only, since stdout
        # lists only what was achieved (with --push, pushed references).
        self.built: tuple[str, ...] = ()


class UsageError(OcibakeError):
    """The command line itself is wrong."""

    exit_code = 2


class ToolchainError(OcibakeError):
    """go, upx or the toolchain sandbox is missing or failed."""

    exit_code = 3


class InputError(OcibakeError):
    """The service, a setting, a path or a layout given to ocibake is not usable."""

    exit_code = 4


class DiskError(OcibakeError):
    """The disk refused a read or write: full, over quota, read-only, permission denied, an I/O error."""

    exit_code = 4


# errno -> (what it means, what to do)
_DISK_ERRNOS = {
    28: ("no space left on device", "free some space, or write somewhere else (--output); nothing was changed"),
    122: ("disk quota exceeded", "free some space, or write somewhere else (--output); nothing was changed"),
    30: ("read-only file system", "write somewhere else (--output)"),
    13: ("permission denied", "check the permissions, or run as a user who may write there"),
    1: ("operation not permitted", "check the permissions, or run as a user who may write there"),
    5: ("input/output error", "the disk failed; check it (dmesg) and try again"),
    27: ("file too large", "write somewhere else, or raise the file size limit (ulimit -f)"),
}


def disk_error(exc: OSError) -> DiskError | None:
    """A clear DiskError for an OSError that is about the disk (ENOSPC, EACCES, EROFS...), or None."""
    known = _DISK_ERRNOS.get(exc.errno or 0)
    if known is None:
        return None
    where = f": {exc.filename}" if exc.filename else ""
    cache = _cache_part_of(str(exc.filename)) if exc.filename else None
    if cache is not None and exc.errno in (28, 122, 30, 13, 1):
        hint = f"ocibake's cache {cache} cannot be written: point XDG_CACHE_HOME at a writable directory"
        return DiskError(f"{known[0]}{where}", hint=hint + (", or `ocibake cache clean`" if exc.errno != 30 else ""))
    return DiskError(f"{known[0]}{where}", hint=known[1])


def _cache_part_of(path: str) -> str | None:
    """The private cache directory when ``path`` is inside it (where toolchain/cache.py puts it), else None."""
    import os

    bases = [os.environ.get("XDG_CACHE_HOME") or "", os.path.join(os.path.expanduser("~"), ".cache")]
    for base in filter(None, bases):
        cache = os.path.join(os.path.abspath(base), "ocibake")
        if os.path.abspath(path).startswith(cache + os.sep):
            return cache
    return None


class RegistryError(OcibakeError):
    """A registry refused or failed a request."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        detail: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message, hint, detail)
        self.status = status
        self.code = code
