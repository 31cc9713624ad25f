"""`ocibake sbom` as users call it: --output into a new directory, refused for a directory; --platform on a
single-platform image is checked against the image, never ignored."""

from __future__ import annotations

import json

from conftest import run_cli


def test_sbom_output_makes_its_directory_and_refuses_a_directory(sample_image, tmp_path):
    layout, _ = sample_image
    dest = tmp_path / "new" / "dir" / "sbom.spdx.json"
    proc = run_cli("sbom", f"oci:{layout}:v1.0.0", "--output", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(dest.read_text())["spdxVersion"] == "SPDX-2.3"
    refused = run_cli("sbom", f"oci:{layout}:v1.0.0", "--output", str(tmp_path))
    assert refused.returncode == 4 and "is a directory" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]  # nothing half-written beside it


def test_platform_on_a_single_image_is_checked(sample_image):
    layout, _ = sample_image
    ref = f"oci:{layout}:v1.0.0"
    for command in ("sbom", "inspect"):
        other = run_cli(command, ref, "--platform", "linux/arm64")
        assert other.returncode == 4, other.stderr
        assert "is a linux/amd64 image, not linux/arm64" in other.stderr
        bogus = run_cli(command, ref, "--platform", "bogus")
        assert bogus.returncode == 4 and "Traceback" not in bogus.stderr, bogus.stderr
    same = run_cli("sbom", ref, "--platform", "linux/amd64")
    assert same.returncode == 0, same.stderr
