"""`ocibake scan REF`: known vulnerabilities in an image's Go binary (and Delve in development images), found by
govulncheck in binary mode; a table on stderr, `--json` on stdout, `--sarif FILE`; exit 8 when a finding is at or
above `--fail-on`. `--with trivy|grype` merges their findings in; `--attach` stores the result as an attestation."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import Output, examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.inspect import options_factory
from ocibake.cli.registry_options import registry_options

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.audit.image_source import OpenedImage
    from ocibake.audit.scan import Finding, ScanResult
    from ocibake.registry.options import RegistryOptions

FINDINGS_EXIT = 8


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake scan registry.example.com/sos/emergency-service:v1.0.0",
        "ocibake scan oci:dist/oci/emergency-service:v1.0.0 --db ./vulndb --fail-on HIGH",
        "ocibake scan oci:dist/oci/emergency-service:v1.0.0 --sarif scan.sarif --json",
    ),
)
@click.argument("ref", metavar="REF")
@click.option(
    "--db", metavar="DIR|URL", help="vulnerability database: a directory (offline) or URL (default: vuln.go.dev)"
)
@click.option(
    "--fail-on",
    metavar="LEVEL",
    default="MEDIUM",
    show_default=True,
    help="exit 8 when a finding is at or above LOW, MEDIUM, HIGH or CRITICAL (NONE: never); default MEDIUM: a "
    "vulnerable package in the binary (all a stripped binary can tell)",
)
@click.option("--govulncheck", "govulncheck_path", metavar="PATH", help="the govulncheck to run (default: installed)")
@click.option("--upx-bin", metavar="PATH", help="the upx that unpacks a packed binary (default: upx on PATH)")
@click.option("--sarif", "sarif_path", metavar="FILE", help="also write the findings as SARIF 2.1.0 to FILE")
@click.option("--with", "with_", multiple=True, type=click.Choice(("trivy", "grype")), help="also run this scanner")
@click.option("--attach", is_flag=True, help="store the result as an attestation of the image (vuln predicate)")
@click.option("--sign-key", metavar="PATH", help="with --attach on a registry image: sign it (cosign.key)")
@click.option("--platform", metavar="OS/ARCH", help="the image of an index to scan")
@output_options()
@registry_options
def scan(
    ref: str,
    db: str | None,
    fail_on: str,
    govulncheck_path: str | None,
    upx_bin: str | None,
    sarif_path: str | None,
    with_: tuple[str, ...],
    attach: bool,
    sign_key: str | None,
    platform: str | None,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Find known vulnerabilities in an image's Go binary with govulncheck.

    REF is oci:DIR[:TAG|@sha256:...] or a registry reference. Go's database rates no severity: a finding is HIGH when
    the vulnerable symbol is in the binary, MEDIUM when only its package is, LOW when only its module is.
    """
    from ocibake.audit.image_source import open_image
    from ocibake.audit.scan import fail_level

    out = output(verbose, quiet, json_output)
    level = fail_level(fail_on)
    key = _attach_key(ref, attach, sign_key)
    options = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    with open_image(ref, options, platform) as image:
        result = run_scan(image, db, govulncheck_path, upx_bin, with_, out)
        if attach:
            _attach(image, result, key, options, out)
    if sarif_path:
        _write_sarif(Path(sarif_path), result)
        out.log(f"sarif     {sarif_path}")
    failing = result.failing(level)
    report(result, failing, level, out)
    return FINDINGS_EXIT if failing else 0


def _attach_key(ref: str, attach: bool, sign_key: str | None) -> EllipticCurvePrivateKey | None:
    from ocibake.errors import UsageError

    if sign_key and not attach:
        raise UsageError("--sign-key signs what --attach stores", hint="add --attach")
    if sign_key and ref.startswith("oci:"):
        raise UsageError(
            "--sign-key signs attestations in a registry", hint="scan the pushed image, or --attach without a key"
        )
    if not sign_key:
        return None
    from ocibake.cli.sign import load_signing_key

    return load_signing_key(sign_key)


def run_scan(
    image: OpenedImage,
    db: str | None,
    govulncheck_path: str | None,
    upx_bin: str | None,
    with_: tuple[str, ...],
    out: Output,
) -> ScanResult:
    from ocibake.audit import govulncheck, scan_external
    from ocibake.audit.scan import ScanResult, scan_go
    from ocibake.audit.vulndb import database_url

    tool = govulncheck.locate(govulncheck_path)
    started = time.time()
    with database_url(db) as url:
        paths, findings, version = scan_go(image, tool, url, upx_bin, out.log)
    scanners = {"govulncheck": version}
    for name in with_:
        out.log(f"scan      the image with {name}")
        more, scanners[name] = scan_external.scan_with(name, image.layout.root)
        findings.extend(more)
    pinned = f"{image.remote}@{image.digest}" if image.remote else f"oci:{image.layout.root}@{image.digest}"
    return ScanResult(
        image.reference,
        image.digest,
        tuple(paths),
        tuple(findings),
        scanners,
        db or "vuln.go.dev",
        pinned,
        (started, time.time()),
    )


def _write_sarif(path: Path, result: ScanResult) -> None:
    import ocibake
    from ocibake.audit.sarif import sarif_bytes
    from ocibake.errors import InputError

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(sarif_bytes(result, ocibake.__version__))
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"--sarif {path}: {exc.strerror}", hint="give a writable file path") from None


def _attach(
    image: OpenedImage,
    result: ScanResult,
    key: EllipticCurvePrivateKey | None,
    options: Callable[[], RegistryOptions],
    out: Output,
) -> None:
    from ocibake.cli.scan_attach import attach_result

    attach_result(image, result, key, options, out.log)


def finding_json(f: Finding) -> dict[str, object]:
    return {
        "id": f.id,
        "module": f.module,
        "found": f.found,
        "fixed": f.fixed,
        "reachable": f.reachable,
        "severity": f.severity,
        "summary": f.summary,
        "scanner": f.source,
        "aliases": list(f.aliases),
        "symbols": list(f.symbols),
    }


def report(result: ScanResult, failing: list[Finding], level: str, out: Output) -> None:
    if out.json:
        doc = {
            "reference": result.reference,
            "digest": result.digest,
            "binaries": list(result.binaries),
            "scanners": result.scanners,
            "db": result.db,
            "fail_on": level,
            "failing": len(failing),
            "findings": [finding_json(f) for f in result.findings],
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return
    print(result.pinned)
    if out.quiet:
        return
    _table(result.findings, sys.stderr.write)
    verdict = (
        f"{len(result.findings)} finding(s), {len(failing)} at or above {level}"
        if result.findings
        else "no known vulnerabilities"
    )
    out.log(f"{verdict} ({', '.join(result.binaries)}; db {result.db})")


def _table(findings: tuple[Finding, ...], write: Callable[[str], object]) -> None:
    if not findings:
        return
    rows = [("ID", "MODULE", "FOUND", "FIXED", "SEVERITY", "REACHABLE", "SUMMARY")]
    rows += [(f.id, f.module, f.found, f.fixed or "-", f.severity, f.reachable, f.summary[:70]) for f in findings]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(6)]
        write(f"  {'  '.join(cells)}  {row[6]}\n")
