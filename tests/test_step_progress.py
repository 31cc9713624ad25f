"""Progress of the long build steps (go build, UPX): on a terminal (a real pty) an elapsed-time counter redrawn in
place on the step's line; on a pipe, one plain line per step and no control characters."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading

from conftest import FIXTURES, REPO, layout_index, run_cli

GO_LINE = re.compile(r"^go build \. for linux/amd64 with go[\w.]+")
UPX_LINE = "compressing the binary: upx -q --no-color --no-progress --best --lzma (--upx best-lzma)"


def build_on_a_terminal(args: list[str], env: dict | None = None, columns: int = 0) -> tuple[int, str, str]:
    """Run `ocibake build ARGS` with stderr on a pty (stdout a pipe; ``columns`` wide, 0: unknown); returns (exit
    code, stdout, stderr as drawn)."""
    master, slave = pty.openpty()
    if columns:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibake", "build", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TERM": "xterm", "NO_COLOR": "1", **(env or {})},  # colour: test_cli_colour.py
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    with proc:
        out = proc.stdout.read()
        code = proc.wait(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    return code, out, b"".join(chunks).decode()


def test_on_a_terminal_the_long_steps_count_seconds_in_place(tmp_path):
    code, out, err = build_on_a_terminal(
        [str(FIXTURES / "hello-root"), "--output", str(tmp_path / "l"), "--version", "v1"]
    )
    assert code == 0, err
    assert out.strip() == f"hello-root@{layout_index(tmp_path / 'l')['manifests'][0]['digest']}"
    lines = err.replace("\r\n", "\n").split("\n")
    go = next(line for line in lines if "go build" in line)
    upx = next(line for line in lines if "compressing the binary" in line)
    for step, label in ((go, None), (upx, UPX_LINE)):
        draws = [d.removesuffix("\x1b[K") for d in step.split("\r") if d]
        # first drawn at 0s, redrawn in place (\r ... erase to the end of the line), ended with its duration
        assert len(draws) >= 2, step
        assert draws[0].endswith(" ... 0s") and re.search(r" \.\.\. done in \d+\.\d+s$", draws[-1]), draws
        assert all(re.search(r" \.\.\. (\d+s|done in \d+\.\d+s)$", d) for d in draws), draws
        text = draws[-1].split(" ... ")[0]
        assert GO_LINE.match(text) if label is None else text == label
    assert lines.index(go) < lines.index(upx)


def test_on_a_pipe_each_step_is_one_plain_line(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "l"), "--version", "v1")
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len([line for line in lines if GO_LINE.match(line)]) == 1
    assert [line for line in lines if "compressing the binary" in line] == [UPX_LINE]
    assert not any(" ... " in line and "done in" in line for line in lines)


def test_quiet_on_a_terminal_prints_no_progress(tmp_path):
    code, out, err = build_on_a_terminal(
        [str(FIXTURES / "hello-root"), "--output", str(tmp_path / "l"), "--version", "v1", "--upx", "off", "-q"]
    )
    assert code == 0, err
    assert err == "" and out.startswith("hello-root@sha256:")


def test_a_failed_step_says_how_long_it_ran_before_the_error(tmp_path):
    service = tmp_path / "svc"
    import shutil

    shutil.copytree(FIXTURES / "hello-root", service)
    (service / "main.go").write_text((service / "main.go").read_text() + "\nnot go\n")
    code, out, err = build_on_a_terminal([str(service), "--output", str(tmp_path / "l"), "--upx", "off"])
    assert code == 3 and out == ""
    lines = err.replace("\r\n", "\n").split("\n")
    go = next(line for line in lines if "go build" in line)
    assert re.search(r" \.\.\. failed after \d+\.\d+s(\x1b\[K)?$", go), go
    assert lines[lines.index(go) + 1].startswith("ocibake: error:")


def test_on_a_narrow_terminal_the_counting_line_fits_one_row(tmp_path):
    code, _, err = build_on_a_terminal(
        [str(FIXTURES / "hello-root"), "--output", str(tmp_path / "l"), "--version", "v1"], columns=40
    )
    assert code == 0, err
    upx = next(line for line in err.replace("\r\n", "\n").split("\n") if "compressing the binary" in line)
    draws = [d.removesuffix("\x1b[K") for d in upx.split("\r") if d]
    assert all(len(d) <= 39 for d in draws[:-1]), draws
    assert draws[-1].startswith(UPX_LINE) and "done in" in draws[-1]
