"""`ocibake build --push`: every tag the build made goes to the registry, stdout names what was pushed, and skopeo
reads back the same digest; bad push targets are refused before anything is built. A toolchain image pulled from a
registry (pinned by digest) builds, and is taken from the cache once pulled. Real docker-registry, go, upx, skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES
from registry_servers import free_port
from regtools import base_env, ocibake, reg_args, reg_env, skopeo_digest

SERVICE = str(FIXTURES / "hello-root")


@pytest.mark.parametrize("mode", ["plain", "token"])
def test_build_push_sends_every_tag_and_prints_what_it_pushed(mode, request, tmp_path):
    """Pushing itself is tested in every auth mode in test_registry_push.py; here the build's side of it."""
    reg = request.getfixturevalue(f"{mode}_registry")
    env = reg_env(reg, tmp_path / "home")
    repo = f"{reg.host}/sos-app/hello-{reg.mode}"
    proc = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "o"),
        "--version",
        "v1.0.0",
        "--upx",
        "off",
        "--push",
        repo,
        *reg_args(reg),
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    assert proc.stdout.splitlines() == [f"{repo}:v1.0.0@{digest}", f"{repo}:latest@{digest}"]
    assert "5 blob(s) uploaded" in proc.stderr  # 4 layers and the config
    for tag in ("v1.0.0", "latest"):
        assert skopeo_digest(reg, f"sos-app/hello-{reg.mode}:{tag}") == digest
    # the same build again uploads nothing
    again = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "o"),
        "--version",
        "v1.0.0",
        "--upx",
        "off",
        "--push",
        repo,
        "--json",
        *reg_args(reg),
        env=env,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["digest"] == digest and report["push"]["bytes_uploaded"] == 0
    assert report["push"]["references"] == [f"{repo}:v1.0.0@{digest}", f"{repo}:latest@{digest}"]


def test_bare_push_uses_ocibake_registry_and_the_image_name(plain_registry, tmp_path):
    reg = plain_registry
    env = {**reg_env(reg, tmp_path / "home"), "OCIBAKE_REGISTRY": f"{reg.host}/team"}
    proc = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "o"),
        "--version",
        "v2",
        "--upx",
        "off",
        "--push",
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{reg.host}/team/hello-root:v2@sha256:")
    proc = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "o2"),
        "--version",
        "v2",
        "--upx",
        "off",
        "--push",
        "other-name",
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(f"{reg.host}/team/other-name:v2@sha256:")


def test_bad_push_targets_are_refused_before_the_build(tmp_path):
    env = base_env(tmp_path / "home")
    out = tmp_path / "o"
    for target, expected in (
        ("emergency-service", "names no registry"),
        ("127.0.0.1:5000/UPPER/case", "is not a valid name"),
        ("127.0.0.1:5000/app:v1", "give a repository, not a tag or digest"),
        ("https://127.0.0.1:5000/app", "not a URL"),
    ):
        proc = ocibake("build", SERVICE, "--output", str(out), "--push", target, env=env)
        assert proc.returncode == 4, (target, proc.stderr)
        assert expected in proc.stderr and "hint:" in proc.stderr and "Traceback" not in proc.stderr
        assert "go build" not in proc.stderr and not out.exists()


def test_unreachable_registry_keeps_the_built_layout_and_exits_5(tmp_path):
    env = base_env(tmp_path / "home")
    port = free_port()
    proc = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "o"),
        "--upx",
        "off",
        "--push",
        f"127.0.0.1:{port}/team/app",
        env=env,
        timeout=300,
    )
    assert proc.returncode == 5, proc.stderr
    assert f"registry 127.0.0.1:{port}: cannot connect" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "o" / "index.json").is_file()  # the build itself stands; push it later with ocibake push


def test_toolchain_image_from_a_registry_pinned_by_digest(toolchain, toolchain_cache_env, fresh_registry, tmp_path):
    """Push the test toolchain image to a registry, build with REGISTRY/REPO@sha256:..., then build again with the
    registry stopped: the pinned toolchain comes from the cache."""
    ref, _cache = toolchain
    reg = fresh_registry
    env = {**reg_env(reg, tmp_path / "home"), **toolchain_cache_env}
    layout = ref[len("oci:") :].rsplit(":", 1)[0]
    pushed = ocibake("push", layout, f"{reg.host}/toolchains/go", "--tag", "go", env=env, timeout=300)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.split("@")[1].strip()
    pinned = f"{reg.host}/toolchains/go@{digest}"
    first = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "a"),
        "--toolchain",
        pinned,
        "--upx",
        "off",
        "--json",
        env=env,
        timeout=600,
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert "downloaded" in first.stderr  # pulled from the registry this time
    assert report["build_record"]["toolchain"]["digest"] == digest
    assert report["toolchain"].startswith(f"{pinned} = {digest}")  # the name is in the report...
    assert "reference" not in report["build_record"]["toolchain"]  # ...not in the image
    reg.stop()
    second = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "b"),
        "--toolchain",
        pinned,
        "--upx",
        "off",
        "--json",
        env=env,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["digest"] == report["digest"]
    # an unpinned reference needs the registry, which is down: a registry error, nothing built
    third = ocibake(
        "build",
        SERVICE,
        "--output",
        str(tmp_path / "c"),
        "--toolchain",
        f"{reg.host}/toolchains/go:go",
        env=env,
        timeout=300,
    )
    assert third.returncode == 5 and "cannot connect" in third.stderr
    assert not Path(tmp_path / "c").exists()
