"""`ocibake inspect` and `ocibake diff` on images built from a fixture (layouts and the loopback registry)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, build, run_cli
from regtools import ocibake, reg_env

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two builds of hello-root that differ only in the CA bundle's bytes (one certificate line dropped)."""
    base = tmp_path_factory.mktemp("images")
    import certifi

    text = Path(certifi.where()).read_text()
    pem = base / "ca.pem"
    first = text.index("-----BEGIN CERTIFICATE-----")
    pem.write_text(text[first:])  # the same certificates, without certifi's leading comments
    a, _ = build(FIXTURES / "hello-root", base / "a", "--version", "v1", "--upx", "off", env=EPOCH)
    b, _ = build(
        FIXTURES / "hello-root", base / "b", "--version", "v1", "--upx", "off", "--ca-bundle", str(pem), env=EPOCH
    )
    return base, a, b


def test_inspect_lists_layers_files_owners_and_the_build_record(images):
    base, a, _ = images
    proc = run_cli("inspect", f"oci:{base / 'a'}:v1", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["digest"] == a
    assert doc["config"]["user"] == "1001:1001" and doc["config"]["created"] == "2023-11-14T22:13:20Z"
    files = {f["path"]: f for layer in doc["layers"] for f in layer["files"]}
    assert files["/app"]["mode"] == "0555" and files["/app"]["uid"] == 0 and files["/app"]["size"] > 100_000
    assert (files["/home/goapp"]["uid"], files["/home/goapp"]["gid"]) == (1001, 1001)
    assert files["/etc/ssl/certs/ca-certificates.crt"]["digest"].startswith("sha256:")
    assert all(layer["size"] > 0 and layer["diff_id"].startswith("sha256:") for layer in doc["layers"])
    assert doc["build_record"]["module"] == "example.com/fixtures/hello-root"
    assert doc["build_record"]["source_date_epoch"] == 1700000000
    assert sorted(r["artifactType"] for r in doc["referrers"]) == [
        "application/spdx+json",
        "application/vnd.in-toto+json",
    ]
    assert doc["referrers_from"] == "layout"

    human = run_cli("inspect", f"oci:{base / 'a'}@{a}")
    assert human.returncode == 0, human.stderr
    assert "0555       0:0" in human.stdout and "/app" in human.stdout
    assert "1001:1001        dir  /home/goapp" in human.stdout
    assert "module example.com/fixtures/hello-root" in human.stdout


def test_diff_of_images_differing_in_one_file_prints_exactly_that_file(images):
    base, _a, _b = images
    proc = run_cli("diff", f"oci:{base / 'a'}:v1", f"oci:{base / 'b'}:v1", "--json")
    assert proc.returncode == 6, proc.stderr
    doc = json.loads(proc.stdout)
    changed = [f for layer in doc["layers"] for f in layer["files"]]
    assert [f["path"] for f in changed] == ["/etc/ssl/certs/ca-certificates.crt"]
    assert set(changed[0]["fields"]) == {"digest", "size"}
    assert [layer["same"] for layer in doc["layers"]] == [True, True, False, True]
    assert {c["field"] for c in doc["config"]} >= {"build-record.layers.ca-certificates.sha256"}
    assert doc["verdict"].startswith("different:")

    human = run_cli("diff", f"oci:{base / 'a'}:v1", f"oci:{base / 'b'}:v1")
    assert human.returncode == 6
    file_lines = [line for line in human.stdout.splitlines() if line.startswith("      ")]
    assert len(file_lines) == 1 and "/etc/ssl/certs/ca-certificates.crt: digest" in file_lines[0]
    assert human.stdout.strip().splitlines()[-1].startswith("different: ")


def test_diff_of_an_image_with_itself_is_identical(images):
    base, a, _ = images
    proc = run_cli("diff", f"oci:{base / 'a'}:v1", f"oci:{base / 'a'}@{a}", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"identical: both are {a}"


def test_inspect_and_diff_read_images_from_the_registry(images, plain_registry, tmp_path):
    base, a, _b = images
    reg = plain_registry
    env = reg_env(reg, tmp_path / "home")
    assert ocibake("push", str(base / "a"), f"{reg.host}/audit/hello", "-t", "v1", env=env).returncode == 0
    proc = ocibake("inspect", f"{reg.host}/audit/hello:v1", "--json", "--no-files", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["digest"] == a and "files" not in doc["layers"][0]
    # `ocibake push` took the layout's SBOM and provenance along, under the fallback tag (this registry has no
    # referrers API)
    sbom = [r for r in doc["referrers"] if r["artifactType"] == "application/spdx+json"]
    assert len(doc["referrers"]) == 2 and len(sbom) == 1
    assert doc["referrers_from"] == "tag" and sbom[0]["sbom"]["spdx"] == "SPDX-2.3"
    same = ocibake("diff", f"{reg.host}/audit/hello:v1", f"oci:{base / 'a'}:v1", "-q", env=env)
    assert same.returncode == 0, same.stderr
    other = ocibake("diff", f"{reg.host}/audit/hello@{a}", f"oci:{base / 'b'}:v1", "-q", env=env)
    assert other.returncode == 6 and other.stdout.startswith("different:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "oci:{base}/a:nope"], "tag 'nope' is not in"),
        (["inspect", "oci:{base}/missing:v1"], "is not a directory"),
        (["diff", "oci:{base}/a:v1", "oci:{base}/a@sha256:" + "0" * 64], "is not in"),
    ],
)
def test_bad_references_say_what_is_wrong(images, args, message):
    base, _, _ = images
    proc = run_cli(*[a.format(base=base) for a in args])
    assert proc.returncode == 4, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr and "hint:" in proc.stderr


def test_a_corrupted_layer_is_reported_not_crashed_on(images, tmp_path):
    base, a, _ = images
    copy = tmp_path / "copy"
    shutil.copytree(base / "a", copy)
    manifest = json.loads((copy / "blobs" / "sha256" / a[7:]).read_text())
    layer = copy / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    layer.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    proc = run_cli("inspect", f"oci:{copy}:v1")
    assert proc.returncode == 4, proc.stderr
    assert "is damaged: it should hash to" in proc.stderr and "Traceback" not in proc.stderr


def test_a_layer_whose_bytes_do_not_match_its_digest_is_refused(images, tmp_path):
    base, a, _ = images
    copy = tmp_path / "copy"
    shutil.copytree(base / "a", copy)
    manifest = json.loads((copy / "blobs" / "sha256" / a[7:]).read_text())
    first, second = (copy / "blobs" / "sha256" / layer["digest"][7:] for layer in manifest["layers"][:2])
    first.write_bytes(second.read_bytes())  # a readable layer, under another layer's name
    proc = run_cli("inspect", f"oci:{copy}:v1")
    assert proc.returncode == 4, proc.stderr
    assert "layer 1 of 4" in proc.stderr and "it should hash to" in proc.stderr and "Traceback" not in proc.stderr


def test_inspect_and_diff_of_layouts_import_no_http_library(images):
    from test_import_contracts import HTTP_MODULES, imported_modules

    base, _a, _ = images
    for args in (
        ("inspect", f"oci:{base / 'a'}:v1", "--no-files"),
        ("diff", f"oci:{base / 'a'}:v1", f"oci:{base / 'b'}:v1"),
    ):
        modules, proc = imported_modules(*args)
        assert proc.returncode in (0, 6), proc.stderr[-2000:]
        assert not (modules & HTTP_MODULES), (args, modules & HTTP_MODULES)


# inspect of a layout of one image with several tags and an SBOM, a path without oci:, diff_ids and users


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
    assert f"{two} holds 2 images (3 tags, 4 referrers)" in proc.stderr
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

    diff_ids = [layer["diff_id"] for layer in json.loads(json_doc.stdout)["layers"]]
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


def test_inspect_shows_every_field_of_the_runtime_config(images, tmp_path):
    """Env, WorkingDir, Healthcheck, User, ports, entrypoint/cmd, stop signal, volumes: each shown as the config has
    it (a copy of the image whose config, manifest and index entry are re-hashed after the edit)."""
    import hashlib

    base, a, _ = images
    copy = tmp_path / "copy"
    shutil.copytree(base / "a", copy)
    blobs = copy / "blobs" / "sha256"

    def store(doc: dict) -> tuple[str, int]:
        data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs / digest[7:]).write_bytes(data)
        return digest, len(data)

    manifest = json.loads((blobs / a[7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    config["config"].update(
        Env=["PATH=/bin", "MODE=audit"],
        WorkingDir="/srv",
        Cmd=["--serve"],
        Healthcheck={"Test": ["CMD", "/app", "--health"], "Interval": 30000000000},
        StopSignal="SIGTERM",
        Volumes={"/data": {}},
    )
    manifest["config"]["digest"], manifest["config"]["size"] = store(config)
    digest, size = store(manifest)
    index = json.loads((copy / "index.json").read_text())
    for entry in index["manifests"]:
        if entry["digest"] == a:
            entry.update(digest=digest, size=size)
    (copy / "index.json").write_text(json.dumps(index))

    proc = run_cli("inspect", f"oci:{copy}:v1", "--no-files", "--json")
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["env"] == ["PATH=/bin", "MODE=audit"] and cfg["working_dir"] == "/srv" and cfg["cmd"] == ["--serve"]
    assert cfg["healthcheck"]["Test"] == ["CMD", "/app", "--health"] and cfg["volumes"] == ["/data"]
    assert cfg["runtime"]["StopSignal"] == "SIGTERM" and cfg["runtime"]["User"] == "1001:1001"
    human = run_cli("inspect", f"oci:{copy}:v1", "--no-files").stdout.splitlines()
    for line in (
        "env         PATH=/bin",
        "env         MODE=audit",
        "workdir     /srv",
        'cmd         ["--serve"]',
        'entrypoint  ["/app"]',
        'healthcheck Interval 30000000000, Test ["CMD", "/app", "--health"]',
        "stopsignal  SIGTERM",
        "volumes     /data",
        "user        1001:1001",
        "ports       8080/tcp",
        "checked     6 blobs: every blob against its digest and size, every layer against its diff_id",
    ):
        assert line in human, (line, human)
