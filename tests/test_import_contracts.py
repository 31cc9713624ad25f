"""The chain of stages as import rules (pyproject's import-linter contracts), and what each command imports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES, REPO, run_cli

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
HTTP_MODULES = {"requests", "oras", "urllib3"}


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        check=False,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )


def test_import_contracts_hold():
    proc = lint_imports(REPO, REPO / "src")
    assert proc.returncode == 0, proc.stdout
    assert "0 broken" in proc.stdout


def _scratch_copy(tmp_path: Path) -> Path:
    shutil.copytree(
        REPO / "src" / "ocibake", tmp_path / "src" / "ocibake", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_a_wrong_import_breaks_the_layers_contract(tmp_path):
    scratch = _scratch_copy(tmp_path)
    tar = scratch / "src" / "ocibake" / "oci" / "image.py"
    tar.write_text(
        tar.read_text() + "\n\ndef _wrong():\n    from ocibake.builder.spec import BuildSpec\n    return BuildSpec\n"
    )
    proc = lint_imports(scratch, scratch / "src")
    assert proc.returncode != 0, proc.stdout
    assert "BROKEN" in proc.stdout and "ocibake.oci.image -> ocibake.builder.spec" in proc.stdout


def test_http_outside_the_registry_package_breaks_a_contract(tmp_path):
    scratch = _scratch_copy(tmp_path)
    tar = scratch / "src" / "ocibake" / "layers" / "tar.py"
    tar.write_text(tar.read_text() + "\n\ndef _wrong():\n    import requests\n    return requests\n")
    proc = lint_imports(scratch, scratch / "src")
    assert proc.returncode != 0, proc.stdout
    assert "ocibake.layers is not allowed to import requests" in proc.stdout
    assert "ocibake.layers.tar -> requests" in proc.stdout


def imported_modules(*args: str, cwd: Path = REPO) -> tuple[set[str], subprocess.CompletedProcess]:
    """The top-level names of every module `python -X importtime -m ocibake ARGS` imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ocibake", *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.add(name)
    return modules, proc


def test_build_without_push_imports_no_http_library(tmp_path):
    modules, proc = imported_modules(
        "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "out"), "--upx", "off"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ocibake.builder.bake" in modules and "ocibake.layers.tar" in modules
    assert not {m.split(".")[0] for m in modules} & HTTP_MODULES, sorted(
        m for m in modules if m.split(".")[0] in HTTP_MODULES
    )
    # the provenance statement is made, but nothing is signed: the key library is not loaded
    assert "ocibake.audit.attestation" in modules and "cryptography" not in modules


def test_push_imports_the_http_client(tmp_path):
    modules, proc = imported_modules("push", "--help")
    assert proc.returncode == 0
    assert "ocibake.cli.registry" in modules
    # the help of push needs no HTTP library either; the push itself does
    assert not {m.split(".")[0] for m in modules} & HTTP_MODULES
    missing = tmp_path / "nothing"
    modules, proc = imported_modules("push", str(missing), "127.0.0.1:1/x")
    assert proc.returncode == 4
    assert {"requests", "oras"} <= {m.split(".")[0] for m in modules}


def test_help_and_version_load_only_the_command_line():
    for args in (["--help"], ["--version"]):
        modules, proc = imported_modules(*args)
        assert proc.returncode == 0, proc.stderr
        ours = {m for m in modules if m.startswith("ocibake")}
        # cli.style: --color is taken from the command line before click parses it (click and re only)
        command_line = {"ocibake", "ocibake.__main__", "ocibake.cli", "ocibake.cli.group", "ocibake.cli.style"}
        assert ours <= {*command_line, "ocibake.errors"}, ours
        assert not {m.split(".")[0] for m in modules} & (HTTP_MODULES | {"zstandard"})


def test_each_command_has_examples_in_its_help():
    from ocibake.cli.group import COMMANDS

    for command in COMMANDS:
        proc = run_cli(command, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Examples:" in proc.stdout
        examples = [
            line for line in proc.stdout.split("Examples:", 1)[1].splitlines() if line.strip().startswith("ocibake ")
        ]
        assert len(examples) >= 2, proc.stdout
