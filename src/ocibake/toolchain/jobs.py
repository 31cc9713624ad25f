"""Job slots for toolchain programs, shared by every build of one run, and stopping them all at once.

`ocibake build a b c --jobs N` builds services in parallel threads; each go and upx process they start takes one of
N slots (a semaphore) for as long as it runs, so N bounds the heavy processes whatever the number of services. Without
a limit (one service), a slot costs nothing.

``cancel_all`` (on Ctrl-C or SIGTERM in the main thread) sends SIGINT to every live toolchain process, as Ctrl-C in a
terminal would (go removes its work directory on SIGINT), and makes every later ``check_cancelled`` (before a new
process, before a layout is committed) raise KeyboardInterrupt in its thread: no build then writes an image.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_lock = threading.Lock()
_slots: threading.Semaphore | None = None
_live: set[subprocess.Popen[str]] = set()
_cancelled = threading.Event()


def set_limit(n: int | None) -> None:
    """At most ``n`` toolchain processes at a time from now on (None: no limit)."""
    global _slots  # noqa: PLW0603 one per process, on purpose
    _slots = threading.BoundedSemaphore(n) if n else None


def check_cancelled() -> None:
    if _cancelled.is_set():
        raise KeyboardInterrupt()


@contextmanager
def slot() -> Iterator[None]:
    """Hold one job slot (waiting for one while all are taken) for the duration of the block."""
    sem = _slots
    if sem is None:
        check_cancelled()
        yield
        return
    while not sem.acquire(timeout=0.1):
        check_cancelled()
    try:
        check_cancelled()
        yield
    finally:
        sem.release()


def started(proc: subprocess.Popen[str]) -> None:
    with _lock:
        _live.add(proc)
    if _cancelled.is_set():
        _interrupt(proc)


def finished(proc: subprocess.Popen[str]) -> None:
    with _lock:
        _live.discard(proc)


def _interrupt(proc: subprocess.Popen[str]) -> None:
    with suppress(OSError):
        proc.send_signal(signal.SIGINT)


def cancel_all() -> None:
    """Stop everything: SIGINT to each live process (their threads wait for them and then SIGKILL stragglers, see
    process.run_captured), and no new process or layout commit from now on."""
    _cancelled.set()
    with _lock:
        live = list(_live)
    for proc in live:
        _interrupt(proc)


def kill_all() -> None:
    """SIGKILL what is still running after cancel_all had its chance, with all it started: each program leads a
    process group of its own (process.run_captured), and go's compile children hold its output pipe open, so
    killing go alone would leave its thread waiting for them."""
    with _lock:
        live = list(_live)
    for proc in live:
        with suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)


def reset() -> None:
    """For a new run in the same process (tests): no limit, nothing cancelled."""
    set_limit(None)
    _cancelled.clear()
