"""Building with a toolchain image: the tests make the image themselves (offline, with ocibake's own layer and layout
code: the host's GOROOT and upx with its libraries), then build fixture services in the rootless sandbox and compare
with the local toolchain. Real go, upx, bwrap and unshare; nothing mocked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO, health_check, manifest_and_config, run_in_rootfs, unpack
from ocibake.builder.bake import BUILD_RECORD_LABEL, bake
from ocibake.builder.gobuild import go_build_request
from ocibake.builder.spec import BuildSpec
from ocibake.builder.upx import compress
from ocibake.errors import InputError, OcibakeError, ToolchainError
from ocibake.oci.image import Platform
from ocibake.toolchain.choose import make_toolchain
from ocibake.toolchain.image import ImageToolchain
from ocibake.toolchain.image_ref import parse_toolchain_ref
from ocibake.toolchain.local import LocalToolchain
from ocibake.toolchain.sandbox import Sandbox
from toolchain_image_builder import build_toolchain_image

LDFLAGS = "-s -w -buildid= -X main.Version=v2.0.0"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def go_build(tc, service: Path, out: Path, package: str = ".") -> Path:
    tc.go_build(
        go_build_request(
            service_dir=service, package=package, output=out, platform=Platform("linux", "amd64"), ld=LDFLAGS
        )
    )
    return out


def test_same_binary_as_the_local_toolchain(toolchain, tmp_path):
    ref, cache = toolchain
    image_tc = ImageToolchain(ref, cache=cache)
    assert image_tc.go_version(FIXTURES / "hello-root") == LocalToolchain().go_version(FIXTURES / "hello-root")
    a = go_build(image_tc, FIXTURES / "hello-root", tmp_path / "image-app")
    b = go_build(LocalToolchain(), FIXTURES / "hello-root", tmp_path / "local-app")
    assert sha256(a) == sha256(b)
    out = subprocess.run([str(a), "--version"], check=False, stdout=subprocess.PIPE, text=True, timeout=30).stdout
    assert "v2.0.0" in out
    # the build record facts: pinned digest, no local path
    d = image_tc.describe()
    assert d["kind"] == "image" and d["digest"].startswith("sha256:") and d["go_version"].startswith("go1.")
    assert str(tmp_path) not in json.dumps(d) and "layout" not in json.dumps(d)
    # caches persist per toolchain digest
    assert any((cache / "toolchains" / d["digest"].split(":")[1] / "go-build").iterdir())


def test_unshare_fallback_builds_the_same_binary(toolchain, tmp_path):
    ref, cache = toolchain
    tc = ImageToolchain(ref, cache=cache, sandbox=Sandbox(bwrap=None))
    assert tc.sandbox.backend() == "unshare"
    a = go_build(tc, FIXTURES / "hello-root", tmp_path / "app")
    b = go_build(LocalToolchain(), FIXTURES / "hello-root", tmp_path / "local-app")
    assert sha256(a) == sha256(b)


def test_upx_in_the_image_matches_local_upx(toolchain, tmp_path):
    ref, cache = toolchain
    tc = ImageToolchain(ref, cache=cache)
    a = go_build(LocalToolchain(), FIXTURES / "hello-root", tmp_path / "a")
    b = tmp_path / "b"
    b.write_bytes(a.read_bytes())
    b.chmod(0o755)
    ra = compress(tc, a, "fast")
    rb = compress(LocalToolchain(), b, "fast")
    assert ra.size_after == rb.size_after < ra.size_before and sha256(a) == sha256(b)
    assert tc.upx_version() == LocalToolchain().upx_version()
    assert "v2.0.0" in subprocess.run([str(a), "--version"], check=False, stdout=subprocess.PIPE, text=True).stdout


def _spec(service: Path, out: Path, **kw) -> BuildSpec:
    return BuildSpec(
        service_dir=service,
        name=service.name,
        version="v2.0.0",
        output=out,
        source_date_epoch=0,
        source_url="https://example.invalid/src",
        upx="off",
        **kw,
    )


def test_image_built_with_the_toolchain_image_runs(toolchain, tmp_path):
    """The whole build through bake(): the image runs (health check, --version); every layer, the binary's included,
    is identical to the local build's; the configs differ only in the build record's toolchain entry."""
    ref, cache = toolchain
    image_tc = ImageToolchain(ref, cache=cache)
    with_image = bake(_spec(FIXTURES / "hello-root", tmp_path / "img"), image_tc)
    with_local = bake(_spec(FIXTURES / "hello-root", tmp_path / "local"), LocalToolchain())
    rootfs = unpack(tmp_path / "img", "v2.0.0", tmp_path / "unpacked")
    assert health_check(rootfs)["status"] == "ok"
    assert "v2.0.0" in run_in_rootfs(rootfs, "--version").stdout
    m_img, c_img = manifest_and_config(tmp_path / "img", with_image.image.digest)
    m_loc, c_loc = manifest_and_config(tmp_path / "local", with_local.image.digest)
    assert m_img["layers"] == m_loc["layers"]
    r_img = json.loads(c_img["config"]["Labels"].pop(BUILD_RECORD_LABEL))
    r_loc = json.loads(c_loc["config"]["Labels"].pop(BUILD_RECORD_LABEL))
    assert r_img.pop("toolchain") == image_tc.describe() and r_loc.pop("toolchain") == {"kind": "local"}
    assert r_img == r_loc and c_img == c_loc


def test_vendored_service_builds_with_no_network_at_all(toolchain, toolchain_cache_env, tmp_path):
    """The whole `ocibake build` command inside `unshare --net` (only a loopback that is down), with the local toolchain
    and with the toolchain image, GOFLAGS=-mod=vendor GOPROXY=off as an air-gapped runner sets them; the production
    default (UPX) included."""
    ref, _ = toolchain
    svc = FIXTURES / "vendored-service"
    env = {**os.environ, **toolchain_cache_env, "GOFLAGS": "-mod=vendor", "GOPROXY": "off", "SOURCE_DATE_EPOCH": "0"}
    digests = {}
    for name, extra in (("local", []), ("image", ["--toolchain", ref])):
        proc = subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "--net",
                sys.executable,
                "-m",
                "ocibake",
                "build",
                str(svc),
                "--version",
                "v3.0.0",
                "--output",
                str(tmp_path / name),
                "--json",
                *extra,
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert "v3.0.0" in report["binary"]["check"] and report["binary"]["upx"]["mode"] == "best-lzma"
        assert report["build_record"]["go"]["goflags"] == "-buildvcs=false -mod=vendor"
        digests[name] = report["layers"][-1]["digest"]
    assert digests["local"] == digests["image"]  # the same (packed) binary layer
    rootfs = unpack(tmp_path / "image", "v3.0.0", tmp_path / "unpacked")
    assert health_check(rootfs)["greeting"] == "hello from vendor"


def test_image_without_go_is_a_clear_error(toolchain, tmp_path):
    ref, cache = toolchain
    tc = ImageToolchain(ref.rsplit(":", 1)[0] + ":no-go", cache=cache)
    with pytest.raises(ToolchainError) as info:
        tc.go_version(FIXTURES / "hello-root")
    assert "has no `go` on its PATH" in info.value.message and "--toolchain local" in info.value.hint
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("oci:/nonexistent/ocibake-toolchain:go", "does not exist"),
        ("golang", "unknown toolchain reference"),
        ("docker:golang:1.21", "unknown toolchain reference"),
    ],
)
def test_unknown_references(reference, expected, tmp_path):
    with pytest.raises(InputError) as info:
        ImageToolchain(reference, cache=tmp_path).go_version(FIXTURES / "hello-root")
    assert expected in info.value.message and "oci:DIR" in info.value.hint and info.value.exit_code == 4


def test_unknown_tag_and_digest(toolchain, tmp_path):
    ref, _ = toolchain
    layout = ref[4:].rsplit(":", 1)[0]
    with pytest.raises(InputError, match="tag 'nope' is not in") as info:
        ImageToolchain(f"oci:{layout}:nope", cache=tmp_path).prepare()
    assert "go" in info.value.hint and "no-go" in info.value.hint
    with pytest.raises(InputError, match="is not in"):
        ImageToolchain(f"oci:{layout}@sha256:{'0' * 64}", cache=tmp_path).prepare()


def test_registry_reference_without_registry_support_says_what_to_do(tmp_path):
    with pytest.raises(OcibakeError) as info:
        ImageToolchain("127.0.0.1:1/golang:1.21@sha256:" + "0" * 64, cache=tmp_path).prepare()
    assert info.value.hint


def test_reference_parsing():
    assert parse_toolchain_ref("local").kind == "local"
    r = parse_toolchain_ref("oci:toolchains/go1.21:latest")
    assert (r.kind, r.path, r.tag) == ("oci", "toolchains/go1.21", "latest")
    r = parse_toolchain_ref("oci:toolchains/go1.21")
    assert (r.path, r.tag) == ("toolchains/go1.21", None)
    r = parse_toolchain_ref(f"oci:dir@sha256:{'a' * 64}")
    assert (r.path, r.tag, r.digest) == ("dir", None, f"sha256:{'a' * 64}")
    assert parse_toolchain_ref("registry.internal/golang:1.21-alpine@sha256:" + "a" * 64).kind == "registry"
    assert parse_toolchain_ref("localhost:5000/go:1").kind == "registry"
    assert isinstance(make_toolchain(None), LocalToolchain)
    with pytest.raises(InputError, match="--go"):
        make_toolchain("oci:x:y", go="/usr/bin/go")


def test_no_sandbox_fails_before_unpacking(toolchain, tmp_path):
    ref, _ = toolchain
    tc = ImageToolchain(ref, cache=tmp_path / "cache", sandbox=Sandbox(bwrap=None, unshare=None))
    with pytest.raises(ToolchainError) as info:
        tc.go_version(FIXTURES / "hello-root")
    assert "bubblewrap" in info.value.hint and info.value.exit_code == 3
    assert not (tmp_path / "cache").exists()


def test_replace_to_a_sibling_module_builds_in_the_sandbox(toolchain, tmp_path):
    """`replace ... => ../greetlib`: the sibling module is bound read-only next to the service, as on the host; the
    binary is the local toolchain's, byte for byte."""
    ref, cache = toolchain
    service = FIXTURES / "replace-sibling" / "service"
    with_image = bake(_spec(service, tmp_path / "img"), ImageToolchain(ref, cache=cache))
    with_local = bake(_spec(service, tmp_path / "local"), LocalToolchain())
    assert with_image.image.layers[-1].diff_id == with_local.image.layers[-1].diff_id
    rootfs = unpack(tmp_path / "img", "v2.0.0", tmp_path / "unpacked")
    assert health_check(rootfs)["greeting"] == "hello from a replaced sibling"


