"""The SBOM: SPDX 2.3 from the binary's Go build information, valid against the SPDX 2.3 JSON schema, byte-identical
across builds, stored as an OCI 1.1 referrer that `oras discover` finds in the layout and in the registry."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from conftest import FIXTURES, REPO, build, layout_index, run_cli
from regtools import ocibake, reg_env

SCHEMA = json.loads((REPO / "tests" / "data" / "spdx-schema-v2.3.json").read_text())
ORAS = REPO / ".tools" / "trixie" / "usr" / "bin" / "oras"
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def oras(*args: str) -> subprocess.CompletedProcess:
    if not ORAS.is_file():
        pytest.fail(f"{ORAS} is missing: run `bash scripts/install-debian-deps.sh` (tests never skip a missing tool)")
    return subprocess.run([str(ORAS), *args], check=False, capture_output=True, text=True, timeout=60)


def sbom_of(layout: Path, digest: str) -> tuple[dict, bytes, str]:
    """(referrer manifest, SPDX bytes, referrer digest) of the image ``digest`` in ``layout``."""
    for entry in layout_index(layout)["manifests"]:
        manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"][7:]).read_bytes())
        if (manifest.get("subject") or {}).get("digest") == digest:
            data = (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).read_bytes()
            return manifest, data, entry["digest"]
    raise AssertionError("no SBOM referrer in the layout")


def validate(doc: dict) -> None:
    errors = [e.message for e in jsonschema.Draft201909Validator(SCHEMA).iter_errors(doc)]
    assert errors == []


@pytest.fixture(scope="module")
def vendored(tmp_path_factory):
    base = tmp_path_factory.mktemp("sbom")
    digest, _ = build(FIXTURES / "vendored-service", base / "a", "--version", "v1", "--upx", "off", env=EPOCH)
    return base, digest


def test_the_sbom_is_valid_spdx_and_lists_go_the_main_module_its_deps_and_the_data_sources(vendored):
    base, digest = vendored
    manifest, data, _ = sbom_of(base / "a", digest)
    assert manifest["artifactType"] == "application/spdx+json"
    assert manifest["subject"]["digest"] == digest
    assert manifest["layers"][0]["mediaType"] == "application/spdx+json"
    doc = json.loads(data)
    validate(doc)
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert doc["documentNamespace"].endswith("sha256-" + digest[7:])
    by_id = {p["SPDXID"]: p for p in doc["packages"]}
    go_version = subprocess.run(
        ["go", "env", "GOVERSION"], check=False, stdout=subprocess.PIPE, text=True, cwd=FIXTURES / "vendored-service"
    ).stdout.strip()
    assert by_id["SPDXRef-Go"]["versionInfo"] == go_version
    main = by_id["SPDXRef-Module-example.com-fixtures-vendored-service"]
    assert (
        "-trimpath=true" in main["annotations"][0]["comment"] and "CGO_ENABLED=0" in main["annotations"][0]["comment"]
    )
    dep = next(p for p in doc["packages"] if p["name"] == "example.com/vendored/greet")
    assert dep["versionInfo"] == "v1.2.3"
    import certifi
    import tzdata

    assert by_id["SPDXRef-CA-Bundle"]["versionInfo"] == certifi.__version__
    assert by_id["SPDXRef-Zoneinfo"]["versionInfo"] == tzdata.IANA_VERSION
    assert len(by_id["SPDXRef-CA-Bundle"]["checksums"][0]["checksumValue"]) == 64


def test_the_build_information_matches_go_version_m(vendored, tmp_path):
    """Our reader of the binary's build information against go's own (`go version -m`) on the binary in the image."""
    base, digest = vendored
    from ocibake.audit.image_source import open_layout_image
    from ocibake.audit.sbom_attach import build_info, entrypoint_binary

    image = open_layout_image(f"oci:{base / 'a'}@{digest}")
    binary = tmp_path / "app"
    binary.write_bytes(entrypoint_binary(image))
    out = subprocess.run(["go", "version", "-m", str(binary)], stdout=subprocess.PIPE, text=True, check=True).stdout
    info = build_info(image)
    lines = [fields.strip().split("\t") for fields in out.splitlines()[1:]]
    assert out.split(": ", 1)[1].splitlines()[0] == info.go_version
    assert [fields[1:3] for fields in lines if fields[0] == "dep"] == [[d.path, d.version] for d in info.deps]
    assert [fields[1] for fields in lines if fields[0] == "build"] == [f"{k}={v}" for k, v in info.settings]


def test_dependency_checksums_and_replacements_become_spdx_checksums():
    from ocibake.audit.goinfo import parse_modinfo
    from ocibake.audit.sbom import spdx_document
    from ocibake.oci.image import Descriptor

    info = parse_modinfo(
        "go1.26.0",
        "path\texample.com/app\nmod\texample.com/app\t(devel)\t\n"
        "dep\tgolang.org/x/text\tv0.14.0\th1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\n"
        "dep\texample.com/lib\tv1.0.0\t\n=>\t../lib\t(devel)\t\nbuild\t-trimpath=true\n",
    )
    doc = spdx_document(
        "app", Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "a" * 64, 1), info, None, 0
    )
    validate(doc)
    text = next(p for p in doc["packages"] if p["name"] == "golang.org/x/text")
    import base64

    h1 = base64.b64decode("ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=").hex()
    assert text["checksums"] == [{"algorithm": "SHA256", "checksumValue": h1}]
    assert text["comment"] == "go.sum h1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ="
    lib = next(p for p in doc["packages"] if p["name"] == "example.com/lib")
    assert lib["sourceInfo"] == "replaced by ../lib (devel)"


def test_two_builds_give_byte_identical_sboms_and_oras_discovers_them(vendored, tmp_path):
    base, digest = vendored
    again, _ = build(FIXTURES / "vendored-service", tmp_path / "b", "--version", "v1", "--upx", "off", env=EPOCH)
    assert again == digest
    _m1, d1, r1 = sbom_of(base / "a", digest)
    _m2, d2, r2 = sbom_of(tmp_path / "b", digest)
    assert d1 == d2 and r1 == r2
    proc = oras("discover", "--oci-layout", f"{tmp_path / 'b'}:v1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    kinds = sorted((m["artifactType"], m["digest"]) for m in found["manifests"])
    assert [k for k, _ in kinds] == ["application/spdx+json", "application/vnd.in-toto+json"]  # SBOM, provenance
    assert kinds[0][1] == r1


def test_upx_packed_binaries_get_an_sbom_too(tmp_path):
    digest, proc = build(FIXTURES / "hello-root", tmp_path / "o", "--version", "v1", env=EPOCH)
    assert "sbom      SPDX 2.3" in proc.stderr
    _, data, _ = sbom_of(tmp_path / "o", digest)
    doc = json.loads(data)
    validate(doc)
    assert any(p["name"] == "example.com/fixtures/hello-root" for p in doc["packages"])


def test_sbom_none_writes_no_referrer(tmp_path):
    build(
        FIXTURES / "hello-root",
        tmp_path / "o",
        "--version",
        "v1",
        "--upx",
        "off",
        "--sbom",
        "none",
        "--provenance",
        "none",
    )
    assert [
        m["annotations"]["org.opencontainers.image.ref.name"] for m in layout_index(tmp_path / "o")["manifests"]
    ] == ["v1", "latest"]


def test_a_corrupted_sbom_blob_is_reported(vendored, tmp_path):
    import shutil

    base, digest = vendored
    copy = tmp_path / "copy"
    shutil.copytree(base / "a", copy)
    manifest, data, _ = sbom_of(copy, digest)
    blob = copy / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    blob.write_bytes(data.replace(b"SPDX-2.3", b"SPDX-6.6"))
    proc = run_cli("inspect", f"oci:{copy}:v1", "--no-files")
    assert proc.returncode == 4, proc.stderr
    assert "SBOM referrer" in proc.stderr and "damaged" in proc.stderr and "Traceback" not in proc.stderr


def spdx_digests(discovered) -> list[str]:
    """The SPDX referrers `oras discover --format json` found (the provenance statement is beside them)."""
    manifests = json.loads(discovered.stdout)["manifests"]
    assert {m["artifactType"] for m in manifests} == {"application/spdx+json", "application/vnd.in-toto+json"}
    return [m["digest"] for m in manifests if m["artifactType"] == "application/spdx+json"]


def test_build_push_pushes_the_sbom_as_a_referrer_with_the_tag_fallback(plain_registry, tmp_path):
    """Debian's docker-registry 2.8 has no referrers API: the SBOM goes under the fallback tag sha256-<hex>, where
    `oras discover` and `ocibake inspect` find it."""
    reg = plain_registry
    env = {**reg_env(reg, tmp_path / "home"), **EPOCH}
    proc = ocibake(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(tmp_path / "o"),
        "--version",
        "v1",
        "--upx",
        "off",
        "--push",
        f"{reg.host}/sbom/hello",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.split("@")[-1].strip()
    assert f"tag {digest.replace(':', '-')}" in proc.stderr
    _, _, referrer = sbom_of(tmp_path / "o", digest)
    found = oras("discover", "--plain-http", f"{reg.host}/sbom/hello@{digest}", "--format", "json")
    assert found.returncode == 0, found.stderr
    assert spdx_digests(found) == [referrer]
    inspected = ocibake("inspect", f"{reg.host}/sbom/hello:v1", "--json", "--no-files", env=env)
    assert inspected.returncode == 0, inspected.stderr
    doc = json.loads(inspected.stdout)
    assert doc["referrers_from"] == "tag"
    assert [(r["digest"], r["sbom"]["spdx"]) for r in doc["referrers"] if "sbom" in r] == [(referrer, "SPDX-2.3")]


def test_ocibake_push_takes_the_layouts_sbom_along(vendored, plain_registry, tmp_path):
    base, digest = vendored
    reg = plain_registry
    env = reg_env(reg, tmp_path / "home")
    proc = ocibake("push", str(base / "a"), f"{reg.host}/sbom/pushed", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "referrer  application/spdx+json" in proc.stderr
    _, _, referrer = sbom_of(base / "a", digest)
    found = oras("discover", "--plain-http", f"{reg.host}/sbom/pushed@{digest}", "--format", "json")
    assert found.returncode == 0, found.stderr
    assert spdx_digests(found) == [referrer]
    again = ocibake("push", str(base / "a"), f"{reg.host}/sbom/pushed", env=env)  # no duplicate entry
    assert again.returncode == 0, again.stderr
    found = oras("discover", "--plain-http", f"{reg.host}/sbom/pushed@{digest}", "--format", "json")
    assert spdx_digests(found) == [referrer]
