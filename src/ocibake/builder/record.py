"""What an image says about how it was built: the provenance of the binary, the build record (the config label an
auditor rebuilds from), the OCI annotations and labels, and the runtime config. No host paths, users or clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ocibake
from ocibake.builder import gobuild, upx
from ocibake.builder.project import GitInfo, GoModule, without_credentials
from ocibake.builder.spec import BuildSpec
from ocibake.layers.content import LayerContent
from ocibake.layers.passwd import APP_GID, APP_UID
from ocibake.layers.tar import compression_setting
from ocibake.oci.image import ImageConfig, canonical_json, rfc3339

BUILD_RECORD_LABEL = "dev.ocibake.build-record"


def source_date_epoch(spec: BuildSpec, git: GitInfo) -> int:
    return spec.source_date_epoch if spec.source_date_epoch is not None else git.commit_time


@dataclass(frozen=True)
class Provenance:
    """Everything about where the binary came from that the image records."""

    module: GoModule
    package: str
    git: GitInfo
    epoch: int
    go_version: str
    ldflags: str
    toolchain: dict[str, str | bool]  # what the toolchain says about itself (Toolchain.describe)
    goflags: str = ""  # given to go explicitly (from ocibake's environment), so a GOENV file cannot differ
    goexperiment: str = ""  # as `go env GOEXPERIMENT` says (the environment or a GOENV file)
    gofips140: str = ""  # likewise (Go 1.24+; "" before)
    upx: dict[str, str | list[str]] = field(default_factory=lambda: {"mode": "off"})


def upx_setting(mode: str, version: str) -> dict[str, str | list[str]]:
    """The UPX part of the build record: the setting and the upx that applied it, never sizes or times."""
    args = upx.full_args(mode)
    return {"mode": "off"} if args is None else {"mode": mode, "args": list(args), "version": version}


def _source_url(spec: BuildSpec, git: GitInfo) -> str:
    return without_credentials(spec.source_url) if spec.source_url is not None else git.remote


def oci_annotations(spec: BuildSpec, prov: Provenance) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.version": spec.version,
        "org.opencontainers.image.created": rfc3339(prov.epoch),
        "org.opencontainers.image.revision": prov.git.commit or "unknown",
        "org.opencontainers.image.source": _source_url(spec, prov.git) or prov.module.path,
    }


def runtime_config(spec: BuildSpec, prov: Provenance, record: Mapping[str, Any]) -> ImageConfig:
    labels = dict(oci_annotations(spec, prov))
    labels[BUILD_RECORD_LABEL] = canonical_json(record).decode()
    return ImageConfig(user=f"{APP_UID}:{APP_GID}", exposed_ports=(f"{spec.port}/tcp",), labels=labels)


def build_record(spec: BuildSpec, prov: Provenance, contents: list[LayerContent]) -> dict[str, Any]:
    """What an auditor needs to rebuild this image bit for bit. No host paths, users or clocks."""
    return {
        "ocibake": ocibake.__version__,
        "target": spec.target,
        "module": prov.module.path,
        "package": prov.package,
        "commit": prov.git.commit or "unknown",
        "dirty": prov.git.dirty,
        "source_date_epoch": prov.epoch,
        "go": {
            "version": prov.go_version,
            "env": gobuild.go_env(spec.platform),
            "flags": ["-trimpath", "-buildvcs=false"],
            "ldflags": prov.ldflags,
            "goflags": prov.goflags,
            "goexperiment": prov.goexperiment,
            "gofips140": prov.gofips140,
        },
        "toolchain": prov.toolchain,
        "upx": prov.upx,
        "platform": str(spec.platform),
        "compression": compression_setting(spec.compression),
        # each layer's files carry this mtime: SOURCE_DATE_EPOCH for the binary, a fixed DATA_EPOCH for data
        "layers": {c.kind: {**c.record, "mtime": rfc3339(c.mtime_for(prov.epoch))} for c in contents},
    }
