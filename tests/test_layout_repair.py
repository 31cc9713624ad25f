"""`ocibake layout repair` keeps every intact image, drops what cannot be read and says what it dropped; afterwards
`layout check` passes, skopeo reads the kept tags, and a build into the layout works again (the hint that the
damaged-layout error gives actually works)."""

from __future__ import annotations

import hashlib
import json
import subprocess

from conftest import FIXTURES, build, run_cli
from registry_servers import write_layout

REF = "org.opencontainers.image.ref.name"


def test_repair_keeps_intact_images_and_drops_the_rest(tmp_path):
    layout = tmp_path / "L"
    good = write_layout(layout, tags=("v1", "latest"), layer_sizes=(1000,), seed=4)
    other = write_layout(tmp_path / "other", tags=("x",), layer_sizes=(1000,), seed=5)
    index = json.loads((layout / "index.json").read_text())
    manifest = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other["manifest"], "size": 1}
    index["manifests"] += [
        {**manifest, "annotations": {REF: "missing-blob"}},  # its manifest is not in this layout
        {"mediaType": manifest["mediaType"], "size": "12", "annotations": {REF: "no-digest"}},
        {**index["manifests"][0], "size": "400", "annotations": {REF: "string-size"}},
    ]
    (layout / "index.json").write_text(json.dumps(index))
    blobs_before = sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())

    check = run_cli("layout", "check", str(layout))
    assert check.returncode == 4 and "3 of 5 index entries cannot be read" in check.stderr, check.stderr
    # a build into it is refused before go build, with the repair hint
    refused = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(layout), "--upx", "off")
    assert refused.returncode == 4 and f"ocibake layout repair {layout}" in refused.stderr, refused.stderr

    repaired = run_cli("layout", "repair", str(layout))
    assert repaired.returncode == 0, repaired.stderr
    for tag in ("missing-blob", "no-digest", "string-size"):
        assert f"(tag {tag})" in repaired.stderr or tag == "no-digest", repaired.stderr
    assert "kept 2 entries, dropped 3" in repaired.stderr
    tags = {
        m["annotations"][REF]: m["digest"]
        for m in json.loads((layout / "index.json").read_text())["manifests"]
        if "annotations" in m
    }
    assert tags == {"v1": good["manifest"], "latest": good["manifest"]}
    assert sorted(p.name for p in (layout / "blobs" / "sha256").iterdir()) == blobs_before
    assert run_cli("layout", "check", str(layout)).returncode == 0
    inspect = subprocess.run(
        ["skopeo", "inspect", "--format", "{{.Digest}}", f"oci:{layout}:v1"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert inspect.stdout.strip() == good["manifest"], inspect.stderr
    build(FIXTURES / "hello-root", layout, "--version", "v2", "--upx", "off")


def test_a_writer_waits_for_the_lock_and_says_so(tmp_path):
    """Another writer holding the layout's lock: the repair waits, says so after a second, and runs once it is free."""
    import fcntl
    import os
    import sys
    import time

    from conftest import REPO

    layout = tmp_path / "L"
    write_layout(layout, tags=("v1",), layer_sizes=(100,), seed=6)
    fd = os.open(layout, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocibake", "layout", "repair", str(layout)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    assert proc.poll() is None, "the repair did not wait for the lock"
    os.close(fd)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"waiting for another ocibake writing {layout}" in err


def test_json_nested_too_deep_is_damage_that_check_names_and_repair_drops(tmp_path):
    """A manifest (or index.json) nested 100,000 levels deep is bad JSON, not an internal error (RecursionError)."""
    layout = tmp_path / "L"
    write_layout(layout, tags=("v1",), layer_sizes=(1000,), seed=6)
    deep = b'{"schemaVersion":2,"layers":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    digest = "sha256:" + hashlib.sha256(deep).hexdigest()
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(deep)
    index = json.loads((layout / "index.json").read_text())
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": len(deep)}
    index["manifests"].append({**entry, "annotations": {REF: "deep"}})
    (layout / "index.json").write_text(json.dumps(index))

    check = run_cli("layout", "check", str(layout))
    assert check.returncode == 4 and "1 of 2 index entries cannot be read" in check.stderr, check.stderr
    assert "internal error" not in check.stderr
    repaired = run_cli("layout", "repair", str(layout))
    assert repaired.returncode == 0 and "kept 1 entries, dropped 1" in repaired.stderr, repaired.stderr
    assert run_cli("layout", "check", str(layout)).returncode == 0

    (layout / "index.json").write_text('{"schemaVersion":2,"manifests":' + "[" * 100_000 + "]" * 100_000 + "}")
    check = run_cli("layout", "check", str(layout))
    assert check.returncode == 4 and "JSON nested too deep" in check.stderr, check.stderr
    repaired = run_cli("layout", "repair", str(layout))
    assert repaired.returncode == 0 and "dropped index.json" in repaired.stderr, repaired.stderr
