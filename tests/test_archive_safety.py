"""An archive never carries a host file: export reads a layout's blobs only as regular files inside it."""

from __future__ import annotations

import json
import shutil

from conftest import FIXTURES, run_cli


def test_export_refuses_a_blob_that_is_a_symlink(tmp_path):
    layout = tmp_path / "layout"
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--upx",
        "off",
        "--sbom",
        "none",
        "--provenance",
        "none",
        "--output",
        str(layout),
    )
    assert proc.returncode == 0, proc.stderr
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    blob = layout / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]
    outside = tmp_path / "host-file"
    shutil.copy(blob, outside)  # same bytes, same hash: only the symlink gives it away
    blob.unlink()
    blob.symlink_to(outside)
    archive = tmp_path / "x.tar"
    proc = run_cli("export", str(layout), f"docker-archive:{archive}")
    assert proc.returncode == 4, proc.stderr
    assert "is a symlink" in proc.stderr and "Traceback" not in proc.stderr
    assert not archive.exists()
