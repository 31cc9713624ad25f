"""`ocibake cache`: what the toolchain cache holds, and emptying it.

The cache ($XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake) holds unpacked toolchain images (rootfs/<chain id>), each
toolchain's GOCACHE and GOMODCACHE (toolchains/<digest>), and the toolchain images pulled from registries (pulled/).
Go makes its module cache read-only, so a plain `rm -rf` fails for a normal user; `ocibake cache clean` does not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ocibake.abandoned import force_rmtree
from ocibake.rootfs import private_cache

PARTS = (("rootfs", "unpacked toolchain images"), ("toolchains", "go build and module caches, per toolchain"),
         ("pulled", "toolchain images pulled from registries"))


@dataclass(frozen=True)
class CachePart:
    name: str
    what: str
    entries: int
    size: int


def disk_usage(path: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_blocks * 512
    return total


def usage(cache: Path) -> list[CachePart]:
    out = []
    for name, what in PARTS:
        path = cache / name
        entries = len([p for p in path.iterdir() if not p.name.startswith(".")]) if path.is_dir() else 0
        out.append(CachePart(name, what, entries, disk_usage(path) if path.is_dir() else 0))
    return out


def clean(cache: Path) -> int:
    """Remove everything in the cache (not the directory itself); returns the bytes freed."""
    if not cache.exists():
        return 0
    private_cache(cache)
    freed = 0
    for child in cache.iterdir():
        freed += disk_usage(child) if child.is_dir() and not child.is_symlink() else child.lstat().st_size
        if child.is_dir() and not child.is_symlink():
            force_rmtree(child)
        else:
            child.unlink()
    return freed
