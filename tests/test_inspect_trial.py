"""`ocibake inspect` findings of a new-user trial: a layout of one image with several tags and an SBOM, a layout
path without `oci:`, diff_ids and the passwd users in the text report; the build report's sbom line."""

from __future__ import annotations

import pytest

from conftest import FIXTURES, build, run_cli


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """hello-root built once (tags v1 and latest, an SBOM referrer): (layout, digest, build process)."""
    out = tmp_path_factory.mktemp("inspect") / "oci"
    digest, proc = build(FIXTURES / "hello-root", out, "--version", "v1", "--upx", "off")
    return out, digest, proc


def test_a_layout_of_one_image_with_two_tags_and_a_referrer_is_inspected_without_a_tag(layout):
    path, digest, _ = layout
    proc = run_cli("inspect", f"oci:{path}", "--no-files")
    assert proc.returncode == 0, proc.stderr
    assert f"digest      {digest}" in proc.stdout


def test_a_layout_of_two_images_counts_images_tags_and_referrers(layout, tmp_path):
    import shutil

    path, _, _ = layout
    two = tmp_path / "two"
    shutil.copytree(path, two)
    build(FIXTURES / "hello-root", two, "--version", "v2", "--tag", "v2", "--upx", "off")
    proc = run_cli("inspect", f"oci:{two}", "--no-files")
    assert proc.returncode == 4, proc.stderr
    assert f"{two} holds 2 images (3 tags, 2 referrers)" in proc.stderr
    assert "latest, v1, v2" in proc.stderr


def test_a_layout_path_without_oci_prefix_is_hinted(layout):
    path, _, _ = layout
    proc = run_cli("inspect", f"{path}:v1")
    assert proc.returncode == 4, proc.stderr
    assert "names no registry" in proc.stderr and f"oci:{path}:v1" in proc.stderr


def test_text_inspect_shows_each_diff_id_and_the_users_readably(layout):
    path, _, _ = layout
    json_doc = run_cli("inspect", f"oci:{path}:v1", "--json", "--no-files")
    import json

    diff_ids = [l["diff_id"] for l in json.loads(json_doc.stdout)["layers"]]
    proc = run_cli("inspect", f"oci:{path}:v1", "--no-files")
    assert proc.returncode == 0, proc.stderr
    for d in diff_ids:
        assert f"diff_id {d}" in proc.stdout
    assert "passwd: mtime 2026-01-01T00:00:00Z, users root 0:0, goapp 1001:1001" in proc.stdout
    assert "{'" not in proc.stdout and "[{" not in proc.stdout


def test_the_build_report_prints_the_sbom_line_before_next(layout):
    _, _, proc = layout
    err = proc.stderr
    assert "sbom      SPDX 2.3" in err and "next:" in err
    assert err.index("sbom      SPDX 2.3") < err.index("next:")
