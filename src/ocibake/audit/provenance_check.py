"""The provenance an image carries (its SLSA v1 statement, a referrer in the layout or the registry), read and
held against the image's build record: where the two agree and where they do not. `ocibake audit` reports it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ocibake.audit.attestation import LAYOUT_PREDICATE_ANNOTATION, layout_statement, subject_digests
from ocibake.audit.dsse import INTOTO_PAYLOAD_TYPE
from ocibake.builder.slsa import SLSA_PROVENANCE_V1
from ocibake.errors import OcibakeError

if TYPE_CHECKING:
    from ocibake.audit.image_source import OpenedImage
    from ocibake.registry.options import RegistryOptions


@dataclass(frozen=True)
class Fact:
    name: str
    statement: str
    record: str

    @property
    def agrees(self) -> bool:
        return self.statement == self.record


def _remote_statement(image: OpenedImage, options: Callable[[], RegistryOptions] | None) -> bytes | None:
    from ocibake.registry.artifacts import Remote

    assert image.remote is not None
    with Remote(image.remote, options() if options is not None else None) as remote:
        found, _how = remote.referrers(image.digest)
        for entry in found:
            annotations = entry.get("annotations") or {}
            if entry.get("artifactType") != INTOTO_PAYLOAD_TYPE:
                continue
            if annotations.get(LAYOUT_PREDICATE_ANNOTATION) != SLSA_PROVENANCE_V1:
                continue
            manifest = remote.manifest(str(entry["digest"]))
            if manifest is None:
                continue
            layers = json.loads(manifest[0]).get("layers") or []
            return remote.blob(str(layers[0]["digest"])) if layers else None
    return None


def read_provenance(image: OpenedImage, options: Callable[[], RegistryOptions] | None = None) -> dict[str, Any] | None:
    """The image's SLSA provenance statement, or None when it has none (or it cannot be read)."""
    try:
        if image.remote is None:
            data = layout_statement(image.layout.root, image.digest, SLSA_PROVENANCE_V1)
        else:
            data = _remote_statement(image, options)
        doc = json.loads(data) if data is not None else None
    except (OcibakeError, OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return doc if isinstance(doc, dict) else None


def _dep(statement: dict[str, Any], name: str) -> dict[str, Any]:
    deps = ((statement.get("predicate") or {}).get("buildDefinition") or {}).get("resolvedDependencies") or []
    return next((d for d in deps if isinstance(d, dict) and d.get("name") == name), {})


def _sha(value: object) -> str:
    return str(value or "").split(":", 1)[-1]


def compare(statement: dict[str, Any], record: dict[str, Any], digest: str) -> list[Fact]:
    """Each fact the statement and the build record both state, with both values."""
    definition = (statement.get("predicate") or {}).get("buildDefinition") or {}
    ext = definition.get("externalParameters") or {}
    internal = definition.get("internalParameters") or {}
    layers = record.get("layers") or {}
    builder = ((statement.get("predicate") or {}).get("runDetails") or {}).get("builder") or {}
    pairs = [
        ("subject", ",".join(subject_digests(statement)), digest),
        ("revision", (ext.get("source") or {}).get("revision"), record.get("commit")),
        ("module", ext.get("module"), record.get("module")),
        ("package", ext.get("package"), record.get("package")),
        ("target", ext.get("target"), record.get("target")),
        ("platform", ext.get("platform"), record.get("platform")),
        ("upx", (internal.get("upx") or {}).get("mode"), (record.get("upx") or {}).get("mode")),
        ("compression", internal.get("compression"), record.get("compression")),
        ("source_date_epoch", internal.get("source_date_epoch"), record.get("source_date_epoch")),
        (
            "go",
            (_dep(statement, "go-toolchain").get("annotations") or {}).get("go"),
            (record.get("go") or {}).get("version"),
        ),
        ("ldflags", (internal.get("go") or {}).get("ldflags"), (record.get("go") or {}).get("ldflags")),
        (
            "ca-bundle",
            (_dep(statement, "ca-bundle").get("digest") or {}).get("sha256"),
            _sha((layers.get("ca-certificates") or {}).get("sha256")),
        ),
        (
            "zoneinfo",
            (_dep(statement, "zoneinfo").get("digest") or {}).get("sha256"),
            _sha((layers.get("zoneinfo") or {}).get("sha256")),
        ),
        ("ocibake", (builder.get("version") or {}).get("ocibake"), record.get("ocibake")),
    ]
    return [Fact(name, str(a if a is not None else ""), str(b if b is not None else "")) for name, a, b in pairs]


def provenance_lines(facts: list[Fact] | None) -> list[str]:
    """What `audit` says about the provenance, for people."""
    if facts is None:
        return ["provenance: none (built with --provenance none, or by an older ocibake)"]
    differing = [f for f in facts if not f.agrees]
    if not differing:
        return [f"provenance: SLSA v1 statement agrees with the build record on all {len(facts)} facts it states"]
    lines = [f"provenance: SLSA v1 statement differs from the build record on {len(differing)} of {len(facts)} facts"]
    lines += [f"  {f.name}: statement {f.statement or '(none)'}, record {f.record or '(none)'}" for f in differing]
    return lines
