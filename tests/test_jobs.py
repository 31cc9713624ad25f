"""Stopping the toolchain programs of a run (toolchain/jobs.py): after the grace, SIGKILL reaches everything a
program started, not only the program, whose children would otherwise hold its output pipe and its thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ocibake.toolchain import jobs
from ocibake.toolchain.process import run_captured


def test_kill_all_ends_a_program_that_ignores_sigint_and_its_children():
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            # a shell that ignores SIGINT, and a child of it that holds the output pipe (as go's compiles do)
            outcome.append(run_captured(["sh", "-c", "trap '' INT; sleep 300 & wait"], job_slot=False))
        except BaseException as exc:  # noqa: BLE001 the outcome is what the test looks at
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(100):
            if jobs._live:
                break
            thread.join(0.05)
        assert jobs._live, "the program did not start"
        shell = next(iter(jobs._live)).pid
        _wait_for_child(shell, "sleep")  # the trap is set once the shell has started its child
        jobs.cancel_all()  # SIGINT: ignored by both
        thread.join(1)
        assert thread.is_alive(), outcome
        jobs.kill_all()
        thread.join(10)
        assert not thread.is_alive(), "the thread still waits for the program's children"
    finally:
        jobs.kill_all()
        jobs.reset()
        thread.join()
    assert len(outcome) == 1


def _wait_for_child(parent: int, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            except OSError:
                continue
            if not stat:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            ppid = stat[stat.rindex(")") + 2 :].split()[1]  # after ") ": state, ppid, ...
            if comm == name and ppid == str(parent):
                return
        time.sleep(0.05)
    raise AssertionError(f"{name} never started under {parent}")