def test_a_toolchain_image_for_another_platform_is_refused(tmp_path):
    build_toolchain_image(tmp_path / "layout", tag="arm", with_go=False, with_upx=False, arch="arm64")
    with pytest.raises(InputError) as info:
        ImageToolchain(f"oci:{tmp_path / 'layout'}:arm", cache=tmp_path / "cache").prepare()
    assert "is a linux/arm64 image; this host runs linux/amd64" in info.value.message
    assert "cross-compiles" in info.value.hint


def test_a_cache_that_is_not_private_is_refused(toolchain, tmp_path):
    """An unpacked toolchain is run as it is: a cache others may write to could hold a tampered go."""
    ref, _ = toolchain
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(InputError) as info:
        ImageToolchain(ref, cache=shared).prepare()
    assert "is not private" in info.value.message and "chmod go-w" in info.value.hint
    assert not (shared / "rootfs").exists()


def test_cache_info_and_clean_even_with_a_read_only_module_cache(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    mod = tmp_path / "ocibake" / "toolchains" / "abc" / "mod" / "example.com" / "m@v1"
    mod.mkdir(parents=True)
    (mod / "x.go").write_text("package m\n")
    for path in (mod / "x.go", mod, mod.parent):
        path.chmod(0o444 if path.is_file() else 0o555)  # as go leaves its module cache
    info = subprocess.run(
        [sys.executable, "-m", "ocibake", "cache", "info", "--json"],
        check=False,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    parts = {p["name"]: p for p in json.loads(info.stdout)["parts"]}
    assert parts["toolchains"]["entries"] == 1 and parts["toolchains"]["size"] > 0
    clean = subprocess.run(
        [sys.executable, "-m", "ocibake", "cache", "clean"],
        check=False,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert clean.returncode == 0, clean.stderr
    assert "freed" in clean.stderr and list((tmp_path / "ocibake").iterdir()) == []


def test_a_toolchain_that_leaves_a_symlink_as_the_binary_is_refused(toolchain, tmp_path):
    """A hostile go that answers `go build -o /out/app` with `ln -s /etc/shadow /out/app` must not get a host file
    into the image."""
    ref, cache = toolchain
    tc = ImageToolchain(ref, cache=cache)
    output = tmp_path / "app"
    evil = tmp_path / "evil-out"
    evil.mkdir()
    os.symlink("/etc/hostname", evil / "app")
    from ocibake.toolchain.image import take_regular_file

    with pytest.raises(ToolchainError) as info:
        take_regular_file(evil / "app", output, "go build in test")
    assert "something other than a plain file" in info.value.message and not output.exists()
    os.link(__file__, evil / "hard")
    with pytest.raises(ToolchainError):
        take_regular_file(evil / "hard", output, "go build in test")
    assert tc.describe()["kind"] == "image"


def test_every_part_of_the_cache_and_every_directory_above_it_must_be_private(toolchain, tmp_path):
    ref, _ = toolchain
    cache = tmp_path / "mine" / "ocibake"
    (cache / "rootfs").mkdir(parents=True)
    (cache / "rootfs").chmod(0o777)  # a part anyone could plant a toolchain in
    with pytest.raises(InputError, match="rootfs/ may be written by group or others"):
        ImageToolchain(ref, cache=cache).prepare()
    (cache / "rootfs").chmod(0o700)
    open_parent = tmp_path / "open"
    (open_parent / "x" / "ocibake").mkdir(parents=True)
    open_parent.chmod(0o777)  # no sticky bit: x/ could be swapped
    with pytest.raises(InputError, match="above it, may be written by others"):
        ImageToolchain(ref, cache=open_parent / "x" / "ocibake").prepare()
    fresh = tmp_path / "new" / "deeper" / "ocibake"
    old_umask = os.umask(0)
    try:
        from ocibake.toolchain.cache import private_cache

        private_cache(fresh)  # created private whatever the umask
    finally:
        os.umask(old_umask)
    assert all(p.stat().st_mode & 0o077 == 0 for p in (fresh, fresh.parent, fresh.parent.parent))
