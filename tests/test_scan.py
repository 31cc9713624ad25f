"""`ocibake scan`: govulncheck (installed into ocibake's cache by the first scan, through the Go module proxy) in
binary mode on the image's UPX-packed /app, against an offline database made here from the golang.org/x/vulndb
module's OSV files: a service vendoring github.com/golang-jwt/jwt/v4 v4.5.0 has GO-2024-3250 (its jwt.Parse is in the
binary) and exits 8; the same service on v4.5.2 scans clean; the same inside a network namespace with no network;
SARIF validated against the SARIF 2.1.0 schema; bad input is one line and exit 4."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from busybox_base import build_busybox_base
from conftest import FIXTURES, build, run_cli

VULNDB = "golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018"  # pinned: the IDs below are in it
SARIF_SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
VULN_ID = "GO-2024-3250"
JWT = "github.com/golang-jwt/jwt/v4"


def _without_go_itself(doc: dict) -> dict | None:
    """The OSV entry without what it says of Go itself (stdlib, toolchain); None when nothing else is left."""
    affected = [a for a in doc["affected"] if a["package"]["name"] not in ("stdlib", "toolchain")]
    return {**doc, "affected": affected} if affected else None


@pytest.fixture(scope="module")
def scan_env(tmp_path_factory):
    return offline_scan_env(tmp_path_factory)


def offline_scan_env(tmp_path_factory) -> tuple[dict, Path, Path]:
    """(env, db of the vulndb module's OSV files for modules, the full OSV directory). The go release running the
    tests may itself have known vulnerabilities (stdlib entries); the module database leaves them out, so "clean"
    is about the service's dependencies."""
    base = tmp_path_factory.mktemp("scan")
    argv = ["go", "mod", "download", "-json", VULNDB]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    osv = Path(json.loads(proc.stdout)["Dir"]) / "data" / "osv"
    modules = base / "vulndb-modules"
    modules.mkdir()
    for path in osv.glob("*.json"):
        kept = _without_go_itself(json.loads(path.read_text()))
        if kept is not None:
            (modules / path.name).write_text(json.dumps(kept))
    env = {"XDG_CACHE_HOME": str(installed_govulncheck(tmp_path_factory)), "GOFLAGS": ""}
    return env, modules, osv


def installed_govulncheck(tmp_path_factory) -> Path:
    """One ocibake cache for the test run, with govulncheck installed by ocibake's own first-use step (`go install`
    through the module proxy), once: the xdist workers share it, the first one installs under a lock."""
    shared = tmp_path_factory.getbasetemp().parent
    cache = shared / "scan-cache"
    with (shared / "scan-cache.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code = "from ocibake.audit.govulncheck import locate; print(locate(None))"
        proc = run_cli_python(code, {"XDG_CACHE_HOME": str(cache), "GOFLAGS": ""})
        assert proc.returncode == 0, proc.stderr
        assert Path(proc.stdout.strip()) == cache / "ocibake" / "tools" / "govulncheck@v1.1.4" / "govulncheck"
    return cache


def run_cli_python(code: str, env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The vulnerable and the fixed service, built with UPX (the default): {name: (layout, digest)}."""
    base = tmp_path_factory.mktemp("scan-images")
    built = {}
    for name in ("vuln-jwt", "vuln-jwt-fixed"):
        digest, proc = build(FIXTURES / name, base / name, "--version", "v1", "--sbom", "none", "--provenance", "none")
        assert "upx -q" in proc.stderr  # packed: govulncheck cannot read it without `upx -d`
        built[name] = (base / name, digest)
    return built


def scan(layout: Path, *args: str, env: dict, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return run_cli("scan", f"oci:{layout}:v1", *args, env=env, prefix=prefix, timeout=900)


def test_a_vulnerable_dependency_is_found_reachable_and_fails_the_scan(scan_env, images, tmp_path):
    env, modules, _ = scan_env
    layout, digest = images["vuln-jwt"]
    proc = scan(layout, "--db", str(modules), "--json", "--sarif", str(tmp_path / "out.sarif"), env=env)
    assert proc.returncode == 8, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["digest"] == digest and doc["binaries"] == ["/app"] and doc["scanners"]["govulncheck"] == "v1.1.4"
    found = {f["id"]: f for f in doc["findings"]}
    assert found[VULN_ID]["module"] == JWT and found[VULN_ID]["found"] == "v4.5.0"
    # a production binary is stripped: govulncheck cannot see its functions, so the package is all that is known
    assert found[VULN_ID]["fixed"] == "v4.5.1" and found[VULN_ID]["reachable"] == "?"
    assert found[VULN_ID]["severity"] == "MEDIUM" and f"{JWT}.Parse" in found[VULN_ID]["symbols"]
    assert all(f["module"] != "stdlib" for f in doc["findings"])
    sarif = json.loads((tmp_path / "out.sarif").read_text())
    jsonschema.validate(sarif, json.loads(SARIF_SCHEMA.read_text()))
    assert VULN_ID in {r["ruleId"] for r in sarif["runs"][0]["results"]}

    table = scan(layout, "--db", str(modules), env=env)  # the table on stderr, the pinned reference on stdout
    assert table.returncode == 8 and VULN_ID in table.stderr and "REACHABLE" in table.stderr
    assert table.stdout.strip() == f"oci:{layout}@{digest}"
    below = scan(layout, "--db", str(modules), "--fail-on", "high", env=env)
    assert below.returncode == 0 and VULN_ID in below.stderr  # listed, not failing


def test_the_fixed_version_scans_clean(scan_env, images):
    env, modules, _ = scan_env
    layout, _ = images["vuln-jwt-fixed"]
    proc = scan(layout, "--db", str(modules), env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no known vulnerabilities" in proc.stderr and VULN_ID not in proc.stderr


def test_the_osv_directory_as_it_is_and_with_no_network(scan_env, images):
    """The module's data/osv directory unchanged (Go's own vulnerabilities included), inside `unshare -r -n`."""
    env, _, osv = scan_env
    layout, _ = images["vuln-jwt"]
    scan(layout, "--db", str(osv), "--fail-on", "none", env=env)  # govulncheck installed (it is, by now)
    proc = scan(layout, "--db", str(osv), "--json", env=env, prefix=["unshare", "-r", "-n"])
    assert proc.returncode == 8, proc.stderr
    assert VULN_ID in {f["id"] for f in json.loads(proc.stdout)["findings"]}
    none = scan(layout, "--db", str(osv), "--fail-on", "NONE", "-q", env=env, prefix=["unshare", "-r", "-n"])
    assert none.returncode == 0 and none.stderr == ""


def test_attach_stores_the_result_as_a_referrer(scan_env, images, tmp_path):
    env, modules, _ = scan_env
    layout = tmp_path / "copy"
    shutil.copytree(images["vuln-jwt"][0], layout)
    proc = scan(layout, "--db", str(modules), "--attach", env=env)
    assert proc.returncode == 8 and "attached  scan result" in proc.stderr, proc.stderr
    inspected = run_cli("inspect", f"oci:{layout}:v1", "--json", "--no-files")
    kinds = [
        r.get("annotations", {}).get("in-toto.io/predicate-type") for r in json.loads(inspected.stdout)["referrers"]
    ]
    assert kinds == ["https://cosign.sigstore.dev/attestation/vuln/v1"]


def test_bad_input_is_one_line_with_the_right_exit_code(scan_env, images, tmp_path):
    env, modules, _ = scan_env
    layout, _ = images["vuln-jwt"]
    cases = []
    build_busybox_base(tmp_path / "busybox", "v1")
    cases.append((scan(tmp_path / "busybox", "--db", str(modules), env=env), 4, "holds no /app"))
    (tmp_path / "db1" / "index").mkdir(parents=True)
    (tmp_path / "db1" / "index" / "db.json").write_text("{not json")
    cases.append((scan(layout, "--db", str(tmp_path / "db1"), env=env), 4, "index/db.json is not JSON"))
    shutil.copytree(modules, tmp_path / "db2")
    (tmp_path / "db2" / f"{VULN_ID}.json").write_text('{"id": "GO-2024-3250", "affected": ')
    cases.append((scan(layout, "--db", str(tmp_path / "db2"), env=env), 4, f"{VULN_ID}.json is not JSON"))
    (tmp_path / "empty").mkdir()
    cases.append((scan(layout, "--db", str(tmp_path / "empty"), env=env), 4, "no OSV files"))
    cases.append((scan(layout, "--db", str(modules), "--fail-on", "SEVERE", env=env), 4, "--fail-on SEVERE"))
    cases.append(
        (
            scan(layout, "--with", "trivy", "--db", str(modules), env={**env, "PATH": "/usr/bin:/bin"}),
            3,
            "trivy is not on PATH",
        )
    )
    for proc, code, text in cases:
        assert proc.returncode == code, (text, proc.stderr)
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("scan      ")]
        assert text in lines[0] and len(lines) <= 2 and "Traceback" not in proc.stderr, proc.stderr


def test_a_pushed_image_is_scanned_and_its_signed_result_verifies(scan_env, images, plain_registry, tmp_path):
    """A registry reference is scanned; --attach --sign-key stores the result as a DSSE-signed vuln attestation that
    cosign and `ocibake verify --attestation vuln` accept."""
    from regtools import ocibake, reg_env
    from test_sign import cosign, env_for

    env, modules, _ = scan_env
    reg = plain_registry
    layout, digest = images["vuln-jwt"]
    renv = {**env_for(reg, tmp_path / "home"), **env}
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=renv).returncode == 0
    repo = f"{reg.host}/scanned/jwt"
    assert ocibake("push", str(layout), repo, env=reg_env(reg, tmp_path / "home")).returncode == 0
    key = ["--attach", "--sign-key", str(tmp_path / "cosign.key")]
    proc = ocibake("scan", f"{repo}:v1", "--db", str(modules), *key, env=renv, timeout=900)
    assert proc.returncode == 8 and VULN_ID in proc.stderr, proc.stderr
    assert proc.stdout.strip() == f"{repo}@{digest}" and f"{digest.replace(':', '-')}.att" in proc.stderr
    mine = ocibake("verify", f"{repo}:v1", "--key", str(tmp_path / "cosign.pub"), "--attestation", "vuln", env=renv)
    assert mine.returncode == 0, mine.stderr
    flags = ["--type", "vuln", "--insecure-ignore-tlog=true", "--allow-insecure-registry"]
    theirs = cosign("verify-attestation", "--key", str(tmp_path / "cosign.pub"), *flags, f"{repo}:v1", env=renv)
    assert theirs.returncode == 0, theirs.stderr


def test_a_scanner_that_reports_nothing_is_not_a_clean_scan(scan_env, images):
    """A `govulncheck` that prints nothing (a wrong program, a broken install) is an error, never "no known
    vulnerabilities"."""
    env, modules, _ = scan_env
    layout, _ = images["vuln-jwt"]
    proc = scan(layout, "--db", str(modules), "--govulncheck", "/bin/true", env=env)
    assert proc.returncode == 3 and "wrote no result" in proc.stderr, proc.stderr
    assert "no known vulnerabilities" not in proc.stderr
