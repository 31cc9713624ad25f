"""Key pairs as cosign writes them: cosign.pub (a PEM "PUBLIC KEY", ECDSA P-256) and cosign.key (a PEM "ENCRYPTED
SIGSTORE PRIVATE KEY": the PKCS#8 key in a JSON envelope, encrypted with NaCl secretbox under a key scrypt derives
from the password). Files are written by temporary path and rename, the private one mode 0600; no key material and
no password ever reaches a message."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ocibake.audit.secretbox import open_box, seal
from ocibake.errors import InputError

PRIVATE_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
SCRYPT = {"N": 32768, "r": 8, "p": 1}


def _scrypt(password: bytes, salt: bytes, params: Mapping[str, Any]) -> bytes:
    """``params``: N, r and p as SCRYPT holds them, or as a key file's JSON does."""
    n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * r * n * p + (64 << 20))


def _pem(kind: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return ("-----BEGIN " + kind + "-----\n" + "\n".join(lines) + "\n-----END " + kind + "-----\n").encode()


def _unpem(data: bytes, path: Path) -> tuple[str, bytes]:
    text = data.decode("ascii", errors="replace").strip()
    if not text.startswith("-----BEGIN ") or "-----END " not in text:
        raise InputError(
            f"{path} is not a PEM file",
            hint="give the cosign.key written by `ocibake generate-key-pair` or `cosign generate-key-pair`",
        )
    kind = text.split("\n", 1)[0][len("-----BEGIN ") :].rstrip("-")
    body = "".join(line for line in text.splitlines()[1:] if not line.startswith("-----"))
    try:
        return kind, base64.b64decode(body, validate=True)
    except ValueError:
        raise InputError(f"{path} is a damaged PEM file", hint="regenerate the key pair") from None


def encrypt_private_key(key: ec.EllipticCurvePrivateKey, password: bytes) -> bytes:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = secrets.token_bytes(32), secrets.token_bytes(24)
    box = seal(der, nonce, _scrypt(password, salt, SCRYPT))
    envelope = {
        "kdf": {"name": "scrypt", "params": SCRYPT, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box).decode(),
    }
    return _pem(PRIVATE_PEM_TYPES[0], json.dumps(envelope, separators=(",", ":")).encode())


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def generate_key_pair(
    directory: Path, password: bytes, prefix: str = "cosign", force: bool = False
) -> tuple[Path, Path]:
    key_path, pub_path = directory / f"{prefix}.key", directory / f"{prefix}.pub"
    for p in (key_path, pub_path):
        if p.exists() and not force:
            raise InputError(f"{p} exists; not overwriting it", hint="move it away, or pass --force")
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", hint="create it first, or pass another --output-dir")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_atomic(key_path, encrypt_private_key(key, password), 0o600)
    _write_atomic(pub_path, public_pem(key), 0o644)
    return key_path, pub_path


def load_private_key(path: Path, password: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the key {path}: {exc.strerror}", hint="give the path of cosign.key") from None
    kind, raw = _unpem(data, path)
    if kind not in PRIVATE_PEM_TYPES:
        article = "an" if kind.lower().startswith(("a", "e", "i", "o", "u")) else "a"
        raise InputError(
            f"{path} holds {article} {kind.lower()}, not an encrypted cosign private key",
            hint="sign with cosign.key; cosign.pub is for verify",
        )
    try:
        envelope = json.loads(raw)
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        if kdf["name"] != "scrypt" or cipher["name"] != "nacl/secretbox":
            raise ValueError("unsupported envelope")
        secret = _scrypt(password, base64.b64decode(kdf["salt"]), kdf["params"])
        der = open_box(base64.b64decode(envelope["ciphertext"]), base64.b64decode(cipher["nonce"]), secret)
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f"{path} is not a cosign key file this version understands",
            hint="regenerate the key pair with `ocibake generate-key-pair`",
        ) from None
    if der is None:
        raise InputError(
            f"cannot decrypt {path}: wrong password (or a damaged key file)",
            hint="set COSIGN_PASSWORD to the key's password, or type it at the prompt",
        )
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputError(
            f"{path} is not an ECDSA P-256 key", hint="ocibake signs with ECDSA P-256 keys, as cosign makes"
        )
    return key


def load_public_key(path: Path) -> ec.EllipticCurvePublicKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the key {path}: {exc.strerror}", hint="give the path of cosign.pub") from None
    kind, _ = _unpem(data, path)
    if kind != "PUBLIC KEY":
        raise InputError(f"{path} holds a {kind.lower()}, not a public key", hint="verify with cosign.pub")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise InputError(f"{path} is a damaged public key", hint="give the cosign.pub of the key pair") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError(f"{path} is not an ECDSA public key", hint="ocibake verifies ECDSA P-256 signatures")
    return key
