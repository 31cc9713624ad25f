"""What an image's base contributes to its SBOM: the base image itself (name and digest, as an SPDX package with a
`pkg:oci/...` purl, the image its DESCENDANT_OF) and the packages its own package database lists, where ocibake can
read one without running anything: Alpine's `/lib/apk/db/installed`, Debian's `/var/lib/dpkg/status`. What was not
inventoried is said in the base package's comment."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

APK_DB = "/lib/apk/db/installed"
DPKG_DB = "/var/lib/dpkg/status"
BASE_ID = "SPDXRef-Base-Image"

Graph = tuple[list[dict[str, Any]], list[dict[str, str]]]
ReadFile = Callable[[str], bytes | None]  # the content of a file in the image, or None


def _relationship(element: str, kind: str, related: str) -> dict[str, str]:
    return {"spdxElementId": element, "relationshipType": kind, "relatedSpdxElement": related}


def _spdx_id(*parts: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(p for p in parts if p)).strip("-")


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """Blank-line separated records of `Key: value` (dpkg) or `K:value` (apk) lines; continuation lines skipped."""
    record: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            if record:
                yield record
            record = {}
        elif not line.startswith((" ", "\t")) and ":" in line:
            key, _, value = line.partition(":")
            record.setdefault(key, value.strip())


def apk_packages(text: str) -> list[dict[str, str]]:
    return [
        {"name": r["P"], "version": r.get("V", ""), "arch": r.get("A", ""), "license": r.get("L", ""), "kind": "apk"}
        for r in _stanzas(text)
        if r.get("P")
    ]


def dpkg_packages(text: str) -> list[dict[str, str]]:
    return [
        {
            "name": r["Package"],
            "version": r.get("Version", ""),
            "arch": r.get("Architecture", ""),
            "license": "",
            "kind": "deb",
        }
        for r in _stanzas(text)
        if r.get("Package") and r.get("Status", "install ok installed").endswith(" installed")
    ]


def _package(pkg: dict[str, str], distro: str) -> dict[str, Any]:
    arch = f"?arch={quote(pkg['arch'])}" if pkg["arch"] else ""
    purl = f"pkg:{pkg['kind']}/{distro}/{quote(pkg['name'])}@{quote(pkg['version'])}{arch}"
    out: dict[str, Any] = {
        "SPDXID": _spdx_id("Base", pkg["kind"], pkg["name"]),
        "name": pkg["name"],
        "versionInfo": pkg["version"] or "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "LIBRARY",
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}],
    }
    if pkg["license"]:
        out["comment"] = f"license as the package database states it: {pkg['license']}"
    return out


def _oci_purl(name: str, digest: str) -> str:
    """`pkg:oci/NAME@DIGEST[?repository_url=REGISTRY/REPO]` for a registry reference or an `oci:DIR[:TAG]` layout."""
    local = name.startswith("oci:")
    ref = name[4:] if local else name
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    last = last.split(":", 1)[0] if not local or ":" in last else last
    repo = last or "base"
    qualifier = "" if local else f"?repository_url={quote(f'{head}/{repo}' if head else repo, safe='/')}"
    return f"pkg:oci/{quote(repo)}@{quote(digest)}{qualifier}"


def base_graph(record: dict[str, Any] | None, read: ReadFile, image_id: str) -> Graph:
    """The base image and its packages, or nothing when the image has no base."""
    base = (record or {}).get("base")
    if not isinstance(base, dict) or not base.get("digest"):
        return [], []
    name, digest = str(base.get("name", "")), str(base["digest"])
    purl = _oci_purl(name, digest)
    packages: list[dict[str, str]] = []
    sources = []
    for path, parse, distro in ((APK_DB, apk_packages, "alpine"), (DPKG_DB, dpkg_packages, "debian")):
        data = read(path)
        if data is not None:
            found = parse(data.decode(errors="replace"))
            packages += [dict(p, distro=distro) for p in found]
            sources.append(f"{len(found)} packages from {path}")
    inventoried = (
        f"{'; '.join(sources)}; files of the base outside its package database are not inventoried"
        if sources
        else f"not inventoried: the base carries no package database ocibake reads ({APK_DB}, {DPKG_DB})"
    )
    base_pkg = {
        "SPDXID": BASE_ID,
        "name": name,
        "versionInfo": digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": digest.split(":", 1)[-1]}],
        "externalRefs": [
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl,
            }
        ],
        "comment": f"the base image the image was built on; its packages: {inventoried}",
    }
    out = [base_pkg]
    relationships = [_relationship(image_id, "DESCENDANT_OF", BASE_ID)]
    for pkg in sorted(packages, key=lambda p: (p["kind"], p["name"])):
        spdx = _package(pkg, pkg["distro"])
        out.append(spdx)
        relationships.append(_relationship(BASE_ID, "CONTAINS", spdx["SPDXID"]))
    return out, relationships
