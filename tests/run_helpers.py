"""Helpers for the `ocibake run` tests: start `ocibake run ...` in the background with its output in files, wait
for an HTTP answer or a line, stop it with a signal and get its exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO


@dataclass
class Running:
    proc: subprocess.Popen
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, what: str, check: Callable[[], object], timeout: float) -> object:
        """Poll ``check`` until it returns something true (exceptions count as not yet); fail with the output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = check()
                if value:
                    return value
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"no {what} (exit {self.proc.poll()}):\nstdout:\n{self.stdout()}\nstderr:\n{self.stderr()}"
                )
            time.sleep(0.1)

    def wait_for_line(self, text: str, timeout: float) -> None:
        self.wait_for(f"{text!r} on stderr", lambda: text in self.stderr(), timeout)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 5) -> tuple[int, float]:
        """Send ``sig``; (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started


def get_json(port: int, path: str = "/health") -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
        return json.loads(resp.read())


@contextmanager
def ocibake_run(tmp: Path, *args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> Iterator[Running]:
    """`ocibake run ARGS` in the background; killed at the end of the block if it still runs."""
    out, err = tmp / f"run-{time.monotonic_ns()}.out", tmp / f"run-{time.monotonic_ns()}.err"
    with out.open("wb") as o, err.open("wb") as e:
        argv = [*prefix, sys.executable, "-m", "ocibake", "run", *args]
        full_env = {**os.environ, **(env or {})}
        with subprocess.Popen(argv, cwd=REPO, env=full_env, stdin=subprocess.DEVNULL, stdout=o, stderr=e) as proc:
            try:
                yield Running(proc, out, err)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
