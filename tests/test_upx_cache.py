"""The UPX output cache: a second default build does not run upx and gives the same digest; a damaged cache entry is
found by its digest, dropped and rebuilt; `ocibake cache info` shows it and `clean` empties it. The file cache's
bound evicts the least recently used entries. Real go and upx (behind a wrapper that logs each run)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from conftest import FIXTURES, build, require, run_cli
from ocibake.builder.file_cache import FileCache, make_key


def upx_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """A upx that appends its arguments to a log, then runs the real upx."""
    real = require("upx")
    log = tmp_path / "upx-runs.log"
    wrapper = tmp_path / "upx-logging"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def packing_runs(log: Path) -> list[str]:
    """The logged upx runs that packed something (not `upx --version`, not the SBOM's `upx -d` of the image's
    binary, which runs once per image: a rebuild of the same image takes the SBOM already in the layout)."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.strip() != "--version" and not line.startswith("-d ")]


def test_second_build_takes_upx_output_from_cache(tmp_path):
    require("go")
    wrapper, log = upx_wrapper(tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    args = ("--upx-bin", str(wrapper), "--version", "v1.2.3")  # the default mode: best-lzma
    first, _p1 = build(FIXTURES / "hello-root", tmp_path / "a", *args, env=env)
    assert len(packing_runs(log)) == 1
    assert "--best --lzma" in packing_runs(log)[0]
    second, p2 = build(FIXTURES / "hello-root", tmp_path / "b", *args, env=env)
    assert second == first
    assert len(packing_runs(log)) == 1, "upx ran again although its output was cached"
    assert "UPX cache" in p2.stderr

    # A damaged entry is caught by its digest, dropped, and rebuilt by running upx again.
    upx_dir = tmp_path / "xdg" / "ocibake" / "upx"
    [entry] = [p for p in upx_dir.iterdir() if len(p.name) == 64]
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    third, _ = build(FIXTURES / "hello-root", tmp_path / "c", *args, env=env)
    assert third == first
    assert len(packing_runs(log)) == 2
    fourth, _ = build(FIXTURES / "hello-root", tmp_path / "d", *args, env=env)
    assert fourth == first and len(packing_runs(log)) == 2  # the rebuilt entry is good again
    assert log.read_text().splitlines().count("--version") == 1, "upx --version is asked once per upx program"

    info = run_cli("cache", "info", "--json", env=env)
    assert info.returncode == 0, info.stderr
    parts = {p["name"]: p for p in json.loads(info.stdout)["parts"]}
    assert parts["upx"]["entries"] == 1 and parts["upx"]["size"] > 0
    human = run_cli("cache", "info", env=env)
    assert "upx/" in human.stdout
    assert run_cli("cache", "clean", env=env).returncode == 0
    parts = {p["name"]: p for p in json.loads(run_cli("cache", "info", "--json", env=env).stdout)["parts"]}
    assert parts["upx"]["entries"] == 0


def test_cache_off_and_bad_bound(tmp_path):
    require("go")
    wrapper, log = upx_wrapper(tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "OCIBAKE_UPX_CACHE_MIB": "0"}
    for out in ("a", "b"):
        build(FIXTURES / "hello-root", tmp_path / out, "--upx-bin", str(wrapper), "--upx", "fast", env=env)
    assert len(packing_runs(log)) == 2
    env["OCIBAKE_UPX_CACHE_MIB"] = "lots"
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "c"), "--upx-bin", str(wrapper), env=env
    )
    assert proc.returncode == 4, proc.stderr
    assert "OCIBAKE_UPX_CACHE_MIB" in proc.stderr and "Traceback" not in proc.stderr


def test_file_cache_checks_digest_and_evicts_lru(tmp_path):
    cache = FileCache(tmp_path / "cache", max_bytes=3000)
    src = tmp_path / "src"
    keys = [make_key(n=n) for n in range(4)]
    for n, key in enumerate(keys[:3]):
        src.write_bytes(bytes([n]) * 1000)
        assert cache.put(key, src)
    # use the oldest, so the middle one is the least recently used
    os.utime(cache.root / keys[1], (1, 1))
    os.utime(cache.root / keys[2], (2, 2))
    assert cache.get(keys[0], tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == bytes([0]) * 1000
    src.write_bytes(b"x" * 1000)
    assert cache.put(keys[3], src)
    assert not cache.get(keys[1], tmp_path / "miss") and not (tmp_path / "miss").exists()
    assert {k for k, _, _ in cache.entries()} == {keys[0], keys[2], keys[3]}
    # a damaged entry is a miss, and is gone afterwards; dest is not touched
    (tmp_path / "out").write_bytes(b"before")
    (cache.root / keys[3]).write_bytes(b"y" * 1000)
    assert not cache.get(keys[3], tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"before"
    assert not (cache.root / keys[3]).exists() and not (cache.root / f"{keys[3]}.sha256").exists()
    # bigger than the whole bound: not stored; an off cache stores nothing
    src.write_bytes(b"z" * 5000)
    assert not cache.put(make_key(n=9), src)
    assert not FileCache(tmp_path / "off", 0).put(keys[0], src)
    assert not [p for p in cache.root.iterdir() if p.name.startswith(".put-")]
