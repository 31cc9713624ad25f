"""What a layer kind produces before it is written: its entries, a description, and facts for the build record."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocibake.layers.tar import Entry


@dataclass(frozen=True)
class LayerContent:
    kind: str                       # "passwd", "ca-certificates", "zoneinfo", "binary"
    entries: tuple[Entry, ...]
    created_by: str                 # history "created_by": what made this layer
    record: dict = field(default_factory=dict)  # source, version, sha256: for the build record
