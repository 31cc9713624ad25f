"""Work directories a killed ocibake left behind (staged layouts, half-unpacked toolchains).

Each is named PREFIX<pid>-XXXX by the process that made it, and records its owner in an OWNER_FILE inside it (pid,
the process's start time, the boot and the pid namespace: see claim()). Ctrl-C and SIGTERM clean up on the spot; after
SIGKILL or a power cut, the next run into the same place removes a leftover at once when its record shows the owner is
gone (no such process in this pid namespace, or another process with that pid, or another boot). A live owner is never
touched. A leftover without a record (older ocibake, or one killed between mkdtemp and claim) is removed when its
process is gone from this host and it has not changed for an hour, so a live run in another pid namespace is spared.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

ABANDONED_AFTER = 3600.0
OWNER_FILE = ".ocibake-owner"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _identity() -> str:
    """This boot and this pid namespace: a pid means the same process only under the same two."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "?"
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = "?"
    return f"{boot} {ns}"


def claim(directory: Path) -> None:
    """Record this process as the owner of ``directory`` (a stage it just made), for remove_abandoned_stages."""
    pid = os.getpid()
    (directory / OWNER_FILE).write_text(f"{pid} {_start_time(pid)} {_identity()}\n")


def owned_stage(directory: Path, prefix: str) -> Path:
    """A new staging directory ``prefix<pid>-XXXX`` in ``directory``, with its owner record; what killed runs left
    there under the same prefix is removed first (remove_abandoned_stages). The caller removes it when done."""
    remove_abandoned_stages(directory, prefix)
    stage = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=directory))
    try:
        claim(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return stage


def owner_gone(directory: Path) -> bool | None:
    """True: the recorded owner no longer runs; False: it does; None: no record, or one made in another pid
    namespace or boot (cannot tell)."""
    try:
        pid_text, start, boot, ns = (directory / OWNER_FILE).read_text().split()
    except (OSError, ValueError):
        return None
    if f"{boot} {ns}" != _identity() or not pid_text.isdigit():
        return None if boot == _identity().split()[0] else True  # another boot: every process of it is gone
    return _start_time(int(pid_text)) != start


def remove_abandoned_stages(directory: Path, prefix: str) -> None:
    """Remove staging directories ``prefix<pid>-*`` in ``directory`` that a killed ocibake left: their process is
    gone from this host and they have not changed for an hour (a live build in another pid namespace is spared)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    now = time.time()
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        path = directory / name
        try:
            if not pid_text.isdigit() or path.is_symlink() or not path.is_dir():
                continue
            gone = owner_gone(path)
            if gone is None:  # no record: the old rule (process gone from this host, unchanged for an hour)
                gone = not alive(int(pid_text)) and now - path.lstat().st_mtime > ABANDONED_AFTER
            if gone:
                force_rmtree(path)
        except OSError:
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def force_rmtree(path: Path) -> None:
    """rmtree that also removes directories a layer made read-only."""

    def onerror(
        func: Callable[[str], object],
        p: str,
        exc: tuple[type[BaseException], BaseException, TracebackType],
    ) -> None:
        parent = os.path.dirname(p)
        try:
            os.chmod(parent, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
            func(p)
        except FileNotFoundError:
            pass

    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=onerror)
