"""`ocibake index`: images from two single-platform runs joined into an index, in a layout and in a registry, give the
same index digest as one two-platform run; bad children (missing, repeated platform, an index, another repository)
are refused with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from registry_servers import skopeo
from regtools import ocibake, reg_env, remote_digest

HELLO = FIXTURES / "hello-root"


def one(out: Path, platform: str, *args: str, env: dict | None = None) -> dict:
    proc = run_cli(
        "build",
        str(HELLO),
        "--output",
        str(out),
        "--platform",
        platform,
        "--version",
        "v1",
        "--upx",
        "off",
        "--json",
        *args,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("index")
    both = one(base / "both", "linux/amd64,linux/arm64")
    return {
        "base": base,
        "both": both,
        "amd64": one(base / "amd64", "linux/amd64"),
        "arm64": one(base / "arm64", "linux/arm64"),
    }


def test_index_of_two_layouts_equals_the_two_platform_run(built):
    base = built["base"]
    proc = run_cli(
        "index",
        "--output",
        str(base / "joined"),
        "--tag",
        "v1",
        "--tag",
        "latest",
        f"oci:{base / 'amd64'}:v1",
        f"oci:{base / 'arm64'}:v1",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("@")[1].split()[0] == built["both"]["digest"]
    raw = skopeo("inspect", "--raw", f"oci:{base / 'joined'}:latest")
    assert raw.returncode == 0 and len(json.loads(raw.stdout)["manifests"]) == 2
    copied = skopeo(
        "copy", "--quiet", "--override-arch", "arm64", f"oci:{base / 'joined'}:v1", f"oci:{base / 'arm-only'}:x"
    )
    assert copied.returncode == 0, copied.stderr


def test_index_of_images_pushed_by_digest_equals_the_two_platform_run(built, fresh_registry, tmp_path):
    reg = fresh_registry
    env = reg_env(reg, tmp_path / "home")
    repo = f"{reg.host}/sos/hello"
    for arch in ("amd64", "arm64"):
        pushed = ocibake("push", str(built["base"] / arch), repo, "--tag", "v1", env=env)
        assert pushed.returncode == 0, pushed.stderr
    children = [f"{repo}@{built[a]['digest']}" for a in ("amd64", "arm64")]
    proc = ocibake("index", "--push", f"{repo}:v1", *children, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{repo}:v1@{built['both']['digest']}"
    assert remote_digest(reg, "sos/hello:v1") == built["both"]["digest"]
    # bad children: nothing is pushed
    cases = [
        ([children[0], children[0]], 4, "two images for linux/amd64"),
        ([children[0], f"{repo}@sha256:{'0' * 64}"], 5, ""),
        ([children[0], f"{reg.host}/other/repo@{built['arm64']['digest']}"], 4, "is not in"),
        ([children[0], f"{repo}@{built['both']['digest']}"], 4, "not a single image"),
        ([children[0], f"{repo}:v1"], 4, "by digest"),
    ]
    for images, code, message in cases:
        bad = ocibake("index", "--push", f"{repo}:bad", *images, env=env)
        assert bad.returncode == code and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
    assert skopeo("inspect", "--raw", *reg.skopeo_flags(), f"docker://{repo}:bad").returncode != 0


def test_index_refuses_bad_layout_children_and_writes_nothing(built, tmp_path):
    base = built["base"]
    for images, message in (
        ([f"oci:{base / 'amd64'}:v1", f"oci:{base / 'amd64'}:latest"], "two images for"),
        ([f"oci:{base / 'amd64'}:v1", f"oci:{base / 'both'}:v1"], "not a single image"),
        ([f"oci:{base / 'amd64'}:v1", f"oci:{tmp_path / 'none'}:v1"], "is not a directory"),
    ):
        proc = run_cli("index", "--output", str(tmp_path / "o"), "--tag", "v1", *images)
        assert proc.returncode == 4 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()
    usage = run_cli("index", f"oci:{base / 'amd64'}:v1")
    assert usage.returncode == 2 and "--push REPO:TAG or --output DIR" in usage.stderr
