"""`ocibake verify REF --key cosign.pub --attestation TYPE`: the image's signed in-toto attestation of that type (the
DSSE envelope in `sha256-<hex>.att`, as cosign stores it) verified with the key and checked to name REF's digest as
its subject; prints the predicate's key facts. Exit 7 when none verifies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from ocibake.cli.common import Output
    from ocibake.registry.options import RegistryOptions


def predicate_facts(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """What to show of a verified statement: the SLSA provenance's key facts, else its type and subjects."""
    from ocibake.audit.attestation import subject_digests
    from ocibake.builder.slsa import SLSA_PROVENANCE_V1, key_facts

    facts = [("subject", ", ".join(subject_digests(statement)))]
    if statement.get("predicateType") == SLSA_PROVENANCE_V1:
        return facts + key_facts(statement)
    return [*facts, ("predicate", str(statement.get("predicateType", "")))]


def verify_attestation_command(
    ref: str, key: EllipticCurvePublicKey, key_path: str, kind: str, options: RegistryOptions, out: Output
) -> int:
    from ocibake.audit.attestation import predicate_type, verify_attestation
    from ocibake.audit.cosign_sign import resolve_digest
    from ocibake.registry.artifacts import Remote

    wanted = predicate_type(kind)
    with Remote(ref, options) as remote:
        digest = resolve_digest(remote, remote.ref)
        verified = verify_attestation(remote, digest, key, wanted)
    facts = predicate_facts(verified.statement)
    if out.json:
        doc = {
            "reference": f"{remote.ref.name}@{digest}",
            "predicate_type": wanted,
            "valid_attestations": verified.valid,
            "facts": dict(facts),
            "statement": verified.statement,
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    print(f"{remote.ref.name}@{digest}")
    out.log(f"verified: {verified.valid} valid {wanted} attestation(s) with {key_path}")
    for label, value in facts:
        out.log(f"  {label:<13} {value}")
    return 0
