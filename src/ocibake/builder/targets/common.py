"""What the target recipes share: the Recipe base class, the layers under the binary (passwd, zoneinfo, CA bundle;
on a base image: its own passwd/group with the app user appended, and no CA/zoneinfo layer where the base has them),
and a runtime config that inherits the base's (Env, WorkingDir, Labels) with ocibake's settings winning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ocibake.builder import layer_cache
from ocibake.builder.base_files import BaseFiles
from ocibake.builder.base_image import BaseImage
from ocibake.builder.spec import BuildSpec
from ocibake.layers.cacerts import ca_layer
from ocibake.layers.content import LayerContent
from ocibake.layers.passwd import passwd_layer
from ocibake.layers.passwd_base import passwd_layer_on_base
from ocibake.layers.zoneinfo import zoneinfo_layer
from ocibake.oci.image import ImageConfig
from ocibake.toolchain.base import Toolchain

Log = Callable[[str], None]


class Recipe:
    name = ""
    strip = True  # -s -w in ldflags
    gcflags: tuple[str, ...] = ()  # extra go build flags
    base = "none"  # "none" | "optional" | "required"

    def check(self, spec: BuildSpec) -> None:
        """Refuse settings this target cannot honour, before anything is built."""

    def default_base(self, spec: BuildSpec, toolchain_ref: str | None) -> str | None:
        return spec.base

    def layers(self, spec: BuildSpec, files: BaseFiles | None) -> tuple[list[LayerContent], dict[str, Any]]:
        """The layers under the binary, and what the build record says about the ones left out."""
        return support_layers(spec, files)

    def top_layers(self, spec: BuildSpec, work: Path, toolchain: Toolchain, log: Log) -> list[LayerContent]:
        """Layers above the binary (after it is built)."""
        return []

    def runtime(
        self, spec: BuildSpec, config: ImageConfig, base: BaseImage | None, files: BaseFiles | None
    ) -> tuple[ImageConfig, dict[str, Any]]:
        """The runtime config, and facts for the build record."""
        return inherit(config, base), {}


def support_layers(spec: BuildSpec, files: BaseFiles | None) -> tuple[list[LayerContent], dict[str, Any]]:
    if files is None:
        optional = (zoneinfo_layer(spec.zoneinfo, layer_cache.PINNED), ca_layer(spec.ca_bundle))
        return [passwd_layer(), *(layer for layer in optional if layer is not None)], {}
    contents = [passwd_layer_on_base(files.text("etc/passwd"), files.text("etc/group"))]
    skipped: dict[str, str] = {}
    if files.zoneinfo and "zoneinfo" not in spec.asked_layers:
        skipped["zoneinfo"] = "the base has /usr/share/zoneinfo"
    elif (layer := zoneinfo_layer(spec.zoneinfo, layer_cache.PINNED)) is not None:
        contents.append(layer)
    if files.ca_bundle and "ca-certificates" not in spec.asked_layers:
        skipped["ca-certificates"] = f"the base has {files.ca_bundle}"
    elif (layer := ca_layer(spec.ca_bundle)) is not None:
        contents.append(layer)
    return contents, ({"skipped_layers": skipped} if skipped else {})


def merge_env(base_env: list[str], ours: tuple[str, ...]) -> tuple[str, ...]:
    """The base's Env, then ocibake's; ocibake's value wins for a name both set, except PATH: ocibake's PATH is only a
    default, so the base's PATH (say, a toolchain's /usr/local/go/bin) is kept."""
    out: dict[str, str] = {}
    for item in base_env:
        key = item.split("=", 1)[0]
        out[key] = item
    for item in ours:
        key = item.split("=", 1)[0]
        if key == "PATH" and key in out:
            continue
        out[key] = item
    return tuple(out.values())


def inherit(config: ImageConfig, base: BaseImage | None) -> ImageConfig:
    if base is None:
        return config
    rt = base.runtime
    env = [e for e in rt.get("Env") or [] if isinstance(e, str)]
    labels = {**{str(k): str(v) for k, v in (rt.get("Labels") or {}).items()}, **config.labels}
    return replace(
        config,
        env=merge_env(env, config.env),
        labels=labels,
        working_dir=str(rt.get("WorkingDir") or config.working_dir),
    )
