"""Facts about the user namespace ocibake runs in, as rootless CI runners, bubblewrap and `unshare -r` set it up.

Inside a user namespace every file owned by a user the namespace does not map (root on the host, among others)
shows as the overflow uid (`/proc/sys/kernel/overflowuid`, 65534 by default). Nobody inside the namespace can act as
that uid, and not even the namespace's root has any privilege over such a file: only its mode bits for "others"
apply. The cache's safety check (cache.py) uses these facts to tell such a directory from another user's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OVERFLOW_UID = 65534
IDENTITY_MAP = ("0", "0", "4294967295")


@dataclass(frozen=True)
class UidMap:
    """One line of /proc/self/uid_map: ``count`` ids from ``inside`` map to ``outside`` ones."""

    inside: int
    outside: int
    count: int


def uid_map(path: Path = Path("/proc/self/uid_map")) -> tuple[UidMap, ...]:
    """The uid map of this process's user namespace; empty when it cannot be read (no /proc)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return ()
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            out.append(UidMap(int(fields[0]), int(fields[1]), int(fields[2])))
    return tuple(out)


def in_user_namespace() -> bool:
    """True in any user namespace but the initial one (whose map is the identity over every uid)."""
    entries = uid_map()
    if not entries:
        return False
    return [(str(e.inside), str(e.outside), str(e.count)) for e in entries] != [IDENTITY_MAP]


def overflow_uid() -> int:
    """The uid unmapped owners show as in a user namespace."""
    try:
        return int(Path("/proc/sys/kernel/overflowuid").read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_OVERFLOW_UID


def unmapped_owner(uid: int) -> bool:
    """Whether a file owner ``uid`` is the overflow uid of a user namespace: a user outside it (the host's root for
    /, /home and /tmp), never anyone inside it."""
    return uid == overflow_uid() and in_user_namespace()


def host_uid() -> int:
    """This process's uid as the host sees it (outside every user namespace we can see); the namespace's own uid
    when the map does not say."""
    uid = os.geteuid()
    for entry in uid_map():
        if entry.inside <= uid < entry.inside + entry.count:
            return entry.outside + (uid - entry.inside)
    return uid
