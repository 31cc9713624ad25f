"""What `ocibake run` starts inside the image, as Docker would: the command (Entrypoint + Cmd, or the arguments
given after `--` in place of Cmd, or /bin/sh with --shell), the environment (the config's Env, then --env-file, then
-e), the user (the config's User: numbers, or names looked up in the image's own /etc/passwd and /etc/group) and the
working directory. Everything is checked against the unpacked root before anything starts, so a missing program or
user is one clear error rather than a message from bubblewrap.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocibake.errors import InputError
from ocibake.toolchain.rootfs import resolve

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Command:
    """One process to start in the image."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    uid: int
    gid: int
    cwd: str


def in_root(rootfs: Path, path: str) -> Path:
    """The host path of the image's ``path`` (symlinks followed as the image sees them)."""
    return resolve(rootfs, [p for p in path.split("/") if p], follow_last=True)


def _table(rootfs: Path, name: str) -> list[list[str]]:
    try:
        text = in_root(rootfs, f"/etc/{name}").read_text(errors="replace")
    except (OSError, InputError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _lookup(rootfs: Path, table: str, value: str, user: str) -> tuple[int, list[str]]:
    """(id, entry) for a number or a name in /etc/passwd or /etc/group of the image."""
    rows = _table(rootfs, table)
    if value.isdigit():
        return int(value), next((r for r in rows if len(r) > 2 and r[2] == value), [])
    for row in rows:
        if row[0] == value and len(row) > 2 and row[2].isdigit():
            return int(row[2]), row
    raise InputError(
        f"the image's user {user!r}: {value!r} is not in its /etc/{table}",
        hint="give the user as numbers (uid:gid), or add it to the image",
    )


def user_ids(rootfs: Path, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of the config's User (empty: root)."""
    name, _, group = (user or "0").partition(":")
    uid, entry = _lookup(rootfs, "passwd", name, user)
    gid = int(entry[3]) if len(entry) > 3 and entry[3].isdigit() else uid if name.isdigit() else 0
    if group:
        gid = _lookup(rootfs, "group", group, user)[0]
    home = entry[5] if len(entry) > 5 and entry[5] else "/"
    return uid, gid, home


def parse_env_pairs(pairs: Sequence[str], where: str, host: Mapping[str, str]) -> dict[str, str]:
    """K=V entries; a bare K takes the value of the host's K (and is left out when the host has none), as Docker."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key or any(c.isspace() for c in key):
            # the name only: the value may be a secret
            raise InputError(f"{where}: {key!r} is not a variable name (NAME=VALUE)", hint="e.g. -e ENV=production")
        if sep:
            env[key] = value
        elif key in host:
            env[key] = host[key]
    return env


def read_env_file(path: Path, host: Mapping[str, str]) -> dict[str, str]:
    """An --env-file: NAME=VALUE lines; blank lines and lines starting with # are skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(
            f"--env-file {path}: {exc.strerror}", hint="give a readable file of NAME=VALUE lines"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"--env-file {path}: not UTF-8 text", hint="give a file of NAME=VALUE lines") from None
    entries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return parse_env_pairs(entries, f"--env-file {path}", host)


def environment(runtime: Mapping[str, Any], extra: Mapping[str, str], home: str) -> dict[str, str]:
    env = parse_env_pairs([str(e) for e in runtime.get("Env") or []], "the image's Env", {})
    env.update(extra)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    env.setdefault("HOSTNAME", "ocibake")
    return env


def find_program(rootfs: Path, program: str, env: Mapping[str, str]) -> str:
    """The program as it will be executed: an absolute path that exists in the image, or a name found on PATH."""
    candidates = [program] if "/" in program else [f"{d}/{program}" for d in env.get("PATH", "").split(":") if d]
    for candidate in candidates:
        try:
            host = in_root(rootfs, candidate if candidate.startswith("/") else f"/{candidate}")
        except InputError:
            continue
        if host.is_file() and os.access(host, os.X_OK):
            return candidate
    raise InputError(
        f"{program!r} is not an executable in the image" + ("" if "/" in program else " (not found on its PATH)"),
        hint="check the image's Entrypoint and Cmd, or the arguments given after --",
    )


def command(
    rootfs: Path,
    runtime: Mapping[str, Any],
    args: Sequence[str],
    extra_env: Mapping[str, str],
    shell: bool = False,
    entrypoint: str | None = None,
) -> Command:
    """The command to start: Entrypoint + (args or Cmd), or /bin/sh + args with ``shell``; ``entrypoint`` replaces
    the Entrypoint and drops the Cmd (as `docker run --entrypoint`)."""
    uid, gid, home = user_ids(rootfs, str(runtime.get("User") or ""))
    env = environment(runtime, extra_env, home)
    if shell:
        try:
            has_sh = in_root(rootfs, "/bin/sh").is_file()
        except InputError:
            has_sh = False
        if not has_sh:
            raise InputError(
                "the image has no /bin/sh for --shell",
                hint="production images hold only the app; a shell is in production-alpine and development images",
            )
        argv = ["/bin/sh", *args]
    else:
        cmd = [] if entrypoint is not None else [str(a) for a in runtime.get("Cmd") or []]
        argv = [entrypoint] if entrypoint is not None else [str(a) for a in runtime.get("Entrypoint") or []]
        argv += list(args) if args else cmd
    if not argv:
        raise InputError("the image has no Entrypoint and no Cmd", hint="give the command after --")
    argv[0] = find_program(rootfs, argv[0], env)
    cwd = str(runtime.get("WorkingDir") or "/")
    try:
        cwd_ok = in_root(rootfs, cwd).is_dir()
    except InputError:
        cwd_ok = False
    if not cwd.startswith("/") or not cwd_ok:
        raise InputError(f"the image's WorkingDir {cwd!r} is not a directory in it", hint="the image is incomplete")
    return Command(tuple(argv), env, uid, gid, cwd)
