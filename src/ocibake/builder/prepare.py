"""Before the compiler runs: a spec checked, its service analysed (go.mod, main package, git), its base resolved,
and the provenance the image will record worked out, so that a build fails on bad input before anything is built
or written."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibake.builder import gobuild, upx
from ocibake.builder.base_layers import Base, resolve_base
from ocibake.builder.project import GitInfo, GoModule, find_main_package, git_info, read_go_mod
from ocibake.builder.record import Provenance, source_date_epoch, upx_setting
from ocibake.builder.spec import BuildSpec
from ocibake.builder.targets import Recipe, recipe_for
from ocibake.errors import InputError, ToolchainError
from ocibake.layers.cacerts import resolve_ca_source
from ocibake.layers.zoneinfo import resolve_zoneinfo_source
from ocibake.oci.image import rfc3339
from ocibake.oci.layout import Layout, check_output_path
from ocibake.oci.tag_moves import refuse_unsafe_moves
from ocibake.toolchain.base import Toolchain

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

Log = Callable[[str], None]


@dataclass(frozen=True)
class Prepared:
    """A spec checked, analysed and with its base resolved: everything a build needs before the compiler runs."""

    spec: BuildSpec
    recipe: Recipe
    module: GoModule
    package: str
    git: GitInfo
    prov: Provenance
    version_package: str
    upx_mode: str
    upx_note: str
    base: Base | None
    upx_version: str = ""


def analyse(spec: BuildSpec) -> tuple[GoModule, str, GitInfo]:
    module = read_go_mod(spec.service_dir)
    package = find_main_package(spec.service_dir, spec.name, spec.main)
    git = spec.recorded_git if spec.recorded_git is not None else git_info(spec.service_dir)
    return module, package, git


def prepare(
    spec: BuildSpec,
    toolchain: Toolchain,
    log: Log = lambda s: None,
    *,
    registry_options: Callable[[], RegistryOptions] | None = None,
    toolchain_ref: str | None = None,
) -> Prepared:
    """Every check that needs no compiler, before anything is written or built."""
    recipe = recipe_for(spec.target)
    _check_spec(spec, recipe)
    upx_mode, upx_note = _upx_mode(spec)
    resolve_ca_source(spec.ca_bundle)
    resolve_zoneinfo_source(spec.zoneinfo)
    module, package, git = analyse(spec)
    gobuild.check_version_package(spec.version_package, module.path, spec.service_dir)
    gobuild.check_variant_settings(spec.platform, os.environ)
    base = _base(spec, recipe, toolchain_ref, registry_options, log)
    env = gobuild.build_env(spec.platform, os.environ)
    go_version, goexperiment, gofips = _go_settings(toolchain, spec, env)
    # Asked for UPX without a upx to run: fail now, not after the build.
    upx_version = toolchain.upx_version() if upx_mode != "off" else ""
    log(
        f"module {module.path} (go {module.go_version or '?'}), {len(module.direct_deps)} direct "
        f"dependenc{'y' if len(module.direct_deps) == 1 else 'ies'}, main package {package}"
    )
    epoch = source_date_epoch(spec, git)
    version_package = gobuild.version_package_path(spec.version_package, module.path)
    ld = gobuild.ldflags(
        version_package, spec.version, rfc3339(epoch), git.short, spec.extra_ldflags, strip=recipe.strip
    )
    upx_record = upx_setting(upx_mode, upx_version)
    if upx_note:
        upx_record = {**upx_record, "note": upx_note}
    prov = Provenance(
        module,
        package,
        git,
        epoch,
        go_version,
        ld,
        toolchain.describe(),
        goflags=env["GOFLAGS"],
        goexperiment=goexperiment,
        gofips140=gofips,
        upx=upx_record,
    )
    return Prepared(spec, recipe, module, package, git, prov, version_package, upx_mode, upx_note, base, upx_version)


def _check_spec(spec: BuildSpec, recipe: Recipe) -> None:
    """What the spec alone can be checked for: the target's settings, the output, tags that may not move (refused
    now, not after go build) and the platform."""
    recipe.check(spec)
    check_output_path(spec.output)
    if (spec.output / "oci-layout").is_file():
        refuse_unsafe_moves(
            Layout.open(spec.output), spec.effective_tags, None, spec.name, spec.version, spec.force_tags
        )
    gobuild.check_platform(spec.platform)


def _upx_mode(spec: BuildSpec) -> tuple[str, str]:
    """(the UPX mode this platform's build uses, why it is not the one asked for); an architecture UPX cannot pack
    is bad input, unless the spec says to leave such binaries unpacked (several platforms in one run)."""
    upx_mode, upx_note = spec.effective_upx, ""
    if (
        spec.upx_skip_unsupported
        and upx.full_args(upx_mode) is not None
        and spec.platform.architecture not in upx.UPX_ARCHES
    ):
        upx_mode, upx_note = "off", f"UPX cannot pack linux/{spec.platform.architecture}: left unpacked"
    upx.check_platform(upx_mode, spec.platform.architecture)
    return upx_mode, upx_note


def _base(
    spec: BuildSpec,
    recipe: Recipe,
    toolchain_ref: str | None,
    registry_options: Callable[[], RegistryOptions] | None,
    log: Log,
) -> Base | None:
    """The base image the target builds on, resolved and read; None on scratch."""
    base_ref = recipe.default_base(spec, toolchain_ref)
    if base_ref is None and recipe.base == "required":
        raise InputError(
            f"--target {spec.target} builds on a base image: give --base REF",
            hint="e.g. --base alpine:3.20, or --base oci:bases/alpine:3.20 for an OCI layout on disk",
        )
    return resolve_base(base_ref, spec.platform, registry_options, log) if base_ref else None


def _go_settings(toolchain: Toolchain, spec: BuildSpec, env: dict[str, str]) -> tuple[str, str, str]:
    """GOVERSION, GOEXPERIMENT and GOFIPS140 as the build will see them; a go that prints no Go version is refused."""
    go_version, goexperiment, gofips = toolchain.go_env(
        spec.service_dir, env, ("GOVERSION", "GOEXPERIMENT", "GOFIPS140")
    )
    if not go_version.startswith(("go", "devel")):
        raise ToolchainError(
            f"`go env GOVERSION` printed {go_version!r}, not a Go version",
            hint="the go program is not a real Go toolchain (or a broken one); check --go or the toolchain image",
        )
    return go_version, goexperiment, gofips
