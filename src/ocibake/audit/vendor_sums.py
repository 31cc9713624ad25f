"""Module checksums for a vendored build: with `-mod=vendor`, go's build information names each dependency's
version but carries no `h1:` checksum. The source still says which modules were vendored (`vendor/modules.txt`) and
what they hash to (`go.sum`), so the SBOM takes them from there; a module neither names stays without one, and the
SBOM says NOASSERTION for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ocibake.audit.goinfo import BuildInfo, Module


def vendored_modules(source: Path) -> set[tuple[str, str]]:
    """(path, version) of every module `vendor/modules.txt` lists (the replacement's, for a replaced one)."""
    try:
        text = (source / "vendor" / "modules.txt").read_text(errors="replace")
    except OSError:
        return set()
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if not line.startswith("# "):
            continue
        fields = line[2:].split()
        if "=>" in fields:
            fields = fields[fields.index("=>") + 1 :]
        if len(fields) >= 2:
            found.add((fields[0], fields[1]))
    return found


def go_sums(source: Path) -> dict[tuple[str, str], str]:
    """(path, version) -> its `h1:` checksum, from go.sum (the `/go.mod` lines left out)."""
    try:
        text = (source / "go.sum").read_text(errors="replace")
    except OSError:
        return {}
    sums: dict[tuple[str, str], str] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not fields[1].endswith("/go.mod") and fields[2].startswith("h1:"):
            sums[(fields[0], fields[1])] = fields[2]
    return sums


def with_vendored_sums(info: BuildInfo, source: Path | None) -> BuildInfo:
    """``info`` with each dependency that has no checksum given the one go.sum records for it, when it was
    vendored."""
    if source is None:
        return info
    vendored, sums = vendored_modules(source), go_sums(source)

    def filled(mod: Module) -> Module:
        if mod.sum or (mod.path, mod.version) not in vendored:
            return mod
        return dataclasses.replace(mod, sum=sums.get((mod.path, mod.version), ""))

    deps = tuple(
        dataclasses.replace(d, replace=filled(d.replace)) if d.replace is not None else filled(d) for d in info.deps
    )
    return dataclasses.replace(info, deps=deps)
