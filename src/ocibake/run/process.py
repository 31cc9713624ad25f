"""The running app: bubblewrap started with the app's output streaming straight through, the host pid of the app
learnt from bubblewrap's `--info-fd`, signals forwarded to it, and its exit code (128 + N when signal N ended it).

bubblewrap forwards no signal: sent to bwrap, SIGINT would kill bwrap and, through --die-with-parent, the app with
SIGKILL, with no chance to stop gracefully. So ocibake catches SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
while the app runs and sends each to the app itself (pid 2 of its pid namespace, under bubblewrap's init, so the
kernel's default actions apply as they would outside). A third Ctrl-C kills it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

from ocibake.errors import ToolchainError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
KILL_AFTER_INTERRUPTS = 3


class App:
    """bubblewrap running one command; a context manager that never leaves the sandbox running."""

    def __init__(
        self, argv_for_fd: Callable[[int], list[str]], env: Mapping[str, str] | None = None, no_stdin: bool = False
    ):
        read_fd, write_fd = os.pipe()
        try:
            # a process group of its own: Ctrl-C at a terminal reaches ocibake alone (which sends it on to the app);
            # bubblewrap would die of it and take the app down with SIGKILL
            self.proc = subprocess.Popen(
                argv_for_fd(write_fd),
                pass_fds=(write_fd,),
                env=dict(env or {}),
                process_group=0,
                stdin=subprocess.DEVNULL if no_stdin else None,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as info:
            data = info.read()  # bubblewrap closes it once the sandbox is set up (or when it fails)
        self.init_pid = 0
        with contextlib.suppress(ValueError):
            self.init_pid = int(json.loads(data or b"{}").get("child-pid") or 0)
        if not self.init_pid:
            code = self.proc.wait()
            raise ToolchainError(
                f"bubblewrap could not set up the sandbox (exit {code}; its message is above)",
                hint="unprivileged user namespaces must be allowed (`sysctl -w user.max_user_namespaces=15000`)",
            )
        self.interrupts = 0

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the sandbox if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()  # --die-with-parent takes the app with it
        self.proc.wait()

    def app_pid(self, timeout: float = 2.0) -> int:
        """The host pid of the app (the only child of bubblewrap's init); 0 when it has gone."""
        deadline = time.monotonic() + timeout
        while True:
            children = children_of(self.init_pid)
            if children:
                return int(children[0])
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return 0
            time.sleep(0.01)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the app (SIGKILL to the whole sandbox at the third SIGINT)."""
        if sig == signal.SIGINT:
            self.interrupts += 1
            if self.interrupts >= KILL_AFTER_INTERRUPTS:
                self.proc.kill()
                return
        pid = self.app_pid()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid or self.init_pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        """The app's exit code (bubblewrap passes it on, 128 + N for signal N)."""
        code = self.proc.wait(timeout)
        return 128 - code if code < 0 else code

    def running(self) -> bool:
        return self.proc.poll() is None


def children_of(pid: int) -> list[int]:
    """The children of ``pid``: /proc/PID/task/PID/children, or where the kernel lacks it (CONFIG_PROC_CHILDREN),
    every process whose parent it is."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        if not os.path.exists(f"/proc/{pid}"):
            return []
    except OSError:
        return []
    return scan_children(pid)


def scan_children(pid: int) -> list[int]:
    """Every process whose parent is ``pid``, from /proc/*/stat."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == str(pid):
                found.append(int(entry))
    return sorted(found)


@contextlib.contextmanager
def forwarding(deliver: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, the signals in FORWARDED go to ``deliver`` (which sends them on to the app), not to
    ocibake."""

    def handler(signum: int, frame: FrameType | None) -> None:
        deliver(signum)

    previous = {sig: signal.signal(sig, handler) for sig in FORWARDED}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
