"""In-toto attestations of an image: as an OCI referrer in the layout (the plain statement, artifactType
application/vnd.in-toto+json), and, signed as a DSSE envelope, where cosign 2.x looks for them: the manifest tagged
`sha256-<hex>.att` in the image's repository, one layer per attestation (media type
application/vnd.dsse.envelope.v1+json, annotation `predicateType`). `cosign verify-attestation --key` accepts them;
`verify_attestation` accepts cosign's."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.audit.cosign_sign import SIGNATURE_ANNOTATION, SignatureError, SignatureRepository, signature_config
from ocibake.audit.dsse import DSSE_MEDIA_TYPE, INTOTO_PAYLOAD_TYPE, EnvelopeError, open_envelope, sign_envelope
from ocibake.audit.referrers import Artifact, add_to_layout, layout_referrers, make_artifact
from ocibake.errors import InputError, OcibakeError
from ocibake.oci.image import Blob, Descriptor, canonical_json, sha256_digest
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import OCI_MANIFEST

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

PREDICATE_ANNOTATION = "predicateType"
LAYOUT_PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
# cosign's --type names, and the predicate types they stand for
PREDICATE_TYPES = {
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "spdxjson": "https://spdx.dev/Document",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
}


def predicate_type(name: str) -> str:
    """A cosign --type name or a predicate type URI -> the URI."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if "://" in name:
        return name
    raise InputError(
        f"unknown attestation type {name!r}",
        hint=f"one of {', '.join(PREDICATE_TYPES)}, or a predicate type URI",
    )


def attestation_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


def statement_artifact(statement: bytes, subject: Descriptor) -> Artifact:
    """The plain (unsigned) statement as an OCI referrer of ``subject``."""
    kind = str(json.loads(statement).get("predicateType", ""))
    return make_artifact(
        INTOTO_PAYLOAD_TYPE, subject, INTOTO_PAYLOAD_TYPE, statement, {LAYOUT_PREDICATE_ANNOTATION: kind}
    )


def layout_statement(root: Path, digest: str, kind: str) -> bytes | None:
    """The statement of predicate type ``kind`` that the layout holds for ``digest``, or None."""
    layout = Layout.open(root)
    for entry in layout_referrers(layout, digest):
        if entry["artifactType"] != INTOTO_PAYLOAD_TYPE:
            continue
        if (entry.get("annotations") or {}).get(LAYOUT_PREDICATE_ANNOTATION) != kind:
            continue
        try:
            doc = json.loads(layout.read_blob(entry["digest"]))
            return layout.read_blob(doc["layers"][0]["digest"])
        except (InputError, OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    return None


def attest_layout(root: Path, subject: Descriptor, statement: bytes) -> Artifact:
    """Store ``statement`` in the layout as a referrer of ``subject``; an identical one already there is kept as it
    is (a no-op rebuild writes nothing)."""
    artifact = statement_artifact(statement, subject)
    layout = Layout.open(root)
    if any(e["digest"] == artifact.manifest.digest for e in layout_referrers(layout, subject.digest)):
        return artifact
    add_to_layout(root, artifact)
    return artifact


def attest_remote(
    remote: SignatureRepository, digest: str, statement: bytes, key: ec.EllipticCurvePrivateKey
) -> tuple[str, bool]:
    """Sign ``statement`` as a DSSE envelope and add it to the image's `.att` manifest, replacing an earlier
    attestation of the same predicate type (others stay); -> (the tag, whether one was added: False when this key
    attested these exact bytes already, so a repeated push sends nothing)."""
    kind = str(json.loads(statement).get("predicateType", ""))
    tag = attestation_tag(digest)
    kept = _attestation_layers(remote, tag)
    same_kind = [e for e in kept if (e.get("annotations") or {}).get(PREDICATE_ANNOTATION) == kind]
    if any(_attests(remote, e, statement, key.public_key()) for e in same_kind):
        return tag, False
    envelope = sign_envelope(key, statement)
    layer = {
        "mediaType": DSSE_MEDIA_TYPE,
        "digest": sha256_digest(envelope),
        "size": len(envelope),
        "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: kind},
    }
    layers = [e for e in kept if e not in same_kind]
    layers.append(layer)
    config = signature_config(layers)
    remote.put_blobs([(config.digest, config.data), (sha256_digest(envelope), envelope)])
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor().as_json(),
        "layers": layers,
    }
    remote.put_manifest(tag, Blob(OCI_MANIFEST, canonical_json(manifest)))
    return tag, True


