"""development: a debug build under Delve, as the original Dockerfile's development stage.

`-gcflags=all=-N -l` (no optimisation, no inlining), DWARF kept (no -s -w), never UPX; dlv at /usr/local/bin/dlv runs
the app headless on :2345 and continues it at once, so the service answers on its port while a debugger may attach.
The image sits on --base, else on the toolchain image when one is given (the Go toolchain in the image, as the
original had), else on scratch with ocibake's own passwd, zoneinfo and CA layers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ocibake.builder.base_files import BaseFiles
from ocibake.builder.base_image import BaseImage
from ocibake.builder.delve import check_delve_file, delve_binary
from ocibake.builder.spec import BuildSpec
from ocibake.builder.targets.common import Log, Recipe, inherit
from ocibake.errors import InputError
from ocibake.layers.content import LayerContent
from ocibake.layers.tar import Entry
from ocibake.oci.image import ImageConfig
from ocibake.toolchain.base import Toolchain

DLV_PATH = "/usr/local/bin/dlv"
DELVE_PORT = 2345
ENTRYPOINT = (
    DLV_PATH,
    "exec",
    "/app",
    "--headless",
    f"--listen=:{DELVE_PORT}",
    "--api-version=2",
    "--accept-multiclient",
    "--continue",
)


class Development(Recipe):
    name = "development"
    strip = False
    gcflags = ("-gcflags=all=-N -l",)
    base = "optional"

    def check(self, spec: BuildSpec) -> None:
        if spec.upx not in (None, "off"):
            raise InputError(
                f"--upx {spec.upx}: the development target is never packed (Delve reads the plain binary)",
                hint="drop --upx, or build --target production",
            )
        if spec.port == DELVE_PORT:
            raise InputError(
                f"--port {DELVE_PORT} is Delve's port in the development image", hint="give the service another port"
            )
        if spec.delve:
            check_delve_file(spec.delve)

    def default_base(self, spec: BuildSpec, toolchain_ref: str | None) -> str | None:
        if spec.base:
            return spec.base
        if toolchain_ref and toolchain_ref.strip() != "local":
            return toolchain_ref
        return None

    def top_layers(self, spec: BuildSpec, work: Path, toolchain: Toolchain, log: Log) -> list[LayerContent]:
        path, record = delve_binary(spec.delve, spec.platform, toolchain, log)
        entry = Entry.from_path(DLV_PATH, path, mode=0o555)
        return [
            LayerContent(
                kind="delve",
                entries=(entry,),
                created_by=f"ocibake: Delve ({record['source']}) at {DLV_PATH}",
                record=record,
            )
        ]

    def runtime(
        self, spec: BuildSpec, config: ImageConfig, base: BaseImage | None, files: BaseFiles | None
    ) -> tuple[ImageConfig, dict[str, Any]]:
        config = replace(
            inherit(config, base), entrypoint=ENTRYPOINT, exposed_ports=(f"{spec.port}/tcp", f"{DELVE_PORT}/tcp")
        )
        return config, {"debug": {"gcflags": "all=-N -l", "stripped": False, "delve_port": DELVE_PORT}}


DEVELOPMENT = Development()
