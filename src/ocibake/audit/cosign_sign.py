"""Signatures in cosign's key-based format: an ECDSA P-256 signature (SHA-256, DER, base64) over the simple-signing
payload that names the image digest, stored where cosign looks: the manifest tagged `sha256-<hex>.sig` in the image's
repository, one layer per signature (media type application/vnd.dev.cosign.simplesigning.v1+json, the signature in
the layer annotation dev.cosignproject.cosign/signature)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ocibake.audit import ecdsa
from ocibake.errors import InputError, OcibakeError
from ocibake.oci.image import Blob, canonical_json, sha256_digest
from ocibake.oci.media_types import OCI_CONFIG, OCI_MANIFEST

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from ocibake.registry.reference import Reference

PAYLOAD_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"


class SignatureRepository(Protocol):
    """The repository signatures are read from and written to (registry/artifacts.py's Remote)."""

    def manifest(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of the manifest ``ref`` (tag or digest), or None when there is none."""

    def blob(self, digest: str) -> bytes:
        """The blob's bytes, checked against ``digest``."""

    def put_blobs(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        """Upload (digest, bytes) pairs."""

    def put_manifest(self, ref: str, blob: Blob) -> str:
        """Store the manifest ``blob`` under the tag or digest ``ref``."""


class SignatureError(OcibakeError):
    """No valid signature: none there, another key, another digest, or damaged."""

    exit_code = 7


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def payload(repository: str, digest: str) -> bytes:
    """The simple-signing payload, as cosign writes it."""
    doc = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def sign_payload(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    return base64.b64encode(ecdsa.sign(key, data)).decode()


def signature_config(layers: list[dict[str, Any]]) -> Blob:
    """The image config cosign gives a signature manifest (zero times, one diff_id per payload)."""
    zero = "0001-01-01T00:00:00Z"
    doc = {
        "architecture": "",
        "config": {},
        "created": zero,
        "history": [{"created": zero} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
    }
    return Blob(OCI_CONFIG, canonical_json(doc))


def sign_remote(
    remote: SignatureRepository, repository: str, digest: str, key: ec.EllipticCurvePrivateKey
) -> tuple[str, bool]:
    """Add a signature of ``digest`` to its `.sig` manifest (kept signatures stay); -> (the tag, whether a signature
    was added: False when this key had signed this payload already)."""
    tag = signature_tag(digest)
    data = payload(repository, digest)
    data_digest = sha256_digest(data)
    layer = {
        "mediaType": PAYLOAD_TYPE,
        "digest": data_digest,
        "size": len(data),
        "annotations": {SIGNATURE_ANNOTATION: sign_payload(key, data)},
    }
    layers: list[dict[str, Any]] = []
    existing = remote.manifest(tag)
    if existing is not None:
        try:
            layers = [
                layer for layer in json.loads(existing[0]).get("layers") or [] if layer.get("mediaType") == PAYLOAD_TYPE
            ]
        except ValueError:
            layers = []
    if any(_signed_by(kept, data, data_digest, key.public_key()) for kept in layers):
        return tag, False  # this key signed this payload already: a second signature would add nothing
    layers.append(layer)
    config = signature_config(layers)
    blobs = [(config.digest, config.data), (data_digest, data)]
    remote.put_blobs(blobs)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor().as_json(),
        "layers": layers,
    }
    remote.put_manifest(tag, Blob(OCI_MANIFEST, canonical_json(manifest)))
    return tag, True


def _signed_by(layer: dict[str, Any], data: bytes, data_digest: str, key: ec.EllipticCurvePublicKey) -> bool:
    """A kept signature layer over exactly ``data`` (by digest) whose signature verifies with ``key``."""
    if layer.get("digest") != data_digest:
        return False
    try:
        signature = base64.b64decode((layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION, ""), validate=True)
    except ValueError:
        return False
    return ecdsa.verifies(key, signature, data)


@dataclass(frozen=True)
class Verified:
    digest: str
    signatures: int  # valid ones
    identity: str  # docker-reference of the first valid one


def verify_remote(remote: SignatureRepository, digest: str, key: ec.EllipticCurvePublicKey) -> Verified:
    """At least one signature in `sha256-<hex>.sig` verifies with ``key`` and names ``digest``; SignatureError if
    not."""
    tag = signature_tag(digest)
    got = remote.manifest(tag)
    if got is None:
        raise SignatureError(
            f"no signature for {digest} (no tag {tag})",
            hint="sign it with `ocibake sign REF --key cosign.key` (or cosign sign)",
        )
    try:
        layers = [layer for layer in json.loads(got[0]).get("layers") or [] if layer.get("mediaType") == PAYLOAD_TYPE]
    except ValueError:
        raise SignatureError(f"the signature manifest {tag} is not JSON", hint="sign the image again") from None
    reasons, valid, identity = [], 0, ""
    for layer in layers:
        sig_b64 = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION, "")
        try:
            data = remote.blob(layer["digest"])
            if not ecdsa.verifies(key, base64.b64decode(sig_b64, validate=True), data):
                reasons.append("a signature does not verify with this key")
                continue
        except (ValueError, KeyError, OcibakeError) as exc:
            reasons.append(f"a signature is damaged ({getattr(exc, 'message', exc)})")
            continue
        try:
            critical = json.loads(data)["critical"]
            signed = critical["image"]["docker-manifest-digest"]
        except (ValueError, KeyError, TypeError):
            reasons.append("a signed payload is not a simple-signing document")
            continue
        if signed != digest:
            reasons.append(f"a valid signature is for another digest ({signed})")
            continue
        valid += 1
        identity = identity or str((critical.get("identity") or {}).get("docker-reference", ""))
    if not valid:
        why = "; ".join(dict.fromkeys(reasons)) or "the signature manifest holds no signature"
        other_digest = bool(reasons) and all(r.startswith("a valid signature is for another digest") for r in reasons)
        hint = (
            "the signature was made for another image (its digest is named above): sign this one with "
            f"`ocibake sign REPO@{digest} --key cosign.key`"
            if other_digest
            else "check that the public key belongs to the key that signed this image"
        )
        raise SignatureError(f"no valid signature for {digest}: {why}", hint=hint)
    return Verified(digest, valid, identity)


def resolve_digest(remote: SignatureRepository, reference: Reference) -> str:
    """The manifest digest REF names (a tag is resolved through the registry)."""
    if reference.digest:
        return reference.digest
    got = remote.manifest(reference.tag or "latest")
    if got is None:
        raise InputError(f"{reference} is not in the registry", hint="check the repository and tag")
    return sha256_digest(got[0])
