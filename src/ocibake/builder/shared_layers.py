"""Layers that are the same for every platform of a multi-platform run (passwd, zoneinfo, CA bundle, a base shared
by the platforms), written once and reused: a layer is keyed by everything its bytes depend on (its entries, their
modes and owners, the data or the source file, the time and the compression)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ocibake.builder.base_layers import Base
from ocibake.layers.content import LayerContent
from ocibake.oci.image import LayerRecord

T = TypeVar("T")


def _key(content: LayerContent, epoch: int, compression: str) -> str:
    h = hashlib.sha256(f"{content.kind}\0{content.created_by}\0{epoch}\0{compression}".encode())
    if content.pin is not None:  # names its bytes exactly, without reading them
        h.update(f"\0pin\0{content.pin}".encode())
        return h.hexdigest()
    for e in content.files():
        h.update(f"\0{e.path}\0{e.kind}\0{e.mode}\0{e.uid}\0{e.gid}\0{e.size}\0{e.linkname}\0{e.source}\0".encode())
        if e.data is not None:
            h.update(hashlib.sha256(e.data).digest())
    return h.hexdigest()


class _Once(Generic[T]):
    """Each key's value made once, by the first thread that asks for it; the others wait for that one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._done: dict[str, T] = {}

    def get(self, key: str, make: Callable[[], T]) -> T:
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._done:
                self._done[key] = make()
            return self._done[key]


class SharedLayers:
    def __init__(self) -> None:
        self._layers: _Once[LayerRecord] = _Once()
        self._bases: _Once[list[LayerRecord]] = _Once()

    def record(
        self, content: LayerContent, epoch: int, compression: str, write: Callable[[], LayerRecord]
    ) -> LayerRecord:
        return self._layers.get(_key(content, epoch, compression), write)

    def base_records(self, base: Base, write: Callable[[], list[LayerRecord]]) -> list[LayerRecord]:
        return self._bases.get(base.image.manifest_digest, write)
