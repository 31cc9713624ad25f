"""The image's Healthcheck, run as Docker runs it: the test (CMD or CMD-SHELL) started inside the app's own
namespaces (nsenter into its user, mount, pid, ipc and uts namespaces, and its network when it has its own), as the
app's user, with the app's environment and working directory; every StartInterval during the start period (a
success there makes it healthy, a failure does not count), then every Interval; a probe that outlasts Timeout
fails; Retries failures in a row make it unhealthy. Each change of state is reported (starting, healthy, unhealthy).

A non-root user cannot enter the namespaces bubblewrap made for the app (nsenter's setns is refused: the app's user
namespace leaves the caller no capability over them). Then, on the host's network, each probe runs in a sandbox of
its own on the same image, as the same user, with the same environment and working directory, so it reaches the
app's ports on localhost as a probe inside would; it does not see the app's /tmp. With `--network none` the app's
network cannot be reached that way, and the health check is reported as not run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ocibake.run.command import Command

NANO = 1e9
# Docker's defaults (seconds), for what the config leaves out
DEFAULTS = {"Interval": 30.0, "Timeout": 30.0, "StartPeriod": 0.0, "StartInterval": 5.0}
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class Healthcheck:
    argv: tuple[str, ...]
    interval: float
    timeout: float
    start_period: float
    start_interval: float
    retries: int


def _seconds(check: Mapping[str, Any], key: str) -> float:
    value = check.get(key)
    return value / NANO if isinstance(value, int) and value > 0 else DEFAULTS[key]


def healthcheck(runtime: Mapping[str, Any], interval: float | None = None) -> Healthcheck | None:
    """The config's Healthcheck, or None when it has none (or `NONE`); ``interval`` (seconds) in place of the
    config's Interval, as `docker run --health-interval` gives."""
    check = runtime.get("Healthcheck")
    if not isinstance(check, dict):
        return None
    test = [str(t) for t in check.get("Test") or []]
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        argv: tuple[str, ...] = ("/bin/sh", "-c", " ".join(test[1:]))
    elif test[0] == "CMD":
        argv = tuple(test[1:])
    else:
        return None
    retries = check.get("Retries")
    return Healthcheck(
        argv,
        interval or _seconds(check, "Interval"),
        _seconds(check, "Timeout"),
        _seconds(check, "StartPeriod"),
        _seconds(check, "StartInterval"),
        retries if isinstance(retries, int) and retries > 0 else DEFAULT_RETRIES,
    )


DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# the bounds of --health-interval: Docker's lower one; an upper one that a wait can take
SHORTEST_INTERVAL = 0.001
LONGEST_INTERVAL = 8760 * 3600.0


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration as `docker run --health-interval` takes it (`30s`, `1m`, `500ms`, `1h30m`: a unit
    on every number), or None when ``text`` is not one."""
    parts = list(DURATION_PART.finditer(text))
    if not parts or "".join(m.group(0) for m in parts) != text:
        return None
    return sum(float(m.group(1)) * UNIT_SECONDS[m.group(2)] for m in parts)


def probe_argv(nsenter: str, pid: int, own_network: bool, argv: Sequence[str]) -> list[str]:
    """nsenter into the app's namespaces, keeping the invoking user (which is the app's user there)."""
    namespaces = ["--user", "--mount", "--pid", "--ipc", "--uts", *(["--net"] if own_network else [])]
    return [nsenter, f"--target={pid}", "--preserve-credentials", *namespaces, "--root", "--wd", "--", *argv]


def probe(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[bool, str]:
    """Run one probe; (passed, why not)."""
    with subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    ) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False, f"timed out after {timeout:g}s"
    if proc.returncode == 0:
        return True, ""
    text = " ".join(out.decode(errors="replace").split())[:200]
    return False, f"exit {proc.returncode}" + (f": {text}" if text else "")


NOT_RUN = "not run"


def _setns_refused(why: str) -> bool:
    return "reassociate to namespace" in why and "not permitted" in why


class _Probing:
    """Monitor's probe, by nsenter or, where that is refused, in a sandbox of its own (a mixin, to keep Monitor
    short)."""

    entering: bool
    sandboxed: Callable[[Sequence[str]], list[str]] | None
    nsenter: str
    own_network: bool
    check: Healthcheck
    cmd: Command
    report: Callable[[str], None]

    def _probe(self, pid: int) -> tuple[bool, str]:
        if self.entering:
            passed, why = probe(probe_argv(self.nsenter, pid, self.own_network, self.check.argv), self.cmd.env,
                                self.check.timeout)  # fmt: skip
            if passed or not _setns_refused(why):
                return passed, why
            self.entering = False
            if self.sandboxed is None:
                self.report("health: not checked (a non-root user cannot enter the app's own network namespace)")
                return False, NOT_RUN
            self.report("health: probes run in a sandbox of their own on the same image (a non-root user cannot "
                        "enter the app's namespaces)")  # fmt: skip
        assert self.sandboxed is not None
        return probe(self.sandboxed(self.check.argv), self.cmd.env, self.check.timeout)


class Monitor(threading.Thread, _Probing):
    """Runs the health check while the app runs; ``report`` gets each state change as a line."""

    def __init__(
        self,
        check: Healthcheck,
        cmd: Command,
        app_pid: Callable[[], int],
        own_network: bool,
        report: Callable[[str], None],
        sandboxed: Callable[[Sequence[str]], list[str]] | None = None,
    ):
        """``sandboxed``: the argv that runs a probe in a sandbox of its own (for a non-root user on the host's
        network); None where there is none."""
        super().__init__(name="healthcheck", daemon=True)
        self.sandboxed = sandboxed
        self.entering = True  # nsenter into the app's namespaces; False once that is refused
        self.check, self.cmd, self.app_pid, self.own_network, self.report = check, cmd, app_pid, own_network, report
        self.nsenter = shutil.which("nsenter") or "nsenter"
        self.stopped = threading.Event()
        self.state = "starting"

    def stop(self) -> None:
        self.stopped.set()

    def _set(self, state: str, why: str = "") -> None:
        if state != self.state:
            self.state = state
            self.report(f"health: {state}" + (f" ({why})" if why else ""))

    def run(self) -> None:
        started = time.monotonic()
        failures = 0
        self.report("health: starting")
        while True:
            in_start = time.monotonic() - started < self.check.start_period and self.state == "starting"
            if self.stopped.wait(self.check.start_interval if in_start else self.check.interval):
                return
            pid = self.app_pid()
            if not pid:
                return
            passed, why = self._probe(pid)
            if self.stopped.is_set() or why == NOT_RUN:
                return
            if passed:
                failures = 0
                self._set("healthy")
            elif not in_start:
                failures += 1
                if failures >= self.check.retries:
                    self._set("unhealthy", why)
