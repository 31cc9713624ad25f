"""How one sandboxed run becomes a command line for each backend: the mount plan both follow, bubblewrap's
arguments, and the shell script that builds the same root by hand with `unshare` and `mount`; and the short commands
that probe whether a backend can create a user namespace here at all.

sandbox.py picks the backend and runs the command; nothing here starts a process.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEV_NODES = ("null", "zero", "full", "random", "urandom")
# Files of the host shown (read-only) only when network is allowed.
NETWORK_FILES = ("/etc/resolv.conf", "/etc/hosts")
# The sandbox's own host name (not the build host's).
HOSTNAME = "ocibake"
# Top-level entries the sandbox provides itself.
PROVIDED = {"proc", "dev", "tmp", "sys"}


@dataclass(frozen=True)
class Bind:
    """A host directory or file shown at ``target`` inside the sandbox."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class SandboxRun:
    """One command to run in the sandbox: the unpacked image it sees as its root, and what else it gets."""

    rootfs: Path
    argv: Sequence[str]
    env: Mapping[str, str]
    binds: Sequence[Bind] = field(default_factory=tuple)
    cwd: str = "/"
    network: bool = False


def mount_plan(run: SandboxRun) -> list[tuple[str, str, str]]:
    """(kind, host source, sandbox target) in order: kind is dir-ro, file-ro, symlink, dir-rw, file-rw, mkdir.

    The root is a tmpfs holding the image's top-level entries; a directory that must receive a bind of its own (/etc
    when the network is on) is expanded one level the same way.
    """
    extra_targets = [b.target for b in run.binds]
    extra: list[tuple[Path, str]] = []
    if run.network:
        extra = [(Path(f), f) for f in NETWORK_FILES if os.path.exists(f)]
    expand = {t.strip("/").split("/")[0] for _, t in extra}
    plan: list[tuple[str, str, str]] = []

    def add_dir_entries(host_dir: Path, target_dir: str, skip: set[str]) -> None:
        for name in sorted(os.listdir(host_dir)):
            if name in skip:
                continue
            src = host_dir / name
            target = f"{target_dir.rstrip('/')}/{name}"
            if target in extra_targets or any(t == target for _, t in extra):
                continue
            if os.path.islink(src):
                plan.append(("symlink", os.readlink(src), target))
            elif target.strip("/") in expand:
                plan.append(("mkdir", "", target))
                add_dir_entries(src, target, set())
            elif src.is_dir():
                plan.append(("dir-ro", str(src), target))
            elif src.is_file():
                plan.append(("file-ro", str(src), target))
            # sockets, devices and the like in an image are not shown

    add_dir_entries(run.rootfs, "/", PROVIDED)
    for src, target in extra:
        plan.append(("file-ro", str(src), target))
    for b in run.binds:
        kind = "dir" if Path(b.source).is_dir() else "file"
        plan.append((f"{kind}-{'rw' if b.writable else 'ro'}", str(b.source), b.target))
    return plan


def bwrap_argv(bwrap: str, run: SandboxRun) -> list[str]:
    argv = [
        bwrap,
        "--unshare-user",
        "--uid",
        "0",
        "--gid",
        "0",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--hostname",
        HOSTNAME,
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
    ]
    if not run.network:
        argv.append("--unshare-net")
    for key, value in sorted(run.env.items()):
        argv += ["--setenv", key, value]
    argv += ["--tmpfs", "/"]
    for kind, src, target in mount_plan(run):
        if kind == "symlink":
            argv += ["--symlink", src, target]
        elif kind == "mkdir":
            argv += ["--dir", target]
        elif kind.endswith("-ro"):
            argv += ["--ro-bind", src, target]
        else:
            argv += ["--bind", src, target]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--chmod",
        "1777",
        "/tmp",
        "--remount-ro",
        "/",
        "--chdir",
        run.cwd,
        "--",
        *run.argv,
    ]
    return argv


def _locked_flags(path: str, skip: tuple[str, ...] = ()) -> str:
    """Mount flags a user namespace may not drop when remounting a bind."""
    flags = os.statvfs(path).f_flag
    names = [
        (os.ST_NOSUID, "nosuid"),
        (os.ST_NODEV, "nodev"),
        (os.ST_NOEXEC, "noexec"),
        (os.ST_NOATIME, "noatime"),
        (os.ST_NODIRATIME, "nodiratime"),
        (os.ST_RELATIME, "relatime"),
    ]
    return "".join(f",{name}" for bit, name in names if flags & bit and name not in skip)


