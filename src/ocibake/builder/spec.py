"""BuildSpec: every choice a build depends on, frozen once the command line and ocibake.toml are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocibake.builder.project import GitInfo
from ocibake.oci.platform import Platform

TARGETS = ("production", "production-alpine", "development")
# What each target does unless told otherwise. production: UPX --best --lzma, as the original Dockerfile did;
# production-alpine the same; development never packs (Delve needs the plain binary).
TARGET_UPX = {"production": "best-lzma", "production-alpine": "best-lzma", "development": "off"}
COMPRESSIONS = ("gzip", "zstd")


@dataclass(frozen=True)
class BuildSpec:
    service_dir: Path
    name: str
    version: str = "dev"
    tags: tuple[str, ...] = ()
    target: str = "production"
    platform: Platform = Platform("linux", "amd64")
    compression: str = "gzip"
    main: str | None = None
    output: Path = Path("dist/oci")
    port: int = 8080
    version_package: str = "main"
    ca_bundle: str = "certifi"
    zoneinfo: str = "tzdata"
    verify_binary: bool = True
    verify_always: bool = False  # --verify always: run the checks even for bytes that passed before
    source_date_epoch: int | None = None  # None: git commit time, else 0
    source_url: str | None = None  # org.opencontainers.image.source; default: git origin without credentials
    extra_ldflags: tuple[str, ...] = field(default_factory=tuple)
    upx: str | None = None  # a mode of upx.UPX_MODES; None: the target's default
    base: str | None = None  # --base: oci:DIR[:TAG|@sha256:...] or a registry reference
    healthcheck: str | None = None  # --healthcheck CMD (a shell command); None: the target's default
    no_healthcheck: bool = False
    delve: str | None = None  # --delve PATH: a static dlv for the development target
    upx_skip_unsupported: bool = False  # (several platforms) an architecture UPX cannot pack stays unpacked
    asked_layers: frozenset[str] = frozenset()  # "ca-certificates", "zoneinfo": asked for even on a base that has them
    force_tags: bool = False  # let tags move to an image of another name or version (tag_moves.py)
    recorded_git: GitInfo | None = None  # (audit) to use instead of asking git: what the image's record says

    @property
    def effective_upx(self) -> str:
        return self.upx if self.upx is not None else TARGET_UPX.get(self.target, "off")

    @property
    def effective_tags(self) -> tuple[str, ...]:
        if self.tags:
            return self.tags
        return (self.version,) if self.version == "latest" else (self.version, "latest")
