"""Writing into an OCI layout is atomic: a failed or interrupted build leaves an existing layout as it was, and a
new build replaces only the tags it names."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES, REPO, build, interrupt_build, layout_index, require


def tree_state(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_rebuilding_replaces_named_tags_and_keeps_other_images(tmp_path):
    layout = tmp_path / "layout"
    d1, _ = build(FIXTURES / "hello-root", layout, "--version", "v1")
    d2, _ = build(FIXTURES / "cmd-main", layout, "--version", "v2", "--name", "hello-root")
    refs = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in layout_index(layout)["manifests"]
        if "annotations" in m
    }
    assert refs == {"v1": d1, "v2": d2, "latest": d2}
    # skopeo still reads both images
    for tag, digest in (("v1", d1), ("latest", d2)):
        out = subprocess.run(
            ["skopeo", "inspect", "--format", "{{.Digest}}", f"oci:{layout}:{tag}"],
            check=False,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert out.stdout.strip() == digest
    # blobs only the replaced tag used are gone; v1's blobs are kept
    d3, _ = build(
        FIXTURES / "cmd-main",
        layout,
        "--version",
        "v2",
        "--tag",
        "v1",
        "--source",
        "https://x.example/y",
        "--force-tags",
    )  # v1 named hello-root v1: moving it to cmd-main v2 needs --force-tags
    blobs = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    assert d1.split(":")[1] not in blobs and d3.split(":")[1] in blobs and d2.split(":")[1] in blobs
    assert not [p for p in layout.iterdir() if p.name.startswith(".")]


def test_rebuilding_repairs_a_damaged_blob(tmp_path):
    """A blob that was damaged on disk since (a flipped byte, a truncated copy) is written again by the next build
    that makes it, so the new tags never point at bytes that do not match their digest."""
    layout = tmp_path / "layout"
    digest, _ = build(FIXTURES / "hello-root", layout, "--version", "v1")
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    emptied, flipped = (layout / "blobs" / "sha256" / d["digest"].split(":")[1] for d in manifest["layers"][:2])
    emptied.write_bytes(b"")
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    build(FIXTURES / "hello-root", layout, "--version", "v2")
    for tag in ("v1", "v2"):
        check = subprocess.run(
            ["skopeo", "copy", f"oci:{layout}:{tag}", f"dir:{tmp_path / tag}"],
            check=False,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert check.returncode == 0, check.stderr


def test_failed_build_leaves_the_layout_untouched(tmp_path):
    layout = tmp_path / "layout"
    build(FIXTURES / "hello-root", layout, "--version", "v1")
    before = tree_state(layout)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocibake",
            "build",
            str(FIXTURES / "compile-error"),
            "--output",
            str(layout),
            "--name",
            "hello-root",
        ],
        check=False,
        cwd=REPO,
        capture_output=True,
    )
    assert proc.returncode == 3
    assert tree_state(layout) == before


def test_interrupted_build_leaves_the_layout_as_it_was(tmp_path):
    require("go")
    layout = tmp_path / "layout"
    build(FIXTURES / "hello-root", layout, "--version", "v1")
    before = tree_state(layout)
    # A cold Go cache makes the build slow enough to interrupt it in the middle of `go build`.
    env = {**os.environ, "GOCACHE": str(tmp_path / "cold-cache")}
    proc = interrupt_build(
        [str(FIXTURES / "hello-root"), "--output", str(layout), "--version", "v2"],
        env,
        lambda: any(p.name.startswith(".ocibake-staging") for p in layout.iterdir()),
        signal.SIGINT,
        0.5,
    )
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert tree_state(layout) == before


def test_new_layout_appears_whole_or_not_at_all(tmp_path):
    env = {**os.environ, "GOCACHE": str(tmp_path / "cold-cache")}
    layout = tmp_path / "fresh"
    proc = interrupt_build(
        [str(FIXTURES / "hello-root"), "--output", str(layout)],
        env,
        lambda: any(p.name.startswith(".fresh") for p in tmp_path.iterdir()),
        signal.SIGINT,
        0,
    )
    assert proc.returncode == 130
    assert [p.name for p in tmp_path.iterdir() if p.name != "cold-cache"] == []  # go's cache may or may not exist


def test_a_new_layout_holds_only_the_layout_files_and_named_blobs(tmp_path):
    """Built with every layer cache empty (each layer a cache miss) into a directory that does not exist: the
    layout's root has oci-layout, index.json and blobs/ and nothing else (no empty scratch file left by a miss)."""
    out = tmp_path / "new"
    build(FIXTURES / "hello-root", out, "--upx", "off", env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert sorted(p.name for p in out.iterdir()) == ["blobs", "index.json", "oci-layout"]
    assert [p.name for p in (out / "blobs").iterdir()] == ["sha256"]
    for blob in (out / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
