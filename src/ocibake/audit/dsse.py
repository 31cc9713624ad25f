"""DSSE envelopes (the Dead Simple Signing Envelope in-toto attestations travel in): the pre-authentication encoding,
signing with a cosign ECDSA P-256 key (SHA-256, DER, base64, as cosign signs) and verifying."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocibake.audit import ecdsa

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 pre-authentication encoding: what is signed, so the payload type cannot be swapped."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign_envelope(key: ec.EllipticCurvePrivateKey, payload: bytes, payload_type: str = INTOTO_PAYLOAD_TYPE) -> bytes:
    """The envelope JSON of ``payload`` signed with ``key``."""
    signature = ecdsa.sign(key, pae(payload_type, payload))
    doc = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class EnvelopeError(ValueError):
    """An envelope that is damaged or signed by another key; the message says which."""


@dataclass(frozen=True)
class OpenedEnvelope:
    payload_type: str
    payload: bytes
    statement: dict[str, Any]


def _parse(data: bytes) -> tuple[str, bytes, list[Any]]:
    try:
        doc = json.loads(data)
        payload_type = str(doc["payloadType"])
        payload = base64.b64decode(doc["payload"], validate=True)
        signatures = list(doc.get("signatures") or [])
    except (ValueError, KeyError, TypeError):
        raise EnvelopeError("the attestation is not a DSSE envelope") from None
    return payload_type, payload, signatures


def open_envelope(data: bytes, key: ec.EllipticCurvePublicKey) -> OpenedEnvelope:
    """The envelope's statement, when one of its signatures verifies with ``key``; EnvelopeError otherwise."""
    payload_type, payload, signatures = _parse(data)
    message = pae(payload_type, payload)
    for entry in signatures:
        try:
            if ecdsa.verifies(key, base64.b64decode(str(entry.get("sig", "")), validate=True), message):
                break
        except (ValueError, AttributeError):
            continue
    else:
        raise EnvelopeError("the attestation's signature does not verify with this key")
    if payload_type != INTOTO_PAYLOAD_TYPE:
        raise EnvelopeError(f"the attestation carries {payload_type}, not an in-toto statement")
    try:
        statement = json.loads(payload)
    except ValueError:
        raise EnvelopeError("the signed payload is not JSON") from None
    if not isinstance(statement, dict):
        raise EnvelopeError("the signed payload is not an in-toto statement")
    return OpenedEnvelope(payload_type, payload, statement)
