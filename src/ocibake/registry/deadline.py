"""Deadlines for registry requests as a whole, not only per socket read.

A socket read timeout never fires on a server that drips a byte a second, nor while a whole response is awaited in
one read of many bytes. So every request is also watched: a request that makes no progress for ``stall_timeout``
seconds (no response headers, no body bytes sent or received that the caller reported with touch()), or that is still
running when the operation's ``timeout`` has passed, has its socket shut down by the watchdog thread. The blocked read
then fails like a dropped connection (retried within the retry budget, as any lost connection is), and after the
operation's deadline every request fails at once with a RegistryError (exit 5).

The socket is found through the connection classes installed on the client's session (WatchedAdapter): each records
itself as the connection of the request running in its thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from ocibake.errors import RegistryError


class _Entry:
    __slots__ = ("conn", "last", "reason")

    def __init__(self) -> None:
        self.conn: _WatchedConnection | None = None
        self.last = time.monotonic()
        self.reason: str | None = None


class _Current(threading.local):
    entry: _Entry | None = None  # the request running in this thread


_current = _Current()


def _attach(conn: _WatchedConnection) -> None:
    entry = _current.entry
    if entry is not None:
        entry.conn = conn
        conn._ocibake_entry = entry  # a pooled connection belongs to the request that used it last


class _HTTPConnection(urllib3.connection.HTTPConnection):
    _ocibake_entry: _Entry | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        return super().request(*args, **kwargs)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    _ocibake_entry: _Entry | None = None

    def connect(self) -> None:
        _attach(self)
        return super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        return super().request(*args, **kwargs)


_WatchedConnection = _HTTPConnection | _HTTPSConnection


class _HTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter with connections the watchdog can find (and shut down)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class Watchdog:
    """Watches the requests of one operation (a push, a pull, a login)."""

    def __init__(self, timeout: float, stall_timeout: float):
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.deadline = time.monotonic() + timeout
        self.entries: set[_Entry] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def check(self, registry: str) -> None:
        """RegistryError once the operation's deadline has passed."""
        if time.monotonic() >= self.deadline:
            raise RegistryError(
                f"registry {registry}: gave up after {self.timeout:.0f}s (the operation's deadline)",
                code="TIMEOUT",
                hint="the registry is too slow or not answering; for a slow link raise --timeout",
            )

    def begin(self, registry: str) -> _Entry:
        self.check(registry)
        entry = _Entry()
        with self.lock:
            old = _current.entry  # a thread runs one request at a time
            if old is not None:
                self.entries.discard(old)
            _current.entry = entry
            self.entries.add(entry)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="ocibake-deadline", daemon=True)
                self.thread.start()
        return entry

    def touch(self) -> None:
        """The request running in this thread made progress (bytes sent or received)."""
        entry = _current.entry
        if entry is not None:
            entry.last = time.monotonic()

    def end(self, entry: _Entry) -> None:
        with self.lock:
            self.entries.discard(entry)
        if _current.entry is entry:
            _current.entry = None

    def failure(self, entry: _Entry, registry: str) -> str | None:
        """Why the watchdog cut ``entry`` (for the error message), or None; RegistryError past the deadline."""
        if entry.reason == "deadline":
            self.check(registry)
        return entry.reason

    def current_failure(self, registry: str) -> str | None:
        """failure() of the request running in this thread (its streamed body was being read)."""
        entry = _current.entry
        return self.failure(entry, registry) if entry is not None else None

    def close(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.wait(0.25):
            now = time.monotonic()
            with self.lock:
                entries = list(self.entries)
            for entry in entries:
                if entry.reason is not None:
                    continue
                if now >= self.deadline:
                    entry.reason = "deadline"
                elif now - entry.last > self.stall_timeout:
                    entry.reason = f"stalled: no progress for {self.stall_timeout:.0f}s"
                else:
                    continue
                if entry.conn is None or entry.conn._ocibake_entry is not entry:
                    continue
                sock = entry.conn.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
