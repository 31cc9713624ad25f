"""Stopping the toolchain programs of a run (toolchain/jobs.py): after the grace, SIGKILL reaches everything a
program started, not only the program, whose children would otherwise hold its output pipe and its thread."""

from __future__ import annotations

import threading

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
        jobs.cancel_all()  # SIGINT: ignored by both
        thread.join(1)
        assert thread.is_alive()
        jobs.kill_all()
        thread.join(10)
        assert not thread.is_alive(), "the thread still waits for the program's children"
    finally:
        jobs.kill_all()
        jobs.reset()
        thread.join()
    assert len(outcome) == 1
