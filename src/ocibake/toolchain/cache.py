"""ocibake's private cache: where it is, the checks that make it safe to run what it holds, what it holds
(`ocibake cache info`) and emptying it (`ocibake cache clean`).

The cache ($XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake) holds unpacked toolchain images (rootfs/<chain id>), each
toolchain's GOCACHE and GOMODCACHE (toolchains/<digest>), the toolchain images pulled from registries (pulled/), base
images pulled from registries (bases/, an OCI layout read by digest), Delve builds (delve/<version>/<arch>), UPX's
output (upx/) and compressed layers (layers/), each a builder.file_cache.
Go makes its module cache read-only, so a plain `rm -rf` fails for a normal user; `ocibake cache clean` does not.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ocibake.errors import InputError
from ocibake.workdirs import force_rmtree


def cache_home() -> Path:
    """ocibake's cache: $XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base and os.path.isabs(base) else Path.home() / ".cache") / "ocibake"


def private_cache(cache: Path) -> Path:
    """Create the cache (mode 0700) or check that an existing one is this user's alone.

    What is in it is trusted: an unpacked toolchain is run as it is, with no second digest check. So the cache, its
    parts and every directory above it must be safe from other users: owned by this user (or root, above it), and
    writable by nobody else unless sticky like /tmp (then others cannot rename what is ours). Anything else is
    refused rather than used."""
    try:
        private_mkdir(cache)
        real = cache.resolve()
    except OSError as exc:
        raise InputError(
            f"cannot use the cache directory {cache}: {exc.strerror}",
            hint="set XDG_CACHE_HOME to a writable directory of yours",
        ) from None
    for ancestor in real.parents:
        st = ancestor.stat()
        if st.st_uid not in (0, os.geteuid()):
            _not_private(cache, f"{ancestor}, above it, belongs to another user (uid {st.st_uid})")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            _not_private(cache, f"{ancestor}, above it, may be written by others (and has no sticky bit)")
    check_private_entry(real, "the cache")
    for part in PART_NAMES:
        if (real / part).exists():
            check_private_entry(real / part, f"the cache's {part}/")
    return cache


def check_private_entry(path: Path, what: str) -> None:
    st = os.lstat(path)
    if st.st_uid != os.geteuid():
        _not_private(path, f"{what} belongs to another user (uid {st.st_uid})", chown=True)
    if st.st_mode & 0o022:
        _not_private(path, f"{what} may be written by group or others")


def _not_private(path: Path, why: str, chown: bool = False) -> None:
    fix = "`chown` it to yourself" if chown else f"`chmod go-w {path}`"
    raise InputError(
        f"the cache is not private: {why}",
        hint=f"ocibake runs the toolchains it caches, so the cache must be yours alone: {fix}, "
        "`ocibake cache clean`, or set XDG_CACHE_HOME to a directory of yours",
    )


def private_mkdir(path: Path) -> Path:
    """mkdir -p with every directory it creates at mode 0700, whatever the umask."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)
    return path


PARTS = (
    ("rootfs", "unpacked toolchain images"),
    ("toolchains", "go build and module caches, per toolchain"),
    ("pulled", "toolchain images pulled from registries"),
    ("bases", "base images pulled from registries"),
    ("delve", "Delve binaries built for the development target"),
    ("upx", "UPX-packed binaries, by input digest, upx version and arguments"),
    ("layers", "compressed layers, by uncompressed digest and compression setting"),
    ("goenv", "`go env` answers, by go program, environment, go.mod and GOENV file"),
    ("gobin", "the last binary built per service and platform, so go can skip an unneeded link"),
    ("tools", "govulncheck, installed for `ocibake scan` (a pinned version)"),
)
PART_NAMES = tuple(name for name, _ in PARTS)


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
        entries = (
            len([p for p in path.iterdir() if not p.name.startswith(".") and not p.name.endswith(".sha256")])
            if path.is_dir()
            else 0
        )
        out.append(CachePart(name, what, entries, disk_usage(path) if path.is_dir() else 0))
    known = {name for name, _ in PARTS}
    others = [p for p in cache.iterdir() if p.name not in known] if cache.is_dir() else []
    if others:  # left by another ocibake version, or put there by hand: `clean` removes it too, so count it
        size = sum(disk_usage(p) if p.is_dir() and not p.is_symlink() else p.lstat().st_size for p in others)
        out.append(CachePart("other", "entries ocibake does not use (removed by clean)", len(others), size))
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
