"""`ocibake build` end to end: real go, independent readers (skopeo, umoci), the image run in a namespace."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile

import pytest
import zstandard

from conftest import (
    FIXTURES,
    SAMPLE,
    blob,
    build,
    health_check,
    layout_index,
    manifest_and_config,
    require,
    run_cli,
    run_in_rootfs,
    unpack,
)


def skopeo_inspect(layout, tag, *extra):
    require("skopeo")
    proc = subprocess.run(
        ["skopeo", "inspect", *extra, f"oci:{layout}:{tag}"], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_skopeo_reads_every_tag_with_the_same_digest(sample_image):
    layout, digest = sample_image
    for tag in ("v1.0.0", "latest"):
        assert skopeo_inspect(layout, tag)["Digest"] == digest
    refs = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in layout_index(layout)["manifests"]
        if "annotations" in m
    }
    assert refs == {"v1.0.0": digest, "latest": digest}
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_config_is_what_kubernetes_and_auditors_need(sample_image):
    layout, digest = sample_image
    manifest, config = manifest_and_config(layout, digest)
    skopeo_config = skopeo_inspect(layout, "v1.0.0", "--config")
    assert skopeo_config["config"]["User"] == "1001:1001"
    assert config["config"]["Entrypoint"] == ["/app"]
    assert config["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert len(config["history"]) == len(manifest["layers"]) == len(config["rootfs"]["diff_ids"]) == 4
    assert all(h["created"] == config["created"] for h in config["history"])
    labels = config["config"]["Labels"]
    for key in ("title", "version", "created", "revision", "source"):
        assert labels[f"org.opencontainers.image.{key}"] == manifest["annotations"][f"org.opencontainers.image.{key}"]
    assert labels["org.opencontainers.image.version"] == "v1.0.0"
    record = json.loads(labels["dev.ocibake.build-record"])
    assert record["go"]["version"].startswith("go1.")
    assert "-X main.Version=v1.0.0" in record["go"]["ldflags"] and "-buildid=" not in record["go"]["ldflags"]
    assert record["platform"] == "linux/amd64"
    assert record["layers"]["ca-certificates"]["source"] == "certifi" and record["layers"]["ca-certificates"]["version"]
    assert record["layers"]["zoneinfo"]["source"] == "tzdata" and record["layers"]["zoneinfo"]["version"]


def test_layers_are_ordered_and_owned_as_documented(sample_image):
    layout, digest = sample_image
    manifest, _ = manifest_and_config(layout, digest)
    listings = []
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        with tarfile.open(fileobj=io.BytesIO(blob(layout, layer["digest"]))) as tar:
            members = tar.getmembers()
        names = [m.name.rstrip("/") for m in members]
        assert names == sorted(names, key=lambda n: n.split("/"))
        assert all(m.uname == "" and m.gname == "" for m in members)
        assert len({m.mtime for m in members}) == 1
        listings.append({m.name.rstrip("/"): m for m in members})
    passwd, zoneinfo, ca, binary = listings
    assert passwd["home/goapp"].uid == 1001 and passwd["etc/passwd"].uid == 0
    assert passwd["tmp"].mode == 0o1777
    assert "usr/share/zoneinfo/America/New_York" in zoneinfo and not any(
        n.startswith("usr/share/zoneinfo/right") for n in zoneinfo
    )
    assert ca["etc/ssl/certs/ca-certificates.crt"].mode == 0o644
    assert binary["app"].mode == 0o555 and binary["app"].uid == 0
    assert "etc" in ca and "etc/ssl" in ca, "parent directories are listed"


def test_unpacked_image_runs_as_1001_with_zoneinfo_and_certificates(sample_image, tmp_path):
    layout, _ = sample_image
    rootfs = unpack(layout, "v1.0.0", tmp_path / "bundle")
    version = run_in_rootfs(rootfs, "--version")
    assert version.returncode == 0, version.stderr
    commit = subprocess.run(
        ["git", "-C", str(SAMPLE), "rev-parse", "HEAD"], check=False, stdout=subprocess.PIPE, text=True
    ).stdout
    assert re.fullmatch(
        r"emergency-service v1\.0\.0 \(built \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, commit (\w+)\)\n", version.stdout
    ), version.stdout
    assert version.stdout.split("commit ")[1][:7] == (commit[:7] if commit else "unknow")
    check = run_in_rootfs(rootfs, "--selfcheck")
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["uid"] == 1001
    assert report["new_york"] == "08:00 EDT"
    assert report["certificates"] > 100
    health = health_check(rootfs)
    assert health["status"] == "ok" and health["version"] == "v1.0.0"


def test_without_the_zoneinfo_layer_the_binary_cannot_load_zones(sample_image, tmp_path):
    """Negative control: the zone data comes from the image, not from the host or the binary."""
    layout, _ = sample_image
    rootfs = unpack(layout, "latest", tmp_path / "bundle")
    shutil.rmtree(rootfs / "usr" / "share" / "zoneinfo")
    report = json.loads(run_in_rootfs(rootfs, "--selfcheck").stdout)
    assert report["status"] == "degraded" and "America/New_York" in report["error"]


@pytest.mark.parametrize(
    ("fixture", "greeting", "extra_env"),
    [
        ("hello-root", "hello from the root", {}),
        ("cmd-main", "hello from cmd", {}),
        ("replace-sibling/service", "hello from a replaced sibling", {}),
        ("vendored-service", "hello from vendor", {"GOFLAGS": "-mod=vendor", "GOPROXY": "off"}),
    ],
)
def test_fixture_services_build_and_run(fixture, greeting, extra_env, tmp_path):
    layout = tmp_path / "layout"
    digest, _proc = build(FIXTURES / fixture, layout, "--version", "v2.3.4", env=extra_env)
    assert skopeo_inspect(layout, "v2.3.4")["Digest"] == digest
    rootfs = unpack(layout, "v2.3.4", tmp_path / "bundle")
    health = health_check(rootfs)
    assert health == {**health, "status": "ok", "greeting": greeting, "uid": 1001, "gid": 1001, "version": "v2.3.4"}
    assert health["certificates"] > 100 and health["new_york"] == "07:00 EST"


def test_report_on_stderr_and_only_the_reference_on_stdout(tmp_path):
    layout = tmp_path / "l"
    digest, proc = build(FIXTURES / "hello-root", layout, "--version", "v1", "--tag", "stable", "--name", "hello")
    assert proc.stdout == f"hello@{digest}\n"
    err = proc.stderr
    assert "module example.com/fixtures/hello-root" in err and "main package ." in err
    for word in ("CA bundle", "zoneinfo", "binary /app", "passwd", digest, "compressed", "skopeo inspect"):
        assert word in err
    assert {
        r["annotations"]["org.opencontainers.image.ref.name"]
        for r in layout_index(layout)["manifests"]
        if "annotations" in r
    } == {"stable"}


def test_json_report(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "l"), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["digest"].startswith("sha256:") and report["tags"] == ["dev", "latest"]
    assert [layer["kind"] for layer in report["layers"]] == ["passwd", "zoneinfo", "ca-certificates", "binary"]
    assert report["size"] == sum(layer["size"] for layer in report["layers"]) + report["config"]["size"] + len(
        blob(tmp_path / "l", report["digest"])
    )
    assert report["module"]["direct_dependencies"] == 0


def test_zstd_layers_are_read_by_skopeo_and_run(tmp_path):
    layout = tmp_path / "z"
    digest, _ = build(FIXTURES / "hello-root", layout, "--compression", "zstd", "--version", "v1")
    manifest, config = manifest_and_config(layout, digest)
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    import hashlib

    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob(layout, layer["digest"]))).read()
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == diff_id
    # umoci 0.4 cannot read zstd; skopeo (independent) recompresses it, and the copy runs.
    converted = tmp_path / "gz"
    proc = subprocess.run(
        ["skopeo", "copy", "--dest-compress-format", "gzip", f"oci:{layout}:v1", f"oci:{converted}:v1"],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout
    rootfs = unpack(converted, "v1", tmp_path / "bundle")
    assert json.loads(run_in_rootfs(rootfs, "--selfcheck").stdout)["status"] == "ok"


def test_settings_file_is_read_and_flags_win(tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    (service / "ocibake.toml").write_text('port = 9090\n[build]\nname = "from-toml"\nversion = "v9"\n')
    digest, proc = build(service, tmp_path / "l", "--version", "v10")
    assert proc.stdout.startswith("from-toml@")
    _, config = manifest_and_config(tmp_path / "l", digest)
    assert config["config"]["ExposedPorts"] == {"9090/tcp": {}}
    assert config["config"]["Labels"]["org.opencontainers.image.version"] == "v10"


def test_version_commands():
    assert run_cli("--version").stdout.startswith("ocibake ")


def test_cross_compiled_image_says_its_binary_was_not_run(tmp_path):
    layout = tmp_path / "arm"
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(layout),
        "--platform",
        "linux/arm64",
        "--version",
        "v1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # the production default packs the arm64 binary too; without qemu-aarch64-static it says that the packed binary
    # was not run either, with it that it ran under emulation
    if shutil.which("qemu-aarch64-static"):
        assert report["binary"]["check"].endswith("(verified under qemu-aarch64-static)")
        assert "v1" in report["binary"]["check"]
    else:
        assert report["binary"]["check"] == (
            "not verified: linux/arm64 does not run on this host (no "
            "qemu-user-static for it); the UPX-packed binary is not verified"
        )
    assert report["binary"]["upx"]["size_after"] < report["binary"]["upx"]["size_before"]
    assert report["binary"]["upx"]["startup_seconds"] is None
    _, config = manifest_and_config(layout, report["digest"])
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    entry = layout_index(layout)["manifests"][0]
    assert entry["platform"] == {"os": "linux", "architecture": "arm64"}
    assert skopeo_inspect(layout, "v1", "--override-arch", "arm64")["Architecture"] == "arm64"
