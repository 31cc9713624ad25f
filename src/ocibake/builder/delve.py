"""Delve for the development target: a static dlv the user gives (--delve PATH), or one built from its Go module
by the build's toolchain (CGO off, for the image's platform) and kept in ocibake's cache (CACHE/delve/VERSION/ARCH).

The module comes through the module proxy (GOPROXY) the first time; later builds take the cached binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from ocibake.builder import gobuild
from ocibake.errors import InputError, ToolchainError
from ocibake.oci.platform import Platform
from ocibake.toolchain import offline
from ocibake.toolchain.base import GoBuild, Toolchain
from ocibake.toolchain.cache import cache_home, private_cache, private_mkdir

DELVE_MODULE = "github.com/go-delve/delve"
DELVE_VERSION = "v1.27.2"
DELVE_PACKAGE = f"{DELVE_MODULE}/cmd/dlv"


# ELF e_machine of each GOARCH
ELF_MACHINES = {
    "386": 3,
    "amd64": 62,
    "arm": 40,
    "arm64": 183,
    "ppc64le": 21,
    "ppc64": 21,
    "s390x": 22,
    "riscv64": 243,
    "loong64": 258,
    "mips64le": 8,
    "mips64": 8,
    "mipsle": 8,
    "mips": 8,
}
ELF_NAMES = {v: k for k, v in ELF_MACHINES.items()}


def check_delve_file(path: str, platform: Platform | None = None) -> Path:
    p = Path(path)
    if p.is_dir() or not p.is_file():
        raise InputError(
            f"--delve {path}: {'a directory' if p.is_dir() else 'no such file'}",
            hint="give the path of a static dlv binary, or leave --delve out to have ocibake build one",
        )
    with open(p, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF" or len(header) < 20:
        raise InputError(f"--delve {path} is not an ELF executable", hint="give a static Linux dlv binary")
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    wanted = ELF_MACHINES.get(platform.architecture) if platform is not None else None
    if wanted is not None and machine != wanted:
        raise InputError(
            f"--delve {path} is built for {ELF_NAMES.get(machine, f'ELF machine {machine}')}, not {platform}",
            hint="give a dlv built with GOARCH for the image's platform (one --platform per --delve), "
            "or leave --delve out to have ocibake build one per platform",
        )
    return p


def _is_static(path: Path) -> bool:
    """No PT_INTERP program header: the binary needs no dynamic loader (it runs in any image)."""
    out = (
        subprocess.run(["file", "-b", str(path)], check=False, stdout=subprocess.PIPE, text=True).stdout
        if shutil.which("file")
        else ""
    )
    return "dynamically linked" not in out


def delve_arch(platform: Platform) -> str:
    """The directory name of a platform's Delve build (in the cache and in bundles): amd64, arm-v7..."""
    return "-".join(p for p in (platform.architecture, platform.variant) if p)


def _from_bundle(bundle: Path, platform: Platform, arch: str) -> Path:
    found = offline.delve(bundle, DELVE_VERSION, arch)
    if found is None:
        what, add = f"Delve {DELVE_VERSION} for {platform}", f"--target development --platform {platform}"
        raise offline.missing(bundle, what, add)
    return found


def delve_binary(
    spec_delve: str | None,
    platform: Platform,
    toolchain: Toolchain,
    log: Callable[[str], None],
    cache: Path | None = None,
) -> tuple[Path, dict[str, str | bool]]:
    """(dlv for ``platform``, facts for the build record)."""
    if spec_delve:
        path = check_delve_file(spec_delve, platform)
        if not _is_static(path):
            raise InputError(
                f"--delve {spec_delve} is dynamically linked",
                hint="build it with CGO_ENABLED=0 (the image may have no C library), or leave --delve "
                "out to have ocibake build one",
            )
        return path, {"source": "--delve", "version": "given"}
    arch = delve_arch(platform)
    record: dict[str, str | bool] = {
        "source": f"{DELVE_PACKAGE}@{DELVE_VERSION}",
        "version": DELVE_VERSION,
        "cgo": False,
    }
    bundle = offline.offline_dir()
    if bundle is not None:  # offline: the one `ocibake bundle` built, the same binary a connected build makes
        return _from_bundle(bundle, platform, arch), record
    root = private_cache(cache or cache_home())
    target = root / "delve" / DELVE_VERSION / arch / "dlv"
    if target.is_file():
        return target, record
    private_mkdir(target.parent)
    work = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=target.parent))
    try:
        (work / "go.mod").write_text(f"module ocibake.dev/delve\n\ngo 1.22\n\nrequire {DELVE_MODULE} {DELVE_VERSION}\n")
        env = {**gobuild.go_env(platform), "GOFLAGS": "-mod=mod -buildvcs=false"}
        log(f"building Delve {DELVE_VERSION} for {platform} (once; cached in {target.parent})")
        try:
            toolchain.go_build(
                GoBuild(
                    service_dir=work,
                    package=DELVE_PACKAGE,
                    output=work / "dlv",
                    env=env,
                    flags=("-trimpath", "-ldflags", "-s -w"),
                )
            )
        except ToolchainError as exc:
            exc.message = f"building Delve {DELVE_VERSION} failed: {exc.message}"
            exc.hint = (
                "Delve's module comes through the Go module proxy: allow the network (--network with a "
                "toolchain image, GOPROXY/GOFLAGS=-mod=mod locally), or give a static dlv with --delve PATH"
            )
            raise
        os.chmod(work / "dlv", 0o755)
        os.replace(work / "dlv", target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target, record
