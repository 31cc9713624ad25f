"""Sizes for people: 283 B, 102.15 KiB, 2.06 MiB."""

from __future__ import annotations


def human_size(n: float, decimals: int = 2) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{decimals}f} {unit}"
        n /= 1024
    return f"{n} B"
