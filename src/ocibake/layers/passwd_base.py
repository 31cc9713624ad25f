"""/etc/passwd and /etc/group for an image on a base: the base's own files, kept line for line, with the app user
(goapp, 1001:1001) appended. A base that already has uid 1001 or gid 1001 under another name is refused rather than
given a second user with the same id.
"""

from __future__ import annotations

from ocibake.errors import InputError
from ocibake.layers.content import LayerContent
from ocibake.layers.passwd import APP_GID, APP_UID, APP_USER, NOLOGIN, default_users, render_group, render_passwd
from ocibake.layers.tar import Entry


def _rows(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _append(text: str, line: str, name: str, ident: int, id_field: int, what: str) -> str:
    for row in _rows(text):
        if len(row) <= id_field:
            continue
        same_name, same_id = row[0] == name, row[id_field] == str(ident)
        if same_name and same_id:
            return text if text.endswith("\n") or not text else text + "\n"  # already there: keep the base's
        if same_name or same_id:
            raise InputError(
                f"the base's {what} already has {row[0]} with id {row[id_field]}; ocibake's app user is {name} {ident}",
                hint=f"use a base without that entry (the app always runs as {APP_UID}:{APP_GID})",
            )
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line


def passwd_layer_on_base(passwd: str | None, group: str | None, shell: str = NOLOGIN) -> LayerContent:
    """The base's passwd/group (or ocibake's defaults where the base has none) with goapp appended."""
    home = f"/home/{APP_USER}"
    users = default_users()
    passwd_text = _append(
        passwd if passwd is not None else render_passwd(users[:1]).decode(),
        f"{APP_USER}:x:{APP_UID}:{APP_GID}:Go application:{home}:{shell}\n",
        APP_USER,
        APP_UID,
        2,
        "/etc/passwd",
    )
    group_text = _append(
        group if group is not None else render_group(users[:1]).decode(),
        f"{APP_USER}:x:{APP_GID}:\n",
        APP_USER,
        APP_GID,
        2,
        "/etc/group",
    )
    entries = (
        Entry.file("/etc/passwd", passwd_text.encode()),
        Entry.file("/etc/group", group_text.encode()),
        Entry.dir(home, mode=0o755, uid=APP_UID, gid=APP_GID),
        Entry.dir("/tmp", mode=0o1777),
    )
    kept = len(_rows(passwd_text)) - 1
    return LayerContent(
        kind="passwd",
        entries=entries,
        created_by=f"ocibake: {APP_USER} {APP_UID}:{APP_GID} appended to the base's /etc/passwd and "
        f"/etc/group ({kept} entries kept), /tmp",
        record={"users": [{"name": APP_USER, "uid": APP_UID, "gid": APP_GID}], "base_entries_kept": kept},
    )
