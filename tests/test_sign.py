"""cosign-compatible signatures: keys and signatures made by ocibake, checked by the real cosign (Debian 13's, unpacked
into .tools/ by scripts/install-debian-deps.sh), and cosign's checked by ocibake, on the loopback registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import FIXTURES, REPO, build
from regtools import ocibake, reg_env

COSIGN = REPO / ".tools" / "trixie" / "usr" / "bin" / "cosign"
KEY_PASSWORD = "k3y-pa55-" + os.urandom(4).hex()  # unique, so a leak is easy to find


def cosign(*args: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    if not COSIGN.is_file():
        pytest.fail(f"{COSIGN} is missing: run `bash scripts/install-debian-deps.sh` (tests never skip a missing tool)")
    return subprocess.run(
        [str(COSIGN), *args], check=False, env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def pushed(plain_registry, tmp_path_factory):
    """Three images in one repository of the plain registry: (registry, base, [(reference, digest)] x 3)."""
    reg = plain_registry
    base = tmp_path_factory.mktemp("sign")
    env = reg_env(reg, base / "home")
    images = []
    for i, version in enumerate(("v1", "v2", "v3")):
        layout = base / f"layout-{i}"
        digest, _ = build(FIXTURES / "hello-root", layout, "--version", version, "--upx", "off", "--sbom", "none")
        proc = ocibake("push", str(layout), f"{reg.host}/signed/hello", "-t", version, env=env)
        assert proc.returncode == 0, proc.stderr
        images.append((f"{reg.host}/signed/hello@{digest}", digest))
    return reg, base, images


def env_for(reg, home, **extra) -> dict:
    env = reg_env(reg, home)
    env.update(COSIGN_PASSWORD=KEY_PASSWORD, TUF_ROOT=str(home / "tuf"), SIGSTORE_NO_CACHE="1", **extra)
    return env


def test_our_key_pair_is_cosigns_format(tmp_path):
    env = env_for(type("R", (), {"mode": "plain"})(), tmp_path / "home")
    proc = ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env)
    assert proc.returncode == 0, proc.stderr
    assert KEY_PASSWORD not in proc.stdout + proc.stderr
    key = tmp_path / "cosign.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    got = cosign("public-key", "--key", str(key), env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == (tmp_path / "cosign.pub").read_text()
    again = ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env)
    assert again.returncode == 4 and "exists" in again.stderr


def test_cosign_verifies_our_signature_and_rejects_it_for_another_digest(pushed, tmp_path):
    reg, _base, [(ref1, d1), (ref2, d2), _] = pushed
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    signed = ocibake("sign", ref1, "--key", str(tmp_path / "cosign.key"), env=env)
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip() == f"{reg.host}/signed/hello:{d1.replace(':', '-')}.sig"
    assert KEY_PASSWORD not in signed.stdout + signed.stderr and "PRIVATE" not in signed.stdout + signed.stderr

    flags = ["--key", str(tmp_path / "cosign.pub"), "--insecure-ignore-tlog", "--allow-insecure-registry"]
    ok = cosign("verify", *flags, ref1, env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["critical"]["image"]["docker-manifest-digest"] == d1
    mine = ocibake("verify", ref1, "--key", str(tmp_path / "cosign.pub"), env=env)
    assert mine.returncode == 0, mine.stderr

    # the same signature manifest under the other image's .sig tag: cosign and ocibake both refuse it
    from ocibake.oci.image import Blob
    from ocibake.registry.artifacts import Remote

    with Remote(f"{reg.host}/signed/hello") as remote:
        data, media_type = remote.manifest(d1.replace(":", "-") + ".sig")
        remote.put_manifest(d2.replace(":", "-") + ".sig", Blob(media_type, data))
    bad = cosign("verify", *flags, ref2, env=env)
    assert bad.returncode != 0
    theirs = ocibake("verify", ref2, "--key", str(tmp_path / "cosign.pub"), env=env)
    assert theirs.returncode == 7, theirs.stderr
    assert "for another digest" in theirs.stderr and "Traceback" not in theirs.stderr
    assert "belongs" not in theirs.stderr and f"ocibake sign REPO@{d2}" in theirs.stderr


def test_a_cosign_signature_with_a_cosign_key_passes_ocibake_verify_and_a_wrong_key_does_not(pushed, tmp_path):
    reg, _base, [_, _, (ref3, _d3)] = pushed
    env = env_for(reg, tmp_path / "home")
    made = cosign("generate-key-pair", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    theirs = cosign(
        "sign",
        "--key",
        str(tmp_path / "cosign.key"),
        "--tlog-upload=false",
        "--allow-insecure-registry",
        "--yes",
        ref3,
        env=env,
    )
    assert theirs.returncode == 0, theirs.stderr
    ok = ocibake("verify", ref3, "--key", str(tmp_path / "cosign.pub"), "--json", env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["valid_signatures"] == 1

    # cosign signs with a key ocibake generated (it loads our cosign.key), and both verify that signature
    ours = tmp_path / "ours"
    ours.mkdir()
    assert ocibake("generate-key-pair", "--output-dir", str(ours), env=env).returncode == 0
    signed = cosign(
        "sign",
        "--key",
        str(ours / "cosign.key"),
        "--tlog-upload=false",
        "--allow-insecure-registry",
        "--yes",
        ref3,
        env=env,
    )
    assert signed.returncode == 0, signed.stderr
    assert ocibake("verify", ref3, "--key", str(ours / "cosign.pub"), env=env).returncode == 0
    assert (
        cosign(
            "verify",
            "--key",
            str(ours / "cosign.pub"),
            "--insecure-ignore-tlog",
            "--allow-insecure-registry",
            ref3,
            env=env,
        ).returncode
        == 0
    )

    other = tmp_path / "other"
    other.mkdir()
    assert ocibake("generate-key-pair", "--output-dir", str(other), env=env).returncode == 0
    wrong = ocibake("verify", ref3, "--key", str(other / "cosign.pub"), env=env)
    assert wrong.returncode == 7, wrong.stderr
    assert "does not verify with this key" in wrong.stderr and "Traceback" not in wrong.stderr


def test_unsigned_images_and_wrong_passwords_fail_clearly(pushed, tmp_path):
    reg, _base, _ = pushed
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    _digest, _ = build(FIXTURES / "hello-root", tmp_path / "l", "--version", "v9", "--upx", "off", "--sbom", "none")
    assert ocibake("push", str(tmp_path / "l"), f"{reg.host}/signed/unsigned", "-t", "v9", env=env).returncode == 0
    none = ocibake("verify", f"{reg.host}/signed/unsigned:v9", "--key", str(tmp_path / "cosign.pub"), env=env)
    assert none.returncode == 7 and "no signature" in none.stderr
    wrong = ocibake(
        "sign",
        f"{reg.host}/signed/unsigned:v9",
        "--key",
        str(tmp_path / "cosign.key"),
        env={**env, "COSIGN_PASSWORD": "not-it"},
    )
    assert wrong.returncode == 4 and "wrong password" in wrong.stderr and "not-it" not in wrong.stderr
    pub_as_key = ocibake("sign", f"{reg.host}/signed/unsigned:v9", "--key", str(tmp_path / "cosign.pub"), env=env)
    assert pub_as_key.returncode == 4 and "not an encrypted cosign private key" in pub_as_key.stderr


def test_build_sign_key_signs_what_it_pushes(plain_registry, tmp_path):
    reg = plain_registry
    env = env_for(reg, tmp_path / "home")
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
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
        f"{reg.host}/signed/built",
        "--sign-key",
        str(tmp_path / "cosign.key"),
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    digest = proc.stdout.splitlines()[-1].split("@")[1]
    ok = cosign(
        "verify",
        "--key",
        str(tmp_path / "cosign.pub"),
        "--insecure-ignore-tlog",
        "--allow-insecure-registry",
        f"{reg.host}/signed/built@{digest}",
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert KEY_PASSWORD not in proc.stdout + proc.stderr


def test_no_password_and_no_terminal_is_bad_input(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
    proc = ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env, stdin="")
    assert proc.returncode == 4 and "COSIGN_PASSWORD" in proc.stderr
    assert not (tmp_path / "cosign.key").exists()


# sign and verify refuse OCI layout references, a missing password without a terminal, a key of another kind


KEY_ENV = {**os.environ, "COSIGN_PASSWORD": "pw"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys")
    proc = ocibake("generate-key-pair", "--output-dir", str(out), env=KEY_ENV)
    assert proc.returncode == 0, proc.stderr
    return out


def test_sign_refuses_an_oci_layout_in_one_line(keys):
    proc = ocibake("sign", "oci:dist/oci/emergency-service:v1.0.0", "--key", str(keys / "cosign.key"), env=KEY_ENV)
    assert proc.returncode == 4, proc.stderr
    first, *rest = proc.stderr.splitlines()
    assert "sign works on registry references" in first
    assert len(rest) == 1 and "ocibake push" in rest[0] and "Traceback" not in proc.stderr


def test_sign_without_a_password_and_no_terminal_is_bad_input_naming_cosign_password(keys):
    env = {k: v for k, v in os.environ.items() if k != "COSIGN_PASSWORD"}
    proc = ocibake("sign", "localhost:1/app:v1", "--key", str(keys / "cosign.key"), env=env, stdin="")
    assert proc.returncode == 4, proc.stderr
    assert "hint:" in proc.stderr and "COSIGN_PASSWORD" in proc.stderr.split("hint:", 1)[1]


def test_a_pkcs8_encrypted_key_is_named_with_the_right_article(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    (tmp_path / "other.key").write_bytes(pem)
    proc = ocibake("sign", "localhost:1/app:v1", "--key", str(tmp_path / "other.key"), env=KEY_ENV)
    assert proc.returncode == 4, proc.stderr
    assert "holds an encrypted private key, not an encrypted cosign private key" in proc.stderr
