"""The command tree: global flags before or after the command, usage errors, no abbreviated flags, completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import ocibake
from conftest import FIXTURES, REPO, run_cli


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"ocibake {ocibake.__version__}"


def test_no_command_prints_help_and_exits_2():
    proc = run_cli()
    assert proc.returncode == 2
    assert "Commands:" in proc.stderr and proc.stdout == ""


def test_unknown_command_is_one_line_with_a_hint():
    proc = run_cli("bulid")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("ocibake: error: no such command") and "bulid" in lines[0]
    assert lines[1].startswith("  hint: ") and "build" in lines[1]
    assert len(lines) == 2


def test_abbreviated_flags_are_refused(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "ocibake: error: unrecognized arguments: --out"
    assert "--output" in proc.stderr.splitlines()[1]
    assert not (tmp_path / "o").exists()


def test_missing_argument_is_a_usage_error():
    proc = run_cli("push", "only-a-layout")
    assert proc.returncode == 2
    assert proc.stderr.startswith("ocibake: error: missing argument") and "REPO" in proc.stderr
    assert "hint: see `ocibake push --help`" in proc.stderr


def test_bad_integer_is_a_usage_error(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--port", "eighty", "--output", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "--port" in proc.stderr.splitlines()[0] and "Traceback" not in proc.stderr


def test_json_and_quiet_before_and_after_the_command(tmp_path):
    for args in (["--json", "cache", "info"], ["cache", "info", "--json"]):
        proc = run_cli(*args, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["cache"] == str(tmp_path / "cache" / "ocibake")
    for args in (["-q", "cache", "clean"], ["cache", "clean", "-q"]):
        proc = run_cli(*args, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
        assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""


def test_verbose_before_the_command_shows_a_traceback_for_a_bug(tmp_path):
    # a layout whose index.json lists a manifest without a digest is a bug-shaped input for push today
    proc = run_cli("-v", "build", str(tmp_path / "nope"))
    assert proc.returncode == 4 and "service directory not found" in proc.stderr


def test_shell_completion_through_click():
    env = {**os.environ, "_OCIBAKE_COMPLETE": "bash_source"}
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake"], check=False, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.returncode == 0
    assert "_OCIBAKE_COMPLETE=bash_complete" in proc.stdout and "complete " in proc.stdout
    env = {**os.environ, "_OCIBAKE_COMPLETE": "bash_complete", "COMP_WORDS": "ocibake bu", "COMP_CWORD": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake"], check=False, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert "plain,build" in proc.stdout.split()
    env.update(COMP_WORDS="ocibake build x --comp", COMP_CWORD="3")
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake"], check=False, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert "plain,--compression" in proc.stdout.split()


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_OCIBAKE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake"], check=False, env=env, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.returncode == 0
    return proc.stdout.split()


def test_completion_of_option_values_and_paths():
    assert "plain,zstd" in _complete("ocibake build x --compression z", 4)
    assert {"plain,best-lzma", "plain,best"} <= set(_complete("ocibake build x --upx be", 4))
    assert _complete("ocibake build x --ca-bundle c", 4) == ["plain,certifi"]
    assert "dir,serv" in _complete("ocibake build serv", 2)  # the shell completes the directory
    assert "plain,clean" in _complete("ocibake cache c", 2)


def test_usage_error_hint_names_the_command_that_was_run():
    proc = run_cli("build", "x", "--port")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "ocibake: error: option '--port' requires an argument",
        "  hint: see `ocibake build --help`",
    ]


def test_choice_errors_stay_one_line():
    proc = run_cli("cache")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "info" in lines[0] and "clean" in lines[0]


def test_json_without_a_command_is_a_json_error():
    proc = run_cli("--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["exit_code"] == 2
    assert "no command given" in proc.stderr


def test_verbose_in_a_cluster_of_short_flags():
    from ocibake.cli import asks_verbose

    assert asks_verbose(["-qv", "build", "x"]) and asks_verbose(["build", "--verbose"])
    assert not asks_verbose(["build", "x", "--", "-v"]) and not asks_verbose(["build", "--version", "v1"])


def test_keyword_or_path_completion_never_mixes_the_two():
    assert _complete("ocibake build x --ca-bundle ''", 4) == ["plain,certifi", "plain,host", "plain,none"]
    assert _complete("ocibake build x --ca-bundle ./", 4) == ["file,./"]


def test_unknown_flag_before_the_command_points_at_the_group_help():
    proc = run_cli("--js", "cache", "info")
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[1] == "  hint: did you mean --json? see `ocibake --help`"


def test_an_ocibake_toml_that_is_a_directory_is_bad_input(tmp_path):
    service = tmp_path / "svc"
    (service / "ocibake.toml").mkdir(parents=True)
    proc = run_cli("build", str(service), "--output", str(tmp_path / "o"))
    assert proc.returncode == 4 and "ocibake.toml is not a file" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_an_empty_service_argument_is_bad_input():
    proc = run_cli("build", "")
    assert proc.returncode == 4 and "service directory is empty" in proc.stderr


def test_every_command_accepts_every_option_it_declares():
    """A shared option added to a decorator (say --timeout) must reach every command that carries it."""
    import inspect

    import click

    from ocibake.cli.group import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        commands = [command, *getattr(command, "commands", {}).values()]
        for cmd in commands:
            if cmd.callback is None:
                continue
            params = inspect.signature(cmd.callback).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            missing = [p.name for p in cmd.params if p.name not in params]
            assert not missing, f"ocibake {name}: {cmd.name}() does not take {missing}"
