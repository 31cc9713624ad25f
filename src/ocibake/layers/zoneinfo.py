"""Zoneinfo under /usr/share/zoneinfo, where Go's time.LoadLocation looks.

Default source: the tzdata package (IANA data compiled to TZif), pinned exactly in pyproject.toml. `host` takes
/usr/share/zoneinfo, a path takes any zoneinfo tree, `none` leaves the layer out. The `right/` and `posix/` trees
(leap-second and duplicate variants Go never reads) and non-zone files are left out.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ocibake.errors import InputError
from ocibake.layers.content import DATA_EPOCH, LayerContent
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


def zoneinfo_layer(choice: str = "tzdata") -> LayerContent | None:
    resolved = resolve_zoneinfo_source(choice)
    if resolved is None:
        return None
    root, record = resolved
    files = _zone_files(root)
    # One digest over names and contents: what the record says is what the layer holds.
    tree = hashlib.sha256()
    entries = []
    for rel, data in files:
        tree.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
        entries.append(Entry.file(f"{ZONEINFO_DIR}/{rel}", data, mode=0o644))
    label = record["source"] + (f" {record['version']}" if "version" in record else "")
    return LayerContent(
        kind="zoneinfo",
        entries=tuple(entries),
        created_by=f"ocibake: zoneinfo {ZONEINFO_DIR} ({label}, {len(files)} zones)",
        record={**record, "files": len(files), "sha256": "sha256:" + tree.hexdigest()},
        mtime=DATA_EPOCH,
    )
