"""Debugging a development image under `ocibake run`: `dlv connect` reaches the image's Delve, and a breakpoint set
by file:line on the service's source in the checkout, mapped with the README's VS Code launch.json (substitutePath),
is hit by a request: the paths in the binary's DWARF are the ones the configuration maps to."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE, build, free_port
from run_helpers import ocibake_run

HANDLER = SAMPLE / "cmd" / "emergency-service" / "main.go"


@pytest.fixture(scope="module")
def dev_cache(tmp_path_factory) -> dict:
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("run-dev-cache"))}


@pytest.fixture(scope="module")
def dev_layout(tmp_path_factory, dev_cache) -> Path:
    out = tmp_path_factory.mktemp("run-dev") / "layout"
    build(SAMPLE, out, "--target", "development", "--version", "v1", "--sbom", "none", env=dev_cache, timeout=900)
    return out


def readme_launch_json() -> dict:
    """The VS Code configuration the README gives (the json block under its Delve heading)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Debugging a development image") :]
    block = re.search(r"```json\n(.*?)```", section, re.DOTALL)
    assert block, "the README has no launch.json block"
    return json.loads(block.group(1))


def remote_path(local: Path, mappings: list[dict]) -> str:
    """The path Delve knows for a checkout file, by the launch.json's substitutePath (from: local, to: remote)."""
    for m in mappings:
        prefix = m["from"].replace("${workspaceFolder}", str(REPO))
        if str(local).startswith(prefix + "/"):
            return m["to"] + str(local)[len(prefix) :]
    raise AssertionError(f"no substitutePath maps {local}")


class Delve:
    """A JSON-RPC 2 client of Delve's headless server, one call at a time."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.reader = self.sock.makefile("rb")
        self.next_id = 0

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.sock.sendall(
            json.dumps({"method": f"RPCServer.{method}", "params": [params], "id": self.next_id}).encode()
        )
        answer = json.loads(self.reader.readline())
        assert answer.get("error") is None, answer
        return answer["result"]

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def test_a_development_image_takes_dlv_connect_and_a_breakpoint_by_checkout_path(dev_layout, dev_cache, tmp_path):
    config = readme_launch_json()["configurations"][0]
    assert (config["type"], config["request"], config["mode"], config["port"]) == ("go", "attach", "remote", 2345)
    remote = remote_path(HANDLER, config["substitutePath"])
    line = next(
        i
        for i, text in enumerate(HANDLER.read_text().splitlines(), 1)
        if "writeJSON(w, http.StatusOK, check())" in text
    )
    dlv_port, app_port = free_port(), free_port()  # the image's own :2345, moved off a port a shared machine may use
    dlv_args = ["exec", "/app", "--headless", f"--listen=127.0.0.1:{dlv_port}", "--api-version=2"]
    args = (str(dev_layout), "-e", f"PORT={app_port}", "--entrypoint", "/usr/local/bin/dlv", "--", *dlv_args)
    with ocibake_run(tmp_path, *args, "--accept-multiclient", "--continue", env=dev_cache) as app:
        app.wait_for_line("listening on", timeout=120)
        dlv = next(Path(dev_cache["XDG_CACHE_HOME"]).glob("ocibake/delve/*/amd64/dlv"))
        connect = subprocess.run(
            [str(dlv), "connect", f"127.0.0.1:{dlv_port}"],
            input="sources emergency-service/cmd\nexit -c\n", capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert connect.returncode == 0, connect.stderr
        assert remote in connect.stdout  # the DWARF path is the one the launch.json maps the checkout file to

        delve = Delve(dlv_port)
        try:
            delve.call("Command", name="halt")
            bp = delve.call("CreateBreakpoint", Breakpoint={"file": remote, "line": line})["Breakpoint"]
            assert bp["file"] == remote and bp["line"] == line
            answers: list[dict] = []
            request = threading.Thread(
                target=lambda: answers.append(
                    json.loads(urllib.request.urlopen(f"http://127.0.0.1:{app_port}/health", timeout=120).read())
                )
            )
            request.start()
            state = delve.call("Command", name="continue")["State"]
            thread = state["currentThread"]
            assert (thread["file"], thread["line"], thread["breakPoint"]["id"]) == (remote, line, bp["id"])
            delve.call("ClearBreakpoint", Id=bp["id"])
            delve.sock.sendall(
                json.dumps({"method": "RPCServer.Command", "params": [{"name": "continue"}], "id": 99}).encode()
            )
            request.join(60)
            assert answers and answers[0]["uid"] == 1001
        finally:
            delve.close()
        app.stop(timeout=30)