def _attests(
    remote: SignatureRepository, entry: Mapping[str, Any], statement: bytes, key: ec.EllipticCurvePublicKey
) -> bool:
    """The kept envelope ``entry`` signs exactly ``statement`` with ``key``."""
    try:
        opened = open_envelope(remote.blob(str(entry["digest"])), key)
    except (EnvelopeError, OcibakeError, KeyError):
        return False
    return opened.payload == statement


def _attestation_layers(remote: SignatureRepository, tag: str) -> list[dict[str, Any]]:
    got = remote.manifest(tag)
    if got is None:
        return []
    try:
        layers = json.loads(got[0]).get("layers") or []
    except ValueError:
        return []
    return [entry for entry in layers if isinstance(entry, dict) and entry.get("mediaType") == DSSE_MEDIA_TYPE]


@dataclass(frozen=True)
class VerifiedStatement:
    digest: str
    predicate_type: str
    statement: dict[str, Any]
    valid: int  # attestations of that type that verified and name the digest


def subject_digests(statement: Mapping[str, Any]) -> list[str]:
    found = []
    subjects = statement.get("subject")
    for subject in subjects if isinstance(subjects, list) else []:
        digest = subject.get("digest") if isinstance(subject, Mapping) else None
        sha = digest.get("sha256") if isinstance(digest, Mapping) else None
        if isinstance(sha, str) and sha:
            found.append(f"sha256:{sha}")
    return found


def _check_layer(
    remote: SignatureRepository, entry: Mapping[str, Any], digest: str, kind: str, key: ec.EllipticCurvePublicKey
) -> dict[str, Any]:
    try:
        opened = open_envelope(remote.blob(str(entry["digest"])), key)
    except EnvelopeError as exc:
        raise SignatureError(str(exc)) from None
    statement = opened.statement
    if statement.get("predicateType") != kind:
        raise SignatureError(f"a signed statement has predicate type {statement.get('predicateType')!r}")
    subjects = subject_digests(statement)
    if digest not in subjects:
        raise SignatureError(f"a valid attestation is for another digest ({', '.join(subjects) or 'no subject'})")
    return statement


def verify_attestation(
    remote: SignatureRepository, digest: str, key: ec.EllipticCurvePublicKey, kind: str
) -> VerifiedStatement:
    """At least one attestation of predicate type ``kind`` in `sha256-<hex>.att` verifies with ``key`` and names
    ``digest`` as its subject; SignatureError (exit 7) if not."""
    tag = attestation_tag(digest)
    layers = _attestation_layers(remote, tag)
    if not layers:
        raise SignatureError(
            f"no attestation for {digest} (no tag {tag})",
            hint="build it with --push and --sign-key, or `cosign attest --key cosign.key --type ...`",
        )
    reasons: list[str] = []
    found: list[dict[str, Any]] = []
    for entry in layers:
        try:
            found.append(_check_layer(remote, entry, digest, kind, key))
        except SignatureError as exc:
            reasons.append(exc.message)
    if not found:
        why = "; ".join(dict.fromkeys(reasons))
        other = bool(reasons) and all(r.startswith("a valid attestation is for another digest") for r in reasons)
        hint = (
            "the attestation was made for another image (its digest is named above): attest this one"
            if other
            else "check the attestation type and that the public key belongs to the key that signed it"
        )
        raise SignatureError(f"no valid {kind} attestation for {digest}: {why}", hint=hint)
    return VerifiedStatement(digest, kind, found[0], len(found))
