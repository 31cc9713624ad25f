"""Several services in one run: each one's work (build, and push) in its own thread, at most N at a time, every go and
upx process they start holding one of N job slots (toolchain/jobs.py); a failure stops only its own service.

Ctrl-C or SIGTERM in the main thread stops everything: every live go/upx gets SIGINT (SIGKILL after a grace period),
no new process starts and no layout is committed (bake checks before its commit), each build's staging directory is
removed as its thread unwinds. The outcomes collected so far are kept, and the interrupt is passed on to the caller
once every thread has finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from ocibake.errors import OcibakeError, RegistryError
from ocibake.toolchain import jobs

GRACE_SECONDS = 10.0  # after SIGINT, how long programs get to clean up before SIGKILL
INTERRUPTED = 130


@dataclass
class Outcome:
    """What became of one service: its result (whatever the task returned) or the error that stopped it."""

    service: str  # as given on the command line
    name: str  # the image name (the service's directory name until its spec is known)
    value: object = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        if self.error is None:
            return 0
        if isinstance(self.error, OcibakeError):
            return self.error.exit_code
        if isinstance(self.error, KeyboardInterrupt):
            return INTERRUPTED
        return 1

    @property
    def error_line(self) -> str:
        if self.error is None:
            return ""
        if isinstance(self.error, RegistryError) and (self.error.status or self.error.code):
            return _registry_cell(self.error)
        if isinstance(self.error, OcibakeError):
            line = self.error.message.splitlines()[0] if self.error.message else type(self.error).__name__
            detail = [d.strip() for d in (self.error.detail or "").splitlines() if d.strip() and not d.startswith("#")]
            if len(line) > 100 and ": " in line:
                line = line.split(": ", 1)[0]  # the command line itself is in the full error above
            return f"{line}: {detail[0]}" if detail and len(detail[0]) < 160 else line
        if isinstance(self.error, KeyboardInterrupt):
            return "interrupted"
        return f"internal error: {type(self.error).__name__}: {self.error}"


def _registry_cell(error: RegistryError) -> str:
    """A registry failure for the summary table: the cause in words, then which registry and request."""
    from ocibake.registry.errors import cause  # only after a registry failed: requests is loaded already

    parts = (error.message or "").splitlines()[0].split(": ") if error.message else []
    where = ": ".join(parts[:2]).removesuffix(" failed") if parts and parts[0].startswith("registry ") else ""
    return f"{cause(error)}; {where}" if where else cause(error)


@dataclass(frozen=True)
class Task:
    service: str
    name: str
    run: Callable[[], object]


def _timed(task: Task) -> tuple[object, BaseException | None, float]:
    started = time.monotonic()
    try:
        value, error = task.run(), None
    except BaseException as exc:  # noqa: BLE001 kept as the service's outcome; an interrupt is re-raised by run_all's caller
        value, error = None, exc
    return value, error, time.monotonic() - started


def run_all(tasks: Sequence[Task], limit: int) -> tuple[list[Outcome], BaseException | None]:
    """Run every task, at most ``limit`` at a time, with ``limit`` job slots for their processes. Returns the
    outcomes in the order of ``tasks`` and the interrupt (KeyboardInterrupt, SIGTERM's exception) that stopped the
    run, if any: the caller reports what finished, then raises it."""
    limit = max(1, limit)
    jobs.set_limit(limit)
    outcomes = [Outcome(t.service, t.name) for t in tasks]
    interrupt: BaseException | None = None
    pool = ThreadPoolExecutor(max_workers=min(limit, len(tasks)) or 1, thread_name_prefix="service")
    try:
        futures: dict[Future[tuple[object, BaseException | None, float]], int] = {
            pool.submit(_timed, t): i for i, t in enumerate(tasks)
        }
        pending = set(futures)
        try:
            while pending:
                _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        except BaseException as exc:  # noqa: BLE001 Ctrl-C, SIGTERM: stop every child, let every thread unwind
            interrupt = exc
            stop_everything(futures)
        for future, i in futures.items():
            if future.cancelled():
                outcomes[i].error = KeyboardInterrupt()
                continue
            outcomes[i].value, outcomes[i].error, outcomes[i].seconds = future.result()
            if interrupt is not None and outcomes[i].error is not None:
                outcomes[i].error = KeyboardInterrupt()  # stopped by the interrupt, whatever it broke first
    finally:
        pool.shutdown(wait=True)
        jobs.reset()
    return outcomes, interrupt


def stop_everything(futures: Collection[Future[Any]]) -> None:
    """Ctrl-C or SIGTERM in the main thread: SIGINT to every live go and upx, no new process and no layout commit
    from now on, the tasks not started cancelled, SIGKILL to what still runs after the grace period; returns once
    every thread has unwound."""
    jobs.cancel_all()
    for f in futures:
        f.cancel()
    _, still = wait(futures, timeout=GRACE_SECONDS)
    if still:
        jobs.kill_all()
        wait(futures)


def worst_exit_code(outcomes: Sequence[Outcome]) -> int:
    return max((o.exit_code for o in outcomes), default=0)
