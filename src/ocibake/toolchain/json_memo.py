"""Small facts kept in the private cache as one JSON file per key (under a cache part such as ``checks/``): written
to a temporary name and renamed, bounded to the most recently written entries, and read as a miss whenever anything
is wrong (no cache, no file, not JSON, not an object), never as an error. What a value must hold is checked by its
user: a memo stores facts, it does not vouch for them."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ocibake.errors import OcibakeError


class JsonMemo:
    def __init__(self, part: str, max_entries: int):
        self.part = part
        self.max_entries = max_entries

    def _path(self, hexkey: str) -> Path | None:
        from ocibake.toolchain.cache import cache_home, private_cache

        try:
            return private_cache(cache_home()) / self.part / f"{hexkey}.json"
        except (OcibakeError, OSError):  # an unusable cache is reported by what needs it; the work is just done
            return None

    def get(self, hexkey: str) -> dict[str, Any] | None:
        path = self._path(hexkey)
        if path is None:
            return None
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return kept if isinstance(kept, dict) else None

    def put(self, hexkey: str, value: dict[str, Any]) -> None:
        path = self._path(hexkey)
        if path is None:
            return
        tmp = None
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".memo-", dir=path.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(value, f, allow_nan=False)
            os.replace(tmp, path)
            tmp = None
            self._trim(path.parent)
        except (OSError, ValueError):
            pass
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def _trim(self, directory: Path) -> None:
        """Keep the most recently written entries (a few hundred bytes each); older ones are made again."""
        entries = list(directory.glob("*.json"))
        if len(entries) <= self.max_entries:
            return
        entries.sort(key=lambda p: p.stat().st_mtime_ns)
        for old in entries[: len(entries) - self.max_entries]:
            with contextlib.suppress(OSError):
                old.unlink()
