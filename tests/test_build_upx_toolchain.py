"""`ocibake build` with UPX and with a toolchain image, through the real command line: the production default packs
the binary with upx --best --lzma and proves the packed binary runs; --upx off leaves go's output untouched; a
missing upx is exit 3 before anything is built; --toolchain oci:... builds in the rootless sandbox and the image says
which toolchain made it. Real go, upx, bwrap, umoci; nothing mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, build, health_check, manifest_and_config, require, run_cli, run_in_rootfs, unpack
from ocibake.builder.bake import BUILD_RECORD_LABEL

UPX_MAGIC = b"UPX!"


def record(layout: Path, digest: str) -> dict:
    _, config = manifest_and_config(layout, digest)
    return json.loads(config["config"]["Labels"][BUILD_RECORD_LABEL])


def app_bytes(rootfs: Path) -> bytes:
    return (rootfs / "app").read_bytes()


def test_production_default_packs_with_best_lzma_and_the_packed_binary_runs(tmp_path):
    require("upx")
    out = tmp_path / "layout"
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out), "--version", "v4.0.0", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    upx = report["binary"]["upx"]
    assert upx["mode"] == "best-lzma" and upx["size_after"] < 0.45 * upx["size_before"]
    assert upx["startup_seconds"] > 0 and report["binary"]["startup_seconds"] > 0
    assert report["binary"]["size"] == upx["size_after"]
    rec = record(out, report["digest"])
    assert rec["upx"]["mode"] == "best-lzma" and rec["upx"]["args"][-2:] == ["--best", "--lzma"]
    assert rec["upx"]["version"].startswith("upx ")
    rootfs = unpack(out, "v4.0.0", tmp_path / "bundle")
    assert UPX_MAGIC in app_bytes(rootfs)[:4096]
    assert "v4.0.0" in run_in_rootfs(rootfs, "--version").stdout
    health = health_check(rootfs)
    assert health["status"] == "ok" and health["uid"] == 1001 and health["certificates"] > 100


def test_report_shows_the_bytes_saved_next_to_the_start_up_cost(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--upx", "fast")
    assert proc.returncode == 0, proc.stderr
    upx_line = next(line for line in proc.stderr.splitlines() if line.startswith("upx "))
    startup = next(line for line in proc.stderr.splitlines() if line.startswith("start-up"))
    assert "fast" in upx_line and "saved" in upx_line and "->" in upx_line
    assert "ms plain" in startup and "with UPX" in startup


def test_upx_off_leaves_the_binary_as_go_built_it(tmp_path):
    d_off, proc = build(FIXTURES / "hello-root", tmp_path / "off", "--upx", "off", "--version", "v4.0.0")
    assert not any(line.startswith("upx ") for line in proc.stderr.splitlines())
    rootfs = unpack(tmp_path / "off", "v4.0.0", tmp_path / "bundle")
    binary = app_bytes(rootfs)
    assert UPX_MAGIC not in binary[:4096]
    # the same bytes as go build with ocibake's flags, run by hand
    rec = record(tmp_path / "off", d_off)
    assert rec["upx"] == {"mode": "off"}
    by_hand = tmp_path / "by-hand"
    subprocess.run(
        ["go", "build", "-trimpath", "-buildvcs=false", "-ldflags", rec["go"]["ldflags"], "-o", str(by_hand), "."],
        cwd=FIXTURES / "hello-root",
        env={**os.environ, **rec["go"]["env"]},
        check=True,
    )
    assert by_hand.read_bytes() == binary


def test_settings_file_sets_upx_and_a_flag_wins(tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    (service / "ocibake.toml").write_text('[build]\nupx = "off"\n')
    d, _ = build(service, tmp_path / "a")
    assert record(tmp_path / "a", d)["upx"] == {"mode": "off"}
    d, _ = build(service, tmp_path / "b", "--upx", "1")
    assert record(tmp_path / "b", d)["upx"]["mode"] == "1"
    (service / "ocibake.toml").write_text("[build]\nupx = 9\n")
    d, _ = build(service, tmp_path / "c")
    assert record(tmp_path / "c", d)["upx"]["args"][-1] == "-9"


def _path_without_upx(tmp_path: Path) -> str:
    """A PATH holding go (and git) but no upx."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("go", "git"):
        os.symlink(require(tool), bin_dir / tool)
    return str(bin_dir)


