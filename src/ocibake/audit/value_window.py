"""Two long values shown side by side in a diff: a window of each around their first difference, with … where
text was cut, so values that differ only near the end (ldflags' GitCommit=...) do not look the same."""

from __future__ import annotations

import json

WIDTH = 80
BEFORE = 24  # characters of common text kept before the first difference


def as_text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def first_difference(a: str, b: str) -> int:
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _cut(text: str, start: int, width: int) -> str:
    if len(text) <= width:
        return text
    start = max(0, min(start, len(text) - (width - 1)))
    end = start + width - (1 if start else 0)
    if end < len(text):
        end -= 1
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def windows(a: object, b: object, width: int = WIDTH) -> tuple[str, str]:
    """``a`` and ``b`` as text of at most ``width`` characters each, both cut at the same place, around their first
    difference."""
    ta, tb = as_text(a), as_text(b)
    if len(ta) <= width and len(tb) <= width:
        return ta, tb
    start = max(0, first_difference(ta, tb) - BEFORE)
    return _cut(ta, start, width), _cut(tb, start, width)
