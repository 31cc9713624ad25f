"""sign/verify input errors found in a new-user trial: OCI layout references, no password without a terminal,
a key file of another kind."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regtools import ocibake

KEY_ENV = {**os.environ, "COSIGN_PASSWORD": "pw"}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    out = tmp_path_factory.mktemp("keys")
    proc = ocibake("generate-key-pair", "--output-dir", str(out), env=KEY_ENV)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("command,key", [("sign", "cosign.key"), ("verify", "cosign.pub")])
def test_sign_and_verify_refuse_an_oci_layout_in_one_line(keys, command, key):
    proc = ocibake(command, "oci:dist/oci/emergency-service:v1.0.0", "--key", str(keys / key), env=KEY_ENV)
    assert proc.returncode == 4, proc.stderr
    first, *rest = proc.stderr.splitlines()
    assert "sign and verify work on registry references" in first
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
