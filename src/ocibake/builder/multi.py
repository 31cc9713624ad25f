"""Several platforms in one run: each platform's image built in parallel (as many at once as there are cores), all
into one layout, joined by one image index that every tag names."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ocibake.builder.bake import BuildResult, build_into
from ocibake.builder.prepare import Prepared, prepare
from ocibake.builder.shared_layers import SharedLayers
from ocibake.builder.spec import BuildSpec
from ocibake.oci.image import Blob, Descriptor
from ocibake.oci.index import platform_index
from ocibake.oci.layout import LayoutWriter
from ocibake.oci.platform import Platform
from ocibake.oci.tag_moves import TagMove, refuse_unsafe_moves
from ocibake.toolchain import jobs
from ocibake.toolchain.base import Toolchain

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

Log = Callable[[str], None]


@dataclass(frozen=True)
class MultiResult:
    name: str
    layout: Path
    tags: tuple[str, ...]
    index: Blob
    images: tuple[BuildResult, ...]
    seconds: dict[str, float]  # "total", and "workers": how many platforms were built at a time

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def reference(self) -> str:
        return f"{self.name}@{self.index.digest}"


def workers(count: int) -> int:
    return max(1, min(count, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def bake_platforms(
    spec: BuildSpec,
    platforms: Sequence[Platform],
    toolchain: Toolchain,
    log: Log = lambda s: None,
    *,
    registry_options: Callable[[], RegistryOptions] | None = None,
    toolchain_ref: str | None = None,
) -> MultiResult:
    started = time.monotonic()
    specs = [replace(spec, platform=p, upx_skip_unsupported=True) for p in platforms]
    preps = _prepare_all(specs, toolchain, log, registry_options, toolchain_ref)
    if preps[0].git.dirty:
        log("warning: the service has uncommitted changes; the image records the commit, not your edits")
    moved: list[TagMove] = []
    with LayoutWriter(spec.output, log=log) as writer:
        with ThreadPoolExecutor(max_workers=workers(len(preps))) as pool:
            shared = SharedLayers()
            images = list(
                pool.map(lambda p: build_into(p, toolchain, writer, _prefixed(log, p.spec.platform), shared), preps)
            )
        index = _index(images)
        desc = writer.add_blob(index)
        tags = spec.effective_tags
        jobs.check_cancelled()  # a run stopped by Ctrl-C commits no layout
        writer.commit(
            [(tag, desc) for tag in tags],
            check=lambda layout: moved.extend(
                refuse_unsafe_moves(layout, tags, desc.digest, spec.name, spec.version, spec.force_tags)
            ),
        )
    for move in moved:
        log(move.line())
    return MultiResult(
        spec.name,
        spec.output,
        tags,
        index,
        tuple(images),
        {"total": time.monotonic() - started, "workers": workers(len(preps))},
    )


def _prepare_all(
    specs: list[BuildSpec],
    toolchain: Toolchain,
    log: Log,
    registry_options: Callable[[], RegistryOptions] | None,
    toolchain_ref: str | None,
) -> list[Prepared]:
    """Every platform's checks (and its base) before anything is built; go env runs for each, so in parallel too."""
    with ThreadPoolExecutor(max_workers=workers(len(specs))) as pool:
        return list(
            pool.map(
                lambda s: prepare(
                    s,
                    toolchain,
                    _prefixed(log, s.platform),
                    registry_options=registry_options,
                    toolchain_ref=toolchain_ref,
                ),
                specs,
            )
        )


def _index(images: list[BuildResult]) -> Blob:
    """The image index of the platforms' images."""
    return platform_index(
        [
            Descriptor(
                r.image.manifest.media_type, r.image.digest, len(r.image.manifest.data), platform=r.image.platform
            )
            for r in images
        ]
    )


def _prefixed(log: Log, platform: Platform) -> Log:
    return lambda line: log(f"[{platform}] {line}")
