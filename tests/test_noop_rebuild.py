"""A rebuild where nothing changed does only what it must: the same digest, no blob file rewritten (layers come from
the layer cache or are already in the layout), a damaged blob or cache entry repaired, and no registry code imported
without --push. Real go and upx."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, build, layout_index, require, run_cli


def blob_stats(layout: Path) -> dict[str, tuple[int, int]]:
    blobs = layout / "blobs" / "sha256"
    return {name: (os.stat(blobs / name).st_ino, os.stat(blobs / name).st_mtime_ns) for name in os.listdir(blobs)}


def test_noop_rebuild_same_digest_and_no_blob_rewritten(tmp_path):
    require("go"), require("upx")
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    out = tmp_path / "layout"
    args = ("--upx", "fast", "--version", "v2.0.0")
    first, _ = build(FIXTURES / "hello-root", out, *args, env=env)
    before = blob_stats(out)
    index_before = (out / "index.json").read_bytes()
    second, proc = build(FIXTURES / "hello-root", out, *args, env=env)
    assert second == first
    assert blob_stats(out) == before, "a no-op rebuild rewrote a blob"
    assert (out / "index.json").read_bytes() == index_before
    assert len([p for p in (tmp_path / "xdg" / "ocibake" / "layers").iterdir() if len(p.name) == 64]) == 4

    # Another layout: every layer comes from the layer cache, byte for byte the same.
    third, _ = build(FIXTURES / "hello-root", tmp_path / "other", *args, env=env)
    assert third == first and set(blob_stats(tmp_path / "other")) == set(before)

    # A damaged blob in the layout is rewritten by the next build; a damaged cache entry is dropped and rebuilt.
    manifest = json.loads((out / "blobs" / "sha256" / first.split(":")[1]).read_bytes())
    binary_blob = out / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    data = bytearray(binary_blob.read_bytes())
    data[100] ^= 0xFF
    binary_blob.write_bytes(bytes(data))
    cache_dir = tmp_path / "xdg" / "ocibake" / "layers"
    for entry in (p for p in cache_dir.iterdir() if len(p.name) == 64):
        entry.write_bytes(b"damaged")
    fourth, _ = build(FIXTURES / "hello-root", out, *args, env=env)
    assert fourth == first
    assert binary_blob.read_bytes() != bytes(data)
    proc = subprocess.run(["skopeo", "inspect", f"oci:{out}:v2.0.0"], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert layout_index(out)["manifests"][0]["digest"] == first
    # the cache holds good entries again: a build elsewhere takes all four from it and gets the same digest
    fifth, _ = build(FIXTURES / "hello-root", tmp_path / "fifth", *args, env=env)
    if fifth != first:
        diff = run_cli("diff", f"oci:{out}:v2.0.0", f"oci:{tmp_path / 'fifth'}:v2.0.0", "-v", env=env)
        pytest.fail(f"the fifth build differs from the first:\n{diff.stdout}\n{diff.stderr}")


def test_build_without_push_imports_no_registry_code(tmp_path):
    require("go")
    modules = tmp_path / "modules.json"
    code = (
        "import json, sys\nfrom ocibake.cli import main\n"
        f"rc = main(['build', {str(FIXTURES / 'hello-root')!r}, '--output', {str(tmp_path / 'o')!r}, "
        "'--upx', 'off', '-q'])\n"
        f"open({str(modules)!r}, 'w').write(json.dumps(sorted(sys.modules)))\nsys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(modules.read_text())
    assert "ocibake.builder.bake" in loaded
    for name in loaded:
        assert not name.startswith(("ocibake.registry", "requests", "oras", "urllib3")), name


def test_go_skips_the_link_of_an_unchanged_binary(tmp_path):
    """Build ids are kept (no -buildid=), and the local toolchain builds into a file kept in the cache: a no-op
    rebuild leaves that file as it was (go did not link again: it only touches an up-to-date file's mtime, while a
    link renames a new file into place); a source change relinks it."""
    require("go")
    import shutil

    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    first, _ = build(service, tmp_path / "a", "--upx", "off", env=env)
    [kept] = list((tmp_path / "xdg" / "ocibake" / "gobin").glob("*/app"))
    before = os.stat(kept).st_ino
    second, _ = build(service, tmp_path / "b", "--upx", "off", env=env)
    assert second == first and os.stat(kept).st_ino == before
    main = service / "main.go"
    main.write_text(main.read_text().replace("hello from the root", "hello, relinked"))
    third, _ = build(service, tmp_path / "c", "--upx", "off", env=env)
    assert third != first and os.stat(kept).st_ino != before
    main.write_text(main.read_text().replace("hello, relinked", "hello from the root"))
    fourth, _ = build(service, tmp_path / "d", "--upx", "off", env=env)
    assert fourth == first, "the kept binary must never leak an old build into a new image"
