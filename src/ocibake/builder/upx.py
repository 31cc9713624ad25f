"""UPX compression of the built binary: modes, the upx arguments they mean, and what happened.

Modes (``--upx``): ``off`` (no compression), ``fast`` (``upx -1``), ``1``..``9`` (``upx -N``), ``best`` (``upx --best``,
NRV at its highest level: slow, 10-15x the time of best-lzma and a bigger result on Go binaries) and ``best-lzma``
(``upx --best --lzma``, the original Dockerfile's choice and the production default: smallest and fast enough).

upx's output depends only on its input, its version and these arguments (checked: two runs give identical bytes), so a
compressed binary is as reproducible as the plain one. upx's refusals (already packed, not compressible, too small,
unknown or unsupported format) become one-line ToolchainErrors instead of a screen of upx output.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ocibake.builder.file_cache import FileCache, file_sha256, make_key, mib_from_env
from ocibake.errors import InputError, ToolchainError
from ocibake.toolchain.base import Toolchain

UPX_MODES = ("off", "fast", "best", "best-lzma", "1", "2", "3", "4", "5", "6", "7", "8", "9")
PRODUCTION_DEFAULT = "best-lzma"

# Shown in --help for --upx.
UPX_HELP = (
    "compress the binary with upx: best-lzma (upx --best --lzma: the production default, smallest binary and "
    "image, a few seconds), fast (upx -1: a smaller binary but a bigger image, since packed bytes do not "
    "gzip), 1-9 (upx -N), best (upx --best: NRV, about 10x slower than best-lzma and bigger on Go services), "
    "or off. A packed binary unpacks itself in memory at every start (about 0.14 s for a 6 MiB service); the "
    "report shows the bytes saved next to that cost"
)

# The arguments every run gets: quiet (the report says what happened), no colour, keep no backup.
_COMMON = ("-q", "--no-color", "--no-progress")


def upx_args(mode: str) -> tuple[str, ...] | None:
    """The upx options for ``mode`` (without the file name), or None for ``off``. Unknown modes are InputErrors."""
    mode = str(mode).strip().lower()
    if mode == "off":
        return None
    if mode == "best-lzma":
        return ("--best", "--lzma")
    if mode == "best":
        return ("--best",)
    if mode == "fast":
        return ("-1",)
    if mode.isdigit() and len(mode) == 1 and mode != "0":
        return (f"-{mode}",)
    raise InputError(f"unknown UPX mode {mode!r}", hint=f"use one of: {', '.join(UPX_MODES)}")


def full_args(mode: str) -> tuple[str, ...] | None:
    """Everything ocibake passes to upx for ``mode`` (before the file name); None for ``off``."""
    args = upx_args(mode)
    return None if args is None else (*_COMMON, *args)


@dataclass(frozen=True)
class UpxResult:
    """What compression did, for the report and the build record."""

    mode: str
    args: tuple[str, ...]  # what upx was given (before the file name); () for off
    size_before: int
    size_after: int
    seconds: float
    cached: bool = False  # taken from the UPX cache: upx did not run

    @property
    def ratio(self) -> float:
        return self.size_after / self.size_before if self.size_before else 1.0

    def record(self) -> dict[str, str | list[str]]:
        """For the build record: the setting, not the timing (the record must not depend on the clock)."""
        return {"mode": self.mode, "args": list(self.args)}

    def report_line(self) -> str:
        if self.mode == "off":
            return f"upx off ({_mib(self.size_before)})"
        return f"upx {self.mode}: {_mib(self.size_before)} -> {_mib(self.size_after)} ({self.ratio:.0%}) " + (
            "from the UPX cache" if self.cached else f"in {self.seconds:.1f}s"
        )


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.2f} MiB"


# upx exception names -> what to tell the user. Checked in this order against upx's output.
_REFUSALS: Sequence[tuple[str, str, str]] = (
    (
        "AlreadyPackedException",
        "the binary is already packed with UPX",
        "do not compress it twice: use --upx off, or build from an unpacked binary",
    ),
    (
        "NotCompressibleException",
        "UPX cannot make this binary smaller (NotCompressibleException)",
        "use --upx off for this service",
    ),
    ("file is too small", "the binary is too small for UPX to compress", "use --upx off for this service"),
    (
        "UnknownExecutableFormatException",
        "UPX does not know this file format (UnknownExecutableFormatException)",
        "UPX packs ELF, PE and Mach-O executables for the usual architectures; use --upx off for this platform",
    ),
    (
        "CantPackException",
        "UPX cannot pack this binary",
        "UPX does not support every format and platform (e.g. some arm64/darwin builds); use --upx off",
    ),
)


def explain_refusal(output: str) -> tuple[str, str] | None:
    """(message, hint) when upx's output shows one of its known refusals, else None."""
    for needle, message, hint in _REFUSALS:
        if needle in output:
            m = re.search(rf"{re.escape(needle)}:?\s*([^\n]*)", output)
            extra = m.group(1).strip() if m and needle == "CantPackException" else ""
            return (f"{message}: {extra}" if extra else message), hint
    return None


