"""UPX: modes map to upx arguments; compression shrinks the binary, which still runs; off leaves it alone; upx's
refusals and a missing upx are clear ToolchainErrors (exit 3). Real go and upx; nothing mocked."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, require
from ocibake.builder.upx import UPX_MODES, compress, full_args, upx_args
from ocibake.errors import InputError, ToolchainError
from ocibake.toolchain.local import LocalToolchain


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def plain_binary(tmp_path_factory) -> Path:
    go = require("go")
    require("upx")
    out = tmp_path_factory.mktemp("upx") / "app"
    env = dict(os.environ, CGO_ENABLED="0")
    subprocess.run(
        [
            go,
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags",
            "-s -w -buildid= -X main.Version=v9.9.9",
            "-o",
            str(out),
            ".",
        ],
        cwd=FIXTURES / "hello-root",
        env=env,
        check=True,
    )
    return out


def copy(src: Path, dest: Path) -> Path:
    shutil.copy2(src, dest)
    return dest


def test_mode_arguments():
    assert upx_args("best-lzma") == ("--best", "--lzma")
    assert upx_args("best") == ("--best",)
    assert upx_args("fast") == ("-1",)
    assert upx_args("7") == ("-7",)
    assert upx_args("off") is None and full_args("off") is None
    assert all(m == "off" or upx_args(m) for m in UPX_MODES)
    for bad in ("0", "10", "lzma", "", "best_lzma"):
        with pytest.raises(InputError) as info:
            upx_args(bad)
        assert "best-lzma" in info.value.hint


@pytest.mark.parametrize("mode", ["best-lzma", "fast"])
def test_compressed_is_smaller_and_runs(plain_binary, tmp_path, mode):
    binary = copy(plain_binary, tmp_path / "app")
    result = compress(LocalToolchain(), binary, mode)
    assert result.size_before == plain_binary.stat().st_size
    assert result.size_after == binary.stat().st_size < result.size_before
    assert result.ratio < (0.45 if mode == "best-lzma" else 0.6), result
    proc = subprocess.run([str(binary), "--version"], check=False, stdout=subprocess.PIPE, text=True, timeout=30)
    assert proc.returncode == 0 and "v9.9.9" in proc.stdout
    assert result.record() == {"mode": mode, "args": list(full_args(mode))}
    assert mode in result.report_line() and "->" in result.report_line()


def test_compression_is_deterministic(plain_binary, tmp_path):
    a = copy(plain_binary, tmp_path / "a")
    b = copy(plain_binary, tmp_path / "b")
    os.utime(b, (1, 1))  # upx must not depend on the file's name or time
    compress(LocalToolchain(), a, "best-lzma")
    compress(LocalToolchain(), b, "best-lzma")
    assert sha256(a) == sha256(b)


def test_off_leaves_binary_untouched(plain_binary, tmp_path):
    binary = copy(plain_binary, tmp_path / "app")
    before = sha256(binary)
    # off never even looks for upx
    result = compress(LocalToolchain(upx="/nonexistent/upx"), binary, "off")
    assert sha256(binary) == before
    assert (result.size_before, result.size_after, result.args) == (binary.stat().st_size,) * 2 + ((),)


def test_missing_upx_is_exit_3_with_hint(plain_binary, tmp_path, monkeypatch):
    binary = copy(plain_binary, tmp_path / "app")
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(upx=str(tmp_path / "no-such-upx")), binary, "best-lzma")
    assert info.value.exit_code == 3 and "not found" in info.value.message and "apt-get install upx" in info.value.hint
    # and with no upx anywhere on PATH
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(), binary, "fast")
    assert info.value.exit_code == 3 and "--upx off" in info.value.hint
    assert sha256(binary) == sha256(plain_binary)


def test_already_packed_is_one_clear_line(plain_binary, tmp_path):
    binary = copy(plain_binary, tmp_path / "app")
    compress(LocalToolchain(), binary, "fast")
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(), binary, "best-lzma")
    assert info.value.message == "the binary is already packed with UPX"
    assert "--upx off" in info.value.hint and "AlreadyPackedException" in info.value.detail


def test_too_small_and_unknown_format(tmp_path):
    require("upx")
    small = tmp_path / "small"
    small.write_bytes(b"\x7fELF" + b"\0" * 60)
    small.chmod(0o755)
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(), small, "fast")
    assert "too small" in info.value.message
    data = tmp_path / "data"
    data.write_bytes(hashlib.sha256(b"x").digest() * 4000)
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(), data, "fast")
    assert "does not know this file format" in info.value.message and "\n" not in info.value.message


def test_upx_version_for_the_record():
    require("upx")
    assert LocalToolchain().upx_version().startswith("upx ")


def test_a_program_that_is_not_upx_is_not_taken_for_one(plain_binary, tmp_path):
    """--upx-bin /bin/true exits 0 and changes nothing: that is a failure, not a 100% compression."""
    binary = copy(plain_binary, tmp_path / "app")
    with pytest.raises(ToolchainError) as info:
        compress(LocalToolchain(upx="/bin/true"), binary, "best-lzma")
    assert "not UPX-packed" in info.value.message and info.value.exit_code == 3
