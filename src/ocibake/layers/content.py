"""What a layer kind produces before it is written: its entries, a description, facts for the build record, and
the mtime its files carry.

Layers made from the service's source (the binary) carry SOURCE_DATE_EPOCH. Layers that hold data ocibake renders or
pins (passwd/group, zoneinfo, the CA bundle) carry DATA_EPOCH instead, a fixed time that does not move with each
commit: their bytes, and so their digests, are then the same across versions and across services, and registries and
caches share them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocibake.layers.tar import Entry


@dataclass(frozen=True)
class LayerContent:
    """``entries`` are the layer's files; a layer read from a pinned package may instead carry ``load``, which reads
    them only when they are needed (``files()``), and ``pin``, a string naming exactly what its bytes are made of
    (the package and version, the layer code's version): a build that finds the layer under its pin in the cache and
    in the layout does not read them at all."""

    kind: str  # "passwd", "ca-certificates", "zoneinfo", "binary"
    entries: tuple[Entry, ...]
    created_by: str  # history "created_by": what made this layer
    record: dict[str, Any] = field(default_factory=dict)  # source, version, sha256: for the build record (JSON)
    mtime: int | None = None  # the files' mtime; None: SOURCE_DATE_EPOCH (the binary)
    pin: str | None = None
    load: Callable[[], tuple[Entry, ...]] | None = field(default=None, compare=False, repr=False)

    def mtime_for(self, source_epoch: int) -> int:
        return self.mtime if self.mtime is not None else source_epoch

    def files(self) -> tuple[Entry, ...]:
        return self.load() if self.load is not None else self.entries


class FactMemo(Protocol):
    """Where facts about pinned contents are kept between builds (toolchain.json_memo.JsonMemo)."""

    def get(self, hexkey: str) -> dict[str, Any] | None: ...

    def put(self, hexkey: str, value: dict[str, Any]) -> None: ...


# 2026-01-01T00:00:00Z: the mtime of every layer that does not come from the service's source.
DATA_EPOCH = 1767225600
