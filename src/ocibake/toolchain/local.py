"""The local toolchain: `go` and `upx` from PATH (or named with --go and --upx-bin), run on the host."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocibake.errors import ToolchainError
from ocibake.toolchain import go_env_cache, go_output, offline
from ocibake.toolchain.base import GoBuild, last_lines
from ocibake.toolchain.go_home import go_cache_env
from ocibake.toolchain.process import run_tool

GO_INSTALL_HINT = (
    "install Go (https://go.dev/doc/install, or `apt-get install golang-go`), put it on PATH or pass "
    "--go PATH, or build inside a toolchain image with --toolchain REF"
)
UPX_INSTALL_HINT = (
    "install upx (`apt-get install upx-ucl`; on Debian 12 from bookworm-backports), pass --upx-bin PATH, "
    "or turn compression off with --upx off"
)


def _missing(given: str | None) -> str:
    """Why shutil.which found nothing for a program the user named: absent, or there but not executable."""
    if given and os.sep in given and os.path.exists(given):
        return "is not an executable file"
    return "was not found"


def _offline_env() -> dict[str, str]:
    """go's module settings for an offline build (offline.py): modules only from the bundle."""
    bundle = offline.offline_dir()
    return offline.go_env(bundle) if bundle is not None else {}


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
            raise ToolchainError(
                f"UPX compression was asked for but {what} {_missing(self._upx_arg)}", hint=UPX_INSTALL_HINT
            )
        self._upx_checked = True
        return found

    def describe(self) -> dict[str, str | bool]:
        return {"kind": "local"}

    def go_program(self) -> str:
        """The go this toolchain runs (for the provenance; the build record keeps no host path)."""
        return self._go_path()

    def summary(self) -> str:
        return f"local: {self._go_path()}" + (f", {self._upx_path()}" if self._upx_checked else "")

    def go_env(self, service_dir: Path, build_env: Mapping[str, str], keys: Sequence[str]) -> list[str]:
        env = {**os.environ, **build_env}
        env.update(go_cache_env(env))
        env.update(_offline_env())
        key = go_env_cache.cache_key(self._go_path(), service_dir, env, keys)
        cached = go_env_cache.lookup(key, len(keys))
        if cached is not None:
            return cached
        proc = run_tool(
            [self._go_path(), "env", *keys],
            cwd=service_dir,
            env=env,
            what="go env",
            timeout=120,
            hint="check the Go installation: run `go env` in the service directory",
        )
        values = last_lines(proc.stdout, len(keys))
        if values and values[0].startswith(("go", "devel")):  # only a real answer is kept
            go_env_cache.store(key, values)
        return values

    def go_version(self, service_dir: Path, build_env: Mapping[str, str] | None = None) -> str:
        return self.go_env(service_dir, build_env or {}, ("GOVERSION",))[0] or "unknown"

    def go_build(self, build: GoBuild) -> None:
        env = dict(os.environ)
        env.update(build.env)
        env.update(go_cache_env(env))
        env.update(_offline_env())
        # go's work directory goes next to the output, so it is removed with it even when go is killed mid-build.
        env["GOTMPDIR"] = tempfile.mkdtemp(prefix="go-tmp-", dir=Path(build.output).parent)
        try:
            # into a file kept between builds, so go skips the link when nothing changed (go_output.py)
            with go_output.kept_output(self._go_path(), build) as kept:
                run_tool(
                    build.argv(self._go_path(), str(kept or build.output)),
                    cwd=build.service_dir,
                    env=env,
                    what="go build",
                    shown_env=build.env,
                )
                if kept is not None:
                    go_output.copy_out(kept, Path(build.output))
        finally:
            shutil.rmtree(env["GOTMPDIR"], ignore_errors=True)

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        run_tool([self._upx_path(), *args, str(binary)], what="upx", timeout=900)

    def upx_version(self) -> str:
        """First line of `upx --version` (e.g. "upx 4.2.2"), for the build record when UPX is used. Asked once per
        upx program (path, size and mtime), then kept with the `go env` answers."""
        upx = self._upx_path()
        key = go_env_cache.cache_key(upx, Path(upx).parent, {}, ("upx --version",))
        cached = go_env_cache.lookup(key, 1)
        if cached is not None:
            return cached[0]
        proc = run_tool([upx, "--version"], what="upx --version", timeout=60)
        line = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "unknown"
        if line.startswith("upx "):
            go_env_cache.store(key, [line])
        return line
