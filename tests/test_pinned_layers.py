"""A layer made from a pinned package is not read again when nothing about it changed: the zoneinfo tree of the
pinned tzdata package is read once, and later builds take the layer from the layout (or the layer cache) by its pin,
opening only the one zone file the source check looks at. Every other case reads the tree again and gives the same
bytes: the layout's blob gone, the layer cache emptied too, a damaged memo entry, a multi-platform build.

Which files a build opens is seen through a Python audit hook (sitecustomize on PYTHONPATH), so the test needs no
tracer and sees only ocibake's own opens."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import FIXTURES, build, require
from regtools import go_caches

HOOK = """
import sys

def _log_zoneinfo_opens(event, args):
    if event == "open" and isinstance(args[0], str) and "/tzdata/zoneinfo/" in args[0]:
        with open(%r, "a") as log:
            log.write(args[0] + "\\n")

sys.addaudithook(_log_zoneinfo_opens)
"""


def _env(tmp_path: Path) -> tuple[dict, Path]:
    hook_dir, log = tmp_path / "hook", tmp_path / "opens.log"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK % str(log))
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(hook_dir), **go_caches()}, log


def _opens(log: Path) -> list[str]:
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def _zoneinfo_blob(layout: Path, digest: str) -> Path:
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]).read_text())
    kinds = [h.get("created_by", "") for h in config["history"]]
    index = next(i for i, made in enumerate(kinds) if "zoneinfo" in made)
    return layout / "blobs" / "sha256" / manifest["layers"][index]["digest"].split(":")[1]


def test_the_zoneinfo_tree_is_read_once_per_pin_and_again_whenever_the_layer_is_not_at_hand(tmp_path):
    require("go")
    env, log = _env(tmp_path)
    layout, args = tmp_path / "L", ("--upx", "off", "--sbom", "none", "--provenance", "none")
    first, _ = build(FIXTURES / "hello-root", layout, *args, env=env)
    assert len(_opens(log)) > 300  # the whole tree, read once

    again, _ = build(FIXTURES / "hello-root", layout, *args, env=env)
    assert again == first
    assert [Path(p).name for p in _opens(log)] in (["New_York"], ["New_York"] * 2)

    blob = _zoneinfo_blob(layout, first)
    blob.unlink()  # not in the layout: the layer cache has it, still nothing read
    assert build(FIXTURES / "hello-root", layout, *args, env=env)[0] == first
    assert len(_opens(log)) <= 2 and blob.is_file()

    blob.unlink()
    shutil.rmtree(tmp_path / "cache" / "ocibake" / "layers")  # nowhere at hand: read and written again
    assert build(FIXTURES / "hello-root", layout, *args, env=env)[0] == first
    assert len(_opens(log)) > 300 and blob.is_file()

    for entry in (tmp_path / "cache" / "ocibake" / "pinned").glob("*.json"):
        entry.write_text('{"files": "many", "sha256": 1}')  # damaged facts count as none
    assert build(FIXTURES / "hello-root", layout, *args, env=env)[0] == first
    assert len(_opens(log)) > 300


def test_a_two_platform_build_shares_the_pinned_layer_and_reads_nothing_when_it_is_known(tmp_path):
    require("go")
    env, log = _env(tmp_path)
    single, _ = build(FIXTURES / "hello-root", tmp_path / "one", "--upx", "off", env=env)
    _opens(log)
    args = ("--upx", "off", "--platform", "linux/amd64,linux/arm64")
    index, _ = build(FIXTURES / "hello-root", tmp_path / "two", *args, env=env)
    assert len(_opens(log)) <= 4  # the source check of each platform's layers, nothing more
    layout = tmp_path / "two"
    children = json.loads((layout / "blobs" / "sha256" / index.split(":")[1]).read_text())["manifests"]
    blobs = {_zoneinfo_blob(layout, child["digest"]).name for child in children}
    assert blobs == {_zoneinfo_blob(tmp_path / "one", single).name}  # one layer, the single build's
