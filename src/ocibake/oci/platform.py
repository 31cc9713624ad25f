"""Platforms: os/arch[/variant] as OCI spells them, and the one this host runs."""

from __future__ import annotations

import platform as host_platform
from dataclasses import dataclass

HOST_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i686": "386",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @staticmethod
    def parse(text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def as_json(self) -> dict[str, str]:
        d = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            d["variant"] = self.variant
        return d


def host_architecture() -> str:
    """This machine's architecture as GOARCH (and OCI) spell it."""
    machine = host_platform.machine().lower()
    return HOST_ARCH.get(machine, machine)
