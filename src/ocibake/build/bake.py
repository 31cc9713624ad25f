"""The only orchestration: a BuildSpec and a Toolchain in, an image in an OCI layout out."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ocibake.build import gobuild, layer_cache, upx
from ocibake.build.app_binary import AppBinary, make_binary
from ocibake.build.project import GitInfo, GoModule, find_main_package, git_info, local_replace_dirs, read_go_mod
from ocibake.build.record import (BUILD_RECORD_LABEL, Provenance, build_record, oci_annotations, runtime_config,
                                  source_date_epoch, upx_setting)
from ocibake.build.spec import BuildSpec
from ocibake.errors import ToolchainError
from ocibake.layers.binary import binary_layer
from ocibake.layers.cacerts import ca_layer, resolve_ca_source
from ocibake.layers.content import LayerContent
from ocibake.layers.passwd import passwd_layer
from ocibake.layers.zoneinfo import resolve_zoneinfo_source, zoneinfo_layer
from ocibake.oci.image import Descriptor, Image, LayerRecord, make_image, rfc3339
from ocibake.oci.layout import LayoutWriter, check_output_path
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
    toolchain: str = ""              # which go and upx ran, where (for people; the record has the facts)

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
    return module, package, git_info(spec.service_dir)


def bake(spec: BuildSpec, toolchain: Toolchain, log: Log = lambda s: None) -> BuildResult:
    started = time.monotonic()
    # Every check that needs no compiler runs before anything is written or built.
    check_output_path(spec.output)
    gobuild.check_platform(spec.platform)
    upx_mode = spec.effective_upx
    upx.check_platform(upx_mode, spec.platform.architecture)
    resolve_ca_source(spec.ca_bundle)
    resolve_zoneinfo_source(spec.zoneinfo)
    module, package, git = analyse(spec)
    gobuild.check_version_package(spec.version_package, module.path, spec.service_dir)
    gobuild.check_variant_settings(spec.platform, os.environ)
    env = gobuild.build_env(spec.platform, os.environ)
    go_version, goexperiment, gofips = toolchain.go_env(spec.service_dir, env, ("GOVERSION", "GOEXPERIMENT", "GOFIPS140"))
    if not go_version.startswith(("go", "devel")):
        raise ToolchainError(f"`go env GOVERSION` printed {go_version!r}, not a Go version",
                             hint="the go program is not a real Go toolchain (or a broken one); check --go or the "
                                  "toolchain image")
    # Asked for UPX without a upx to run: fail now, not after the build.
    upx_version = toolchain.upx_version() if upx_mode != "off" else ""
    log(f"module {module.path} (go {module.go_version or '?'}), {len(module.direct_deps)} direct "
        f"dependenc{'y' if len(module.direct_deps) == 1 else 'ies'}, main package {package}")
    epoch = source_date_epoch(spec, git)
    version_package = gobuild.version_package_path(spec.version_package, module.path)
    ld = gobuild.ldflags(version_package, spec.version, rfc3339(epoch), git.short, spec.extra_ldflags)
    prov = Provenance(module, package, git, epoch, go_version, ld, toolchain.describe(),
                      goflags=env["GOFLAGS"], goexperiment=goexperiment, gofips140=gofips,
                      upx=upx_setting(upx_mode, upx_version))
    if git.dirty:
        log("warning: the service has uncommitted changes; the image records the commit, not your edits")

    # The layers that do not need the binary are read and written while go build runs.
    with LayoutWriter(spec.output) as writer, ThreadPoolExecutor(max_workers=1) as pool:
        work = writer.work_dir()
        base_layers = pool.submit(lambda: _contents_and_records(base_layer_contents(spec), writer, prov.epoch,
                                                                spec.compression))
        request = gobuild.go_build_request(service_dir=spec.service_dir, package=package, output=Path(work) / "app",
                                           platform=spec.platform, ld=ld,
                                           local_modules=local_replace_dirs(spec.service_dir, module))
        log(f"go build {package} for {spec.platform} with {go_version}")
        app = make_binary(request, toolchain, platform=spec.platform, version=spec.version, upx_mode=upx_mode,
                          verify=spec.verify_binary, version_package=version_package, log=log,
                          upx_cache=upx.upx_cache() if upx_mode != "off" else None, upx_version=upx_version)

        t1 = time.monotonic()
        binary_content = binary_layer_content(spec, app.path, prov)
        binary_records = write_layers([binary_content], writer, prov.epoch, spec.compression)
        base_contents, base_records = base_layers.result()
        image, record = finish_image(spec, prov, [*base_contents, binary_content], base_records + binary_records,
                                     writer)
        layer_seconds = time.monotonic() - t1
        manifest_desc = Descriptor(image.manifest.media_type, image.digest, len(image.manifest.data),
                                   platform=spec.platform)
        tags = spec.effective_tags
        jobs.check_cancelled()          # a run stopped by Ctrl-C commits no layout
        writer.commit([(tag, manifest_desc) for tag in tags])

    layers = tuple(LayerReport(r.kind, r.descriptor.digest, r.descriptor.size, r.uncompressed_size, r.created_by)
                   for r in image.layers)
    return BuildResult(name=spec.name, image=image, layout=spec.output, tags=tags, layers=layers, binary=app,
                       record=record, module=module, package=package, git=git, toolchain=toolchain.summary(),
                       seconds={"go_build": app.go_seconds, "upx": app.upx.seconds, "layers": layer_seconds,
                                "total": time.monotonic() - started})


def base_layer_contents(spec: BuildSpec) -> list[LayerContent]:
    """The layers that do not depend on the binary, from the one that changes least."""
    contents: list[LayerContent] = [passwd_layer()]
    for maybe in (zoneinfo_layer(spec.zoneinfo), ca_layer(spec.ca_bundle)):
        if maybe is not None:
            contents.append(maybe)
    return contents


def binary_layer_content(spec: BuildSpec, binary: Path, prov: Provenance) -> LayerContent:
    return binary_layer(binary, f"{prov.module.path} {spec.version} ({prov.package}) for {spec.platform}")


def _contents_and_records(contents: list[LayerContent], writer: LayoutWriter, epoch: int,
                          compression: str) -> tuple[list[LayerContent], list[LayerRecord]]:
    return contents, write_layers(contents, writer, epoch, compression)


def write_layers(contents: list[LayerContent], writer: LayoutWriter, epoch: int, compression: str) -> list[LayerRecord]:
    records = []
    cache = layer_cache.layer_cache()
    for content in contents:
        blob, staged = layer_cache.layer_blob(content.entries, content.kind, writer, mtime=content.mtime_for(epoch),
                                              compression=compression, cache=cache)
        if staged:
            writer.add_blob_file(blob.path, blob.digest)
        records.append(LayerRecord(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id,
                                   blob.uncompressed_size, content.created_by, content.kind))
    return records


def finish_image(spec: BuildSpec, prov: Provenance, contents: list[LayerContent], records: list[LayerRecord],
                 writer: LayoutWriter) -> tuple[Image, dict]:
    """Config and manifest for the written layers, staged in ``writer`` (not yet committed)."""
    record = build_record(spec, prov, contents)
    image = make_image(platform=spec.platform, layers=records, created=prov.epoch,
                       runtime=runtime_config(spec, prov, record), annotations=oci_annotations(spec, prov))
    for blob in (image.config, image.manifest):
        existing = writer.blob_file(blob.digest)
        if not (existing.is_file() and existing.read_bytes() == blob.data):     # a no-op rebuild rewrites nothing
            writer.add_blob(blob)
    return image, record


def assemble(spec: BuildSpec, binary: Path, prov: Provenance, writer: LayoutWriter) -> tuple[Image, dict]:
    """Every layer, the config and the manifest for an already built ``binary``, staged in ``writer``."""
    contents = [*base_layer_contents(spec), binary_layer_content(spec, binary, prov)]
    return finish_image(spec, prov, contents, write_layers(contents, writer, prov.epoch, spec.compression), writer)
