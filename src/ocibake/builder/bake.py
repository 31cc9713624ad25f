"""The only orchestration: a BuildSpec and a Toolchain in, an image in an OCI layout out."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ocibake.builder import gobuild, layer_cache, upx
from ocibake.builder.app_binary import AppBinary, make_binary
from ocibake.builder.base_image import BaseImage
from ocibake.builder.base_layers import Base, base_history, resolve_base, write_base_layers
from ocibake.builder.project import GitInfo, GoModule, find_main_package, git_info, local_replace_dirs, read_go_mod
from ocibake.builder.record import (
    BUILD_RECORD_LABEL,
    Provenance,
    build_record,
    oci_annotations,
    runtime_config,
    source_date_epoch,
    upx_setting,
)
from ocibake.builder.shared_layers import SharedLayers
from ocibake.builder.spec import BuildSpec
from ocibake.builder.targets import Recipe, recipe_for
from ocibake.builder.targets.common import support_layers
from ocibake.errors import InputError, ToolchainError
from ocibake.layers.binary import binary_layer
from ocibake.layers.cacerts import resolve_ca_source
from ocibake.layers.content import LayerContent
from ocibake.layers.zoneinfo import resolve_zoneinfo_source
from ocibake.oci.image import Descriptor, Image, LayerRecord, make_image, rfc3339
from ocibake.oci.layout import Layout, LayoutWriter, check_output_path
from ocibake.oci.tag_moves import refuse_unsafe_moves
from ocibake.toolchain import jobs
from ocibake.toolchain.base import Toolchain

__all__ = ["BUILD_RECORD_LABEL", "BuildResult", "Provenance", "assemble", "bake", "upx_setting"]

Log = Callable[[str], None]


@dataclass(frozen=True)
class LayerReport:
    kind: str
    digest: str
    size: int
    uncompressed_size: int
    created_by: str


@dataclass(frozen=True)
class BuildResult:
    name: str
    image: Image
    layout: Path
    tags: tuple[str, ...]
    layers: tuple[LayerReport, ...]
    binary: AppBinary
    record: dict
    module: GoModule
    package: str
    git: GitInfo
    seconds: dict = field(default_factory=dict)
    toolchain: str = ""  # which go and upx ran, where (for people; the record has the facts)
    base: BaseImage | None = None  # the base image, when the image sits on one
    upx_note: str = ""  # why UPX was not applied although the target asks for it
    moved: tuple[tuple[str, str], ...] = ()  # (tag, digest it pointed at before) for tags this build moved

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.image.digest}"

    @property
    def binary_size(self) -> int:
        return self.binary.size

    @property
    def binary_check(self) -> str:
        """First line of `--version` of the binary in the image, or why it was not run."""
        return self.binary.final_check.line


def analyse(spec: BuildSpec) -> tuple[GoModule, str, GitInfo]:
    module = read_go_mod(spec.service_dir)
    package = find_main_package(spec.service_dir, spec.name, spec.main)
    git = spec.recorded_git if spec.recorded_git is not None else git_info(spec.service_dir)
    return module, package, git


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


def prepare(
    spec: BuildSpec,
    toolchain: Toolchain,
    log: Log = lambda s: None,
    *,
    registry_options: Callable[[], object] | None = None,
    toolchain_ref: str | None = None,
) -> Prepared:
    """Every check that needs no compiler, before anything is written or built."""
    recipe = recipe_for(spec.target)
    recipe.check(spec)
    check_output_path(spec.output)
    if (spec.output / "oci-layout").is_file():  # a tag that may not move is refused now, not after go build
        refuse_unsafe_moves(
            Layout.open(spec.output), spec.effective_tags, None, spec.name, spec.version, spec.force_tags
        )
    gobuild.check_platform(spec.platform)
    upx_mode, upx_note = spec.effective_upx, ""
    if (
        spec.upx_skip_unsupported
        and upx.full_args(upx_mode) is not None
        and spec.platform.architecture not in upx.UPX_ARCHES
    ):
        upx_mode, upx_note = "off", f"UPX cannot pack linux/{spec.platform.architecture}: left unpacked"
    upx.check_platform(upx_mode, spec.platform.architecture)
    resolve_ca_source(spec.ca_bundle)
    resolve_zoneinfo_source(spec.zoneinfo)
    module, package, git = analyse(spec)
    gobuild.check_version_package(spec.version_package, module.path, spec.service_dir)
    gobuild.check_variant_settings(spec.platform, os.environ)
    base_ref = recipe.default_base(spec, toolchain_ref)
    if base_ref is None and recipe.base == "required":
        raise InputError(
            f"--target {spec.target} builds on a base image: give --base REF",
            hint="e.g. --base alpine:3.20, or --base oci:bases/alpine:3.20 for an OCI layout on disk",
        )
    base = resolve_base(base_ref, spec.platform, registry_options, log) if base_ref else None
    env = gobuild.build_env(spec.platform, os.environ)
    go_version, goexperiment, gofips = toolchain.go_env(
        spec.service_dir, env, ("GOVERSION", "GOEXPERIMENT", "GOFIPS140")
    )
    if not go_version.startswith(("go", "devel")):
        raise ToolchainError(
            f"`go env GOVERSION` printed {go_version!r}, not a Go version",
            hint="the go program is not a real Go toolchain (or a broken one); check --go or the toolchain image",
        )
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


def bake(
    spec: BuildSpec,
    toolchain: Toolchain,
    log: Log = lambda s: None,
    *,
    registry_options: Callable[[], object] | None = None,
    toolchain_ref: str | None = None,
) -> BuildResult:
    started = time.monotonic()
    prep = prepare(spec, toolchain, log, registry_options=registry_options, toolchain_ref=toolchain_ref)
    if prep.git.dirty:
        log("warning: the service has uncommitted changes; the image records the commit, not your edits")
    moved: list = []
    with LayoutWriter(spec.output, log=log) as writer:
        result = build_into(prep, toolchain, writer, log)
        manifest_desc = Descriptor(
            result.image.manifest.media_type,
            result.image.digest,
            len(result.image.manifest.data),
            platform=spec.platform,
        )
        tags = result.tags
        jobs.check_cancelled()  # a run stopped by Ctrl-C commits no layout
        writer.commit(
            [(tag, manifest_desc) for tag in tags],
            check=lambda layout: moved.extend(
                refuse_unsafe_moves(layout, tags, result.image.digest, spec.name, spec.version, spec.force_tags)
            ),
        )
    for move in moved:
        log(move.line())
    return replace(
        result,
        seconds={**result.seconds, "total": time.monotonic() - started},
        moved=tuple((m.tag, m.old_digest) for m in moved),
    )


def build_into(
    prep: Prepared,
    toolchain: Toolchain,
    writer: LayoutWriter,
    log: Log = lambda s: None,
    shared: SharedLayers | None = None,
) -> BuildResult:
    """Build the binary and every layer, config and manifest of one platform's image, staged in ``writer``
    (``shared``: the layers that do not depend on the platform, written once for all the platforms of a run)."""
    started = time.monotonic()
    spec, prov = prep.spec, prep.prov
    # The layers that do not need the binary are read and written while go build runs.
    with ThreadPoolExecutor(max_workers=1) as pool:
        work = writer.work_dir()
        under, skipped = prep.recipe.layers(spec, prep.base.files if prep.base else None)
        base_layers = pool.submit(
            lambda: _contents_and_records(under, writer, prov.epoch, spec.compression, prep.base, shared)
        )
        request = gobuild.go_build_request(
            service_dir=spec.service_dir,
            package=prep.package,
            output=Path(work) / "app",
            platform=spec.platform,
            ld=prov.ldflags,
            local_modules=local_replace_dirs(spec.service_dir, prep.module),
            extra_flags=prep.recipe.gcflags,
        )
        app = make_binary(
            request,
            toolchain,
            platform=spec.platform,
            version=spec.version,
            upx_mode=prep.upx_mode,
            verify=spec.verify_binary,
            version_package=prep.version_package,
            log=log,
            go_line=f"go build {prep.package} for {spec.platform} with {prov.go_version}",
            upx_cache=upx.upx_cache() if prep.upx_mode != "off" else None,
            upx_version=prep.upx_version,
        )

        t1 = time.monotonic()
        binary_content = binary_layer_content(spec, app.path, prov)
        on_top = prep.recipe.top_layers(spec, Path(work), toolchain, log)
        top_records = write_layers([binary_content, *on_top], writer, prov.epoch, spec.compression)
        under_contents, under_records = base_layers.result()
        image, record = finish_image(
            spec,
            prov,
            [*under_contents, binary_content, *on_top],
            under_records + top_records,
            writer,
            prep=prep,
            extra_record=skipped,
        )
        layer_seconds = time.monotonic() - t1

    layers = tuple(
        LayerReport(r.kind, r.descriptor.digest, r.descriptor.size, r.uncompressed_size, r.created_by)
        for r in image.layers
    )
    return BuildResult(
        name=spec.name,
        image=image,
        layout=spec.output,
        tags=spec.effective_tags,
        layers=layers,
        binary=app,
        record=record,
        module=prep.module,
        package=prep.package,
        git=prep.git,
        toolchain=toolchain.summary(),
        base=prep.base.image if prep.base else None,
        upx_note=prep.upx_note,
        seconds={
            "go_build": app.go_seconds,
            "upx": app.upx.seconds,
            "layers": layer_seconds,
            "total": time.monotonic() - started,
        },
    )


def base_layer_contents(spec: BuildSpec) -> list[LayerContent]:
    """The layers that do not depend on the binary, from the one that changes least (FROM scratch)."""
    return support_layers(spec, None)[0]


def binary_layer_content(spec: BuildSpec, binary: Path, prov: Provenance) -> LayerContent:
    return binary_layer(binary, f"{prov.module.path} {spec.version} ({prov.package}) for {spec.platform}")


def _contents_and_records(
    contents: list[LayerContent],
    writer: LayoutWriter,
    epoch: int,
    compression: str,
    base: Base | None = None,
    shared: SharedLayers | None = None,
) -> tuple[list[LayerContent], list[LayerRecord]]:
    records = (
        (
            shared.base_records(base, lambda: write_base_layers(base, writer))
            if shared is not None
            else write_base_layers(base, writer)
        )
        if base is not None
        else []
    )
    return contents, records + write_layers(contents, writer, epoch, compression, shared)


def write_layers(
    contents: list[LayerContent], writer: LayoutWriter, epoch: int, compression: str, shared: SharedLayers | None = None
) -> list[LayerRecord]:
    records = []
    cache = layer_cache.layer_cache()
    for content in contents:
        if shared is not None:
            records.append(
                shared.record(
                    content, epoch, compression, lambda c=content: write_layers([c], writer, epoch, compression)[0]
                )
            )
            continue
        blob, staged = layer_cache.layer_blob(
            content.entries, content.kind, writer, mtime=content.mtime_for(epoch), compression=compression, cache=cache
        )
        if staged:
            writer.add_blob_file(blob.path, blob.digest)
        records.append(
            LayerRecord(
                Descriptor(blob.media_type, blob.digest, blob.size),
                blob.diff_id,
                blob.uncompressed_size,
                content.created_by,
                content.kind,
            )
        )
    return records


def finish_image(
    spec: BuildSpec,
    prov: Provenance,
    contents: list[LayerContent],
    records: list[LayerRecord],
    writer: LayoutWriter,
    prep: Prepared | None = None,
    extra_record: dict | None = None,
) -> tuple[Image, dict]:
    """Config and manifest for the written layers, staged in ``writer`` (not yet committed)."""
    recipe = prep.recipe if prep else recipe_for(spec.target)
    base = prep.base if prep else None
    record = build_record(spec, prov, contents)
    record.update(extra_record or {})
    if base is not None:
        record["base"] = base.image.record()
    files = base.files if base else None
    _, facts = recipe.runtime(spec, runtime_config(spec, prov, record), base.image if base else None, files)
    record.update(facts)
    runtime, _ = recipe.runtime(spec, runtime_config(spec, prov, record), base.image if base else None, files)
    annotations = oci_annotations(spec, prov)
    if base is not None:
        annotations.update(base.annotations())
        runtime = replace(runtime, labels={**runtime.labels, **base.annotations()})
    image = make_image(
        platform=spec.platform,
        layers=records,
        created=prov.epoch,
        runtime=runtime,
        annotations=annotations,
        base_history=base_history(base, prov.epoch) if base else (),
    )
    for blob in (image.config, image.manifest):
        existing = writer.blob_file(blob.digest)
        if not (existing.is_file() and existing.read_bytes() == blob.data):  # a no-op rebuild rewrites nothing
            writer.add_blob(blob)
    return image, record


def assemble(spec: BuildSpec, binary: Path, prov: Provenance, writer: LayoutWriter) -> tuple[Image, dict]:
    """Every layer, the config and the manifest for an already built ``binary``, staged in ``writer``."""
    contents = [*base_layer_contents(spec), binary_layer_content(spec, binary, prov)]
    return finish_image(spec, prov, contents, write_layers(contents, writer, prov.epoch, spec.compression), writer)
