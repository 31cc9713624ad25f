"""The service binary at /app, mode 0555 so no umask leaks into the image (as ko does)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ocibake.layers.content import LayerContent
from ocibake.layers.tar import Entry

BINARY_PATH = "/app"


def binary_layer(binary: Path, description: str) -> LayerContent:
    h = hashlib.sha256()
    with open(binary, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    size = binary.stat().st_size
    return LayerContent(
        kind="binary",
        entries=(Entry.from_path(BINARY_PATH, binary, mode=0o555),),
        created_by=f"ocibake: {description}",
        record={"sha256": "sha256:" + h.hexdigest(), "size": size},
    )