# The Linux architectures UPX 4 packs executables for; for the others it refuses with UnknownExecutableFormat.
UPX_ARCHES = ("amd64", "386", "arm", "arm64", "ppc64le", "mips", "mipsle")


def check_platform(mode: str, architecture: str) -> None:
    """Before the build: a mode other than off for an architecture UPX cannot pack is bad input."""
    if upx_args(mode) is not None and architecture not in UPX_ARCHES:
        raise InputError(
            f"UPX cannot pack linux/{architecture} binaries (--upx {mode})",
            hint=f"use --upx off for this platform; UPX packs {', '.join(UPX_ARCHES)}",
        )


UPX_MAGIC = b"UPX!"


def is_packed(binary: Path) -> bool:
    """UPX writes its "UPX!" header near the start of a packed executable and its pack header near the end."""
    with open(binary, "rb") as f:
        head = f.read(4096)
        f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
        tail = f.read()
    return UPX_MAGIC in head or UPX_MAGIC in tail


# The UPX cache: $OCIBAKE_UPX_CACHE_MIB (default 512 MiB; 0 turns it off) of packed binaries under the cache's upx/.
UPX_CACHE_ENV = "OCIBAKE_UPX_CACHE_MIB"
UPX_CACHE_DEFAULT_MIB = 512


def upx_cache() -> FileCache:
    """The UPX output cache in ocibake's private cache (checked to be this user's alone)."""
    from ocibake.toolchain.cache import cache_home, private_cache

    bound = mib_from_env(UPX_CACHE_ENV, UPX_CACHE_DEFAULT_MIB)
    return FileCache(private_cache(cache_home()) / "upx" if bound else cache_home() / "upx", bound)


def cache_key(binary: Path, upx_version: str, args: Sequence[str]) -> str:
    """What upx's output depends on: the input's bytes, upx's version and its arguments."""
    return make_key(kind="upx", input=file_sha256(binary), upx=upx_version, args=list(args))


def compress(
    toolchain: Toolchain, binary: Path, mode: str, cache: FileCache | None = None, upx_version: str = ""
) -> UpxResult:
    """Compress ``binary`` in place with ``toolchain.upx`` as ``mode`` says; ``off`` leaves it untouched.

    With a ``cache`` (and the ``upx_version`` that would run), a binary packed before with the same upx and arguments
    is taken from the cache (its digest checked) instead of running upx again; a fresh result is put in it.
    Raises ToolchainError when upx is missing (exit 3, install hint) or refuses the binary (one clear line, upx's own
    output kept as detail).
    """
    args = full_args(mode)
    before = os.stat(binary).st_size
    if args is None:
        return UpxResult(mode="off", args=(), size_before=before, size_after=before, seconds=0.0)
    key = cache_key(binary, upx_version, args) if cache is not None and cache.enabled and upx_version else None
    if cache is not None and key is not None and cache.get(key, binary) and is_packed(binary):
        return UpxResult(
            mode=str(mode).strip().lower(),
            args=args,
            size_before=before,
            size_after=os.stat(binary).st_size,
            seconds=0.0,
            cached=True,
        )
    started = time.monotonic()
    try:
        toolchain.upx(binary, args)
    except ToolchainError as exc:
        refusal = explain_refusal(f"{exc.message}\n{exc.detail or ''}")
        if refusal is None:
            raise
        message, hint = refusal
        raise ToolchainError(message, hint=hint, detail=exc.detail) from exc
    seconds = time.monotonic() - started
    if not is_packed(binary):
        raise ToolchainError(
            f"upx exited 0 but the binary is not UPX-packed (no UPX header after `upx {' '.join(args)}`)",
            hint="check that --upx-bin (or upx on PATH) is a real upx, or use --upx off",
        )
    if cache is not None and key is not None:
        cache.put(key, binary)
    return UpxResult(
        mode=str(mode).strip().lower(),
        args=args,
        size_before=before,
        size_after=os.stat(binary).st_size,
        seconds=seconds,
    )