def test_missing_upx_is_exit_3_before_the_build_and_nothing_is_written(tmp_path):
    out = tmp_path / "layout"
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(out), env={"PATH": _path_without_upx(tmp_path)}
    )
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "ocibake: error: UPX compression was asked for but `upx` was not found"
    assert "apt-get install upx-ucl" in proc.stderr and "--upx off" in proc.stderr
    assert "go build" not in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".layout*"))
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out), "--upx-bin", "/nonexistent/upx")
    assert proc.returncode == 3 and "`/nonexistent/upx` was not found" in proc.stderr
    # --upx off needs no upx
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(out),
        "--upx",
        "off",
        env={"PATH": _path_without_upx(tmp_path / "again")},
    )
    assert proc.returncode == 0, proc.stderr


def test_unknown_upx_mode_is_bad_input(tmp_path):
    for value in ("ultra", "0", "10"):
        proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--upx", value)
        assert proc.returncode == 4, proc.stderr
        assert f"unknown UPX mode {value!r}" in proc.stderr and "best-lzma" in proc.stderr
        assert not (tmp_path / "o").exists()


def test_toolchain_image_from_the_command_line(toolchain, toolchain_cache_env, tmp_path):
    """--toolchain oci:DIR:TAG: go and upx run in the sandbox; the image runs; the record pins the toolchain."""
    ref, _cache = toolchain
    env = toolchain_cache_env
    out = tmp_path / "layout"
    digest, proc = build(
        FIXTURES / "hello-root", out, "--toolchain", ref, "--upx", "fast", "--version", "v5.0.0", env=env
    )
    rec = record(out, digest)
    assert rec["toolchain"]["kind"] == "image" and rec["toolchain"]["digest"].startswith("sha256:")
    assert rec["toolchain"]["go_version"] == rec["go"]["version"] and rec["go"]["version"].startswith("go1.")
    assert rec["upx"]["version"].startswith("upx ") and "tag" not in rec["toolchain"]
    toolchain_line = next(line for line in proc.stderr.splitlines() if line.startswith("toolchain "))
    assert f"{ref} = {rec['toolchain']['digest']}" in toolchain_line and "sandbox, no network" in toolchain_line
    # the same toolchain named by its digest instead of its tag makes the very same image
    layout_dir = ref[len("oci:") :].rsplit(":", 1)[0]
    same, _ = build(
        FIXTURES / "hello-root",
        tmp_path / "by-digest",
        "--toolchain",
        f"oci:{layout_dir}@{rec['toolchain']['digest']}",
        "--upx",
        "fast",
        "--version",
        "v5.0.0",
        env=env,
    )
    assert same == digest
    assert str(tmp_path) not in json.dumps(rec)
    rootfs = unpack(out, "v5.0.0", tmp_path / "bundle")
    assert UPX_MAGIC in app_bytes(rootfs)[:4096]
    assert health_check(rootfs)["status"] == "ok"
    assert "v5.0.0" in run_in_rootfs(rootfs, "--version").stdout


def test_toolchain_image_without_go_or_upx_from_the_command_line(toolchain, toolchain_cache_env, tmp_path):
    ref, _cache = toolchain
    env = toolchain_cache_env
    no_go = ref.rsplit(":", 1)[0] + ":no-go"
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--toolchain", no_go, env=env
    )
    assert proc.returncode == 3 and "has no `go` on its PATH" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(tmp_path / "o"),
        "--toolchain",
        ref,
        "--go",
        "/usr/bin/go",
        env=env,
    )
    assert proc.returncode == 4 and "--go and --upx-bin" in proc.stderr


@pytest.mark.parametrize("reference", ["golang:1.21", "oci:", "docker://golang:1.21"])
def test_unknown_toolchain_reference_is_bad_input(reference, tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--toolchain", reference)
    assert proc.returncode == 4, proc.stderr
    assert "toolchain reference" in proc.stderr and "oci:DIR" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_cpu_level_settings_of_every_architecture_come_from_the_platform(tmp_path):
    """GOARM64=v9.0 in the environment would build for newer CPUs than linux/arm64 says: refused; go is always given
    the platform's level, recorded in the image."""
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(tmp_path / "o"),
        "--platform",
        "linux/arm64",
        "--upx",
        "off",
        env={"GOARM64": "v9.0"},
    )
    assert proc.returncode == 4 and "GOARM64=v9.0 in the environment does not match" in proc.stderr
    digest, _ = build(FIXTURES / "hello-root", tmp_path / "a", "--platform", "linux/arm64", "--upx", "off")
    assert record(tmp_path / "a", digest)["go"]["env"]["GOARM64"] == "v8.0"


def test_upx_for_an_architecture_it_cannot_pack_is_refused_before_the_build(tmp_path):
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--platform", "linux/riscv64", "-q"
    )
    assert proc.returncode == 4 and "UPX cannot pack linux/riscv64 binaries" in proc.stderr
    assert "--upx off" in proc.stderr and not (tmp_path / "o").exists()
