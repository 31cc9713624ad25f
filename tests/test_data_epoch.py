"""Layers that do not come from the service's source (passwd/group, zoneinfo, CA bundle) carry the fixed DATA_EPOCH,
so two commits of a service share every layer but the binary's; the build record says which mtime each layer
carries. Real git, go and layouts."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

from conftest import FIXTURES, blob, build, git, manifest_and_config
from ocibake.layers.content import DATA_EPOCH

DATA_KINDS = ("passwd", "zoneinfo", "ca-certificates")


def layer_digests(layout, digest) -> tuple[list[str], dict]:
    manifest, config = manifest_and_config(layout, digest)
    return [layer["digest"] for layer in manifest["layers"]], json.loads(
        config["config"]["Labels"]["dev.ocibake.build-record"]
    )


def test_two_commits_share_every_layer_but_the_binary(tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    git("init", "-q", cwd=service)
    git("add", ".", cwd=service)
    git("commit", "-qm", "first", cwd=service)
    d1, _ = build(service, tmp_path / "a", "--upx", "off", "--version", "v1.0.0")

    main = service / "main.go"
    main.write_text(main.read_text().replace("hello from the root", "hello from the second commit"))
    later = "2025-07-08T09:10:11Z"
    git("commit", "-qam", "second", cwd=service, env={"GIT_AUTHOR_DATE": later, "GIT_COMMITTER_DATE": later})
    d2, _ = build(service, tmp_path / "b", "--upx", "off", "--version", "v1.0.1")
    assert d1 != d2

    layers1, record1 = layer_digests(tmp_path / "a", d1)
    layers2, record2 = layer_digests(tmp_path / "b", d2)
    assert len(layers1) == len(layers2) == 4
    assert layers1[:3] == layers2[:3], "passwd, zoneinfo and CA layers must not change with the commit"
    assert layers1[3] != layers2[3]
    for kind in DATA_KINDS:
        assert record1["layers"][kind]["mtime"] == record2["layers"][kind]["mtime"] == "2026-01-01T00:00:00Z"
    assert record1["layers"]["binary"]["mtime"] == "2024-03-01T10:20:30Z"
    assert record2["layers"]["binary"]["mtime"] == later

    # What the record says is what the tar holds.
    manifest, _ = manifest_and_config(tmp_path / "b", d2)
    mtimes = []
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(blob(tmp_path / "b", layer["digest"]))) as tar:
            mtimes.append({m.mtime for m in tar.getmembers()})
    assert mtimes[:3] == [{DATA_EPOCH}] * 3
    assert mtimes[3] == {1751965811}


def test_source_date_epoch_moves_only_the_binary_layer(tmp_path):
    """Outside git: two SOURCE_DATE_EPOCHs, and two services (another name and port) share the data layers."""
    a, _ = build(FIXTURES / "hello-root", tmp_path / "a", "--upx", "off", env={"SOURCE_DATE_EPOCH": "1600000000"})
    b, _ = build(
        FIXTURES / "cmd-main", tmp_path / "b", "--upx", "off", "--port", "9090", env={"SOURCE_DATE_EPOCH": "1700000000"}
    )
    layers_a, _ = layer_digests(tmp_path / "a", a)
    layers_b, _ = layer_digests(tmp_path / "b", b)
    assert layers_a[:3] == layers_b[:3] and layers_a[3] != layers_b[3]
