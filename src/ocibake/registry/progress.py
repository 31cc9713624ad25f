"""Progress of blob transfers on stderr: a bar per blob on a terminal, else one line per finished blob."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ocibake import units

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions


def human_size(n: float) -> str:
    return units.human_size(n, decimals=1)


_ACTIVE: Progress | None = None  # the terminal display that other log lines must print above


def print_line(line: str) -> None:
    """Print a log line on stderr; above the progress bars when they are on the terminal."""
    active = _ACTIVE
    if active is not None:
        active.above(line)
    else:
        with _PRINT_LOCK:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


_PRINT_LOCK = threading.Lock()


class Progress:
    """On a terminal, a bar per blob in flight, redrawn in place under the log lines; otherwise one line per finished
    blob. Thread-safe: transfers run in parallel."""

    WIDTH = 30

    def __init__(self, opts: RegistryOptions):
        global _ACTIVE  # noqa: PLW0603 one per process, on purpose
        self.opts = opts
        self.lock = _PRINT_LOCK
        self.bars: dict[str, list[int]] = {}  # digest -> [bytes done, size], in the order they started
        self.drawn = 0  # bar lines on the screen now
        self.last_draw = 0.0
        if opts.progress_bar:
            _ACTIVE = self

    def bar(self, digest: str, size: int) -> Callable[[int], None]:
        if not self.opts.progress_bar:
            return lambda n: None
        with self.lock:
            self.bars[digest] = [0, size]

        def update(n: int) -> None:
            with self.lock:
                state = self.bars.get(digest)
                if state is None:
                    return
                state[0] += n
                now = time.monotonic()
                if now - self.last_draw >= 0.1:
                    self.last_draw = now
                    self._redraw()

        return update

    def done(self, line: str, digest: str | None = None) -> None:
        """A blob finished (or failed): its bar goes, and its line is printed where the bar was, through the log (so
        it carries the log's prefix)."""
        if self.opts.progress_bar:
            with self.lock:
                self.bars.pop(digest or "", None)
        self.opts.log(line)

    def above(self, line: str) -> None:
        with self.lock:
            self._erase()
            sys.stderr.write(line + "\n")
            self._redraw()

    def close(self) -> None:
        global _ACTIVE  # noqa: PLW0603 one per process, on purpose
        with self.lock:
            self._erase()
            sys.stderr.flush()
        if _ACTIVE is self:
            _ACTIVE = None

    def _erase(self) -> None:
        if self.drawn:
            sys.stderr.write(f"\033[{self.drawn}F\033[J")  # up to the first bar, clear to the end
            self.drawn = 0

    def _redraw(self) -> None:
        self._erase()
        for digest, (done, size) in self.bars.items():
            filled = int(self.WIDTH * done / size) if size else self.WIDTH
            sys.stderr.write(
                f"{self.opts.label}  {digest[7:19]} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{human_size(done)}/{human_size(size)}\033[K\n"
            )
        self.drawn = len(self.bars)
        sys.stderr.flush()
