"""Running a binary built for another architecture: under qemu-<arch>-static (user-mode emulation) when installed."""

from __future__ import annotations

import shutil

from ocibake.oci.platform import Platform

QEMU_ARCH = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "arm": "arm",
    "386": "i386",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loong64": "loongarch64",
    "mips": "mips",
    "mipsle": "mipsel",
    "mips64": "mips64",
    "mips64le": "mips64el",
}


def emulator(platform: Platform) -> str | None:
    """The path of qemu-<arch>-static for ``platform``, or None when it is not installed."""
    if platform.os != "linux" or platform.architecture not in QEMU_ARCH:
        return None
    return shutil.which(f"qemu-{QEMU_ARCH[platform.architecture]}-static")
