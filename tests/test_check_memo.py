"""A rebuild that makes the same bytes does not run them again: `app --version` runs once per distinct binary (plain
and UPX-packed) and platform; `--verify always` runs it every time; a changed binary is run again.

The service counts its own `--version` runs in a file whose path is compiled in, so the test sees every start of the
binary, whoever starts it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import require, run_cli
from regtools import go_caches

MAIN = """package main

import (
	"fmt"
	"os"
)

var Version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		f, err := os.OpenFile(%(log)s, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, %(greeting)s)
			f.Close()
		}
		fmt.Println("counted", Version)
		return
	}
	fmt.Println(%(greeting)s)
}
"""


def _service(root: Path, log: Path, greeting: str) -> Path:
    root.mkdir(exist_ok=True)
    (root / "go.mod").write_text("module example.com/fixtures/counted\n\ngo 1.21\n")
    (root / "main.go").write_text(MAIN % {"log": json.dumps(str(log)), "greeting": json.dumps(greeting)})
    return root


def _runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _build(service: Path, out: Path, env: dict, *flags: str) -> dict:
    proc = run_cli(
        "build", str(service), "--output", str(out), "--version", "v1", "--upx", "fast", "--json", *flags, env=env
    )
    assert proc.returncode == 0, proc.stderr
    result: dict = json.loads(proc.stdout)
    return result


def test_version_runs_once_per_binary_and_again_when_forced_or_changed(tmp_path):
    require("go"), require("upx")
    log = tmp_path / "runs.log"
    service = _service(tmp_path / "counted", log, "hello")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), **go_caches()}
    out = tmp_path / "L"

    first = _build(service, out, env)
    assert _runs(log) == ["hello", "hello"]  # the plain binary, then the packed one
    assert first["binary"]["check"].startswith("counted v1") and not first["binary"]["check_remembered"]

    again = _build(service, out, env)
    assert _runs(log) == ["hello", "hello"], "a no-op rebuild ran the same bytes again"
    assert again["binary"]["check_remembered"] and again["binary"]["upx"]["cached"]
    assert again["digest"] == first["digest"]

    forced = _build(service, out, env, "--verify", "always")
    assert _runs(log) == ["hello"] * 4 and not forced["binary"]["check_remembered"]
    assert forced["digest"] == first["digest"]

    never = _build(service, out, env, "--verify", "never")
    assert _runs(log) == ["hello"] * 4 and "--no-verify" in never["binary"]["check"]

    _service(service, log, "changed")
    changed = _build(service, out, env)
    assert _runs(log) == ["hello"] * 4 + ["changed", "changed"]
    assert changed["digest"] != first["digest"] and not changed["binary"]["check_remembered"]


def test_a_damaged_memo_entry_means_the_check_runs_again(tmp_path):
    require("go"), require("upx")
    log = tmp_path / "runs.log"
    service = _service(tmp_path / "counted", log, "hello")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), **go_caches()}
    _build(service, tmp_path / "L", env, "--upx", "off")
    entries = list((tmp_path / "cache" / "ocibake" / "checks").glob("*.json"))
    assert len(entries) == 1
    entries[0].write_text("{not json")
    rebuilt = _build(service, tmp_path / "L", env, "--upx", "off")
    assert _runs(log) == ["hello", "hello"] and not rebuilt["binary"]["check_remembered"]
    # well-formed entries the check itself could not have written count as missing too: a line without the
    # version, a start-up time that is no time (NaN would even make --json invalid), negative or past the timeout
    kept = json.loads(entries[0].read_text())
    bad = [{**kept, "line": "totally different"}, {**kept, "seconds": float("nan")}, {**kept, "seconds": -1e308}]
    bad += [{**kept, "seconds": 1e9}, {**kept, "seconds": True}, {**kept, "line": "counted v1\nsecond line"}]
    for n, entry in enumerate(bad, start=3):
        entries[0].write_text(json.dumps(entry))
        proc = run_cli("build", str(service), "--output", str(tmp_path / "L"), "--version", "v1", "--upx", "off",
                       "--json", env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout, parse_constant=lambda c: pytest.fail(f"--json printed {c}"))
        assert len(_runs(log)) == n and not result["binary"]["check_remembered"], entry
        assert result["binary"]["check"].startswith("counted v1"), entry


def test_verify_modes_from_the_file_and_contradicting_flags(tmp_path):
    require("go")
    log = tmp_path / "runs.log"
    service = _service(tmp_path / "counted", log, "hello")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), **go_caches()}
    (service / "ocibake.toml").write_text('verify = "always"\n')
    _build(service, tmp_path / "L", env, "--upx", "off")
    _build(service, tmp_path / "L", env, "--upx", "off")
    assert _runs(log) == ["hello", "hello"]  # always, from the file
    (service / "ocibake.toml").write_text("verify = false\n")
    off = _build(service, tmp_path / "L", env, "--upx", "off")
    assert _runs(log) == ["hello", "hello"] and off["binary"]["check"].startswith("not run: verification is off")
    forced = _build(service, tmp_path / "L", env, "--upx", "off", "--verify", "always")  # the flag wins
    assert _runs(log) == ["hello"] * 3 and not forced["binary"]["check_remembered"]

    (service / "ocibake.toml").write_text('verify = "sometimes"\n')
    bad = run_cli("build", str(service), "--output", str(tmp_path / "L"), env=env)
    assert bad.returncode == 4 and 'verify = "auto", "always" or "never"' in bad.stderr, bad.stderr
    (service / "ocibake.toml").write_text("verify = 3\n")
    bad = run_cli("build", str(service), "--output", str(tmp_path / "L"), env=env)
    assert bad.returncode == 4 and 'verify must be "auto", "always", "never", true or false' in bad.stderr
    (service / "ocibake.toml").unlink()
    both = run_cli("build", str(service), "--output", str(tmp_path / "L"), "--no-verify", "--verify", "always", env=env)
    assert both.returncode == 2 and "contradict" in both.stderr and "Traceback" not in both.stderr, both.stderr
