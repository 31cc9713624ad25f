"""Work directories a killed ocibake left behind (staged layouts, half-unpacked toolchains).

Each is named PREFIX<pid>-XXXX by the process that made it. Ctrl-C and SIGTERM clean up on the spot; after SIGKILL or
a power cut, the next run into the same place removes the leftovers whose process is gone from this host and that
have not changed for an hour, so a live run in another pid namespace is spared.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

ABANDONED_AFTER = 3600.0


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
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit() or alive(int(pid_text)):
            continue
        path = directory / name
        try:
            if now - path.lstat().st_mtime > ABANDONED_AFTER and path.is_dir() and not path.is_symlink():
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
    def onerror(func, p, exc):
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
