"""The bubblewrap command line of `ocibake run`: the image's root read-only, its own user (the config's uid and gid,
mapped from the invoking user), pid, ipc and uts namespaces, a tmpfs /tmp, a fresh /proc and a minimal /dev, and
nothing of the host but, with the host's network, its /etc/resolv.conf and /etc/hosts (as Docker gives a container).

The network is the host's by default, so the ports the app opens are on localhost as `docker run -p P:P` would give;
`--network none` gives it a network namespace of its own with only a loopback device. bubblewrap's `--info-fd`
tells the host pid of the sandbox's init, through which signals reach the app and health checks join its namespaces.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ocibake.errors import ToolchainError
from ocibake.run.command import Command
from ocibake.toolchain.sandbox_backends import HOSTNAME, Bind, SandboxRun, mount_plan

EMULATOR_PATH = "/.ocibake-qemu"
NETWORKS = ("host", "none")


def bwrap_program() -> str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise ToolchainError(
            "bubblewrap (bwrap) is not installed; `ocibake run` starts images with it",
            hint="`apt-get install bubblewrap`, and allow unprivileged user namespaces "
            "(`sysctl -w user.max_user_namespaces=15000`)",
        )
    return bwrap


def run_argv(
    bwrap: str, rootfs: Path, cmd: Command, network: str, info_fd: int | None, emulator: str | None = None
) -> list[str]:
    """bwrap's arguments to start ``cmd`` in ``rootfs`` (under ``emulator``, a qemu-user, when given). The app's
    environment is not among them: bubblewrap is started with exactly that environment (App), which it hands on, so
    no value (a password given with -e) shows in `ps` or in the sandbox's /proc/1/cmdline."""
    binds = (Bind(Path(emulator), EMULATOR_PATH),) if emulator else ()
    plan = mount_plan(SandboxRun(rootfs, cmd.argv, cmd.env, binds, cmd.cwd, network == "host"))
    argv = [
        bwrap,
        "--unshare-user",
        "--uid",
        str(cmd.uid),
        "--gid",
        str(cmd.gid),
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
        *(["--info-fd", str(info_fd)] if info_fd is not None else []),
    ]
    if network == "none":
        argv.append("--unshare-net")
    argv += ["--tmpfs", "/"]
    for kind, src, target in plan:
        if kind == "symlink":
            argv += ["--symlink", src, target]
        elif kind == "mkdir":
            argv += ["--dir", target]
        else:
            argv += ["--ro-bind", src, target]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--chmod", "1777", "/tmp", "--remount-ro", "/"]
    argv += ["--chdir", cmd.cwd, "--", *([EMULATOR_PATH] if emulator else []), *cmd.argv]
    return argv
