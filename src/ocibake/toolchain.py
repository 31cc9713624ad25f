"""Where `go build` and `upx` run.

A Toolchain turns a GoBuild request into a binary on the host. LocalToolchain uses the programs on PATH; an image
toolchain (see toolchain_image.py) runs the same commands inside a rootless sandbox made from an OCI image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from ocibake.errors import ToolchainError

GO_INSTALL_HINT = ("install Go (https://go.dev/doc/install, or `apt-get install golang-go`), put it on PATH or pass "
                   "--go PATH, or build inside a toolchain image with --toolchain REF")
UPX_INSTALL_HINT = ("install upx (`apt-get install upx-ucl`; on Debian 12 from bookworm-backports), pass --upx-bin PATH, "
                    "or turn compression off with --upx off")


@dataclass(frozen=True)
class GoBuild:
    """One `go build` invocation, independent of where it runs."""

    service_dir: Path            # the module root (holds go.mod)
    package: str                 # the main package, relative to service_dir, e.g. "./cmd/api"
    output: Path                 # host path where the binary must appear
    env: Mapping[str, str]       # CGO_ENABLED, GOOS, GOARCH, GOARM/GOAMD64, GOFLAGS...
    flags: Sequence[str] = field(default_factory=tuple)  # -trimpath, -buildvcs=false, -ldflags ..., -gcflags ...
    local_modules: Sequence[Path] = field(default_factory=tuple)  # targets of `replace => ../dir` the build reads

    def argv(self, go: str, output: str) -> list[str]:
        return [go, "build", *self.flags, "-o", output, self.package]


class Toolchain(Protocol):
    """What bake.py needs from a toolchain."""

    def describe(self) -> dict:
        """Facts for the build record: kind, go version, image digest..."""

    def go_version(self, service_dir: Path) -> str:
        """`go env GOVERSION` as run for this service (honours go.mod toolchain lines)."""

    def go_build(self, build: GoBuild) -> None:
        """Run the build; raise ToolchainError carrying go's own output on failure."""

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        """Compress binary in place with upx ARGS; raise ToolchainError on failure."""

    def upx_version(self) -> str:
        """First line of `upx --version`; a ToolchainError with an install hint when there is no upx."""


def run_tool(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             what: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a toolchain program; a failure becomes a ToolchainError with the command line and its output."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise ToolchainError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise ToolchainError(f"{what} timed out after {timeout:.0f}s: {' '.join(argv)}", detail=out.strip()) from exc
    if proc.returncode != 0:
        raise ToolchainError(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}",
                             detail=proc.stdout.strip())
    return proc


class LocalToolchain:
    """go and upx from PATH (or given explicitly)."""

    def __init__(self, go: str | None = None, upx: str | None = None):
        self._go_arg = go
        self._upx_arg = upx
        self._go: str | None = None

    def _go_path(self) -> str:
        if self._go is None:
            found = shutil.which(self._go_arg or "go")
            if not found:
                what = f"`{self._go_arg}`" if self._go_arg else "`go`"
                raise ToolchainError(f"no Go toolchain: {what} was not found", hint=GO_INSTALL_HINT)
            self._go = found
        return self._go

    def _upx_path(self) -> str:
        found = shutil.which(self._upx_arg or "upx") or (None if self._upx_arg else shutil.which("upx-ucl"))
        if not found:
            what = f"`{self._upx_arg}`" if self._upx_arg else "`upx`"
            raise ToolchainError(f"UPX compression was asked for but {what} was not found", hint=UPX_INSTALL_HINT)
        return found

    def describe(self) -> dict:
        return {"kind": "local"}

    def go_version(self, service_dir: Path) -> str:
        proc = run_tool([self._go_path(), "env", "GOVERSION"], cwd=service_dir, env=os.environ,
                        what="go env", timeout=120)
        return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "unknown"

    def go_build(self, build: GoBuild) -> None:
        env = dict(os.environ)
        env.update(build.env)
        run_tool(build.argv(self._go_path(), str(build.output)), cwd=build.service_dir, env=env, what="go build")

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        run_tool([self._upx_path(), *args, str(binary)], what="upx", timeout=900)

    def upx_version(self) -> str:
        """First line of `upx --version` (e.g. "upx 4.2.2"), for the build record when UPX is used."""
        proc = run_tool([self._upx_path(), "--version"], what="upx --version", timeout=60)
        return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "unknown"
