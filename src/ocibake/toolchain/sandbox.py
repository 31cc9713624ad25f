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
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from ocibake.errors import ToolchainError
from ocibake.toolchain.cache import cache_home, private_mkdir
from ocibake.toolchain.process import command_line, timeout_output, tool_failure
from ocibake.toolchain.sandbox_backends import (
    Bind,
    SandboxRun,
    bwrap_argv,
    bwrap_probe_argv,
    unshare_argv,
    unshare_probe_argv,
)
from ocibake.workdirs import alive, force_rmtree, owned_stage

__all__ = ["Bind", "Sandbox", "SandboxRun", "strip_privilege_bits"]

NO_SANDBOX_HINT = (
    "install bubblewrap (`apt-get install bubblewrap`) and allow unprivileged user namespaces "
    "(`sysctl -w user.max_user_namespaces=15000`; on Debian 10 and older also "
    "`kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04+ `kernel.apparmor_restrict_unprivileged_userns=0` "
    "or an AppArmor profile for bwrap), or build with --toolchain local"
)

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
STAGES = "sandbox"  # in the cache: the empty directories sandbox runs mount their root on


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

    # which backend works (or why none does), probed once per process for each (bwrap, unshare) pair
    _probed: ClassVar[dict[tuple[str | None, str | None], tuple[str, str]]] = {}

    def __init__(self, bwrap: str | None = "bwrap", unshare: str | None = "unshare", cache: Path | None = None) -> None:
        self.cache = cache  # where runs stage (its sandbox/ part); None: ocibake's cache (cache_home())
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
        """(the first backend that runs a trivial sandbox here, "") or ("", why none does)."""
        with _stage(self.cache, "probe-") as tmp:
            root = tmp / "root"
            root.mkdir()
            candidates, reasons = self._probe_commands(root)
            for name, argv in candidates:
                failure = _probe_failure(name, argv)
                if failure is None:
                    return name, ""
                reasons.append(failure)
        return "", "; ".join(reasons)

    def _probe_commands(self, root: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
        """The probe command of each backend that can be tried (bwrap first), and why the others cannot."""
        candidates: list[tuple[str, list[str]]] = []
        reasons: list[str] = []
        if self.bwrap:
            candidates.append(("bwrap", bwrap_probe_argv(self.bwrap)))
        else:
            reasons.append("bubblewrap (bwrap) is not installed")
        if not self.unshare:
            reasons.append("unshare is not installed")
        elif not all(self._tools[t] for t in ("sh", "mount", "mkdir", "ln", "env")):
            reasons.append("unshare needs sh, mount, mkdir, ln and env, and some are missing")
        else:
            candidates.append(("unshare", unshare_probe_argv(self.unshare, self._tools["mount"], root)))
        return candidates, reasons

    def argv(self, run: SandboxRun, stage: Path) -> list[str]:
        """The command line that runs ``run`` with the working backend (unshare builds the root under ``stage``)."""
        backend = self.backend()
        program = self.bwrap if backend == "bwrap" else self.unshare
        assert program is not None  # backend() only names a backend whose program was found and ran
        if backend == "bwrap":
            return bwrap_argv(program, run)
        return unshare_argv(program, run, stage, self._tools)

    def run(
        self, run: SandboxRun, *, what: str, timeout: float | None = None, shown_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run and return the finished process (stdout and stderr together); a failure is a ToolchainError with the
        command (as run inside the sandbox) and its output."""
        with _stage(self.cache, "run-") as stage:
            argv = self.argv(run, stage)
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
                raise ToolchainError(
                    f"{what} timed out after {timeout:.0f}s in the toolchain sandbox: "
                    f"{command_line(run.argv, shown_env)}",
                    detail=timeout_output(exc).strip(),
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
            raise tool_failure(
                f"{what} failed (exit {proc.returncode}) in the toolchain sandbox "
                f"({self.backend()}): {command_line(run.argv, shown_env)}",
                proc.stdout,
                hint,
            )
        return proc


@contextmanager
def _stage(cache: Path | None, prefix: str) -> Iterator[Path]:
    """An empty directory for one sandbox run, in ocibake's private cache (never in $TMPDIR: a build writes nothing
    there), with an owner record, so the next run removes what a SIGKILLed one left."""
    stage = owned_stage(private_mkdir((cache or cache_home()) / STAGES), prefix)
    try:
        yield stage
    finally:
        force_rmtree(stage)


def _probe_failure(name: str, argv: list[str]) -> str | None:
    """Why the probe command of backend ``name`` failed, or None when it worked."""
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
        return f"{name}: {exc}"
    if proc.returncode == 0:
        return None
    out = " ".join(proc.stdout.split())[:300]
    return f"{name} failed: {out or 'exit ' + str(proc.returncode)}"
