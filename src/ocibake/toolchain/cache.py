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
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ocibake.errors import InputError
from ocibake.toolchain.userns import host_uid, unmapped_owner
from ocibake.workdirs import force_rmtree


def cache_home() -> Path:
    """ocibake's cache: $XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake when the home directory can hold it, else a
    temporary cache of this user's (said once): a uid with no home (`docker run --user 12345`, OpenShift) or with
    a home it may not write (HOME=/) still builds."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base and os.path.isabs(base):
        return Path(base) / "ocibake"
    home = _home()
    if home is not None and home_can_hold(home / ".cache" / "ocibake", home):
        return home / ".cache" / "ocibake"
    temporary = temporary_cache()
    _say_once(
        f"no writable home directory ({_why_no_home(home)}): using "
        f"the temporary cache {temporary} (set XDG_CACHE_HOME to keep the cache elsewhere)"
    )
    return temporary


def _why_no_home(home: Path | None) -> str:
    if os.environ.get("HOME", "").strip():
        return f"HOME={os.environ['HOME']} is not writable"
    return "HOME is not set" + (f" and {home}, this uid's home, is not writable" if home is not None else "")


def temporary_cache() -> Path:
    """The cache of a user with no usable home: one per (host) uid under the temporary directory."""
    return Path(tempfile.gettempdir()) / f"ocibake-cache-{host_uid()}"


def _home() -> Path | None:
    home = os.environ.get("HOME", "").strip()
    if home:
        return Path(home) if os.path.isabs(home) else None
    try:
        return Path.home()  # no HOME: the passwd entry, if this uid has one
    except (RuntimeError, KeyError):
        return None


def home_can_hold(path: Path, home: Path) -> bool:
    """Whether ``path`` is a directory this user may write, or can be made in its nearest existing directory
    (``home`` or below)."""
    p = path
    while not os.path.lexists(p):  # lexists: a directory we may not search is "not there", not an error
        if p == home or p == p.parent:
            return False
        p = p.parent
    return os.path.isdir(p) and os.access(p, os.W_OK | os.X_OK)


_said: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(f"ocibake: {line}", file=sys.stderr, flush=True)  # noqa: T201 a notice, before any report


def private_cache(cache: Path) -> Path:
    """Create the cache (mode 0700) or check that an existing one is this user's alone.

    What is in it is trusted: an unpacked toolchain is run as it is, with no second digest check. So the cache and
    its parts must be owned by this user and writable by nobody else, and every directory above it owned by this
    user, root, or (in a user namespace) a user outside the namespace, and writable by nobody else unless sticky like
    /tmp (then others cannot rename what is ours). Anything else is refused rather than used."""
    try:
        private_mkdir(cache)
        real = cache.resolve()
    except OSError as exc:
        raise InputError(
            f"cannot use the cache directory {cache}: {exc.strerror}",
            hint=f"set XDG_CACHE_HOME to a writable directory of yours ({_suggestion(cache)})",
        ) from None
    check_private(real)
    return cache


def check_private(cache: Path) -> None:
    """Refuse (InputError with a hint that works) a cache, or one of its parts, that someone else could write to;
    a cache that does not exist yet is checked as far as it exists."""
    problem = unsafe(cache)
    if problem is not None:
        _not_private(cache, *problem)
    for part in PART_NAMES:
        if (cache / part).exists():
            check_private_entry(cache / part, f"the cache's {part}/")


def unsafe(cache: Path) -> tuple[Path, str] | None:
    """The first reason another user could change what ``cache`` holds: the path at fault and why; None when safe.
    Directories that do not exist yet are skipped (they would be made 0700 by private_mkdir)."""
    for ancestor in reversed(cache.parents):
        try:
            st = ancestor.stat()
        except OSError:
            break
        if st.st_uid not in (0, os.geteuid()) and not unmapped_owner(st.st_uid):
            return ancestor, f"{ancestor}, above it, belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return ancestor, f"{ancestor}, above it, may be written by others (and has no sticky bit)"
    if cache.exists():
        return _entry_problem(cache, "the cache")
    return None


def _entry_problem(path: Path, what: str) -> tuple[Path, str] | None:
    st = os.lstat(path)
    if st.st_uid != os.geteuid():
        return path, f"{what} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return path, f"{what} may be written by group or others"
    return None


def check_private_entry(path: Path, what: str) -> None:
    problem = _entry_problem(path, what)
    if problem is not None:
        _not_private(path, *problem)


def _not_private(cache: Path, at_fault: Path, why: str) -> None:
    """Refuse with a hint that works: `chmod go-w` only on what this user owns (no one else can chmod it), else a
    cache elsewhere, at a place that passes the same checks."""
    try:
        mine = os.lstat(at_fault).st_uid == os.geteuid()
    except OSError:
        mine = False
    if mine:
        fix = f"`chmod go-w {at_fault}`, or set XDG_CACHE_HOME elsewhere ({_suggestion(cache)})"
    else:
        fix = f"it is not yours to fix, so keep the cache elsewhere: {_suggestion(cache)}"
    raise InputError(
        f"the cache is not private: {why}",
        hint=f"ocibake runs the toolchains it caches, so nobody else may write to the cache: {fix}",
    )


def _suggestion(cache: Path) -> str:
    """An XDG_CACHE_HOME that passes the checks, to put in a hint; checked, never guessed."""
    candidates = []
    home = _home()
    if home is not None and home_can_hold(home / ".cache" / "ocibake", home):
        candidates.append(home / ".cache")
    candidates.append(temporary_cache())
    for candidate in candidates:
        target = candidate / "ocibake"
        if target != cache and unsafe(target) is None:
            return f"`export XDG_CACHE_HOME={candidate}`"
    return "set XDG_CACHE_HOME to a directory of yours whose parents are yours or root's"


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
    ("sandbox", "empty directories the toolchain sandbox mounts its root on, one per run"),
    ("toolchains", "go build and module caches, per toolchain"),
    ("pulled", "toolchain images pulled from registries"),
    ("bases", "base images pulled from registries"),
    ("delve", "Delve binaries built for the development target"),
    ("upx", "UPX-packed binaries, by input digest, upx version and arguments"),
    ("layers", "compressed layers, by uncompressed digest and compression setting"),
    ("goenv", "`go env` answers, by go program, environment, go.mod and GOENV file"),
    ("gobin", "the last binary built per service and platform, so go can skip an unneeded link"),
    ("go", "go's build and module caches, for a user whose home directory cannot hold them"),
    ("checks", "outcomes of `app --version` that passed, by binary digest, platform and version"),
    ("pinned", "facts about layers from pinned packages (zoneinfo): file count, digests, by package and code"),
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


def _entry_count(part: Path) -> int:
    return len([p for p in part.iterdir() if not p.name.startswith(".") and not p.name.endswith(".sha256")])


def usage(cache: Path) -> list[CachePart]:
    out = []
    for name, what in PARTS:
        path = cache / name
        entries = _entry_count(path) if path.is_dir() else 0
        out.append(CachePart(name, what, entries, disk_usage(path) if path.is_dir() else 0))
    known = {name for name, _ in PARTS}
    others = [p for p in cache.iterdir() if p.name not in known] if cache.is_dir() else []
    if others:  # left by another ocibake version, or put there by hand: `clean` removes it too, so count it
        size = sum(disk_usage(p) if p.is_dir() and not p.is_symlink() else p.lstat().st_size for p in others)
        out.append(CachePart("other", "entries ocibake does not use (removed by clean)", len(others), size))
    return out


def _size(path: Path) -> int:
    return disk_usage(path) if path.is_dir() and not path.is_symlink() else path.lstat().st_size


def _remove(path: Path) -> int:
    """Remove a file, link or directory tree (go's read-only module cache too); returns the bytes freed."""
    freed = _size(path)
    if path.is_dir() and not path.is_symlink():
        force_rmtree(path)
    else:
        path.unlink()
    return freed


def _chosen(cache: Path, only: Sequence[str]) -> list[Path]:
    """The top-level paths of the parts named in ``only`` ("other": what ocibake does not use), or all of them."""
    children = sorted(cache.iterdir())
    if not only:
        return children
    return [c for c in children if c.name in only or ("other" in only and c.name not in PART_NAMES)]


def _old_entries(part: Path, cutoff: float) -> list[Path]:
    """The entries of a part last modified before ``cutoff`` (file caches touch an entry when they use it), each with
    its `.sha256` file."""
    old = []
    for entry in sorted(part.iterdir()):
        if entry.name.startswith(".") or entry.name.endswith(".sha256"):
            continue
        if entry.lstat().st_mtime < cutoff:
            old.append(entry)
            sidecar = part / f"{entry.name}.sha256"
            if sidecar.exists():
                old.append(sidecar)
    return old


def clean(cache: Path, only: Sequence[str] = (), older_than: float | None = None) -> tuple[int, int]:
    """Empty the cache (not the directory itself), or only the parts named in ``only``, or only the entries not
    modified for ``older_than`` seconds. -> (entries removed, bytes freed)."""
    if not cache.exists():
        return 0, 0
    private_cache(cache)
    removed = freed = 0
    cutoff = time.time() - older_than if older_than is not None else None
    for child in _chosen(cache, only):
        if cutoff is None or not child.is_dir() or child.is_symlink() or child.name not in PART_NAMES:
            if cutoff is not None and child.lstat().st_mtime >= cutoff:
                continue
            count = _entry_count(child) if child.name in PART_NAMES and child.is_dir() else 1
            removed, freed = removed + count, freed + _remove(child)
            continue
        for entry in _old_entries(child, cutoff):
            removed += 0 if entry.name.endswith(".sha256") else 1
            freed += _remove(entry)
    return removed, freed
