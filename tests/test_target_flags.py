"""Settings of one target given to another are refused, and a --delve binary must match the platform."""

from __future__ import annotations

import shutil

import pytest

from conftest import FIXTURES, run_cli


@pytest.mark.parametrize(
    ("target", "flags", "words"),
    [
        ("production", ["--healthcheck", "true"], "--healthcheck applies to --target production-alpine"),
        ("development", ["--no-healthcheck"], "--no-healthcheck applies to --target production-alpine"),
        ("production", ["--delve", "/bin/true"], "--delve applies to --target development"),
    ],
)
def test_a_setting_of_another_target_is_bad_input(target, flags, words, tmp_path):
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--target",
        target,
        *flags,
        "--upx",
        "off",
        "--output",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.splitlines()[0] == f"ocibake: error: {words}, not {target}"
    assert not (tmp_path / "o").exists()


def test_delve_for_another_architecture_is_refused(tmp_path):
    dlv = tmp_path / "dlv"
    shutil.copy(shutil.which("busybox"), dlv)  # a static amd64 ELF, the wrong machine for arm64
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--target",
        "development",
        "--platform",
        "linux/arm64",
        "--delve",
        str(dlv),
        "--output",
        str(tmp_path / "o"),
    )
    assert proc.returncode == 4, proc.stderr
    assert "is built for amd64, not linux/arm64" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
