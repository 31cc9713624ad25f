"""The SBOM: an SPDX 2.3 JSON document of what an image holds, from the binary's Go build information (the Go
release, the main module, every dependency with version and checksum, the build settings) and the build record (the
CA bundle and zoneinfo sources). Deterministic: its date is the image's SOURCE_DATE_EPOCH, its namespace comes from
the image digest, and it is serialised canonically. It is stored next to the image as an OCI 1.1 referrer
(artifactType application/spdx+json, subject = the image)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

import ocibake
from ocibake.audit.goinfo import BuildInfo, Module
from ocibake.audit.referrers import Artifact, make_artifact
from ocibake.oci.image import Descriptor, canonical_json, rfc3339

SPDX_TYPE = "application/spdx+json"
NAMESPACE = "https://spdx.ocibake.dev/images"
TOOL = f"Tool: ocibake-{ocibake.__version__}"
IMAGE_ID = "SPDXRef-Image"
GO_ID = "SPDXRef-Go"
DATA_LAYERS = (  # (build record layer, where it is in the image, SPDX id)
    ("ca-certificates", "/etc/ssl/certs/ca-certificates.crt", "SPDXRef-CA-Bundle"),
    ("zoneinfo", "/usr/share/zoneinfo", "SPDXRef-Zoneinfo"),
)


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


def _purl(locator: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator}


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _module_package(mod: Module, spdx_id: str, purpose: str) -> dict[str, Any]:
    used = mod.replace or mod
    pkg: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": mod.path,
        "versionInfo": used.version or "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": purpose,
        "externalRefs": [_purl(_purl_golang(used.path, used.version))],
    }
    checksum = _h1_hex(used.sum)
    if checksum:
        pkg["checksums"] = [{"algorithm": "SHA256", "checksumValue": checksum}]
        pkg["comment"] = f"go.sum {used.sum}"
    elif purpose != "APPLICATION":  # SPDX has no NOASSERTION checksum: the comment says it instead of staying silent
        pkg["comment"] = "go.sum NOASSERTION: neither go's build information nor the source's go.sum has its checksum"
    if mod.replace is not None:
        pkg["sourceInfo"] = f"replaced by {mod.replace.path} {mod.replace.version}".strip()
    return pkg


def _data_package(kind: str, record: dict[str, Any], spdx_id: str, path: str) -> dict[str, Any]:
    source = record.get("source", "?")
    pkg: dict[str, Any] = {
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


def _image_package(name: str, image: Descriptor) -> dict[str, Any]:
    hexdigest = image.digest.split(":", 1)[1]
    return {
        "SPDXID": IMAGE_ID,
        "name": name,
        "versionInfo": image.digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": hexdigest}],
        "externalRefs": [_purl(f"pkg:oci/{name.rsplit('/', 1)[-1]}@sha256%3A{hexdigest}")],
    }


def _main_package(info: BuildInfo, main_id: str, created: str) -> dict[str, Any]:
    """The main module, with the go build settings as an annotation."""
    settings = "; ".join(f"{k}={v}" for k, v in info.settings)
    pkg = _module_package(info.main, main_id, "APPLICATION")
    pkg["summary"] = f"main package {info.path}, built by {info.go_version}"
    pkg["annotations"] = [
        {
            "annotationType": "OTHER",
            "annotator": TOOL,
            "annotationDate": created,
            "comment": f"go build settings: {settings}",
        }
    ]
    return pkg


def _go_package(info: BuildInfo) -> dict[str, Any]:
    return {
        "SPDXID": GO_ID,
        "name": "go",
        "versionInfo": info.go_version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "LIBRARY",
        "externalRefs": [_purl(f"pkg:golang/stdlib@{info.go_version.removeprefix('go')}")],
        "comment": "the Go release: standard library and runtime linked into the binary",
    }


_Graph = tuple[list[dict[str, Any]], list[dict[str, str]]]  # SPDX packages and the relationships that place them


def _go_packages(info: BuildInfo, created: str) -> _Graph:
    """The main module, the Go release and every dependency, in the image."""
    main_id = _spdx_id("Module", info.main.path or info.path)
    packages = [_main_package(info, main_id, created), _go_package(info)]
    relationships = [
        _relationship(IMAGE_ID, "CONTAINS", main_id),
        _relationship(main_id, "DEPENDS_ON", GO_ID),
    ]
    for dep in sorted(info.deps, key=lambda m: m.path):
        dep_id = _spdx_id("Module", dep.path, (dep.replace or dep).version)
        packages.append(_module_package(dep, dep_id, "LIBRARY"))
        relationships.append(_relationship(main_id, "DEPENDS_ON", dep_id))
    return packages, relationships


def _tool_packages(path: str, info: BuildInfo, app_id: str) -> _Graph:
    """A Go program the image carries beside the app (Delve in development): its own main module, Go release and
    dependencies, under ids of their own, contained in the image and related to the app as its tool, never in its
    place."""
    tool = path.rsplit("/", 1)[-1]
    main_id = _spdx_id("Tool", tool, info.main.path or info.path)
    go_id = _spdx_id("Tool", tool, "go")
    main = _module_package(info.main, main_id, "APPLICATION")
    main["summary"] = f"{path} in the image: main package {info.path}, built by {info.go_version}"
    packages = [main, {**_go_package(info), "SPDXID": go_id}]
    relationships = [
        _relationship(IMAGE_ID, "CONTAINS", main_id),
        _relationship(main_id, "DEV_TOOL_OF", app_id),
        _relationship(main_id, "DEPENDS_ON", go_id),
    ]
    for dep in sorted(info.deps, key=lambda m: m.path):
        dep_id = _spdx_id("Tool", tool, "Module", dep.path, (dep.replace or dep).version)
        packages.append(_module_package(dep, dep_id, "LIBRARY"))
        relationships.append(_relationship(main_id, "DEPENDS_ON", dep_id))
    return packages, relationships


def _data_packages(record: dict[str, Any] | None) -> _Graph:
    """The CA bundle and the zoneinfo data the build record names, in the image."""
    layers = (record or {}).get("layers") or {}
    packages: list[dict[str, Any]] = []
    relationships: list[dict[str, str]] = []
    for kind, path, spdx_id in DATA_LAYERS:
        if layers.get(kind):
            packages.append(_data_package(kind, layers[kind], spdx_id, path))
            relationships.append(_relationship(IMAGE_ID, "CONTAINS", spdx_id))
    return packages, relationships


def spdx_document(
    name: str,
    image: Descriptor,
    info: BuildInfo,
    record: dict[str, Any] | None,
    epoch: int,
    tools: Sequence[tuple[str, BuildInfo]] = (),
    extra: _Graph = ([], []),
) -> dict[str, Any]:
    """``tools``: other Go programs in the image (Delve); ``extra``: packages and relationships found elsewhere (the
    base image and its package database)."""
    created = rfc3339(epoch)
    go_packages, go_relationships = _go_packages(info, created)
    data_packages, data_relationships = _data_packages(record)
    app_id = _spdx_id("Module", info.main.path or info.path)
    for path, tool in tools:
        tool_packages, tool_relationships = _tool_packages(path, tool, app_id)
        data_packages += tool_packages
        data_relationships += tool_relationships
    seen = {p["SPDXID"] for p in [*go_packages, *data_packages]}
    for pkg in extra[0]:
        if pkg["SPDXID"] not in seen:  # one package per id (a database listing a name twice keeps the first)
            seen.add(pkg["SPDXID"])
            data_packages.append(pkg)
    data_relationships += extra[1]
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}@{image.digest}",
        "documentNamespace": f"{NAMESPACE}/{name}/sha256-{image.digest.split(':', 1)[1]}",
        "creationInfo": {"created": created, "creators": [TOOL]},
        "documentDescribes": [IMAGE_ID],
        "packages": [_image_package(name, image), *go_packages, *data_packages],
        "relationships": [
            _relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID),
            *go_relationships,
            *data_relationships,
        ],
    }


def sbom_artifact(
    name: str,
    image: Descriptor,
    info: BuildInfo,
    record: dict[str, Any] | None,
    epoch: int,
    tools: Sequence[tuple[str, BuildInfo]] = (),
    extra: _Graph = ([], []),
) -> Artifact:
    doc = canonical_json(spdx_document(name, image, info, record, epoch, tools, extra))
    created = {"org.opencontainers.image.created": rfc3339(epoch)}
    return make_artifact(SPDX_TYPE, image, SPDX_TYPE, doc, created, file_name=f"{name.replace('/', '-')}.spdx.json")
