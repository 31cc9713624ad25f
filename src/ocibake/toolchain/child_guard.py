"""Children die with their parent: go, upx and what they start are ended when ocibake is killed, even by SIGKILL.

A toolchain program runs in a process group of its own. Beside it runs a guard, a tiny `sh` in that same group whose
stdin is a pipe only ocibake holds the writing end of. When the program ends, ocibake writes a line and the guard
exits. When ocibake dies without writing it (SIGKILL, a crash), the kernel closes the pipe, the guard reads end of
file and kills the whole group with SIGKILL: the program and every process it started (go's compile and link).
Killing ocibake's own process group does not reach the guard, so it still does its work; killing the program's group
ends the guard with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

GUARD = 'read _ || kill -s KILL -- "-$1"'


class GroupGuard:
    """Kills process group ``pgid`` if this process dies before release()."""

    def __init__(self, pgid: int):
        self.pgid = pgid
        read_end, self._write_end = os.pipe()
        try:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                ["sh", "-c", GUARD, "ocibake-guard", str(pgid)],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                process_group=pgid,
            )
        except (OSError, subprocess.SubprocessError):
            self.proc = None  # the program already ended (its group is gone): nothing to guard
        finally:
            os.close(read_end)

    def release(self) -> None:
        """The program has ended: let the guard go without killing anything."""
        with contextlib.suppress(OSError):
            os.write(self._write_end, b"\n")
        os.close(self._write_end)
        if self.proc is not None:
            self.proc.wait()


def signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """``sig`` to the program and everything it started (its own process group)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


__all__ = ["GroupGuard", "signal", "signal_group"]
