"""`ocibake scan --attach`: the scan's result as an in-toto statement of cosign's vulnerability predicate
(https://cosign.sigstore.dev/attestation/vuln/v1), stored with the image: a referrer in an `oci:` layout; in a
registry, a referrer, or with `--sign-key` a DSSE-signed attestation in the `.att` tag (`cosign verify-attestation
--type vuln` and `ocibake verify --attestation vuln` read it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.audit.image_source import OpenedImage
    from ocibake.audit.scan import ScanResult
    from ocibake.registry.options import RegistryOptions

VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"


def vuln_statement(name: str, result: ScanResult) -> bytes:
    """The statement, with the scan's start and end times (a scan's result depends on when the database was read;
    cosign requires both)."""
    from ocibake.audit.govulncheck import GOVULNCHECK_VERSION
    from ocibake.cli.scan import finding_json
    from ocibake.oci.image import canonical_json, rfc3339

    predicate: dict[str, Any] = {
        "invocation": {"parameters": {"binaries": list(result.binaries)}, "uri": "", "event_id": "", "builder.id": ""},
        "scanner": {
            "uri": f"pkg:golang/golang.org/x/vuln@{GOVULNCHECK_VERSION}",
            "version": result.scanners.get("govulncheck", GOVULNCHECK_VERSION),
            "db": {"uri": result.db, "version": ""},
            "result": {"findings": [finding_json(f) for f in result.findings], "scanners": result.scanners},
        },
        "metadata": {"scanStartedOn": rfc3339(int(result.times[0])), "scanFinishedOn": rfc3339(int(result.times[1]))},
    }
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": result.digest.split(":", 1)[1]}}],
        "predicateType": VULN_PREDICATE,
        "predicate": predicate,
    }
    return canonical_json(statement)


def attach_result(
    image: OpenedImage,
    result: ScanResult,
    key: EllipticCurvePrivateKey | None,
    options: Callable[[], RegistryOptions],
    log: Callable[[str], None],
) -> None:
    from ocibake.audit.attestation import attest_layout, attest_remote, statement_artifact

    name = image.remote or image.reference
    statement = vuln_statement(name, result)
    if image.remote is None:
        artifact = attest_layout(image.layout.root, image.descriptor, statement)
        log(f"attached  scan result {artifact.manifest.digest[:19]} (referrer of {result.digest[:19]})")
        return
    from ocibake.registry.artifacts import Remote

    with Remote(image.remote, options()) as remote:
        if key is not None:
            tag, _ = attest_remote(remote, result.digest, statement, key)
            log(f"attested  scan result, DSSE-signed, tag {tag}")
            return
        artifact = statement_artifact(statement, image.descriptor)
        remote.put_referrer(
            artifact.manifest, artifact.blobs, result.digest, artifact.artifact_type, artifact.annotations
        )
        log(f"attached  scan result {artifact.manifest.digest[:19]} (referrer of {result.digest[:19]})")
