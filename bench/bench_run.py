"""`make bench` for `ocibake run`: the first run of an image (its layers unpacked) against later runs (cached), the
time to the first /health answer, and under `--watch` the time from saving a one-line change to the new answer,
against `go build` of the same change.

Medians of 5 runs of the sample service (production target, UPX as the default), in a cache of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "services" / "emergency-service"
MAIN = "cmd/emergency-service/main.go"
RUNS = 5


def ocibake(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ocibake", *args], env=env, capture_output=True, text=True, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answer(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return str(json.loads(resp.read())["status"])
    except OSError:
        return None


def until(predicate: object, timeout: float = 300) -> float:
    """Seconds until ``predicate()`` is true."""
    assert callable(predicate)
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.02)
    return time.perf_counter() - t0


def timed(*args: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    ocibake(*args, env=env)
    return time.perf_counter() - t0


def first_answer(layout: Path, env: dict[str, str]) -> float:
    port = free_port()
    t0 = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-m", "ocibake", "run", str(layout), "-e", f"PORT={port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        until(lambda: answer(port))
        seconds = time.perf_counter() - t0
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    return seconds


def watch_edits(tmp: Path, env: dict[str, str]) -> tuple[float, float]:
    """(median seconds from a saved one-line change to the new answer, median `go build` of such a change)."""
    service = tmp / "svc"
    shutil.copytree(SAMPLE, service)
    port = free_port()
    argv = [sys.executable, "-m", "ocibake", "run", str(service), "--watch", "--output", str(tmp / "w"), "-e"]
    restarts, builds = [], []
    with subprocess.Popen(
        [*argv, f"PORT={port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ) as proc:
        until(lambda: answer(port) == "ok")
        main = service / MAIN
        for i in range(RUNS):
            time.sleep(1)
            main.write_text(re.sub(r'Status: "\w*"', f'Status: "ok{i}"', main.read_text(), count=1))
            restarts.append(until(lambda i=i: (answer(port) or "").startswith(f"ok{i}")))
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    go_env = {**env, "CGO_ENABLED": "0"}
    for i in range(RUNS):
        main.write_text(re.sub(r'Status: "\w*"', f'Status: "go{i}"', main.read_text(), count=1))
        t0 = time.perf_counter()
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp / "app"), "./cmd/emergency-service"],
            cwd=service,
            env=go_env,
            check=True,
        )
        builds.append(time.perf_counter() - t0)
    return statistics.median(restarts), statistics.median(builds)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp_dir:
        tmp = Path(tmp_dir)
        env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache")}
        ocibake("build", str(SAMPLE), "--output", str(tmp / "layout"), "--sbom", "none", env=env)
        first = timed("run", str(tmp / "layout"), "--", "--version", env=env)
        cached = statistics.median(timed("run", str(tmp / "layout"), "--", "--version", env=env) for _ in range(RUNS))
        health = statistics.median(first_answer(tmp / "layout", env) for _ in range(RUNS))
        restart, go_build = watch_edits(tmp, env)
    print("ocibake run (sample service)          seconds")
    print(f"  first run, --version (unpacks)      {first:8.2f}")
    print(f"  later runs, --version (cached)      {cached:8.2f}")
    print(f"  start to first /health answer       {health:8.2f}")
    print(f"  --watch: save to new answer         {restart:8.2f}")
    print(f"  go build of the same change         {go_build:8.2f}")


if __name__ == "__main__":
    main()
