"""Which directory `audit --source DIR` rebuilds from: DIR itself when it holds go.mod, else the one directory under
DIR whose go.mod declares the module the build record names (so `--source .` works from a repository root)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ocibake.builder.project import parse_go_mod
from ocibake.errors import InputError

SKIP = {"vendor", "node_modules", "testdata", "dist", "__pycache__"}
MAX_DEPTH = 6


def go_mod_dirs(root: Path) -> list[Path]:
    """Directories under ``root`` holding a go.mod (hidden, vendor, testdata and similar directories skipped)."""
    found: list[Path] = []
    base_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP)
        if len(here.parts) - base_depth >= MAX_DEPTH:
            dirnames[:] = []
        if "go.mod" in filenames and here != root:
            found.append(here)
    return found


def declared_module(directory: Path) -> str:
    try:
        return parse_go_mod((directory / "go.mod").read_text(encoding="utf-8", errors="replace")).path
    except (OSError, ValueError):
        return ""


def service_dir(source: Path, record: dict[str, Any]) -> Path:
    """``source`` when it holds go.mod; else the single directory under it declaring the recorded module."""
    if (source / "go.mod").is_file():
        return source
    module = str(record.get("module") or "")
    candidates = go_mod_dirs(source)
    matching = [d for d in candidates if module and declared_module(d) == module]
    if len(matching) == 1:
        return matching[0]
    if matching:
        raise InputError(
            f"{source} holds no go.mod, and several directories under it declare module {module}: "
            + ", ".join(str(d) for d in matching),
            hint="pass the service's directory with --source",
        )
    named = ", ".join(f"{d} ({declared_module(d) or 'no module line'})" for d in candidates[:8])
    raise InputError(
        f"{source} holds no go.mod, and no directory under it declares module {module or '(unrecorded)'}"
        + (f"; found: {named}" if named else ""),
        hint="pass the service's directory (the one holding go.mod) with --source",
    )
