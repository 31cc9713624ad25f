"""Run a command inside an unpacked image rootfs, rootless: bubblewrap, or `unshare` where bubblewrap is missing.

What the command sees: a read-only root made of the image's top-level entries bound read-only onto an empty tmpfs
(the cached rootfs itself is never written), a fresh /proc (own pid namespace), a minimal /dev, a tmpfs /tmp, and the
binds it was given (read-only unless marked writable). Nothing else of the host is visible. It has its own user
(mapped to uid/gid 0 inside), mount, pid, ipc and uts namespaces, and its own network namespace with only a loopback
device unless ``network=True``; with network, the host's /etc/resolv.conf and /etc/hosts are bound read-only so name
resolution works, and nothing else. The environment is exactly what the caller passes, plus PWD. The sandbox dies with
ocibake (bwrap --die-with-parent; unshare --kill-child under setpriv --pdeathsig).

Which backend works is found once per process by running `true` in each; if neither can create a user namespace the
error says why and what to do.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ocibake.errors import ToolchainError
from ocibake.toolchain.process import command_line
from ocibake.workdirs import alive

NO_SANDBOX_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`) and allow unprivileged user namespaces "
    "(`sysctl -w user.max_user_namespaces=15000`; on Debian 10 and older also "
    "`kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04+ `kernel.apparmor_restrict_unprivileged_userns=0` "
    "or an AppArmor profile for bwrap), or build with --toolchain local"
)
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
    rootfs: Path
    argv: Sequence[str]
    env: Mapping[str, str]
    binds: Sequence[Bind] = field(default_factory=tuple)
    cwd: str = "/"
    network: bool = False


def _mount_plan(run: SandboxRun) -> list[tuple[str, str, str]]:
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
    for kind, src, target in _mount_plan(run):
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
    plan = _mount_plan(run)
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


RISKY_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH


def strip_privilege_bits(root: Path) -> None:
    """Clear setuid and setgid bits, and write permission for group and others, under a directory the sandbox could
    write (the cache is used again by later builds: nobody else may change what is in it).

    Inside the sandbox the toolchain is uid 0 of its own user namespace, which is the invoking user outside: files it
    makes in /out or /cache are owned by that user on the host, and as their owner it may chmod u+s them. Run by root,
    that would leave a setuid-root program in a cache other users might reach. Nothing ocibake keeps needs those bits,
    so they are removed as soon as the sandbox has exited (nothing of it still runs: it had its own pid namespace).
    """
    _own_dir(str(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                mode |= 0o700  # a directory the walk cannot list or enter would hide what is inside
            if mode & ~RISKY_BITS != stat.S_IMODE(st.st_mode):
                os.chmod(path, mode & ~RISKY_BITS)


def _own_dir(path: str) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode) and (st.st_mode & 0o700 != 0o700 or st.st_mode & RISKY_BITS):
        os.chmod(path, (stat.S_IMODE(st.st_mode) | 0o700) & ~RISKY_BITS)


RUNNING_MARK = ".ocibake-sandbox-running-"


def _mark_running(directory: Path) -> Path:
    """A marker in a writable bind while the sandbox runs. A marker left by a process that is gone means that run was
    killed (SIGKILL) before it could clear the bits: clear them now, before the directory is used again."""
    for mark in directory.glob(RUNNING_MARK + "*"):
        pid = mark.name[len(RUNNING_MARK) :]
        if pid.isdigit() and not alive(int(pid)):
            strip_privilege_bits(directory)
            mark.unlink(missing_ok=True)
    mark = directory / f"{RUNNING_MARK}{os.getpid()}"
    mark.touch()
    return mark


class Sandbox:
    """Picks a working backend (bwrap, else unshare) and runs commands in it.

    ``bwrap`` and ``unshare`` are program names looked up on PATH or paths; None turns a backend off (tests use that
    to take the fallback path).
    """

    _probed: ClassVar[dict[tuple, tuple[str, str]]] = {}  # which backend works, probed once per process

    def __init__(self, bwrap: str | None = "bwrap", unshare: str | None = "unshare"):
        self.bwrap = shutil.which(bwrap) if bwrap else None
        self.unshare = shutil.which(unshare) if unshare else None
        self._tools = {
            name: shutil.which(name, path=os.defpath + ":/usr/sbin:/sbin") or ""
            for name in ("sh", "mount", "mkdir", "ln", "env", "setpriv", "hostname")
        }

    def backend(self) -> str:
        """ "bwrap" or "unshare", whichever can create a sandbox here; else a ToolchainError saying why."""
        key = (self.bwrap, self.unshare)
        if key not in Sandbox._probed:
            Sandbox._probed[key] = self._probe()
        backend, why = Sandbox._probed[key]
        if not backend:
            raise ToolchainError(
                f"cannot create a rootless sandbox for the toolchain image: {why}", hint=NO_SANDBOX_HINT
            )
        return backend

    def _probe(self) -> tuple[str, str]:
        reasons = []
        with tempfile.TemporaryDirectory(prefix="ocibake-probe-") as tmp:
            root = Path(tmp) / "root"
            root.mkdir()
            candidates = []
            if self.bwrap:
                candidates.append(
                    (
                        "bwrap",
                        [
                            self.bwrap,
                            "--unshare-user",
                            "--unshare-pid",
                            "--unshare-net",
                            "--die-with-parent",
                            "--ro-bind",
                            "/",
                            "/",
                            "--",
                            "true",
                        ],
                    )
                )
            else:
                reasons.append("bubblewrap (bwrap) is not installed")
            if self.unshare:
                if not all(self._tools[t] for t in ("sh", "mount", "mkdir", "ln", "env")):
                    reasons.append("unshare needs sh, mount, mkdir, ln and env, and some are missing")
                else:
                    candidates.append(
                        (
                            "unshare",
                            [
                                self.unshare,
                                "--user",
                                "--map-root-user",
                                "--mount",
                                "--pid",
                                "--fork",
                                "--net",
                                "--",
                                self._tools["mount"],
                                "-t",
                                "tmpfs",
                                "none",
                                str(root),
                            ],
                        )
                    )
            else:
                reasons.append("unshare is not installed")
            for name, argv in candidates:
                try:
                    proc = subprocess.run(
                        argv,
                        check=False,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        timeout=30,
                        env={},
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    reasons.append(f"{name}: {exc}")
                    continue
                if proc.returncode == 0:
                    return name, ""
                out = " ".join(proc.stdout.split())[:300]
                reasons.append(f"{name} failed: {out or 'exit ' + str(proc.returncode)}")
        return "", "; ".join(reasons)

    def argv(self, run: SandboxRun, stage: Path) -> list[str]:
        if self.backend() == "bwrap":
            return bwrap_argv(self.bwrap, run)  # type: ignore[arg-type]
        return unshare_argv(self.unshare, run, stage, self._tools)  # type: ignore[arg-type]

    def run(
        self, run: SandboxRun, *, what: str, timeout: float | None = None, shown_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run and return the finished process (stdout and stderr together); a failure is a ToolchainError with the
        command (as run inside the sandbox) and its output."""
        with tempfile.TemporaryDirectory(prefix="ocibake-sandbox-") as stage:
            argv = self.argv(run, Path(stage))
            marks = [_mark_running(Path(b.source)) for b in run.binds if b.writable and Path(b.source).is_dir()]
            try:
                proc = subprocess.run(
                    argv,
                    check=False,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    env={},
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired as exc:
                out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                raise ToolchainError(
                    f"{what} timed out after {timeout:.0f}s in the toolchain sandbox: "
                    f"{command_line(run.argv, shown_env)}",
                    detail=out.strip(),
                ) from exc
            finally:
                for bind in run.binds:
                    if bind.writable:
                        strip_privilege_bits(Path(bind.source))
                for mark in marks:
                    mark.unlink(missing_ok=True)
        if proc.returncode != 0:
            hint = None
            if proc.returncode in (126, 127) or "execvp" in proc.stdout or "failed to execute" in proc.stdout:
                hint = (
                    "the program cannot start in the sandbox: a script whose interpreter the image lacks, or a "
                    "binary for another architecture than this host's"
                )
            raise ToolchainError(
                f"{what} failed (exit {proc.returncode}) in the toolchain sandbox "
                f"({self.backend()}): {command_line(run.argv, shown_env)}",
                detail=proc.stdout.strip(),
                hint=hint,
            )
        return proc
