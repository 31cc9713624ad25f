"""SLSA v1 provenance: the in-toto statement every build writes into its layout (reproducible, no clock unless
asked), and, with --push --sign-key, the DSSE-signed attestation in the `.att` tag that the real cosign (Debian 13's,
as for the signature tests) verifies; `ocibake verify --attestation` checks the same, and refuses another key and
another image's attestation."""

from __future__ import annotations

import base64
import json

from conftest import FIXTURES, blob, build, layout_index, run_cli
from regtools import ocibake
from test_sign import cosign, env_for

SLSA = "https://slsa.dev/provenance/v1"


def layout_statement(layout, digest: str) -> bytes:
    """The provenance statement stored in ``layout`` as a referrer of ``digest`` (the only one)."""
    found = []
    for entry in layout_index(layout)["manifests"]:
        manifest = json.loads(blob(layout, entry["digest"]))
        if (manifest.get("subject") or {}).get("digest") == digest and manifest.get("artifactType") == (
            "application/vnd.in-toto+json"
        ):
            assert manifest["annotations"]["in-toto.io/predicate-type"] == SLSA
            found.append(blob(layout, manifest["layers"][0]["digest"]))
    assert len(found) == 1, found
    return found[0]


def test_two_builds_give_the_same_statement_and_it_says_how_the_image_was_made(tmp_path):
    one, proc = build(FIXTURES / "hello-root", tmp_path / "a", "--version", "v1.2.3", "--upx", "off")
    assert proc.returncode == 0, proc.stderr
    two, proc2 = build(FIXTURES / "hello-root", tmp_path / "b", "--version", "v1.2.3", "--upx", "off")
    assert proc2.returncode == 0, proc2.stderr
    assert one == two
    first, second = layout_statement(tmp_path / "a", one), layout_statement(tmp_path / "b", two)
    assert first == second  # byte-identical
    doc = json.loads(first)
    assert doc["_type"] == "https://in-toto.io/Statement/v1" and doc["predicateType"] == SLSA
    assert doc["subject"] == [{"name": "hello-root", "digest": {"sha256": one.split(":", 1)[1]}}]
    definition = doc["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://ocibake.dev/buildtypes/go-image/v1"
    ext = definition["externalParameters"]
    assert (ext["version"], ext["target"], ext["platform"], ext["upx"]) == (
        "v1.2.3",
        "production",
        "linux/amd64",
        "off",
    )
    assert ext["tags"] == ["v1.2.3", "latest"] and ext["service"].endswith("tests/fixtures/hello-root")
    assert len(ext["source"]["revision"]) == 40
    internal = definition["internalParameters"]
    assert internal["data_layer_time"] == "2026-01-01T00:00:00Z" and internal["upx"] == {"mode": "off"}
    deps = {d["name"]: d for d in definition["resolvedDependencies"]}
    assert set(deps) == {"source", "go-toolchain", "ca-bundle", "zoneinfo"}
    assert deps["source"]["digest"] == {"gitCommit": ext["source"]["revision"]}
    assert deps["go-toolchain"]["annotations"]["go"].startswith("go1.") and deps["go-toolchain"]["uri"].startswith(
        "file:///"
    )
    assert deps["ca-bundle"]["uri"].startswith("pkg:pypi/certifi@") and len(deps["ca-bundle"]["digest"]["sha256"]) == 64
    assert deps["zoneinfo"]["annotations"]["package"]
    run = doc["predicate"]["runDetails"]
    assert run["builder"]["id"] == "https://ocibake.dev/builder/cli/v1"
    assert "startedOn" not in run["metadata"] and "finishedOn" not in run["metadata"]
    assert "provenance SLSA v1" in proc.stderr


def test_provenance_times_on_request_and_none_writes_no_statement(tmp_path):
    digest, proc = build(
        FIXTURES / "hello-root", tmp_path / "t", "--upx", "off", "--sbom", "none", "--provenance-times"
    )
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(layout_statement(tmp_path / "t", digest))["predicate"]["runDetails"]["metadata"]
    assert meta["startedOn"] <= meta["finishedOn"] and meta["finishedOn"].endswith("Z")
    _, proc = build(FIXTURES / "hello-root", tmp_path / "n", "--upx", "off", "--sbom", "none", "--provenance", "none")
    assert proc.returncode == 0, proc.stderr
    assert len({m["digest"] for m in layout_index(tmp_path / "n")["manifests"]}) == 1  # the image, no referrer


def test_cosign_verifies_the_signed_provenance_of_a_pushed_build(plain_registry, tmp_path):
    reg = plain_registry
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    (tmp_path / "other").mkdir()
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path / "other"), env=env).returncode == 0
    repo = f"{reg.host}/attested/hello"
    args = ["--version", "v1.0.0", "--upx", "off", "--push", repo, "--sign-key", str(tmp_path / "cosign.key")]
    digest, proc = build(FIXTURES / "hello-root", tmp_path / "layout", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "attested" in proc.stderr and f"{digest.replace(':', '-')}.att" in proc.stderr
    assert f"verify {repo}:v1.0.0 --key cosign.pub --attestation slsaprovenance1" in proc.stderr

    flags = ["--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry"]
    ok = cosign("verify-attestation", "--key", str(tmp_path / "cosign.pub"), *flags, f"{repo}:v1.0.0", env=env)
    assert ok.returncode == 0, ok.stderr
    envelope = json.loads(ok.stdout.splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"][0]["digest"]["sha256"] == digest.split(":", 1)[1]
    assert base64.b64decode(envelope["payload"]) == layout_statement(tmp_path / "layout", digest)
    other = cosign(
        "verify-attestation", "--key", str(tmp_path / "other" / "cosign.pub"), *flags, f"{repo}:v1.0.0", env=env
    )
    assert other.returncode != 0

    mine = ocibake(
        "verify", f"{repo}:v1.0.0", "--key", str(tmp_path / "cosign.pub"), "--attestation", "slsaprovenance1", env=env
    )
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.strip() == f"{repo}@{digest}" and "production linux/amd64 version v1.0.0" in mine.stderr
    theirs = ocibake(
        "verify",
        f"{repo}:v1.0.0",
        "--key",
        str(tmp_path / "other" / "cosign.pub"),
        "--attestation",
        "slsaprovenance1",
        env=env,
    )
    assert theirs.returncode == 7 and "does not verify with this key" in theirs.stderr
    assert len(theirs.stderr.strip().splitlines()) <= 2 and "Traceback" not in theirs.stderr


def test_an_attestation_whose_subject_is_another_image_is_refused(plain_registry, tmp_path):
    reg = plain_registry
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    repo = f"{reg.host}/attested/two"
    key = ["--sign-key", str(tmp_path / "cosign.key"), "--sbom", "none", "--upx", "off", "--push", repo]
    d1, p1 = build(FIXTURES / "hello-root", tmp_path / "l1", "--version", "v1", "--tag", "v1", *key, env=env)
    d2, p2 = build(FIXTURES / "hello-root", tmp_path / "l2", "--version", "v2", "--tag", "v2", *key, env=env)
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr + p2.stderr
    from ocibake.oci.image import Blob
    from ocibake.registry.artifacts import Remote

    with Remote(repo) as remote:  # v1's attestation under v2's .att tag
        data, media_type = remote.manifest(d1.replace(":", "-") + ".att")
        remote.put_manifest(d2.replace(":", "-") + ".att", Blob(media_type, data))
    bad = ocibake(
        "verify", f"{repo}:v2", "--key", str(tmp_path / "cosign.pub"), "--attestation", "slsaprovenance1", env=env
    )
    assert bad.returncode == 7, bad.stderr
    assert f"for another digest (sha256:{d1.split(':', 1)[1]})" in bad.stderr and "Traceback" not in bad.stderr
    assert (
        len(bad.stderr.strip().splitlines()) == 2 and "hint: the attestation was made for another image" in bad.stderr
    )
    flags = ["--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry"]
    theirs = cosign("verify-attestation", "--key", str(tmp_path / "cosign.pub"), *flags, f"{repo}:v2", env=env)
    assert theirs.returncode != 0
    unknown = ocibake("verify", f"{repo}:v2", "--key", str(tmp_path / "cosign.pub"), "--attestation", "nope", env=env)
    assert unknown.returncode == 4 and "unknown attestation type" in unknown.stderr


def test_audit_reads_the_provenance_and_says_where_it_agrees_with_the_build_record(tmp_path):
    digest, _ = build(FIXTURES / "hello-root", tmp_path / "o", "--version", "v1", "--upx", "off", "--sbom", "none")
    audit = run_cli("audit", f"oci:{tmp_path / 'o'}:v1", "--source", str(FIXTURES / "hello-root"), "--json")
    doc = json.loads(audit.stdout)
    facts = {f["name"]: f for f in doc["provenance"]}
    assert all(f["agrees"] for f in facts.values()), facts
    assert facts["subject"]["record"] == digest and facts["upx"]["statement"] == "off" and len(facts) == 14
    text = run_cli("audit", f"oci:{tmp_path / 'o'}:v1", "--source", str(FIXTURES / "hello-root"))
    assert "provenance: SLSA v1 statement agrees with the build record on all 14 facts" in text.stdout

    from ocibake.audit.provenance_check import compare, provenance_lines

    statement = json.loads(layout_statement(tmp_path / "o", digest))
    statement["predicate"]["buildDefinition"]["externalParameters"]["source"]["revision"] = "0" * 40
    record = json.loads(
        json.loads(blob(tmp_path / "o", config_digest(tmp_path / "o", digest)))["config"]["Labels"][
            "dev.ocibake.build-record"
        ]
    )
    lines = provenance_lines(compare(statement, record, digest))
    assert lines[0].endswith("differs from the build record on 1 of 14 facts")
    assert lines[1] == f"  revision: statement {'0' * 40}, record {record['commit']}"


def config_digest(layout, digest: str) -> str:
    return json.loads(blob(layout, digest))["config"]["digest"]


def test_an_attestation_made_by_cosign_passes_ocibake_verify(plain_registry, tmp_path):
    reg = plain_registry
    env = env_for(reg, tmp_path / "home")
    made = cosign("generate-key-pair", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    repo = f"{reg.host}/attested/cosigned"
    digest, _ = build(
        FIXTURES / "hello-root", tmp_path / "l", "--upx", "off", "--sbom", "none", "--push", repo, env=env
    )
    predicate = tmp_path / "predicate.json"
    definition = {"buildType": "https://example.com/made-by-hand/v1", "externalParameters": {"source": "by hand"}}
    run = {"builder": {"id": "https://example.com/hand"}}
    predicate.write_text(json.dumps({"buildDefinition": definition, "runDetails": run}))
    attested = cosign(
        "attest",
        "--key",
        str(tmp_path / "cosign.key"),
        "--type",
        "slsaprovenance1",
        "--predicate",
        str(predicate),
        "--tlog-upload=false",
        "--allow-insecure-registry",
        "--yes",
        f"{repo}@{digest}",
        env=env,
    )
    assert attested.returncode == 0, attested.stderr
    ok = ocibake(
        "verify", f"{repo}@{digest}", "--key", str(tmp_path / "cosign.pub"), "--attestation", SLSA, "--json", env=env
    )
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["valid_attestations"] == 1 and doc["facts"]["build type"] == "https://example.com/made-by-hand/v1"


def test_a_multi_platform_build_writes_one_statement_per_platform_image(tmp_path):
    index_digest, proc = build(
        FIXTURES / "hello-root", tmp_path / "m", "--platform", "linux/amd64,linux/arm64", "--upx", "off"
    )
    index = json.loads(blob(tmp_path / "m", index_digest))
    for child in index["manifests"]:
        doc = json.loads(layout_statement(tmp_path / "m", child["digest"]))
        assert doc["subject"][0]["digest"]["sha256"] == child["digest"].split(":", 1)[1]
        platform = f"{child['platform']['os']}/{child['platform']['architecture']}"
        assert doc["predicate"]["buildDefinition"]["externalParameters"]["platform"] == platform
    assert proc.stderr.count("provenance SLSA v1") == 2


def test_a_pushed_multi_platform_build_has_a_signed_provenance_per_platform(plain_registry, tmp_path):
    reg = plain_registry
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    repo = f"{reg.host}/attested/multi"
    args = ["--platform", "linux/amd64,linux/arm64", "--upx", "off", "--push", repo]
    index_digest, proc = build(
        FIXTURES / "hello-root", tmp_path / "m", *args, "--sign-key", str(tmp_path / "cosign.key"), env=env
    )
    assert proc.stderr.count("\nattested  ") == 2, proc.stderr
    flags = ["--type", "slsaprovenance1", "--insecure-ignore-tlog=true", "--allow-insecure-registry"]
    for child in json.loads(blob(tmp_path / "m", index_digest))["manifests"]:
        ref = f"{repo}@{child['digest']}"
        ok = cosign("verify-attestation", "--key", str(tmp_path / "cosign.pub"), *flags, ref, env=env)
        assert ok.returncode == 0, ok.stderr
        mine = ocibake(
            "verify", ref, "--key", str(tmp_path / "cosign.pub"), "--attestation", "slsaprovenance1", env=env
        )
        assert mine.returncode == 0 and child["platform"]["architecture"] in mine.stderr, mine.stderr
    signed = ocibake("verify", f"{repo}@{index_digest}", "--key", str(tmp_path / "cosign.pub"), env=env)
    assert signed.returncode == 0, signed.stderr  # the index itself is signed, as before
