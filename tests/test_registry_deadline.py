"""A registry that answers /v2/ and then drips a byte a second, or one that accepts connections and never answers,
ends push and pull with exit 5 in bounded time: under two minutes with the defaults, within --timeout when given.
The servers are tiny loopback socket servers of this file (the real registry cannot be made to drip)."""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO
from registry_servers import write_layout
from regtools import base_env


class Dripping(socketserver.ThreadingTCPServer):
    """GET /v2/ is answered at once; every other request gets `mode`: "headers" (a status line, then a header
    dripped a byte a second), "body" (headers, then a 1 MB body dripped a byte a second) or "silent" (nothing)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str):
        self.mode = mode
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        server: Dripping = self.server
        sock: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                return
            head += data
        line = head.split(b"\r\n", 1)[0].decode()
        if line.startswith("GET /v2/ "):
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\n"
                b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            )
            return
        try:
            if server.mode == "headers":
                sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            elif server.mode == "body":
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n"
                    b"Content-Length: 1000000\r\n\r\n{"
                )
            while not server.stop.wait(1.0):
                if server.mode != "silent":
                    sock.sendall(b"a")
        except OSError:
            return


@pytest.fixture
def layout(tmp_path) -> Path:
    write_layout(tmp_path / "L", tags=("v1",), layer_sizes=(2000,), seed=3)
    return tmp_path / "L"


def run(args: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return proc, time.monotonic() - started


def one_error(proc: subprocess.CompletedProcess) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ocibake: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return errors[0]


def test_dripping_server_ends_push_and_pull_with_exit_5_in_under_two_minutes_by_default(layout, tmp_path):
    """The defaults as a user has them (five retries): push and pull run at once against dripping servers."""
    env = {**base_env(tmp_path / "home"), "OCIBAKE_REGISTRY_RETRIES": "5", "OCIBAKE_REGISTRY_BACKOFF": "0.4"}
    headers, body = Dripping("headers"), Dripping("body")
    try:
        results: dict[str, tuple] = {}
        threads = [
            threading.Thread(target=lambda k=k, a=a: results.__setitem__(k, run(a, env)))
            for k, a in (
                ("push", ["push", str(layout), f"{headers.host}/drip/app"]),
                ("pull", ["pull", f"{body.host}/drip/app:v1", str(tmp_path / "pulled")]),
            )
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        headers.close(), body.close()
    for kind, (proc, seconds) in results.items():
        assert proc.returncode == 5, f"{kind}: {proc.stderr}"
        assert "stalled" in one_error(proc), proc.stderr
        assert seconds < 120, f"{kind} took {seconds:.0f}s"
    assert not (tmp_path / "pulled").exists()


@pytest.mark.parametrize("mode", ["silent", "body"])
def test_timeout_bounds_the_whole_operation(mode, layout, tmp_path):
    env = {**base_env(tmp_path / "home"), "OCIBAKE_REGISTRY_RETRIES": "20"}
    server = Dripping(mode)
    try:
        pushed, _ = run(["push", str(layout), f"{server.host}/drip/app", "--timeout", "8"], env)
        pulled, _ = run(["pull", f"{server.host}/drip/app:v1", str(tmp_path / "pulled"), "--timeout", "8"], env)
    finally:
        server.close()
    for proc in (pushed, pulled):
        assert proc.returncode == 5, proc.stderr
        assert "gave up after 8s" in one_error(proc), proc.stderr
        assert "--timeout" in proc.stderr
    assert not (tmp_path / "pulled").exists()
