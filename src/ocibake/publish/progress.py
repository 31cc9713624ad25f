"""Progress of blob transfers on stderr: a bar per blob on a terminal, else one line per finished blob."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Callable

from ocibake import units

if TYPE_CHECKING:
    from ocibake.publish.registry import RegistryOptions


def human_size(n: float) -> str:
    return units.human_size(n, decimals=1)


class Progress:
    """A bar per blob on a terminal, else one line per finished blob."""

    def __init__(self, opts: RegistryOptions):
        self.opts = opts
        self.lock = threading.Lock()

    def bar(self, digest: str, size: int) -> Callable[[int], None]:
        if not self.opts.progress_bar:
            return lambda n: None
        done = [0, 0.0]

        def update(n: int) -> None:
            done[0] += n
            now = time.monotonic()
            if now - done[1] < 0.1 and done[0] < size:
                return
            done[1] = now
            width = 30
            filled = int(width * done[0] / size) if size else width
            with self.lock:
                sys.stderr.write(f"\r  {digest[7:19]} [{'#' * filled}{'.' * (width - filled)}] "
                                 f"{human_size(done[0])}/{human_size(size)}")
                sys.stderr.flush()
        return update

    def done(self, line: str) -> None:
        with self.lock:
            if self.opts.progress_bar:
                sys.stderr.write("\r\033[K")
            self.opts.log(line)
