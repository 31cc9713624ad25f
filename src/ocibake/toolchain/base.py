"""What a toolchain is: one `go build` request (GoBuild) and the Toolchain protocol that turns it into a binary.

LocalToolchain (local.py) runs the programs on PATH; ImageToolchain (image.py) runs the same commands inside a
rootless sandbox made from an OCI image. The build stage sees only this protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class GoBuild:
    """One `go build` invocation, independent of where it runs."""

    service_dir: Path  # the module root (holds go.mod)
    package: str  # the main package, relative to service_dir, e.g. "./cmd/api"
    output: Path  # host path where the binary must appear
    env: Mapping[str, str]  # CGO_ENABLED, GOOS, GOARCH, GOARM/GOAMD64, GOFLAGS...
    flags: Sequence[str] = field(default_factory=tuple)  # -trimpath, -buildvcs=false, -ldflags ..., -gcflags ...
    local_modules: Sequence[Path] = field(default_factory=tuple)  # targets of `replace => ../dir` the build reads

    def argv(self, go: str, output: str) -> list[str]:
        return [go, "build", *self.flags, "-o", output, self.package]


def last_lines(output: str, n: int) -> list[str]:
    """The last n lines of `go env K1 K2...` (go may print toolchain-switch chatter before them); "" where missing."""
    text = output.removesuffix("\n")  # one value per line; values may be empty
    lines = [line.strip() for line in text.split("\n")]
    return lines[-n:] if len(lines) >= n else [""] * (n - len(lines)) + lines


class Toolchain(Protocol):
    """What bake.py needs from a toolchain."""

    def describe(self) -> dict[str, str | bool]:
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
