"""--base and the production-alpine target, end to end: a busybox-static base (tests/busybox_base.py) as an OCI
layout and pushed to a loopback registry; the built image read by skopeo and umoci and run in a user namespace (a
shell, the app as 1001, the config's own health check command against the running app)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from busybox_base import build_busybox_base
from conftest import SAMPLE, build, free_port, manifest_and_config, require, run_cli, sandbox_argv, unpack
from ocibake.layers.tar import Entry
from regtools import ocibake, reg_env

OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> Path:
    """One layout: `1` (a single amd64 image), `idx` (an index with amd64 only), `docker` (Docker media types),
    `full` (with a CA bundle and zoneinfo of its own)."""
    require("busybox")
    layout = tmp_path_factory.mktemp("bases") / "layout"
    build_busybox_base(layout, "1")
    build_busybox_base(layout, "idx", index_platforms=("linux/amd64",))
    build_busybox_base(layout, "docker", docker_types=True)
    build_busybox_base(layout, "multi", index_platforms=("linux/amd64", "linux/arm64"))
    build_busybox_base(
        layout,
        "full",
        extra=(
            Entry.file("/etc/ssl/certs/ca-certificates.crt", b"# base CA\n"),
            Entry.file("/usr/share/zoneinfo/UTC", b"TZif2"),
        ),
    )
    return layout


def alpine(base: str, out: Path, *args: str, env: dict | None = None):
    return build(SAMPLE, out, "--target", "production-alpine", "--base", base, "--upx", "off", *args, env=env)


def config_of(layout: Path, digest: str) -> tuple[dict, dict, dict]:
    manifest, config = manifest_and_config(layout, digest)
    return manifest, config, json.loads(config["config"]["Labels"]["dev.ocibake.build-record"])


def run_app_and_health_check(rootfs: Path, port: int, command: list[str]) -> subprocess.CompletedProcess:
    """Start /app in the sandbox, wait for it, then run the health check ``command`` in a second sandbox of the same
    rootfs (the network is the host's loopback, as a container's own is to itself)."""
    argv = [*sandbox_argv(rootfs, {"PORT": str(port)}), "/app"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as app:
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert app.poll() is None, app.stderr.read() if app.stderr else ""
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            return subprocess.run(
                [*sandbox_argv(rootfs, {"PATH": "/bin"}), *command],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            app.kill()


def test_production_alpine_on_an_oci_layout_base_runs_with_a_shell_and_its_health_check(bases, tmp_path):
    port = free_port()
    out = tmp_path / "img"
    digest, _ = alpine(f"oci:{bases}:1", out, "--port", str(port), "--version", "v1")
    manifest, config, record = config_of(out, digest)
    base_manifest = json.loads((bases / "index.json").read_text())
    base_digest = next(
        m["digest"] for m in base_manifest["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "1"
    )
    # the base: its layer first, unchanged; its config inherited, ocibake's settings on top
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == base_digest
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == "oci:layout:1"
    assert record["base"]["digest"] == record["base"]["manifest"] == base_digest
    assert manifest["layers"][0]["digest"] == record["base"]["layers"][0]
    assert all(layer["mediaType"] == OCI_GZIP for layer in manifest["layers"])
    runtime = config["config"]
    assert "BASE_GREETING=from-base" in runtime["Env"] and runtime["WorkingDir"] == "/srv"
    assert runtime["Labels"]["org.example.base"] == "busybox"
    assert runtime["Labels"]["org.opencontainers.image.title"] == "emergency-service"  # ocibake's wins
    assert runtime["User"] == "1001:1001" and runtime["Entrypoint"] == ["/app"] and "Cmd" not in runtime
    assert config["history"][0]["created_by"] == "busybox-static rootfs"
    assert len([h for h in config["history"] if not h.get("empty_layer")]) == len(manifest["layers"])
    check = runtime["Healthcheck"]
    assert check["Test"] == ["CMD-SHELL", f"wget -q -O /dev/null http://localhost:{port}/health || exit 1"]
    assert record["healthcheck"] == check["Test"]
    # the busybox base has no CA bundle or zoneinfo: ocibake's layers are there
    assert "skipped_layers" not in record and {"ca-certificates", "zoneinfo"} <= set(record["layers"])
    # independent readers
    inspected = json.loads(
        subprocess.run(["skopeo", "inspect", f"oci:{out}:v1"], stdout=subprocess.PIPE, check=True).stdout
    )
    assert inspected["Digest"] == digest and len(inspected["Layers"]) == 5
    rootfs = unpack(out, "v1", tmp_path / "unpacked")
    passwd = (rootfs / "etc/passwd").read_text().splitlines()
    assert passwd[:2] == ["root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/bin/false"]
    assert passwd[2].startswith("goapp:x:1001:1001:")
    assert (rootfs / "etc/group").read_text().splitlines()[-1] == "goapp:x:1001:"
    shell = subprocess.run(
        [*sandbox_argv(rootfs, {"PATH": "/bin"}), "/bin/sh", "-c", "id; echo $BASE_GREETING"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.splitlines()[0] == "uid=1001(goapp) gid=1001(goapp)"
    # the config's own health check command, run with the base's sh and wget against the running app
    health = run_app_and_health_check(rootfs, port, ["/bin/sh", "-c", check["Test"][1]])
    assert health.returncode == 0, health.stderr
    body = run_app_and_health_check(rootfs, port, ["/bin/sh", "-c", f"wget -q -O - http://localhost:{port}/health"])
    assert json.loads(body.stdout)["uid"] == 1001
    # and it fails when nothing answers
    idle = subprocess.run(
        [*sandbox_argv(rootfs, {"PATH": "/bin"}), "/bin/sh", "-c", check["Test"][1]],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert idle.returncode == 1
    again, _ = alpine(f"oci:{bases}:1", tmp_path / "again", "--port", str(port), "--version", "v1")
    assert again == digest


def test_base_with_its_own_ca_bundle_and_zoneinfo_gets_neither_unless_asked(bases, tmp_path):
    digest, _ = alpine(f"oci:{bases}:full", tmp_path / "a")
    manifest, _, record = config_of(tmp_path / "a", digest)
    assert record["skipped_layers"] == {
        "ca-certificates": "the base has /etc/ssl/certs/ca-certificates.crt",
        "zoneinfo": "the base has /usr/share/zoneinfo",
    }
    assert set(record["layers"]) == {"passwd", "binary"} and len(manifest["layers"]) == 3
    asked, _ = alpine(f"oci:{bases}:full", tmp_path / "b", "--ca-bundle", "certifi")
    _, _, record = config_of(tmp_path / "b", asked)
    assert "ca-certificates" in record["layers"] and record["skipped_layers"] == {
        "zoneinfo": "the base has /usr/share/zoneinfo"
    }


def test_healthcheck_flags_and_a_docker_format_base_converted_to_oci(bases, tmp_path):
    digest, _ = alpine(f"oci:{bases}:docker", tmp_path / "a", "--healthcheck", "test -x /app")
    manifest, config, _ = config_of(tmp_path / "a", digest)
    assert config["config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -x /app"]
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert {layer["mediaType"] for layer in manifest["layers"]} == {OCI_GZIP}
    require("umoci")
    unpack(tmp_path / "a", "latest", tmp_path / "u")
    none, _ = alpine(f"oci:{bases}:docker", tmp_path / "b", "--no-healthcheck")
    assert "Healthcheck" not in config_of(tmp_path / "b", none)[1]["config"]
    both = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "c"),
        "--target",
        "production-alpine",
        "--base",
        f"oci:{bases}:1",
        "--healthcheck",
        "true",
        "--no-healthcheck",
    )
    assert both.returncode == 4 and "contradict" in both.stderr and not (tmp_path / "c").exists()


def test_a_registry_base_is_pulled_once_and_a_pinned_one_builds_with_the_registry_stopped(
    bases, fresh_registry, tmp_path
):
    reg = fresh_registry
    env = reg_env(reg, tmp_path / "home")
    pushed = ocibake("push", str(bases), f"{reg.host}/bases/busybox", "--tag", "idx", env=env)
    assert pushed.returncode == 0, pushed.stderr
    index_digest = pushed.stdout.strip().split("@")[1]
    by_tag = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "a"),
        "--target",
        "production-alpine",
        "--base",
        f"{reg.host}/bases/busybox:idx",
        "--upx",
        "off",
        "--json",
        env=env,
    )
    assert by_tag.returncode == 0, by_tag.stderr
    report = json.loads(by_tag.stdout)
    assert report["base"]["digest"] == index_digest  # the tag, resolved to the index
    assert report["base"]["manifest"] != index_digest  # and the amd64 image in it
    manifest, _, _ = config_of(tmp_path / "a", report["digest"])
    assert manifest["annotations"]["org.opencontainers.image.base.name"] == f"{reg.host}/bases/busybox:idx"
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == report["base"]["manifest"]
    assert (tmp_path / "home/.cache/ocibake/bases/blobs/sha256" / index_digest.split(":")[1]).is_file()
    pinned = f"{reg.host}/bases/busybox@{index_digest}"
    first = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "b"),
        "--target",
        "production-alpine",
        "--base",
        pinned,
        "--upx",
        "off",
        "--json",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    assert "pulling base" not in first.stderr  # already in the cache
    reg.stop()
    offline = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "c"),
        "--target",
        "production-alpine",
        "--base",
        pinned,
        "--upx",
        "off",
        "--json",
        env=env,
    )
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["digest"] == json.loads(first.stdout)["digest"]
    rootfs = unpack(tmp_path / "c", "latest", tmp_path / "u")  # the image made from the cached base runs
    shell = subprocess.run(
        [*sandbox_argv(rootfs, {"PATH": "/bin"}), "/bin/sh", "-c", "id -un"],
        check=False,
        stdout=subprocess.PIPE,
        text=True,
        timeout=30,
    )
    assert shell.stdout.strip() == "goapp"
    unpinned = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "d"),
        "--target",
        "production-alpine",
        "--base",
        f"{reg.host}/bases/busybox:idx",
        "--upx",
        "off",
        env=env,
    )
    assert unpinned.returncode == 5 and "pinned by digest" in unpinned.stderr
    assert not (tmp_path / "d").exists()


def test_bad_bases_and_targets_fail_with_one_line_and_write_nothing(bases, fresh_registry, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bases, damaged)
    manifest, _ = manifest_and_config(bases, json.loads((bases / "index.json").read_text())["manifests"][0]["digest"])
    layer = damaged / "blobs/sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    env = reg_env(fresh_registry, tmp_path / "home")
    cases = [
        (["--base", f"oci:{bases}:idx", "--platform", "linux/arm64"], 4, "has no image for linux/arm64"),
        (["--base", f"oci:{bases}:1", "--platform", "linux/arm64"], 4, "is a linux/amd64 image, not linux/arm64"),
        (["--base", f"oci:{tmp_path}/nowhere:1"], 4, "does not exist"),
        (["--base", f"oci:{bases}:nosuchtag"], 4, "tag 'nosuchtag' is not in"),
        (["--base", f"{fresh_registry.host}/never/pushed:1"], 5, "never/pushed"),
        (["--base", f"oci:{damaged}:1"], 4, "is damaged"),
        (["--base", f"oci:{bases}:1", "--platform", "linux/sparc64"], 4, "Go does not build Linux binaries"),
        ([], 4, "builds on a base image: give --base"),
    ]
    for args, code, message in cases:
        out = tmp_path / "out"
        proc = run_cli(
            "build", str(SAMPLE), "--output", str(out), "--target", "production-alpine", "--upx", "off", *args, env=env
        )
        assert proc.returncode == code and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
        assert not out.exists()
    unknown = run_cli("build", str(SAMPLE), "--output", str(tmp_path / "out"), "--target", "staging")
    assert unknown.returncode == 4 and "unknown target 'staging'" in unknown.stderr


def test_target_tables_in_ocibake_toml_set_the_base_for_one_target(bases, tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(SAMPLE, service)
    shutil.copytree(bases, service / "bases")
    (service / "ocibake.toml").write_text(
        'upx = "off"\n\n[target.production-alpine]\nbase = "oci:bases:1"\nhealthcheck = "true"\n'
    )
    digest, _ = build(service, tmp_path / "a", "--target", "production-alpine")
    _, config, record = config_of(tmp_path / "a", digest)
    assert config["config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"] and record["base"]["name"] == "oci:bases:1"
    plain, _ = build(service, tmp_path / "b")  # production: the table does not apply
    assert "base" not in config_of(tmp_path / "b", plain)[2]
    (service / "ocibake.toml").write_text('[target.staging]\nbase = "x"\n')
    bad = run_cli("build", str(service), "--output", str(tmp_path / "c"))
    assert bad.returncode == 4 and "unknown target [target.staging]" in bad.stderr


def test_a_two_platform_build_on_a_registry_index_base_takes_each_platforms_image(bases, fresh_registry, tmp_path):
    reg = fresh_registry
    env = reg_env(reg, tmp_path / "home")
    pushed = ocibake("push", str(bases), f"{reg.host}/bases/busybox", "--tag", "multi", env=env)
    assert pushed.returncode == 0, pushed.stderr
    index_digest = pushed.stdout.strip().split("@")[1]
    proc = run_cli(
        "build",
        str(SAMPLE),
        "--output",
        str(tmp_path / "o"),
        "--target",
        "production-alpine",
        "--base",
        f"{reg.host}/bases/busybox:multi",
        "--platform",
        "linux/amd64,linux/arm64",
        "--upx",
        "off",
        "--json",
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    base_index = json.loads((bases / "blobs/sha256" / index_digest.split(":")[1]).read_text())
    children = {m["platform"]["architecture"]: m["digest"] for m in base_index["manifests"]}
    for image in report["images"]:
        arch = image["platform"].split("/")[1]
        manifest, config, record = config_of(tmp_path / "o", image["digest"])
        assert record["base"]["digest"] == index_digest and record["base"]["manifest"] == children[arch]
        assert manifest["annotations"]["org.opencontainers.image.base.digest"] == children[arch]
        assert config["architecture"] == arch and "Healthcheck" in config["config"]
