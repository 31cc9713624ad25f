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

from ocibake.builder import check_memo, go_missing, gobuild, upx
from ocibake.builder.elapsed import long_step
from ocibake.builder.emulation import emulator
from ocibake.builder.file_cache import FileCache
from ocibake.errors import ToolchainError
from ocibake.oci.platform import Platform
from ocibake.toolchain import offline
from ocibake.toolchain.base import GoBuild, Toolchain

NOT_VERIFIED = "not run: verification is off (--no-verify, --verify never or verify = false)"


@dataclass(frozen=True)
class BinaryCheck:
    """The outcome of `app --version`: its first line, and how long the process took (None: it was not run)."""

    line: str
    seconds: float | None = None
    emulator: str = ""  # run under this emulator (not timed: emulated start-up says nothing)
    remembered: bool = False  # passed before for the same bytes (check_memo): not run again

    @property
    def ran(self) -> bool:
        return self.seconds is not None or self.remembered

    def display(self) -> str:
        """The line for the report, saying when it was not run again."""
        return f"{self.line} (passed before for the same bytes)" if self.remembered else self.line


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


@dataclass(frozen=True)
class CheckSettings:
    """How the built binary is checked: ``verify`` False skips it (--no-verify); ``always`` runs it even when the
    same bytes passed before (--verify always)."""

    version: str
    version_package: str = "main"
    verify: bool = True
    always: bool = False


def _check(binary: Path, platform: Platform, settings: CheckSettings) -> BinaryCheck:
    if not settings.verify:
        return BinaryCheck(NOT_VERIFIED)
    prefix: tuple[str, ...] = ()
    if not gobuild.runs_here(platform):
        qemu = emulator(platform)
        if qemu is None:
            return BinaryCheck(f"not verified: {platform} does not run on this host (no qemu-user-static for it)")
        prefix = (qemu,)
    name = prefix[0].rsplit("/", 1)[-1] if prefix else ""
    key = check_memo.CheckKey.of(binary, str(platform), settings.version, settings.version_package, name)
    kept = None if settings.always else check_memo.recall(key)
    if kept is not None:
        line = f"{kept.line} (verified under {name})" if name else kept.line
        return BinaryCheck(line, kept.seconds, name, remembered=True)
    # One run: it proves the version and gives the start-up time (the file was just written, so it is in memory);
    # under emulation the time says nothing.
    started = time.monotonic()
    line = gobuild.verify_binary(binary, settings.version, version_package=settings.version_package, prefix=prefix)
    seconds = None if prefix else time.monotonic() - started
    check_memo.remember(key, line, seconds)
    if prefix:
        return BinaryCheck(f"{line} (verified under {name})", None, name)
    return BinaryCheck(line, seconds)


def make_binary(
    request: GoBuild,
    toolchain: Toolchain,
    *,
    platform: Platform,
    upx_mode: str,
    checks: CheckSettings,
    log: Callable[[str], None],
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
    check = _check(binary, platform, checks)
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
        upx_check = _check(binary, platform, checks)
        if not upx_check.ran and not upx_check.emulator:
            upx_check = BinaryCheck(f"{upx_check.line}; the UPX-packed binary is not verified")
    return AppBinary(
        path=binary, size=binary.stat().st_size, go_seconds=go_seconds, check=check, upx=packed, upx_check=upx_check
    )
