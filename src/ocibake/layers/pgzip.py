"""gzip on every core, with output that depends only on the input (the way pigz does it).

The input is cut into fixed blocks of BLOCK bytes. Each block is deflated on its own thread (zlib releases the GIL),
primed with the last 32 KiB of the block before it as a dictionary, and ended with a sync flush; the last block, cut
where the input ends, with a final flush. Concatenated, the blocks form one ordinary deflate stream inside one gzip
member that every gunzip reads. Because the cut points depend only on the input's length, the bytes are the same
whatever the number of threads or their timing; the price is a few bytes per block (under 0.1%).

Memory stays bounded: at most 2 x threads blocks are in flight; the compressed blocks are written in order as they
finish.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

BLOCK = 256 << 10
WINDOW = 32 << 10
# gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown" (as Python's gzip module writes it)
HEADER = b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff"


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    comp = zlib.compressobj(
        level,
        zlib.DEFLATED,
        -zlib.MAX_WBITS,
        8,
        zlib.Z_DEFAULT_STRATEGY,
        **({"zdict": dictionary} if dictionary else {}),
    )
    return comp.compress(block) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelGzipWriter:
    """A write()/close() sink that gzips into ``sink`` (a callable taking bytes)."""

    def __init__(self, sink: Callable[[bytes], object], level: int, threads: int | None = None):
        self._sink = sink
        self._level = level
        self._threads = max(1, threads or min(4, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="ocibake-gzip")
        self._pending: deque[Future[bytes]] = deque()
        self._buffer = bytearray()
        self._previous_tail = b""
        self._crc = 0
        self._size = 0
        self._closed = False
        sink(HEADER)

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        data = bytes(data)
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= BLOCK:
            block = bytes(self._buffer[:BLOCK])
            del self._buffer[:BLOCK]
            self._submit(block, last=False)
        return len(data)

    def _submit(self, block: bytes, last: bool) -> None:
        self._pending.append(self._pool.submit(_deflate, block, self._previous_tail, self._level, last))
        self._previous_tail = block[-WINDOW:]
        while len(self._pending) > 2 * self._threads or (last and self._pending):
            self._sink(self._pending.popleft().result())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._submit(bytes(self._buffer), last=True)
            self._sink(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
