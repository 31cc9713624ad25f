"""`ocibake scan`: known vulnerabilities in an image's Go binaries (the entrypoint, and Delve in development images),
found by govulncheck in binary mode on a copy of each (unpacked with `upx -d` first when UPX-packed), with optional
findings of trivy or grype on the image's layout merged in. Go's database rates no severity, so a Go finding is rated
by how close the binary comes to the vulnerable code: the vulnerable symbol is in it (HIGH), only its package
(MEDIUM), only its module (LOW). In a stripped binary (no symbol table) the symbols cannot be seen: a finding there
is at most MEDIUM, and whether it is reachable is "?"."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocibake.audit import govulncheck
from ocibake.audit.goinfo import read_build_info
from ocibake.audit.image_source import OpenedImage
from ocibake.audit.layer_files import read_file
from ocibake.errors import InputError, ToolchainError

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
FAIL_ON = (*SEVERITIES, "NONE")
GO_SEVERITY = {"symbol": "HIGH", "package": "MEDIUM", "module": "LOW"}
DELVE_PATH = "/usr/local/bin/dlv"


@dataclass(frozen=True)
class Finding:
    id: str
    module: str  # Go module, or OS package for trivy/grype
    found: str
    fixed: str
    reachable: str  # "yes": the vulnerable symbol is in the binary; "no": it is not; "-": not known
    severity: str  # one of SEVERITIES
    summary: str
    source: str  # "govulncheck /app", "trivy", "grype"
    aliases: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScanResult:
    reference: str
    digest: str
    binaries: tuple[str, ...]  # the paths in the image that were scanned
    findings: tuple[Finding, ...]
    scanners: dict[str, str] = field(default_factory=dict)  # name -> version
    db: str = ""
    pinned: str = ""  # REPO@DIGEST, or oci:DIR@DIGEST
    times: tuple[float, float] = (0.0, 0.0)  # the scan's start and end (seconds since the epoch)

    def failing(self, fail_on: str) -> list[Finding]:
        """The findings at or above ``fail_on`` (none for NONE)."""
        if fail_on == "NONE":
            return []
        floor = SEVERITIES.index(fail_on)
        return [f for f in self.findings if SEVERITIES.index(f.severity) >= floor]


def fail_level(text: str) -> str:
    level = text.strip().upper()
    if level not in FAIL_ON:
        raise InputError(
            f"--fail-on {text}: not a severity", hint=f"one of {', '.join(FAIL_ON)} (NONE: list findings, never fail)"
        )
    return level


def image_binary(image: OpenedImage, path: str) -> bytes | None:
    for desc in reversed(image.layers()):
        data = read_file(image.blob_path(desc.digest), path)
        if data is not None:
            return data
    return None


def go_binaries(image: OpenedImage) -> dict[str, bytes]:
    """/app (ocibake's binary), the entrypoint when it is another file, and Delve when the image has it (a
    development image's entrypoint is Delve, which runs /app); refused when neither /app nor the entrypoint is there."""
    entry = ((image.config.get("config") or {}).get("Entrypoint") or ["/app"])[0]
    found = {}
    for path in dict.fromkeys(("/app", entry, DELVE_PATH)):
        data = image_binary(image, path)
        if data is not None:
            found[path] = data
    if "/app" not in found and entry not in found:
        what = "/app (its entrypoint)" if entry == "/app" else f"/app and no {entry} (its entrypoint)"
        raise InputError(f"{image.reference} holds no {what}", hint="is this a Go service's image?")
    return found


def _unpacked_copy(data: bytes, directory: Path, name: str, upx: str | None) -> Path:
    path = directory / name
    path.write_bytes(data)
    path.chmod(0o755)
    if b"UPX!" in data[:4096]:
        program = upx or shutil.which("upx")
        if program is None:
            raise ToolchainError(
                "the binary is UPX-packed and there is no upx to unpack it (govulncheck cannot read a packed binary)",
                hint="install upx (Debian: upx-ucl)",
            )
        proc = subprocess.run([program, "-d", "-q", str(path)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ToolchainError(f"upx -d failed: {proc.stderr.strip()[-300:]}", hint="is upx 4.x installed?")
    return path


def has_symbol_table(data: bytes) -> bool:
    """Whether an ELF binary keeps its symbol table (.symtab). ocibake strips production binaries (-s -w); in a
    stripped binary govulncheck cannot see which functions are there and reports every symbol of a vulnerable
    package's entry, so a "symbol" finding there only means the package is in the binary."""
    return b".symtab\x00" in data


def _go_findings(messages: list[dict[str, Any]], where: str, symbols_known: bool) -> list[Finding]:
    def level(found: str) -> str:
        return "package" if found == "symbol" and not symbols_known else found

    return [
        Finding(
            id=g.osv,
            module=g.module,
            found=g.found,
            fixed=g.fixed,
            reachable=("yes" if g.level == "symbol" else "no") if symbols_known else "?",
            severity=GO_SEVERITY[level(g.level)],
            summary=g.summary,
            source=f"govulncheck {where}",
            aliases=g.aliases,
            symbols=g.symbols,
        )
        for g in govulncheck.findings(messages)
    ]


def scan_go(
    image: OpenedImage, tool: Path, db_url: str, upx: str | None = None, log: Callable[[str], None] = lambda s: None
) -> tuple[list[str], list[Finding], str]:
    """(paths scanned, findings, govulncheck version) for the image's Go binaries."""
    binaries = go_binaries(image)
    found: list[Finding] = []
    version = ""
    with tempfile.TemporaryDirectory(prefix="ocibake-scan-") as tmp:
        for i, (where, data) in enumerate(binaries.items()):
            path = _unpacked_copy(data, Path(tmp), f"bin{i}", upx)
            try:
                read_build_info(path.read_bytes())
            except InputError:
                raise InputError(
                    f"{where} in {image.reference} is not a Go binary (no Go build information)",
                    hint="ocibake scan reads Go binaries; use --with trivy|grype for other images",
                ) from None
            log(f"scan      {where} with govulncheck (binary mode)")
            messages = govulncheck.run_binary_scan(tool, path, db_url)
            if not govulncheck.scanner_version(messages):
                raise ToolchainError(
                    f"govulncheck wrote no result for {where} (no config message in its -json output)",
                    hint="check --govulncheck: it must be golang.org/x/vuln's govulncheck",
                )
            version = govulncheck.scanner_version(messages) or version
            found.extend(_go_findings(messages, where, has_symbol_table(path.read_bytes())))
    return list(binaries), found, version
