"""A tag that moves takes the old image's SBOM with it: no referrer is left in index.json without its subject."""

from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, run_cli


def entries(layout):
    return json.loads((layout / "index.json").read_text())["manifests"]


def blob(layout, digest):
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


@pytest.mark.parametrize("second_sbom", ["spdx", "none"])
def test_a_moved_tag_leaves_no_sbom_of_the_old_image(second_sbom, tmp_path):
    layout = tmp_path / "layout"
    build = [
        "build",
        str(FIXTURES / "hello-root"),
        "--upx",
        "off",
        "--output",
        str(layout),
        "--version",
        "v1",
        "--provenance",
        "none",
    ]
    assert run_cli(*build).returncode == 0
    (old_sbom,) = [
        m
        for m in entries(layout)
        if "annotations" not in m or "org.opencontainers.image.ref.name" not in m["annotations"]
    ]
    old_files = json.loads(blob(layout, old_sbom["digest"]).read_text())
    proc = run_cli(*build, "--port", "9090", "--sbom", second_sbom)
    assert proc.returncode == 0, proc.stderr
    tagged = {m["digest"] for m in entries(layout) if "org.opencontainers.image.ref.name" in m.get("annotations", {})}
    untagged = [m for m in entries(layout) if "org.opencontainers.image.ref.name" not in m.get("annotations", {})]
    assert len(untagged) == (1 if second_sbom == "spdx" else 0)
    for m in untagged:
        assert json.loads(blob(layout, m["digest"]).read_text())["subject"]["digest"] in tagged
    assert not blob(layout, old_sbom["digest"]).exists()
    assert not any(blob(layout, layer["digest"]).exists() for layer in old_files["layers"])
    check = run_cli("layout", "check", str(layout))
    assert check.returncode == 0, check.stderr
