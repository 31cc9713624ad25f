"""The only orchestration: a BuildSpec and a Toolchain in, an image in an OCI layout out."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.builder import gobuild, upx
from ocibake.builder.app_binary import AppBinary, CheckSettings, make_binary
from ocibake.builder.assembly import (
    assemble,
    binary_layer_content,
    finish_image,
    write_layers,
    write_layers_below,
)
from ocibake.builder.base_image import BaseImage
from ocibake.builder.prepare import Prepared, prepare
from ocibake.builder.project import GitInfo, GoModule, local_replace_dirs
from ocibake.builder.record import BUILD_RECORD_LABEL, Provenance, upx_setting
from ocibake.builder.shared_layers import SharedLayers
from ocibake.builder.spec import BuildSpec
from ocibake.oci.image import Descriptor, Image
from ocibake.oci.layout import LayoutWriter
from ocibake.oci.tag_moves import TagMove, refuse_unsafe_moves
from ocibake.toolchain import jobs
from ocibake.toolchain.base import Toolchain

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

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
    record: dict[str, Any]  # the build record (the config label's JSON document)
    module: GoModule
    package: str
    git: GitInfo
    seconds: dict[str, float] = field(default_factory=dict)
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


def bake(
    spec: BuildSpec,
    toolchain: Toolchain,
    log: Log = lambda s: None,
    *,
    registry_options: Callable[[], RegistryOptions] | None = None,
    toolchain_ref: str | None = None,
) -> BuildResult:
    started = time.monotonic()
    prep = prepare(spec, toolchain, log, registry_options=registry_options, toolchain_ref=toolchain_ref)
    if prep.git.dirty:
        log("warning: the service has uncommitted changes; the image records the commit, not your edits")
    moved: list[TagMove] = []
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
        under_records = pool.submit(write_layers_below, under, writer, prov.epoch, spec.compression, prep.base, shared)
        app = _build_binary(prep, toolchain, Path(work) / "app", log)

        t1 = time.monotonic()
        binary_content = binary_layer_content(spec, app.path, prov)
        on_top = prep.recipe.top_layers(spec, Path(work), toolchain, log)
        top_records = write_layers([binary_content, *on_top], writer, prov.epoch, spec.compression)
        image, record = finish_image(
            spec,
            prov,
            [*under, binary_content, *on_top],
            under_records.result() + top_records,
            writer,
            prep=prep,
            extra_record=skipped,
        )
        layer_seconds = time.monotonic() - t1

    seconds = {"go_build": app.go_seconds, "upx": app.upx.seconds, "layers": layer_seconds}
    return _result(prep, toolchain, app, image, record, {**seconds, "total": time.monotonic() - started})


def _build_binary(prep: Prepared, toolchain: Toolchain, output: Path, log: Log) -> AppBinary:
    """The service's binary at ``output``: built, packed with UPX as the target says, and checked."""
    spec, prov = prep.spec, prep.prov
    request = gobuild.go_build_request(
        service_dir=spec.service_dir,
        package=prep.package,
        output=output,
        platform=spec.platform,
        ld=prov.ldflags,
        local_modules=local_replace_dirs(spec.service_dir, prep.module),
        extra_flags=prep.recipe.gcflags,
    )
    return make_binary(
        request,
        toolchain,
        platform=spec.platform,
        upx_mode=prep.upx_mode,
        checks=CheckSettings(spec.version, prep.version_package, spec.verify_binary, spec.verify_always),
        log=log,
        go_line=f"go build {prep.package} for {spec.platform} with {prov.go_version}",
        upx_cache=upx.upx_cache() if prep.upx_mode != "off" else None,
        upx_version=prep.upx_version,
    )


def _result(
    prep: Prepared,
    toolchain: Toolchain,
    app: AppBinary,
    image: Image,
    record: dict[str, Any],
    seconds: dict[str, float],
) -> BuildResult:
    layers = tuple(
        LayerReport(r.kind, r.descriptor.digest, r.descriptor.size, r.uncompressed_size, r.created_by)
        for r in image.layers
    )
    return BuildResult(
        name=prep.spec.name,
        image=image,
        layout=prep.spec.output,
        tags=prep.spec.effective_tags,
        layers=layers,
        binary=app,
        record=record,
        module=prep.module,
        package=prep.package,
        git=prep.git,
        toolchain=toolchain.summary(),
        base=prep.base.image if prep.base else None,
        upx_note=prep.upx_note,
        seconds=seconds,
    )
