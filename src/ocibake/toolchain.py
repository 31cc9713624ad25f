"""Where `go build` and `upx` run.

A Toolchain turns a GoBuild request into a binary on the host. LocalToolchain uses the programs on PATH; an image
toolchain (see toolchain_image.py) runs the same commands inside a rootless sandbox made from an OCI image.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
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


def last_lines(output: str, n: int) -> list[str]:
    """The last n lines of `go env K1 K2...` (go may print toolchain-switch chatter before them); "" where missing."""
    text = output[:-1] if output.endswith("\n") else output      # one value per line; values may be empty
    lines = [line.strip() for line in text.split("\n")]
    lines = lines[-n:] if len(lines) >= n else [""] * (n - len(lines)) + lines
    return lines


class Toolchain(Protocol):
    """What bake.py needs from a toolchain."""

    def describe(self) -> dict:
        """Facts for the build record: kind, go version, image digest..."""

    def summary(self) -> str:
        """One line for the report: which programs, which image, which sandbox."""

    def go_env(self, service_dir: Path, build_env: Mapping[str, str], keys: Sequence[str]) -> list[str]:
        """`go env KEYS...` as a build of this service with ``build_env`` sees them (go.mod's toolchain line and the
        GOENV file included), one value per key."""

    def go_version(self, service_dir: Path, build_env: Mapping[str, str] | None = None) -> str:
        """`go env GOVERSION`, as go_env."""

    def go_build(self, build: GoBuild) -> None:
        """Run the build; raise ToolchainError carrying go's own output on failure."""

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        """Compress binary in place with upx ARGS; raise ToolchainError on failure."""

    def upx_version(self) -> str:
        """First line of `upx --version`; a ToolchainError with an install hint when there is no upx."""


def run_captured(argv: list[str], *, cwd: Path | None = None, env: dict | None = None,
                 timeout: float | None = None) -> subprocess.CompletedProcess:
    """subprocess.run with stdout and stderr together, except that when ocibake itself is interrupted or terminated
    the program gets SIGINT, as from Ctrl-C, and a few seconds to clean up (go removes its work directory on SIGINT,
    not on SIGTERM) before SIGKILL."""
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=subprocess.DEVNULL, text=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout or 0, output=out) from None
        except BaseException:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, out)


def command_line(argv: Sequence[str], shown_env: Mapping[str, str] | None = None) -> str:
    """The command as a shell line, prefixed with the variables ocibake set (so a failure can be re-run by hand)."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (shown_env or {}).items())
    return f"{prefix} {shlex.join(argv)}" if prefix else shlex.join(argv)


def run_tool(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
             what: str, timeout: float | None = None, hint: str | None = None,
             shown_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a toolchain program; a failure becomes a ToolchainError with the command line (with ``shown_env``) and
    its output."""
    try:
        proc = run_captured(list(argv), cwd=cwd, env=dict(env) if env is not None else None, timeout=timeout)
    except OSError as exc:
        raise ToolchainError(f"{what}: cannot run {argv[0]}: {exc.strerror}", hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise ToolchainError(f"{what} timed out after {timeout:.0f}s: {command_line(argv, shown_env)}", detail=out.strip(),
                             hint=hint) from exc
    if proc.returncode != 0:
        raise ToolchainError(f"{what} failed (exit {proc.returncode}): {command_line(argv, shown_env)}",
                             detail=proc.stdout.strip(), hint=hint)
    return proc


def _missing(given: str | None) -> str:
    """Why shutil.which found nothing for a program the user named: absent, or there but not executable."""
    if given and os.sep in given and os.path.exists(given):
        return "is not an executable file"
    return "was not found"


class LocalToolchain:
    """go and upx from PATH (or given explicitly)."""

    def __init__(self, go: str | None = None, upx: str | None = None):
        self._go_arg = go
        self._upx_arg = upx
        self._go: str | None = None
        self._upx_checked = False

    def _go_path(self) -> str:
        if self._go is None:
            found = shutil.which(self._go_arg or "go")
            if not found:
                what = f"`{self._go_arg}`" if self._go_arg else "`go`"
                raise ToolchainError(f"no Go toolchain: {what} {_missing(self._go_arg)}", hint=GO_INSTALL_HINT)
            self._go = found
        return self._go

    def _upx_path(self) -> str:
        found = shutil.which(self._upx_arg or "upx") or (None if self._upx_arg else shutil.which("upx-ucl"))
        if not found:
            what = f"`{self._upx_arg}`" if self._upx_arg else "`upx`"
            raise ToolchainError(f"UPX compression was asked for but {what} {_missing(self._upx_arg)}",
                                 hint=UPX_INSTALL_HINT)
        self._upx_checked = True
        return found

    def describe(self) -> dict:
        return {"kind": "local"}

    def summary(self) -> str:
        return f"local: {self._go_path()}" + (f", {self._upx_path()}" if self._upx_checked else "")

    def go_env(self, service_dir: Path, build_env: Mapping[str, str], keys: Sequence[str]) -> list[str]:
        proc = run_tool([self._go_path(), "env", *keys], cwd=service_dir, env={**os.environ, **build_env},
                        what="go env", timeout=120, hint="check the Go installation: run `go env` in the service directory")
        return last_lines(proc.stdout, len(keys))

    def go_version(self, service_dir: Path, build_env: Mapping[str, str] | None = None) -> str:
        return self.go_env(service_dir, build_env or {}, ("GOVERSION",))[0] or "unknown"

    def go_build(self, build: GoBuild) -> None:
        env = dict(os.environ)
        env.update(build.env)
        # go's work directory goes next to the output, so it is removed with it even when go is killed mid-build.
        env["GOTMPDIR"] = tempfile.mkdtemp(prefix="go-tmp-", dir=Path(build.output).parent)
        try:
            run_tool(build.argv(self._go_path(), str(build.output)), cwd=build.service_dir, env=env, what="go build",
                     shown_env=build.env)
        finally:
            shutil.rmtree(env["GOTMPDIR"], ignore_errors=True)

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        run_tool([self._upx_path(), *args, str(binary)], what="upx", timeout=900)

    def upx_version(self) -> str:
        """First line of `upx --version` (e.g. "upx 4.2.2"), for the build record when UPX is used."""
        proc = run_tool([self._upx_path(), "--version"], what="upx --version", timeout=60)
        return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "unknown"
