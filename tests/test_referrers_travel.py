"""Referrers travel with images: `ocibake pull` brings an image's SBOM and cosign signature into the layout, where
`ocibake verify oci:DIR:TAG` checks the signature with no network at all (an air-gapped site), and `ocibake sbom`
prints the SBOM; `oras pull` of the SBOM referrer writes it as a file."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import FIXTURES, build, layout_index
from regtools import ocibake, reg_env
from rootless import ocibake_rootless
from test_sbom import ORAS, SCHEMA, oras

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture(scope="module")
def published(tmp_path_factory, plain_registry):
    """hello-root built, pushed (with its SBOM) and signed: (registry, repo, digest, keys dir, env)."""
    base = tmp_path_factory.mktemp("published")
    digest, _ = build(FIXTURES / "hello-root", base / "oci", "--version", "v1", "--upx", "off", env=EPOCH)
    env = {**reg_env(plain_registry, base / "home"), "COSIGN_PASSWORD": ""}
    repo = f"{plain_registry.host}/travel/hello"
    assert ocibake("push", str(base / "oci"), repo, "-t", "v1", env=env).returncode == 0
    for keys in ("keys", "other"):
        (base / keys).mkdir()
        made = ocibake("generate-key-pair", "--output-dir", str(base / keys), env=env)
        assert made.returncode == 0, made.stderr
    signed = ocibake("sign", f"{repo}:v1", "--key", str(base / "keys" / "cosign.key"), env=env)
    assert signed.returncode == 0, signed.stderr
    return plain_registry, repo, digest, base, env


def test_pull_brings_the_sbom_and_the_signature_along(published, tmp_path):
    _reg, repo, digest, _base, env = published
    proc = ocibake("pull", f"{repo}:v1", str(tmp_path / "pulled"), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    sig_tag = digest.replace(":", "-") + ".sig"
    # the SBOM and the provenance (referrers), cosign's signature (its tag)
    assert f"{repo}:{sig_tag}" in doc["referrers"] and len(doc["referrers"]) == 3, doc["referrers"]
    index = layout_index(tmp_path / "pulled")
    tags = {m.get("annotations", {}).get("org.opencontainers.image.ref.name") for m in index["manifests"]}
    assert tags == {"v1", sig_tag, None}  # the image, cosign's signature tag, the SBOM and provenance (untagged)
    inspect = ocibake("inspect", f"oci:{tmp_path / 'pulled'}", "--no-files", "--json", env=env)
    assert inspect.returncode == 0, inspect.stderr  # the signature tag is not taken for a second image
    kinds = sorted(r["artifactType"] for r in json.loads(inspect.stdout)["referrers"])
    assert kinds == ["application/spdx+json", "application/vnd.in-toto+json"]

    bare = ocibake("pull", f"{repo}:v1", str(tmp_path / "bare"), "--no-referrers", "--json", env=env)
    assert bare.returncode == 0 and json.loads(bare.stdout)["referrers"] == []
    assert len(layout_index(tmp_path / "bare")["manifests"]) == 1
    none = ocibake("sbom", f"oci:{tmp_path / 'bare'}:v1", env=env)
    assert none.returncode == 4 and "has no SBOM referrer" in none.stderr and "hint:" in none.stderr


def test_a_pulled_layout_verifies_offline_in_a_namespace_with_no_network(published, rootless_account, tmp_path):
    _reg, repo, digest, base, env = published
    shared = Path(tempfile.mkdtemp(prefix="ocibake-airgap-", dir="/tmp"))
    try:
        assert ocibake("pull", f"{repo}:v1", str(shared / "layout"), env=env).returncode == 0
        for keys in ("keys", "other"):
            (shared / keys).mkdir()
            shutil.copy(base / keys / "cosign.pub", shared / keys / "cosign.pub")
        subprocess.run(["chmod", "-R", "a+rX", str(shared)], check=True)
        ref = f"oci:{shared / 'layout'}:v1"
        good = ocibake_rootless(
            "verify", ref, "--key", str(shared / "keys" / "cosign.pub"), account=rootless_account, network=False
        )
        assert good.returncode == 0, good.stderr
        assert good.stdout.strip() == f"{ref.rsplit(':', 1)[0]}:v1@{digest}"
        wrong = ocibake_rootless(
            "verify", ref, "--key", str(shared / "other" / "cosign.pub"), account=rootless_account, network=False
        )
        assert wrong.returncode == 7, wrong.stderr
        assert "does not verify with this key" in wrong.stderr and "Traceback" not in wrong.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_sbom_prints_or_writes_the_images_sbom_from_a_layout_or_the_registry(published, tmp_path):
    _reg, repo, digest, base, env = published
    printed = ocibake("sbom", f"oci:{base / 'oci'}:v1", env=env)
    assert printed.returncode == 0, printed.stderr
    doc = json.loads(printed.stdout)
    import jsonschema

    jsonschema.validate(doc, SCHEMA)
    assert doc["documentNamespace"].endswith(digest.replace(":", "-"))
    written = ocibake("sbom", f"{repo}:v1", "--output", str(tmp_path / "sbom.json"), env=env)
    assert written.returncode == 0, written.stderr
    assert json.loads((tmp_path / "sbom.json").read_text()) == doc and written.stdout == ""


def test_oras_pull_of_the_sbom_referrer_writes_a_file(published, tmp_path):
    reg, repo, digest, _base, _env = published
    found = oras("discover", "--plain-http", f"{repo}@{digest}", "--format", "json")
    assert found.returncode == 0, found.stderr
    listed = json.loads(found.stdout)
    referrers = listed.get("referrers") or listed.get("manifests") or []
    sbom = next(r for r in referrers if r["artifactType"] == "application/spdx+json")
    assert ORAS.is_file() and reg.host in repo
    pulled = oras("pull", "--plain-http", f"{repo}@{sbom['digest']}", "-o", str(tmp_path / "out"))
    assert pulled.returncode == 0, pulled.stderr
    files = list((tmp_path / "out").iterdir())
    assert [f.name for f in files] == ["hello-root.spdx.json"], files
    assert json.loads(files[0].read_text())["spdxVersion"] == "SPDX-2.3"


def test_the_readmes_cosign_verify_command_passes_as_written(published, tmp_path):
    """The README's `cosign verify` line for key-signed images without a transparency log, run as written (only the
    registry and repository changed) against an image ocibake signed on the loopback registry."""
    from test_sign import COSIGN, cosign

    _reg, repo, digest, base, env = published
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = next(x.strip() for x in readme.splitlines() if x.strip().startswith("cosign verify --key cosign.pub"))
    argv = shlex.split(line.replace("127.0.0.1:5000/sos/emergency-service:v1.0.0", f"{repo}:v1"))
    assert argv[0] == "cosign" and "--insecure-ignore-tlog=true" in argv and "--allow-http-registry" in argv
    shutil.copy(base / "keys" / "cosign.pub", tmp_path / "cosign.pub")
    cosign_env = {**env, "TUF_ROOT": str(tmp_path / "tuf"), "SIGSTORE_NO_CACHE": "1"}
    proc = cosign(*argv[1:], env=cosign_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == digest
    assert COSIGN.is_file()
