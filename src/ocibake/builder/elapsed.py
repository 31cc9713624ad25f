"""Progress for the long steps of a build (go build, UPX): seconds to a minute in which nothing else is printed.

On a terminal the step's log line carries an elapsed-time counter that is redrawn in place ("... 12s") and ends as
"... done in 14.2s"; when stderr is not a terminal (CI logs, pipes, files) the step stays its one plain log line,
with no carriage returns or escape codes. Whether a log is live is decided once, by the command (see LiveLog).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

TICK = 0.5  # seconds between redraws; the counter shows whole seconds


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


class LiveLog:
    """A log function that may also draw one in-place step line on ``stream`` (only when ``live``)."""

    def __init__(self, log: Callable[[str], None], live: bool, stream: TextIO | None = None):
        self.log = log
        self.live = live
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.drawn = False  # a step line is on the screen without its newline

    def __call__(self, line: str) -> None:
        with self.lock:
            self._erase()
            self.log(line)

    def draw(self, text: str, final: bool = False) -> None:
        if not final:  # a line that wrapped could not be redrawn in place: keep it to one row
            try:
                columns = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError, AttributeError):
                columns = 0
            if columns > 0:  # 0: the terminal does not say
                text = text[: max(20, columns - 1)]
        with self.lock:
            self.stream.write("\r" + text + "\033[K" + ("\n" if final else ""))
            self.stream.flush()
            self.drawn = not final

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.drawn = False


@contextmanager
def long_step(log: Callable[[str], None], line: str) -> Iterator[None]:
    """Log ``line`` for a step that may take long; on a live log, count the seconds on it until the step ends."""
    if not (isinstance(log, LiveLog) and log.live):
        log(line)
        yield
        return
    started = time.monotonic()
    stop = threading.Event()

    def tick() -> None:
        shown = 0
        while not stop.wait(TICK):
            seconds = int(time.monotonic() - started)
            if seconds != shown:  # redrawn when the count changes
                shown = seconds
                log.draw(f"{line} ... {seconds}s")

    log.draw(f"{line} ... 0s")
    ticker = threading.Thread(target=tick, name="ocibake-elapsed", daemon=True)
    ticker.start()
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        stop.set()
        ticker.join()
        log.draw(f"{line} ... {outcome} {time.monotonic() - started:.1f}s", final=True)
