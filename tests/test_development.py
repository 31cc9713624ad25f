"""--target development: a debug build (DWARF kept, -N -l, no UPX) under Delve. The image is unpacked and its own
entrypoint started in a user namespace: Delve answers a JSON-RPC call (RPCServer.GetVersion) and the app, continued
at once, answers its health check. Delve is built from its module (through the module proxy) once per cache."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import SAMPLE, build, free_port, manifest_and_config, run_cli, sandbox_argv, unpack
from test_provenance import layout_statement
from test_scan import offline_scan_env

ENTRYPOINT = [
    "/usr/local/bin/dlv",
    "exec",
    "/app",
    "--headless",
    "--listen=:2345",
    "--api-version=2",
    "--accept-multiclient",
    "--continue",
]


@pytest.fixture(scope="module")
def dev_env(tmp_path_factory) -> dict:
    return {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("dev-cache"))}


@pytest.fixture(scope="module")
def dev_image(tmp_path_factory, dev_env) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("dev") / "layout"
    digest, _ = build(SAMPLE, out, "--target", "development", "--version", "v1", env=dev_env, timeout=900)
    return out, digest


def json_rpc(port: int, method: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(json.dumps({"method": method, "params": [{}], "id": 1}).encode())
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                return json.loads(data)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_development_image_config_and_binary(dev_image):
    layout, digest = dev_image
    _manifest, config = manifest_and_config(layout, digest)
    runtime = config["config"]
    assert runtime["Entrypoint"] == ENTRYPOINT and runtime["User"] == "1001:1001"
    assert runtime["ExposedPorts"] == {"8080/tcp": {}, "2345/tcp": {}}
    record = json.loads(runtime["Labels"]["dev.ocibake.build-record"])
    assert record["target"] == "development" and record["upx"] == {"mode": "off"}
    assert record["debug"] == {"gcflags": "all=-N -l", "stripped": False, "delve_port": 2345}
    assert not record["go"]["ldflags"].startswith("-s -w") and "-s -w" not in record["go"]["ldflags"]
    assert record["layers"]["delve"]["source"] == "github.com/go-delve/delve/cmd/dlv@v1.27.2"
    assert [h["comment"] for h in config["history"]][-2:] == ["ocibake binary layer", "ocibake delve layer"]


def test_development_image_runs_under_delve_which_answers_json_rpc(dev_image, tmp_path):
    layout, _ = dev_image
    rootfs = unpack(layout, "v1", tmp_path / "u")
    app = (rootfs / "app").read_bytes()
    assert b".debug_info" in app and b".debug_line" in app  # DWARF kept for the debugger
    # the image's own entrypoint; only the listen address is moved off 2345 (a shared machine may have it taken)
    dlv_port, app_port = free_port(), free_port()
    argv = [a if a != "--listen=:2345" else f"--listen=127.0.0.1:{dlv_port}" for a in ENTRYPOINT]
    with subprocess.Popen(
        [*sandbox_argv(rootfs, {"PORT": str(app_port)}), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            answer = json_rpc(dlv_port, "RPCServer.GetVersion")
            assert answer["error"] is None and answer["result"]["APIVersion"] == 2
            assert "1.27.2" in answer["result"]["DelveVersion"]
            deadline = time.monotonic() + 20
            while True:  # --continue: the app runs without a debugger attached
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/health", timeout=2) as resp:
                        health = json.loads(resp.read())
                    break
                except OSError:
                    assert time.monotonic() < deadline and proc.poll() is None, proc.stdout.read()
                    time.sleep(0.1)
            assert health["version"] == "v1" and health["uid"] == 1001
        finally:
            proc.kill()


def test_delve_from_a_given_path_and_bad_development_settings(dev_image, dev_env, tmp_path):
    dlv = next(Path(dev_env["XDG_CACHE_HOME"]).glob("ocibake/delve/*/amd64/dlv"))
    digest, _ = build(
        SAMPLE,
        tmp_path / "given",
        "--target",
        "development",
        "--version",
        "v1",
        "--delve",
        str(dlv),
        env=dev_env,
        timeout=600,
    )
    _, config = manifest_and_config(tmp_path / "given", digest)
    record = json.loads(config["config"]["Labels"]["dev.ocibake.build-record"])
    assert record["layers"]["delve"]["source"] == "--delve"
    not_elf = tmp_path / "dlv.sh"
    not_elf.write_text("#!/bin/sh\n")
    for args, message in (
        (["--delve", str(not_elf)], "is not an ELF executable"),
        (["--delve", str(tmp_path / "none")], "no such file"),
        (["--upx", "best"], "the development target is never packed"),
        (["--port", "2345"], "is Delve's port"),
    ):
        proc = run_cli(
            "build", str(SAMPLE), "--output", str(tmp_path / "o"), "--target", "development", *args, env=dev_env
        )
        assert proc.returncode == 4 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()


def test_development_on_the_toolchain_image_has_the_go_toolchain_in_the_image(
    dev_image, dev_env, toolchain, toolchain_cache_env, tmp_path
):
    """No --base: the development image sits on the toolchain image (as the original Dockerfile's development stage
    sat on golang), its PATH kept; the sandboxed toolchain has no network, so Delve comes from --delve."""
    ref, _ = toolchain
    dlv = next(Path(dev_env["XDG_CACHE_HOME"]).glob("ocibake/delve/*/amd64/dlv"))
    digest, _ = build(
        SAMPLE,
        tmp_path / "o",
        "--target",
        "development",
        "--version",
        "v1",
        "--toolchain",
        ref,
        "--delve",
        str(dlv),
        env=toolchain_cache_env,
        timeout=900,
    )
    manifest, config = manifest_and_config(tmp_path / "o", digest)
    record = json.loads(config["config"]["Labels"]["dev.ocibake.build-record"])
    assert record["base"]["name"] == "oci:layout:go"
    assert manifest["annotations"]["org.opencontainers.image.base.digest"] == record["toolchain"]["digest"]
    env = config["config"]["Env"]
    assert env[0].startswith("PATH=/usr/local/go/bin:") and "GOTOOLCHAIN=local" in env
    rootfs = unpack(tmp_path / "o", "v1", tmp_path / "u")
    go = subprocess.run(
        [*sandbox_argv(rootfs, {"HOME": "/tmp"}), "/usr/local/go/bin/go", "version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert go.returncode == 0 and go.stdout.startswith("go version go1."), go.stderr
    assert (rootfs / "usr/local/bin/dlv").is_file() and [
        line.split(":")[0] for line in (rootfs / "etc/passwd").read_text().splitlines()
    ] == ["root", "nobody", "goapp"]


def test_the_sbom_describes_the_app_and_delve_separately(dev_image, tmp_path):
    """The SBOM of a development image describes /app from its own build information (as `go version -m` prints
    it), and Delve as a package of its own with its own modules, a dev tool of the app, never in its place."""
    from test_sbom import sbom_of
    from test_sbom_content import app_packages, go_version_m

    layout, digest = dev_image
    doc = json.loads(sbom_of(layout, digest)[1])
    rootfs = unpack(layout, "v1", tmp_path / "bundle")
    _, app_deps = go_version_m(rootfs / "app")
    main, listed = app_packages(doc)
    assert main == "example.com/sos-app/emergency-service" and listed == sorted(app_deps)

    _, dlv_deps = go_version_m(rootfs / "usr" / "local" / "bin" / "dlv")
    tool, tool_listed = app_packages(doc, "SPDXRef-Tool-dlv-")
    assert tool == "github.com/go-delve/delve" and tool_listed == sorted(dlv_deps) and len(dlv_deps) > 5
    ids = {p["name"]: p["SPDXID"] for p in doc["packages"]}
    assert {
        "spdxElementId": ids["github.com/go-delve/delve"],
        "relationshipType": "DEV_TOOL_OF",
        "relatedSpdxElement": ids["example.com/sos-app/emergency-service"],
    } in doc["relationships"]


@pytest.fixture(scope="module")
def scan_env(tmp_path_factory):
    return offline_scan_env(tmp_path_factory)


def test_scan_reads_the_app_and_delve_and_the_provenance_names_delve(dev_image, scan_env):
    """`ocibake scan` on a development image (entrypoint: Delve) scans /app and /usr/local/bin/dlv; the image's
    provenance lists Delve among its resolved dependencies."""
    env, modules, _ = scan_env
    out, digest = dev_image
    proc = run_cli("scan", f"oci:{out}:v1", "--db", str(modules), "--fail-on", "none", "--json", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["binaries"] == ["/app", "/usr/local/bin/dlv"]
    statement = json.loads(layout_statement(out, digest))
    deps = {d["name"]: d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert (
        len(deps["delve"]["digest"]["sha256"]) == 64
        and statement["predicate"]["buildDefinition"]["externalParameters"]["target"] == "development"
    )
