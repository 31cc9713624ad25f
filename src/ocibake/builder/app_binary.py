"""The service binary: `go build`, run it (`--version`), compress it with UPX, run it again.

Running the binary proves the version was injected and, after UPX, that the packed binary still starts. Both runs are
timed: the difference is what UPX costs at every start of the container (the packed binary unpacks itself in memory),
which the report shows next to the bytes UPX saved. A platform that does not run on this host is not run, and the
report says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ocibake.builder import go_missing, gobuild, upx
from ocibake.builder.elapsed import long_step
from ocibake.builder.emulation import emulator
from ocibake.builder.file_cache import FileCache
from ocibake.errors import ToolchainError
from ocibake.oci.platform import Platform
from ocibake.toolchain import offline
from ocibake.toolchain.base import GoBuild, Toolchain


@dataclass(frozen=True)
class BinaryCheck:
    """The outcome of `app --version`: its first line, and how long the process took (None: it was not run)."""

    line: str
    seconds: float | None = None
    emulator: str = ""  # run under this emulator (not timed: emulated start-up says nothing)

    @property
    def ran(self) -> bool:
        return self.seconds is not None


@dataclass(frozen=True)
class AppBinary:
    path: Path
    size: int  # final size (after UPX, if any)
    go_seconds: float
    check: BinaryCheck  # the plain binary
    upx: upx.UpxResult
    upx_check: BinaryCheck | None  # the packed binary; None when UPX is off

    @property
    def final_check(self) -> BinaryCheck:
        return self.upx_check or self.check


def _check(binary: Path, version: str, verify: bool, platform: Platform, version_package: str) -> BinaryCheck:
    if not verify:
        return BinaryCheck("not run: --no-verify")
    prefix: tuple[str, ...] = ()
    if not gobuild.runs_here(platform):
        qemu = emulator(platform)
        if qemu is None:
            return BinaryCheck(f"not verified: {platform} does not run on this host (no qemu-user-static for it)")
        prefix = (qemu,)
    # One run: it proves the version and gives the start-up time (the file was just written, so it is in memory);
    # under emulation the time says nothing.
    started = time.monotonic()
    line = gobuild.verify_binary(binary, version, version_package=version_package, prefix=prefix)
    seconds = time.monotonic() - started
    if prefix:
        name = prefix[0].rsplit("/", 1)[-1]
        return BinaryCheck(f"{line} (verified under {name})", None, name)
    return BinaryCheck(line, seconds)


def make_binary(
    request: GoBuild,
    toolchain: Toolchain,
    *,
    platform: Platform,
    version: str,
    upx_mode: str,
    verify: bool,
    log: Callable[[str], None],
    version_package: str = "main",
    go_line: str = "go build",
    upx_cache: FileCache | None = None,
    upx_version: str = "",
) -> AppBinary:
    """Build, check, compress and check again; every failure is a ToolchainError (exit 3). ``go_line``: the log
    line of the go build step (on a terminal it counts the seconds, see elapsed.py)."""
    started = time.monotonic()
    with long_step(log, go_line):
        try:
            toolchain.go_build(request)
        except ToolchainError as exc:
            raise go_missing.explain(exc, request.service_dir, offline.offline_dir()) from None
    go_seconds = time.monotonic() - started
    binary = Path(request.output)
    check = _check(binary, version, verify, platform, version_package)
    args = upx.full_args(upx_mode)
    if args is not None:
        with long_step(log, f"compressing the binary: upx {' '.join(args)} (--upx {upx_mode})"):
            packed = upx.compress(toolchain, binary, upx_mode, cache=upx_cache, upx_version=upx_version)
        if packed.cached:
            log("  the same binary was packed before: upx's output taken from the UPX cache (digest checked)")
    else:
        packed = upx.compress(toolchain, binary, upx_mode, cache=upx_cache, upx_version=upx_version)
    upx_check = None
    if packed.mode != "off":
        upx_check = _check(binary, version, verify, platform, version_package)
        if not upx_check.ran and not upx_check.emulator:
            upx_check = BinaryCheck(f"{upx_check.line}; the UPX-packed binary is not verified")
    return AppBinary(
        path=binary, size=binary.stat().st_size, go_seconds=go_seconds, check=check, upx=packed, upx_check=upx_check
    )