def unshare_script(run: SandboxRun, stage: Path, unshare: str, tools: Mapping[str, str]) -> str:
    """The shell script run as root of a new user+mount namespace: build the root under ``stage``, then enter it.

    Each line that starts a program costs a millisecond or two, so directories are made in one call, files with the
    shell's own `: >`, and each bind is mounted read-only (nosuid, nodev) in one `mount` call."""
    q = shlex.quote
    mount, mkdir, ln, env = (tools[k] for k in ("mount", "mkdir", "ln", "env"))
    plan = mount_plan(run)
    dirs = [t for kind, _, t in plan if kind in ("mkdir", "dir-ro", "dir-rw")]
    dirs += sorted({os.path.dirname(t) for kind, _, t in plan if kind.startswith("file")} - {"/"})
    s = [
        "set -e",
        f"S={q(str(stage))}",
        f'{mount} -t tmpfs -o mode=0755 ocibake-root "$S"',
        f"{mkdir} -p " + " ".join(f'"$S"{q(d)}' for d in [*dirs, "/proc", "/dev", "/tmp"]),
    ]
    for kind, src, target in plan:
        t = f'"$S"{q(target)}'
        if kind == "symlink":
            s.append(f"{ln} -s {q(src)} {t}")
        elif kind != "mkdir":
            if kind.startswith("file"):
                s.append(f": > {t}")
            flags = f"{'ro,' if kind.endswith('-ro') else ''}nosuid,nodev{_locked_flags(src, skip=('nosuid', 'nodev'))}"
            s.append(f"{mount} --rbind -o {flags} {q(src)} {t}")
    s.append(f'{mount} -t proc -o nosuid,nodev,noexec proc "$S/proc"')
    s.append(f'{mount} -t tmpfs -o mode=0755,nosuid dev "$S/dev"')
    s.extend(
        f': > "$S/dev/{node}"; {mount} --bind /dev/{node} "$S/dev/{node}"'
        for node in DEV_NODES
        if os.path.exists(f"/dev/{node}")
    )
    s.append(
        f'{ln} -s /proc/self/fd "$S/dev/fd"; {ln} -s /proc/self/fd/0 "$S/dev/stdin"; '
        f'{ln} -s /proc/self/fd/1 "$S/dev/stdout"; {ln} -s /proc/self/fd/2 "$S/dev/stderr"'
    )
    s.append(f'{mount} -t tmpfs -o mode=1777,nosuid,nodev tmp "$S/tmp"')
    s.append(f'{mount} -o remount,ro,bind "$S"')
    if tools.get("hostname"):
        s.append(f"{tools['hostname']} {HOSTNAME}")
    env_args = " ".join(q(f"{k}={v}") for k, v in sorted({**run.env, "PWD": run.cwd}.items()))
    # No way to gain privileges through exec (unshare needs its capabilities to enter the root, so unlike bwrap
    # --cap-drop ALL they stay, within this user namespace only).
    drop = f"{tools['setpriv']} --no-new-privs -- " if tools.get("setpriv") else ""
    s.append(
        f'exec {env} -i {env_args} {drop}{q(unshare)} --root="$S" --wd={q(run.cwd)} -- '
        + " ".join(q(a) for a in run.argv)
    )
    return "\n".join(s) + "\n"


def unshare_argv(unshare: str, run: SandboxRun, stage: Path, tools: Mapping[str, str]) -> list[str]:
    ns = [
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--ipc",
        "--uts",
    ]
    if not run.network:
        ns.append("--net")
    prefix = [tools["setpriv"], "--pdeathsig", "KILL", "--"] if tools.get("setpriv") else []
    return [*prefix, unshare, *ns, "--", tools["sh"], "-c", unshare_script(run, stage, unshare, tools)]


def bwrap_probe_argv(bwrap: str) -> list[str]:
    """The smallest bwrap sandbox: `true` in new user, pid and network namespaces."""
    return [
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--",
        "true",
    ]


def unshare_probe_argv(unshare: str, mount: str, root: Path) -> list[str]:
    """The smallest unshare sandbox: a tmpfs mounted on ``root`` as root of new user, mount, pid and network
    namespaces."""
    return [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "--pid",
        "--fork",
        "--net",
        "--",
        mount,
        "-t",
        "tmpfs",
        "none",
        str(root),
    ]
