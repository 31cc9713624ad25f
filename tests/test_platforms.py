"""--platform with a list: one image per platform built in parallel, joined by one index that every tag names; read
back by skopeo (--raw, --override-arch), the arm64 binary checked as an aarch64 ELF run under qemu-aarch64-static, the
amd64 image run; pushed as an index; UPX left off (and said so) for an architecture it cannot pack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import FIXTURES, health_check, layout_index, manifest_and_config, require, run_cli, unpack
from registry_servers import skopeo
from regtools import reg_env, remote_digest

HELLO = FIXTURES / "hello-root"
INDEX = "application/vnd.oci.image.index.v1+json"
SPDX, INTOTO = "application/spdx+json", "application/vnd.in-toto+json"


def build_platforms(out: Path, platforms: str, *args: str, env: dict | None = None) -> dict:
    proc = run_cli(
        "build",
        str(HELLO),
        "--output",
        str(out),
        "--platform",
        platforms,
        "--version",
        "v1",
        "--json",
        *args,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def single_arch(layout: Path, tag: str, arch: str, dest: Path) -> Path:
    """skopeo copy --override-arch ARCH out of the index into a one-image layout, then unpack it."""
    proc = skopeo("copy", "--quiet", "--override-arch", arch, f"oci:{layout}:{tag}", f"oci:{dest}:{arch}")
    assert proc.returncode == 0, proc.stderr
    return unpack(dest, arch, dest.parent / f"{arch}-unpacked")


def test_two_platforms_make_one_index_that_every_tag_names(tmp_path):
    require("skopeo"), require("qemu-aarch64-static")
    out = tmp_path / "layout"
    report = build_platforms(out, "linux/amd64,linux/arm64", "--upx", "off")
    assert report["platforms"] == ["linux/amd64", "linux/arm64"]
    everything = layout_index(out)["manifests"]
    entries = [e for e in everything if "org.opencontainers.image.ref.name" in (e.get("annotations") or {})]
    assert {e["annotations"]["org.opencontainers.image.ref.name"]: e["digest"] for e in entries} == {
        "v1": report["digest"],
        "latest": report["digest"],
    }
    assert all(e["mediaType"] == INDEX for e in entries)
    assert len(everything) - len(entries) == 4  # untagged: an SBOM and a provenance referrer per platform image
    raw = skopeo("inspect", "--raw", f"oci:{out}:v1")
    index = json.loads(raw.stdout)
    assert index["mediaType"] == INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64"},
    ]
    for image, child in zip(report["images"], index["manifests"], strict=True):
        assert image["digest"] == child["digest"] and image["size"] > 0 and len(image["layers"]) == 4
        _, config = manifest_and_config(out, child["digest"])
        assert config["architecture"] == child["platform"]["architecture"]
    # arm64: an aarch64 ELF, run here under qemu-aarch64-static (the build verified it the same way)
    assert report["images"][1]["binary"]["check"].endswith("(verified under qemu-aarch64-static)")
    arm = single_arch(out, "v1", "arm64", tmp_path / "arm")
    elf = (arm / "app").read_bytes()[:20]
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 183  # EM_AARCH64
    ran = subprocess.run(
        ["qemu-aarch64-static", str(arm / "app"), "--version"], check=False, stdout=subprocess.PIPE, text=True
    )
    assert ran.returncode == 0 and " v1 " in ran.stdout
    # amd64: runs in a user namespace and answers its health check
    amd = single_arch(out, "v1", "amd64", tmp_path / "amd")
    assert health_check(amd)["version"] == "v1"
    # the same inputs give the same index
    again = build_platforms(tmp_path / "again", "linux/amd64,linux/arm64", "--upx", "off")
    assert again["digest"] == report["digest"]


def test_an_architecture_upx_cannot_pack_stays_unpacked_and_says_so(tmp_path):
    report = build_platforms(tmp_path / "o", "linux/amd64,linux/riscv64")
    amd, riscv = report["images"]
    assert amd["binary"]["upx"]["mode"] == "best-lzma" and amd["build_record"]["upx"]["mode"] == "best-lzma"
    assert riscv["binary"]["upx"]["mode"] == "off"
    assert riscv["build_record"]["upx"] == {"mode": "off", "note": "UPX cannot pack linux/riscv64: left unpacked"}
    assert riscv["upx_note"] == "UPX cannot pack linux/riscv64: left unpacked"
    check = riscv["binary"]["check"]
    assert check.startswith("not verified") or check.endswith("(verified under qemu-riscv64-static)"), check


def test_a_multi_platform_build_pushes_the_index_under_every_tag(fresh_registry, tmp_path):
    reg = fresh_registry
    env = reg_env(reg, tmp_path / "home")
    repo = f"{reg.host}/sos/hello"
    report = build_platforms(tmp_path / "o", "linux/amd64,linux/arm64", "--upx", "off", "--push", repo, env=env)
    assert sorted(report["push"]["references"]) == sorted(f"{repo}:{t}@{report['digest']}" for t in ("v1", "latest"))
    for tag in ("v1", "latest"):
        assert remote_digest(reg, f"sos/hello:{tag}") == report["digest"]
    raw = json.loads(skopeo("inspect", "--raw", *reg.skopeo_flags(), f"docker://{repo}:v1").stdout)
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]
    copied = skopeo(
        "copy",
        "--quiet",
        "--override-arch",
        "arm64",
        *reg.skopeo_flags(prefix="src-"),
        f"docker://{repo}:v1",
        f"oci:{tmp_path / 'arm'}:arm64",
    )
    assert copied.returncode == 0, copied.stderr
    _, config = manifest_and_config(tmp_path / "arm", layout_index(tmp_path / "arm")["manifests"][0]["digest"])
    assert config["architecture"] == "arm64"
    # one SBOM and one provenance per platform image, each a referrer of its platform manifest, in the layout and in
    # the registry
    from test_sbom import oras

    for image in report["images"]:
        found = oras("discover", "--plain-http", f"{repo}@{image['digest']}", "--format", "json")
        assert found.returncode == 0, found.stderr
        listed = json.loads(found.stdout)
        referrers = listed.get("referrers") or listed.get("manifests") or []
        assert sorted(r["artifactType"] for r in referrers) == [SPDX, INTOTO], listed
        local = run_cli("inspect", f"oci:{tmp_path / 'o'}@{image['digest']}", "--no-files", "--json")
        assert local.returncode == 0, local.stderr
        assert sorted(r["artifactType"] for r in json.loads(local.stdout)["referrers"]) == [SPDX, INTOTO]
    # pulled back, the index brings both platforms' SBOMs and provenance along
    pulled = run_cli("pull", f"{repo}:v1", str(tmp_path / "pulled"), "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert len(json.loads(pulled.stdout)["referrers"]) == 4
    for image in report["images"]:
        local = run_cli("sbom", f"oci:{tmp_path / 'pulled'}:v1", "--platform", image["platform"])
        assert local.returncode == 0, local.stderr
        assert json.loads(local.stdout)["documentNamespace"].endswith(image["digest"].replace(":", "-"))
    arm_sbom = run_cli("sbom", f"{repo}:v1", "--platform", "linux/arm64", env=env)
    assert arm_sbom.returncode == 0, arm_sbom.stderr
    assert json.loads(arm_sbom.stdout)["documentNamespace"].endswith(report["images"][1]["digest"].replace(":", "-"))


def test_bad_platform_lists_fail_before_anything_is_built(tmp_path):
    for platforms, message in (
        ("linux/amd64,linux/amd64", "names linux/amd64 twice"),
        ("linux/amd64,linux/sparc64", "Go does not build Linux binaries for 'sparc64'"),
        ("linux/amd64,", "platform must be os/arch"),
    ):
        proc = run_cli("build", str(HELLO), "--output", str(tmp_path / "o"), "--platform", platforms, "--upx", "off")
        assert proc.returncode == 4 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
