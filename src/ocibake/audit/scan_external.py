"""Optional scanners that read OCI layouts, run when asked (`ocibake scan --with trivy|grype`) and found on PATH:
their findings (mostly the OS packages of a production-alpine base, which govulncheck does not see) in ocibake's
form, merged into the same table."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ocibake.audit.scan import SEVERITIES, Finding
from ocibake.errors import ToolchainError

SCANNERS = ("trivy", "grype")


def _severity(text: object) -> str:
    level = str(text or "").upper()
    return level if level in SEVERITIES else "LOW"  # UNKNOWN, NEGLIGIBLE


def _run(argv: list[str]) -> Any:
    proc = subprocess.run(argv, capture_output=True, timeout=1800, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ToolchainError(
            f"{argv[0]} failed: {lines[-1] if lines else 'exit ' + str(proc.returncode)}",
            hint=f"run `{' '.join(argv)}` to see why",
        )
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise ToolchainError(f"{argv[0]} wrote output that is not JSON", hint="check its version") from None


def trivy_findings(doc: Any) -> list[Finding]:
    return [
        Finding(
            id=str(vuln.get("VulnerabilityID", "")),
            module=str(vuln.get("PkgName", "")),
            found=str(vuln.get("InstalledVersion", "")),
            fixed=str(vuln.get("FixedVersion", "")),
            reachable="-",
            severity=_severity(vuln.get("Severity")),
            summary=str(vuln.get("Title", "") or vuln.get("Description", "")).strip(),
            source="trivy",
        )
        for result in (doc or {}).get("Results") or []
        for vuln in result.get("Vulnerabilities") or []
    ]


def grype_findings(doc: Any) -> list[Finding]:
    found = []
    for match in (doc or {}).get("matches") or []:
        vuln, artifact = match.get("vulnerability") or {}, match.get("artifact") or {}
        fixed = (vuln.get("fix") or {}).get("versions") or []
        found.append(
            Finding(
                id=str(vuln.get("id", "")),
                module=str(artifact.get("name", "")),
                found=str(artifact.get("version", "")),
                fixed=", ".join(str(v) for v in fixed),
                reachable="-",
                severity=_severity(vuln.get("severity")),
                summary=str(vuln.get("description", "")).strip().splitlines()[0] if vuln.get("description") else "",
                source="grype",
            )
        )
    return found


def scan_with(name: str, layout: Path) -> tuple[list[Finding], str]:
    """(findings, version) of ``name`` run on the image in ``layout`` (a layout of that one image)."""
    program = shutil.which(name)
    if program is None:
        raise ToolchainError(
            f"--with {name}: {name} is not on PATH",
            hint=f"install {name} (optional: it adds the OS packages of base images), or drop --with",
        )
    version = subprocess.run([program, "--version"], capture_output=True, text=True, check=False).stdout
    short = version.strip().splitlines()[0] if version.strip() else ""
    if name == "trivy":
        doc = _run([program, "image", "--quiet", "--format", "json", "--input", str(layout)])
        return trivy_findings(doc), short
    doc = _run([program, f"oci-dir:{layout}", "-o", "json", "-q"])
    return grype_findings(doc), short
