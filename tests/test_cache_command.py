"""`ocibake cache info` names every part of the cache with its entries and size; `cache clean` empties it all, one
part (--only), or the entries older than a time (--older-than); bad values are usage errors. Real go and upx."""

from __future__ import annotations

import json
import os
import time

from conftest import FIXTURES, run_cli
from ocibake.cli.cache import PART_CHOICES
from ocibake.toolchain.cache import PART_NAMES


def info(env: dict) -> dict[str, dict]:
    proc = run_cli("cache", "info", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)["parts"]}


def test_info_describes_every_part_and_clean_takes_a_part_or_an_age(tmp_path):
    assert set(PART_CHOICES) == {*PART_NAMES, "other"}
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    built = run_cli("build", str(FIXTURES / "hello-root"), "--upx", "fast", "--output", str(tmp_path / "o"), env=env)
    assert built.returncode == 0, built.stderr
    parts = info(env)
    assert set(PART_NAMES) <= set(parts)
    assert all(parts[name]["what"] for name in PART_NAMES)
    for name in ("upx", "layers", "goenv", "gobin"):
        assert parts[name]["entries"] >= 1 and parts[name]["size"] > 0, parts[name]
    text = run_cli("cache", "info", env=env).stdout
    assert "upx/" in text and "UPX-packed binaries" in text and "layers/" in text and "total" in text

    # --only: that part, nothing else
    proc = run_cli("cache", "clean", "--only", "upx", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["removed"] == parts["upx"]["entries"]
    after = info(env)
    assert after["upx"]["entries"] == 0 and after["layers"] == parts["layers"]

    # --older-than: only the entry last used two days ago (and its .sha256)
    layers = tmp_path / "cache" / "ocibake" / "layers"
    old = min(p for p in layers.iterdir() if not p.name.startswith(".") and not p.name.endswith(".sha256"))
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    proc = run_cli("cache", "clean", "--older-than", "1d", env=env)
    assert proc.returncode == 0 and "1 entries" in proc.stderr, proc.stderr
    assert not old.exists() and not (layers / f"{old.name}.sha256").exists()
    assert info(env)["layers"]["entries"] == parts["layers"]["entries"] - 1
    assert info(env)["goenv"] == after["goenv"]

    # bad values: usage errors with a hint, nothing removed
    for args, words in (
        (["--older-than", "soon"], "--older-than soon: not a time"),
        (["--only", "everything"], "--only"),
    ):
        proc = run_cli("cache", "clean", *args, env=env)
        assert proc.returncode == 2 and words in proc.stderr and "hint:" in proc.stderr, proc.stderr
    assert run_cli("cache", "info", "--only", "upx", env=env).returncode == 2

    # and everything
    proc = run_cli("cache", "clean", env=env)
    assert proc.returncode == 0
    assert all(p["entries"] == 0 for p in info(env).values())
