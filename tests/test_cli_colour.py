"""Colour on a terminal only: on a pseudo-terminal errors, hints, warnings, build steps, the result lines and the
`next:` block are styled; through a pipe nothing is (byte for byte no escape code); NO_COLOR, FORCE_COLOR and
--color auto|always|never are obeyed, --color before or after the command. A failed upload's progress bar ends, on
the terminal, as a line saying it failed. Real go and docker-registry."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys

from conftest import FIXTURES, REPO
from regtools import base_env, reg_env

SGR = re.compile(r"\x1b\[[0-9;]*m")  # colours and styles (progress bars move the cursor with other codes)
ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RED_BOLD = "\x1b[31m\x1b[1m"
CYAN = "\x1b[36m"


def on_terminal(args: list[str], env: dict, timeout: float = 300) -> tuple[int, str, str]:
    """Run ocibake with stderr on a pseudo-terminal (stdout a pipe): (exit code, stdout, what the terminal got)."""
    master, slave = pty.openpty()
    got = bytearray()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "ocibake", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=REPO,
            env=env,
        ) as proc:
            os.close(slave)
            slave = -1
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                got += chunk
            out = proc.stdout.read().decode() if proc.stdout else ""
            code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return code, out, got.decode(errors="replace").replace("\r\n", "\n")


def in_a_pipe(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ocibake", *args], check=False, capture_output=True, text=True, cwd=REPO, env=env
    )


def test_an_error_is_red_with_a_cyan_hint_on_a_terminal_and_plain_in_a_pipe(tmp_path):
    env = {k: v for k, v in base_env(tmp_path / "home").items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["TERM"] = "xterm"
    args = ["build", str(tmp_path / "missing-service")]
    code, out, term = on_terminal(args, env)
    assert code == 4 and out == ""
    assert RED_BOLD + "ocibake: error:" in term and CYAN + "  hint:" in term, repr(term)

    piped = in_a_pipe(args, env)
    assert piped.returncode == 4 and "ocibake: error:" in piped.stderr
    assert "\x1b" not in piped.stderr + piped.stdout

    # NO_COLOR turns it off on a terminal; FORCE_COLOR and --color always turn it on in a pipe; --color wins
    _, _, term = on_terminal(args, {**env, "NO_COLOR": "1"})
    assert "ocibake: error:" in term and not SGR.search(term), repr(term)
    assert RED_BOLD in in_a_pipe(args, {**env, "FORCE_COLOR": "1"}).stderr
    assert RED_BOLD in in_a_pipe(["--color", "always", *args], env).stderr
    assert RED_BOLD in in_a_pipe([*args, "--color=always"], {**env, "NO_COLOR": "1"}).stderr
    assert "\x1b" not in in_a_pipe([*args, "--color", "never"], {**env, "FORCE_COLOR": "1"}).stderr
    _, _, term = on_terminal(["--color", "never", *args], env)
    assert not SGR.search(term)
    bad = in_a_pipe([*args, "--color", "sometimes"], env)
    assert bad.returncode == 2 and "--color sometimes" in bad.stderr and "Traceback" not in bad.stderr


def test_a_build_on_a_terminal_styles_steps_results_and_next(plain_registry, tmp_path):
    env = {**base_env(tmp_path / "home"), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    repo = f"{plain_registry.host}/colour/app"
    args = ["build", str(FIXTURES / "hello-root"), "--upx", "off", "--output", str(tmp_path / "o"), "--push", repo]
    code, out, term = on_terminal(args, env)
    assert code == 0, term
    assert out.startswith(repo + ":dev@sha256:")  # stdout: never coloured
    plain = SGR.sub("", term)
    assert "next:" in plain and plain.index("pushed 2 tag(s)") < plain.index("next:")
    assert "\x1b[1mnext:\x1b[0m" in term  # the block's title in bold, its commands in green
    assert re.search(r"\x1b\[32m  [^\n]*ocibake inspect ", term), repr(term)
    assert re.search(r"\x1b\[32m\x1b\[1mimage {5}hello-root ", term)  # the result line
    assert "\x1b[34mgo build " in term  # a build step

    piped = in_a_pipe(args, env)
    assert piped.returncode == 0 and "\x1b" not in piped.stderr and "next:" in piped.stderr


def test_a_failed_upload_says_so_where_its_bar_was(token_registry, tmp_path):
    env = {**reg_env(token_registry, tmp_path / "home", creds=False), "TERM": "xterm"}
    repo = f"{token_registry.host}/colour/denied"
    args = ["build", str(FIXTURES / "hello-root"), "--upx", "off", "--output", str(tmp_path / "o"), "--push", repo]
    code, out, term = on_terminal(args, env)
    assert code == 5 and out == "", term
    lines = ESCAPES.sub("", term).splitlines()
    failed = [line for line in lines if re.match(r"^  sha256:[0-9a-f]{12} .* failed: ", line)]
    assert failed and any("HTTP 401 UNAUTHORIZED" in line for line in failed), term
    assert not any(line.endswith(" uploaded") for line in lines)
    assert RED_BOLD + "  sha256:" in term  # the failed lines are red
