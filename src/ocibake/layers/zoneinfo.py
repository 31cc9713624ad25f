"""Zoneinfo under /usr/share/zoneinfo, where Go's time.LoadLocation looks.

Default source: the tzdata package (IANA data compiled to TZif), pinned exactly in pyproject.toml. `host` takes
/usr/share/zoneinfo, a path takes any zoneinfo tree, `none` leaves the layer out. The `right/` and `posix/` trees
(leap-second and duplicate variants Go never reads) and non-zone files are left out.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from ocibake.errors import InputError
from ocibake.layers.content import DATA_EPOCH, FactMemo, LayerContent
from ocibake.layers.tar import Entry

ZONEINFO_DIR = "/usr/share/zoneinfo"
SKIP_DIRS = {"right", "posix", "__pycache__"}
SKIP_FILES = {"__init__.py"}
TZIF_MAGIC = b"TZif"


def _zone_files(root: Path) -> list[tuple[str, bytes]]:
    """All TZif files under root, as (relative posix path, content), sorted; a symlinked file gives its target's
    content. Each file is opened once: its first bytes tell whether it is a zone."""
    found: list[tuple[str, bytes]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not os.path.islink(os.path.join(dirpath, d)))
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames:
            if name in SKIP_FILES:
                continue
            try:
                with open(os.path.join(dirpath, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if data[:4] == TZIF_MAGIC:
                found.append((name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"), data))
    return sorted(found)


def resolve_zoneinfo_source(choice: str) -> tuple[Path, dict[str, str]] | None:
    """Return (zoneinfo root, record) for `tzdata` (default), `host`, a directory, or None for `none`. Cheap: the tree
    is only checked for a compiled America/New_York here, and read by zoneinfo_layer."""
    resolved = _zoneinfo_root(choice)
    if resolved is not None:
        root = resolved[0]
        try:
            with open(root / "America" / "New_York", "rb") as f:
                ok = f.read(4) == TZIF_MAGIC
        except OSError:
            ok = False
        if not ok:
            raise InputError(
                f"zoneinfo source {root} has no America/New_York TZif file",
                hint="pass a compiled zoneinfo tree (TZif files), `host`, or use the default",
            )
    return resolved


def _zoneinfo_root(choice: str) -> tuple[Path, dict[str, str]] | None:
    if choice == "none":
        return None
    if choice in ("tzdata", "default", ""):
        import tzdata

        root = Path(tzdata.__file__).parent / "zoneinfo"
        return root, {"source": "tzdata", "version": tzdata.IANA_VERSION, "package": tzdata.__version__}
    if choice == "host":
        root = Path("/usr/share/zoneinfo")
        if not root.is_dir():
            raise InputError(
                "--zoneinfo host: /usr/share/zoneinfo does not exist here",
                hint="install tzdata on the host, pass a zoneinfo directory, or use the default",
            )
        return root, {"source": "host"}
    root = Path(choice)
    if not root.is_dir():
        raise InputError(
            f"--zoneinfo {choice}: {'not a directory' if root.exists() else 'no such directory'}",
            hint="pass a zoneinfo directory, `host`, `none`, or leave it out for the pinned tzdata",
        )
    return root, {"source": "directory"}


def zoneinfo_layer(choice: str = "tzdata", memo: FactMemo | None = None) -> LayerContent | None:
    """The zoneinfo layer of ``choice``. For the pinned tzdata package, with ``memo``, the tree is read once per
    package version: later builds take its file count and digest from the memo and read the files only if the layer
    has to be written (LayerContent.load)."""
    resolved = resolve_zoneinfo_source(choice)
    if resolved is None:
        return None
    root, record = resolved
    pin = _pin(root, record) if memo is not None else None
    facts = _known_tree(memo, pin) if memo is not None and pin is not None else None
    if facts is None:
        entries, files, digest = _tree(root)
        if memo is not None and pin is not None:
            memo.put(_memo_key(pin), {"files": files, "sha256": digest})
        return _content(record, files, digest, entries=entries, pin=pin)
    files, digest = facts
    return _content(record, files, digest, load=functools.cache(lambda: _checked_tree(root, digest)), pin=pin)


def _content(
    record: dict[str, str],
    files: int,
    digest: str,
    *,
    entries: tuple[Entry, ...] = (),
    load: Callable[[], tuple[Entry, ...]] | None = None,
    pin: str | None = None,
) -> LayerContent:
    label = record["source"] + (f" {record['version']}" if "version" in record else "")
    return LayerContent(
        kind="zoneinfo",
        entries=entries,
        created_by=f"ocibake: zoneinfo {ZONEINFO_DIR} ({label}, {files} zones)",
        record={**record, "files": files, "sha256": digest},
        mtime=DATA_EPOCH,
        pin=pin,
        load=load,
    )


def _tree(root: Path) -> tuple[tuple[Entry, ...], int, str]:
    """The layer's entries, the number of zone files and one digest over names and contents (what the record says
    is what the layer holds)."""
    files = _zone_files(root)
    tree = hashlib.sha256()
    entries = []
    for rel, data in files:
        tree.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        entries.append(Entry.file(f"{ZONEINFO_DIR}/{rel}", data, mode=0o644))
    return tuple(entries), len(files), "sha256:" + tree.hexdigest()


def _checked_tree(root: Path, digest: str) -> tuple[Entry, ...]:
    """The entries, read late; the tree must still be the one the record (from the memo) describes."""
    entries, _, got = _tree(root)
    if got != digest:
        raise InputError(
            f"the zoneinfo tree {root} changed since it was last read ({got}, not {digest}) under the same version",
            hint="reinstall the pinned tzdata package, or `ocibake cache clean --only pinned`",
        )
    return entries


def _pin(root: Path, record: dict[str, str]) -> str | None:
    """For the pinned tzdata package: its version, the digest of its installed RECORD (pip's list of every file
    with its sha256), where it is, and the layer code's digest; None for other sources (a host or user directory
    can change at any time: it is read every build)."""
    if record.get("source") != "tzdata":
        return None
    installed = next(root.parent.parent.glob(f"tzdata-{record.get('package', '')}.dist-info/RECORD"), None)
    try:
        listing = installed.read_bytes() if installed is not None else None
    except OSError:
        listing = None
    if listing is None:
        return None
    code = _code_digest()
    if code is None:
        return None
    installed_digest = hashlib.sha256(listing).hexdigest()
    return f"zoneinfo {record['version']} tzdata {record['package']} {installed_digest} {root} {code}"


def _code_digest() -> str | None:
    """The digest of the code that turns the files into layer bytes (this module's selection, tar.py's entries and
    tar stream): a changed ocibake is another pin, so a kept diff_id is never one older code made."""
    from ocibake.layers import tar

    h = hashlib.sha256()
    try:
        for source in (__file__, tar.__file__):
            h.update(Path(source).read_bytes())
    except (OSError, TypeError):
        return None
    return h.hexdigest()[:16]


def _memo_key(pin: str) -> str:
    return hashlib.sha256(f"zoneinfo-tree\0{pin}".encode()).hexdigest()


def _known_tree(memo: FactMemo, pin: str) -> tuple[int, str] | None:
    kept = memo.get(_memo_key(pin))
    files, digest = (kept or {}).get("files"), (kept or {}).get("sha256")
    if isinstance(files, bool) or not isinstance(files, int) or files <= 0:
        return None
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return None
    return files, digest
