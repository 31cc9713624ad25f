"""The SBOM: an SPDX 2.3 JSON document of what an image holds, from the binary's Go build information (the Go
release, the main module, every dependency with version and checksum, the build settings) and the build record (the
CA bundle and zoneinfo sources). Deterministic: its date is the image's SOURCE_DATE_EPOCH, its namespace comes from
the image digest, and it is serialised canonically. It is stored next to the image as an OCI 1.1 referrer
(artifactType application/spdx+json, subject = the image)."""

from __future__ import annotations

import base64
import re

import ocibake
from ocibake.audit.goinfo import BuildInfo, Module
from ocibake.audit.referrers import Artifact, make_artifact
from ocibake.oci.image import Descriptor, canonical_json, rfc3339

SPDX_TYPE = "application/spdx+json"
NAMESPACE = "https://spdx.ocibake.dev/images"
TOOL = f"Tool: ocibake-{ocibake.__version__}"


def _spdx_id(*parts: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(p for p in parts if p)).strip("-")


def _purl_golang(path: str, version: str) -> str:
    return f"pkg:golang/{path}" + (f"@{version}" if version and version != "(devel)" else "")


def _h1_hex(sum_: str) -> str | None:
    """Go's h1: checksum (base64 SHA-256 of the module's file hashes) as hex, for an SPDX SHA256 checksum."""
    if not sum_.startswith("h1:"):
        return None
    try:
        raw = base64.b64decode(sum_[3:], validate=True)
    except ValueError:
        return None
    return raw.hex() if len(raw) == 32 else None


def _module_package(mod: Module, spdx_id: str, purpose: str) -> dict:
    used = mod.replace or mod
    pkg = {
        "SPDXID": spdx_id,
        "name": mod.path,
        "versionInfo": used.version or "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": purpose,
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": _purl_golang(used.path, used.version),
            }
        ],
    }
    checksum = _h1_hex(used.sum)
    if checksum:
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": checksum}]
        pkg["comment"] = f"go.sum {used.sum}"
    if mod.replace is not None:
        pkg["sourceInfo"] = f"replaced by {mod.replace.path} {mod.replace.version}".strip()
    return pkg


def _data_package(kind: str, record: dict, spdx_id: str, path: str) -> dict:
    source = record.get("source", "?")
    pkg = {
        "SPDXID": spdx_id,
        "name": f"{kind} ({source})",
        "versionInfo": str(record.get("version") or "NOASSERTION"),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "FILE",
        "comment": f"{path} in the image, from {source}" + (f" {record['package']}" if record.get("package") else ""),
    }
    if str(record.get("sha256", "")).startswith("sha256:"):
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": record["sha256"][7:]}]
    return pkg


def spdx_document(name: str, image: Descriptor, info: BuildInfo, record: dict | None, epoch: int) -> dict:
    created = rfc3339(epoch)
    hexdigest = image.digest.split(":", 1)[1]
    image_id, main_id, go_id = "SPDXRef-Image", _spdx_id("Module", info.main.path or info.path), "SPDXRef-Go"
    settings = "; ".join(f"{k}={v}" for k, v in info.settings)
    image_pkg = {
        "SPDXID": image_id,
        "name": name,
        "versionInfo": image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:oci/{name.rsplit('/', 1)[-1]}@sha256%3A{hexdigest}",
            }
        ],
    }
    main_pkg = _module_package(info.main, main_id, "APPLICATION")
    main_pkg["summary"] = f"main package {info.path}, built by {info.go_version}"
    main_pkg["annotations"] = [
        {
            "annotationType": "OTHER",
            "annotator": TOOL,
            "annotationDate": created,
            "comment": f"go build settings: {settings}",
        }
    ]
    go_pkg = {
        "SPDXID": go_id,
        "name": "go",
        "versionInfo": info.go_version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "LIBRARY",
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:golang/stdlib@{info.go_version.removeprefix('go')}",
            }
        ],
        "comment": "the Go release: standard library and runtime linked into the binary",
    }
    packages = [image_pkg, main_pkg, go_pkg]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id},
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": main_id},
        {"spdxElementId": main_id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": go_id},
    ]
    for dep in sorted(info.deps, key=lambda m: m.path):
        dep_id = _spdx_id("Module", dep.path, (dep.replace or dep).version)
        packages.append(_module_package(dep, dep_id, "LIBRARY"))
        relationships.append({"spdxElementId": main_id, "relationshipType": "DEPENDS_ON", "relatedSpdxElement": dep_id})
    layers = (record or {}).get("layers") or {}
    for kind, path, spdx_id in (
        ("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "SPDXRef-CA-Bundle"),
        ("zoneinfo", "/usr/share/zoneinfo", "SPDXRef-Zoneinfo"),
    ):
        if layers.get(kind):
            packages.append(_data_package(kind, layers[kind], spdx_id, path))
            relationships.append(
                {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": spdx_id}
            )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}@{image.digest}",
        "documentNamespace": f"{NAMESPACE}/{name}/sha256-{hexdigest}",
        "creationInfo": {"created": created, "creators": [TOOL]},
        "documentDescribes": [image_id],
        "packages": packages,
        "relationships": relationships,
    }


def sbom_artifact(name: str, image: Descriptor, info: BuildInfo, record: dict | None, epoch: int) -> Artifact:
    doc = canonical_json(spdx_document(name, image, info, record, epoch))
    return make_artifact(SPDX_TYPE, image, SPDX_TYPE, doc, {"org.opencontainers.image.created": rfc3339(epoch)})
