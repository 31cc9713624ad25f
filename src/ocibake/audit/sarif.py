"""SARIF 2.1.0 (the Static Analysis Results Interchange Format code-scanning dashboards read) of a scan: one run, one
rule per vulnerability, one result per finding, located at the binary (or the image) it was found in."""

from __future__ import annotations

import json
from typing import Any

from ocibake.audit.scan import Finding, ScanResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"CRITICAL": "error", "HIGH": "error", "MEDIUM": "warning", "LOW": "note"}


def _help_uri(finding: Finding) -> str:
    if finding.id.startswith("GO-"):
        return f"https://pkg.go.dev/vuln/{finding.id}"
    if finding.id.startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{finding.id}"
    return ""


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.id,
        "shortDescription": {"text": finding.summary or finding.id},
        "properties": {"security-severity-level": finding.severity, "aliases": list(finding.aliases)},
    }
    if _help_uri(finding):
        rule["helpUri"] = _help_uri(finding)
    return rule


def _result(finding: Finding, rules: list[str], reference: str) -> dict[str, Any]:
    where = finding.source.split(" ", 1)[1] if " " in finding.source else reference
    fixed = f", fixed in {finding.fixed}" if finding.fixed else ", no fixed version"
    reach = {
        "yes": "; the vulnerable symbol is in the binary",
        "no": "; the vulnerable symbol is not in the binary",
        "?": "; the binary is stripped: its package is in it, whether the symbol is cannot be told",
    }
    text = f"{finding.id}: {finding.module}@{finding.found}{fixed}{reach.get(finding.reachable, '')}"
    return {
        "ruleId": finding.id,
        "ruleIndex": rules.index(finding.id),
        "level": LEVEL[finding.severity],
        "message": {"text": text},
        "locations": [{"physicalLocation": {"artifactLocation": {"uri": where.lstrip("/") or "image"}}}],
        "properties": {
            "module": finding.module,
            "found": finding.found,
            "fixed": finding.fixed,
            "reachable": finding.reachable,
            "severity": finding.severity,
            "scanner": finding.source,
            "symbols": list(finding.symbols),
        },
    }


def sarif_document(result: ScanResult, ocibake_version: str) -> dict[str, Any]:
    rules = list(dict.fromkeys(f.id for f in result.findings))
    first = {f.id: f for f in reversed(result.findings)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ocibake scan",
                        "version": ocibake_version,
                        "informationUri": "https://pkg.go.dev/golang.org/x/vuln/cmd/govulncheck",
                        "rules": [_rule(first[r]) for r in rules],
                        "properties": {"scanners": dict(result.scanners), "db": result.db},
                    }
                },
                "results": [_result(f, rules, result.reference) for f in result.findings],
                "properties": {"image": result.reference, "digest": result.digest},
            }
        ],
    }


def sarif_bytes(result: ScanResult, ocibake_version: str) -> bytes:
    return (json.dumps(sarif_document(result, ocibake_version), indent=2, sort_keys=True) + "\n").encode()
