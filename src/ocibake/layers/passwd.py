"""/etc/passwd and /etc/group rendered from data, never copied from the host (as apko does).

The app user is numeric-friendly: uid/gid 1001, no login shell, a home directory it owns. /tmp is included because Go's
os.TempDir() returns it and a scratch image otherwise has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocibake.layers.content import DATA_EPOCH, LayerContent
from ocibake.layers.tar import Entry

APP_USER = "goapp"
APP_UID = 1001
APP_GID = 1001
NOLOGIN = "/sbin/nologin"


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str
    gecos: str = ""


def default_users() -> tuple[User, ...]:
    return (
        User("root", 0, 0, "/root", NOLOGIN, "root"),
        User(APP_USER, APP_UID, APP_GID, f"/home/{APP_USER}", NOLOGIN, "Go application"),
    )


def render_passwd(users: tuple[User, ...]) -> bytes:
    return "".join(f"{u.name}:x:{u.uid}:{u.gid}:{u.gecos}:{u.home}:{u.shell}\n" for u in users).encode()


def render_group(users: tuple[User, ...]) -> bytes:
    return "".join(f"{u.name}:x:{u.gid}:\n" for u in users).encode()


def passwd_layer(users: tuple[User, ...] | None = None) -> LayerContent:
    users = users or default_users()
    app = users[-1]
    entries = (
        Entry.file("/etc/passwd", render_passwd(users)),
        Entry.file("/etc/group", render_group(users)),
        Entry.dir(app.home, mode=0o755, uid=app.uid, gid=app.gid),
        Entry.dir("/tmp", mode=0o1777),
    )
    names = ", ".join(f"{u.name} {u.uid}:{u.gid}" for u in users)
    return LayerContent(
        kind="passwd",
        entries=entries,
        created_by=f"ocibake: /etc/passwd, /etc/group ({names}), /tmp",
        record={"users": [{"name": u.name, "uid": u.uid, "gid": u.gid} for u in users]},
        mtime=DATA_EPOCH,
    )
