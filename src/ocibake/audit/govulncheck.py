"""Go's vulnerability scanner, govulncheck (golang.org/x/vuln), as an external program: a pinned version installed
into ocibake's cache with `go install` on first use (or --govulncheck PATH), run in binary mode on a copy of a Go
binary, its JSON stream read into findings (one per vulnerability and module, at the finest level found: the
vulnerable symbol, its package, or only its module)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocibake.errors import InputError, ToolchainError
from ocibake.toolchain.cache import cache_home, private_cache, private_mkdir

GOVULNCHECK_MODULE = "golang.org/x/vuln/cmd/govulncheck"
GOVULNCHECK_VERSION = "v1.1.4"
LEVELS = ("module", "package", "symbol")  # how close the binary comes to the vulnerable code


@dataclass(frozen=True)
class GoFinding:
    osv: str
    module: str
    found: str  # the version in the binary
    fixed: str  # "" when no fixed version is known
    level: str  # one of LEVELS
    symbols: tuple[str, ...]  # the vulnerable symbols the binary holds (level "symbol")
    summary: str
    aliases: tuple[str, ...]


def installed_path() -> Path:
    return cache_home() / "tools" / f"govulncheck@{GOVULNCHECK_VERSION}" / "govulncheck"


def locate(given: str | None, go: str = "go") -> Path:
    """--govulncheck PATH, else the pinned one in the cache, installed there with `go install` when missing (the
    only step of a scan that needs the network: the Go module proxy)."""
    if given:
        path = Path(given)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise InputError(f"--govulncheck {given}: not an executable file", hint="give the path of govulncheck")
        return path
    target = installed_path()
    if target.is_file():
        return target
    go_path = shutil.which(go)
    if go_path is None:
        raise ToolchainError(
            f"govulncheck is not installed and there is no {go} to install it with",
            hint=f"install Go, or pass --govulncheck PATH (go install {GOVULNCHECK_MODULE}@{GOVULNCHECK_VERSION})",
        )
    private_cache(cache_home())
    private_mkdir(target.parent)
    staging = target.parent / f".install-{os.getpid()}"  # concurrent installs each rename a whole file into place
    try:
        _go_install(go_path, staging)
        os.replace(staging / "govulncheck", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _go_install(go_path: str, gobin: Path) -> None:
    env = {**os.environ, "GOBIN": str(gobin), "GOFLAGS": "", "CGO_ENABLED": "0"}
    proc = subprocess.run(
        [go_path, "install", f"{GOVULNCHECK_MODULE}@{GOVULNCHECK_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0 or not (gobin / "govulncheck").is_file():
        raise ToolchainError(
            f"go install {GOVULNCHECK_MODULE}@{GOVULNCHECK_VERSION} failed: {proc.stderr.strip()[-400:]}",
            hint="it needs the Go module proxy once; offline, pass --govulncheck PATH of a govulncheck built elsewhere",
        )


def run_binary_scan(govulncheck: Path, binary: Path, db_url: str) -> list[dict[str, Any]]:
    """govulncheck -mode=binary -json on ``binary`` against ``db_url``: its messages, in order."""
    proc = subprocess.run(
        [str(govulncheck), "-mode=binary", "-db", db_url, "-json", str(binary)],
        capture_output=True,
        timeout=900,
        check=False,
        env={**os.environ, "GOFLAGS": ""},
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ToolchainError(
            f"govulncheck failed on {binary.name}: {err[-1] if err else 'exit ' + str(proc.returncode)}",
            hint="check --db (a vulnerability database directory or URL)",
        )
    return parse_stream(proc.stdout.decode(errors="replace"))


def parse_stream(text: str) -> list[dict[str, Any]]:
    """govulncheck's -json output: a stream of JSON objects, one after another."""
    decoder = json.JSONDecoder()
    messages: list[dict[str, Any]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return messages
        try:
            message, pos = decoder.raw_decode(text, pos)
        except ValueError:
            raise ToolchainError("govulncheck wrote output that is not JSON", hint="check --govulncheck") from None
        if isinstance(message, dict):
            messages.append(message)


def _symbol(frame: dict[str, Any]) -> str:
    name = str(frame.get("function", ""))
    receiver = str(frame.get("receiver", "")).lstrip("*")
    package = str(frame.get("package", ""))
    return f"{package}.{receiver + '.' if receiver else ''}{name}"


def findings(messages: list[dict[str, Any]]) -> list[GoFinding]:
    """One finding per (vulnerability, module), at the finest level govulncheck reported."""
    osvs = {m["osv"]["id"]: m["osv"] for m in messages if isinstance(m.get("osv"), dict) and "id" in m["osv"]}
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for message in messages:
        finding = message.get("finding")
        if not isinstance(finding, dict) or not finding.get("trace"):
            continue
        frame = finding["trace"][0]
        key = (str(finding.get("osv", "")), str(frame.get("module", "")))
        entry = grouped.setdefault(key, {"found": frame.get("version", ""), "fixed": "", "level": 0, "symbols": set()})
        entry["fixed"] = entry["fixed"] or str(finding.get("fixed_version", ""))
        level = 2 if frame.get("function") else 1 if frame.get("package") else 0
        entry["level"] = max(entry["level"], level)
        if level == 2:
            entry["symbols"].add(_symbol(frame))
    out = []
    for (osv, module), entry in sorted(grouped.items()):
        doc = osvs.get(osv, {})
        out.append(
            GoFinding(
                osv=osv,
                module=module,
                found=str(entry["found"]),
                fixed=str(entry["fixed"]),
                level=LEVELS[entry["level"]],
                symbols=tuple(sorted(entry["symbols"])),
                summary=str(doc.get("summary", "") or doc.get("details", "")).strip(),
                aliases=tuple(str(a) for a in doc.get("aliases") or []),
            )
        )
    return out


def scanner_version(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        config = message.get("config")
        if isinstance(config, dict):
            return str(config.get("scanner_version", ""))
    return ""
