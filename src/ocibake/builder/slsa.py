"""The SLSA v1 provenance of an image: an in-toto statement whose subject is the image digest and whose predicate
says how ocibake made it (build type, the parameters the user chose, what ocibake chose, every input by version or
digest, the builder). It is a function of the build record and the build's parameters, with no clock in it unless
asked (`--provenance-times`), so two builds of the same source give the same bytes."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ocibake
from ocibake.builder.project import _git
from ocibake.builder.spec import BuildSpec
from ocibake.layers.content import DATA_EPOCH
from ocibake.oci.image import canonical_json, rfc3339

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://ocibake.dev/buildtypes/go-image/v1"
BUILDER_ID = "https://ocibake.dev/builder/cli/v1"
PROVENANCE_CHOICES = ("slsa", "none")


@dataclass(frozen=True)
class BuildFacts:
    """What the provenance says beyond the build record: how the user named the image and where its inputs live."""

    spec: BuildSpec
    digest: str  # the image manifest's digest, the statement's subject
    tags: tuple[str, ...]
    source_url: str  # the repository (org.opencontainers.image.source)
    service_path: str  # the service directory, relative to its repository ("." at its root)
    go_path: str = ""  # the local go, when the toolchain is local
    toolchain_ref: str | None = None  # --toolchain as given, when an image
    times: tuple[float, float] | None = None  # (started, finished) with --provenance-times
    layer_digests: Mapping[str, str] = field(default_factory=dict)  # kind -> the layer's digest (Delve's has no sha256)


def _external(facts: BuildFacts, record: Mapping[str, Any]) -> dict[str, Any]:
    spec = facts.spec
    params: dict[str, Any] = {
        "source": {"repository": facts.source_url, "revision": record.get("commit", "unknown")},
        "service": facts.service_path,
        "module": record.get("module", ""),
        "package": record.get("package", ""),
        "target": spec.target,
        "platform": str(spec.platform),
        "version": spec.version,
        "tags": list(facts.tags),
        "name": spec.name,
        "port": spec.port,
        "compression": spec.compression,
        "upx": spec.effective_upx,
        "ca_bundle": spec.ca_bundle,
        "zoneinfo": spec.zoneinfo,
        "version_package": spec.version_package,
    }
    optional = {"base": spec.base, "healthcheck": spec.healthcheck, "toolchain": facts.toolchain_ref}
    params.update({k: v for k, v in optional.items() if v})
    if spec.no_healthcheck:
        params["no_healthcheck"] = True
    if record.get("dirty"):
        params["source"]["dirty"] = True
    return params


def _internal(record: Mapping[str, Any]) -> dict[str, Any]:
    go = record.get("go") or {}
    return {
        "upx": record.get("upx") or {"mode": "off"},
        "compression": record.get("compression", ""),
        "source_date_epoch": record.get("source_date_epoch", 0),
        "data_layer_time": rfc3339(DATA_EPOCH),
        "go": {k: go.get(k) for k in ("env", "flags", "ldflags", "goflags", "goexperiment", "gofips140")},
    }


def _toolchain_dependency(record: Mapping[str, Any], facts: BuildFacts) -> dict[str, Any]:
    chain = record.get("toolchain") or {}
    go_version = str((record.get("go") or {}).get("version", ""))
    if chain.get("kind") == "image":
        digest = str(chain.get("digest", ""))
        uri = f"oci://{facts.toolchain_ref or 'toolchain'}"
        return {
            "name": "go-toolchain",
            "uri": uri,
            "digest": {"sha256": digest.split(":", 1)[-1]},
            "annotations": {"go": go_version},
        }
    return {
        "name": "go-toolchain",
        "uri": f"file://{facts.go_path}" if facts.go_path else "go",
        "annotations": {"go": go_version},
    }


def _layer_dependency(name: str, layer: Mapping[str, Any], layer_digest: str = "") -> dict[str, Any]:
    dep: dict[str, Any] = {"name": name}
    source = str(layer.get("source", ""))
    version = str(layer.get("version", "") or layer.get("package", ""))
    if source:
        dep["uri"] = f"pkg:pypi/{source}@{version}" if source in ("certifi", "tzdata") else source
    sha = str(layer.get("sha256", ""))
    annotations = {k: str(layer[k]) for k in ("version", "package") if layer.get(k)}
    if sha:
        dep["digest"] = {"sha256": sha.split(":", 1)[-1]}
    elif layer_digest:  # the image layer that holds it
        dep["digest"] = {"sha256": layer_digest.split(":", 1)[-1]}
        annotations["digest_of"] = "image layer"
    if annotations:
        dep["annotations"] = annotations
    return dep


def _dependencies(record: Mapping[str, Any], facts: BuildFacts) -> list[dict[str, Any]]:
    commit = str(record.get("commit", "unknown"))
    source: dict[str, Any] = {"name": "source", "uri": f"git+{facts.source_url}@{commit}"}
    if commit != "unknown":
        source["digest"] = {"gitCommit": commit}
    deps = [source, _toolchain_dependency(record, facts)]
    upx = record.get("upx") or {}
    if upx.get("version"):
        deps.append({"name": "upx", "annotations": {"version": str(upx["version"])}})
    base = record.get("base")
    if isinstance(base, Mapping):
        digest = str(base.get("manifest") or base.get("digest", ""))
        deps.append(
            {
                "name": "base-image",
                "uri": f"oci://{base.get('name', '')}",
                "digest": {"sha256": digest.split(":", 1)[-1]},
            }
        )
    layers = record.get("layers") or {}
    for kind, name in (("delve", "delve"), ("ca-certificates", "ca-bundle"), ("zoneinfo", "zoneinfo")):
        if isinstance(layers.get(kind), Mapping):
            deps.append(_layer_dependency(name, layers[kind], facts.layer_digests.get(kind, "")))
    return deps


def provenance_statement(record: Mapping[str, Any], facts: BuildFacts) -> dict[str, Any]:
    """The in-toto statement (SLSA provenance v1) of the image ``facts.digest`` built as ``record`` says."""
    run: dict[str, Any] = {"builder": {"id": BUILDER_ID, "version": {"ocibake": ocibake.__version__}}}
    run["metadata"] = {"invocationId": f"{facts.spec.name}@{facts.digest}"}
    if facts.times is not None:
        run["metadata"]["startedOn"] = rfc3339(int(facts.times[0]))
        run["metadata"]["finishedOn"] = rfc3339(int(facts.times[1]))
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": facts.spec.name, "digest": {"sha256": facts.digest.split(":", 1)[-1]}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": _external(facts, record),
                "internalParameters": _internal(record),
                "resolvedDependencies": _dependencies(record, facts),
            },
            "runDetails": run,
        },
    }


def statement_bytes(record: Mapping[str, Any], facts: BuildFacts) -> bytes:
    """The statement serialised once, canonically (sorted keys, no spaces): these bytes are stored and signed."""
    return canonical_json(provenance_statement(record, facts))


def service_path(spec: BuildSpec) -> str:
    """The service directory relative to the root of its git repository (its name outside git): the same on every
    checkout, unlike the host path."""
    prefix = _git(spec.service_dir, "rev-parse", "--show-prefix")
    if prefix is None:
        return spec.service_dir.resolve().name
    return prefix.strip().rstrip("/") or "."


def run_times(seconds: float, now: float | None = None) -> tuple[float, float]:
    """(started, finished) of a build that took ``seconds`` and just ended."""
    end = time.time() if now is None else now
    return end - seconds, end


def _obj(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def key_facts(statement: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The facts of a provenance statement a person checks first, as (label, value) pairs. Any producer's statement
    is read (cosign's, by hand): a field of another shape is shown as it is, or left empty."""
    predicate = _obj(statement.get("predicate"))
    definition = _obj(predicate.get("buildDefinition"))
    ext = _obj(definition.get("externalParameters"))
    source = ext.get("source")
    where = (
        f"{_obj(source).get('repository', '')} @ {_obj(source).get('revision', '')}"
        if isinstance(source, Mapping)
        else str(source or "")
    )
    deps_value = definition.get("resolvedDependencies")
    deps: Sequence[Mapping[str, Any]] = [_obj(d) for d in deps_value] if isinstance(deps_value, list) else []
    go = next((d for d in deps if d.get("name") == "go-toolchain"), {})
    builder = _obj(_obj(predicate.get("runDetails")).get("builder"))
    return [
        ("build type", str(definition.get("buildType", ""))),
        ("builder", f"{builder.get('id', '')} {_obj(builder.get('version')).get('ocibake', '')}".strip()),
        ("source", where),
        ("service", f"{ext.get('service', '')} ({ext.get('package', '')})"),
        ("target", f"{ext.get('target', '')} {ext.get('platform', '')} version {ext.get('version', '')}"),
        ("go", f"{_obj(go.get('annotations')).get('go', '')} {go.get('uri', '')}".strip()),
        ("dependencies", ", ".join(str(d.get("name", "")) for d in deps)),
    ]
