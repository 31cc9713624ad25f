"""The image `ocibake run` starts: found (a layout directory, `oci:DIR[:TAG|@DIGEST]` or a registry reference), read
through the verified image reader, checked for a platform this host can run, and unpacked into ocibake's cache.

The root file system is unpacked once per layer stack (CACHE/rootfs/<chain id>, the same safe unpacking as toolchain
images: whiteouts applied, every digest checked, nothing written outside the root), so a second run of the same
image (or of any image with the same layers) starts without unpacking anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.audit.image_source import open_image
from ocibake.builder.emulation import emulator
from ocibake.errors import InputError, ToolchainError
from ocibake.oci.platform import Platform, host_architecture
from ocibake.toolchain.cache import cache_home, private_cache
from ocibake.toolchain.rootfs import LayerSource, unpack_image

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions


@dataclass(frozen=True)
class RunImage:
    """An image ready to run: its unpacked root and the runtime part of its config (Entrypoint, Cmd, Env...)."""

    reference: str
    digest: str
    platform: Platform
    rootfs: Path
    runtime: dict[str, Any]
    emulator: str | None = None  # qemu-<arch>-static for an image of another architecture

    @property
    def name(self) -> str:
        labels = self.runtime.get("Labels") or {}
        return str(labels.get("org.opencontainers.image.title") or self.reference)


def image_reference(text: str) -> str:
    """What open_image reads: a directory holding an OCI layout becomes `oci:DIR`."""
    path = Path(text)
    if not text.startswith("oci:") and path.is_dir() and (path / "oci-layout").is_file():
        return f"oci:{text}"
    if not text.startswith("oci:") and path.is_dir():
        hint = (
            f"{text} is a Go service: `ocibake run {text} --watch` builds and runs it"
            if (path / "go.mod").is_file()
            else "give an OCI layout directory (dist/oci/NAME), oci:DIR:TAG or a registry reference"
        )
        raise InputError(f"{text} is a directory but not an OCI image layout", hint=hint)
    return text


def image_platform(config: dict[str, Any]) -> Platform:
    return Platform(
        str(config.get("os") or "linux"), str(config.get("architecture") or "amd64"), str(config.get("variant") or "")
    )


def runnable_emulator(platform: Platform) -> str | None:
    """None for this host's own platform, qemu-user for another one when installed; else a clear refusal."""
    if platform.os != "linux":
        raise InputError(f"the image is for {platform}, not Linux", hint="ocibake runs Linux images only")
    if platform.architecture == host_architecture():
        return None
    qemu = emulator(platform)
    if qemu is None:
        raise ToolchainError(
            f"the image is for {platform} and this host is linux/{host_architecture()}; no emulator for it is "
            "installed",
            hint="install qemu-user-static (`apt-get install qemu-user-static`), or run an image of this host's "
            "platform (--platform)",
        )
    return qemu


def open_run_image(
    text: str,
    platform: str | None = None,
    registry_options: Callable[[], RegistryOptions] | None = None,
    cache: Path | None = None,
) -> RunImage:
    """Read ``text``'s image (the one of ``platform`` in an index), check it can run here, and unpack it (cached)."""
    reference = image_reference(text)
    cache = cache or cache_home()
    with open_image(reference, registry_options, platform) as opened:
        plat = image_platform(opened.config)
        qemu = runnable_emulator(plat)
        diff_ids = opened.diff_ids()
        layers = opened.layers()
        if len(diff_ids) != len(layers):
            raise InputError(
                f"{text}: {len(layers)} layers but {len(diff_ids)} diff_ids in its config", hint="the image is damaged"
            )
        sources = [
            LayerSource(opened.blob_path(d.digest), d.media_type, d.digest, diff_id)
            for d, diff_id in zip(layers, diff_ids, strict=True)
        ]
        private_cache(cache)
        try:
            rootfs = unpack_image(sources, cache)
        except InputError as exc:  # the unpacking speaks of toolchain images; here it is the image being run
            raise InputError(
                f"{text}: {exc.message.replace('toolchain layer', 'layer')}",
                hint="the image is unsafe or damaged; run only images from a source you trust, pinned by digest",
            ) from exc
        return RunImage(
            reference=text,
            digest=opened.digest,
            platform=plat,
            rootfs=rootfs,
            runtime=dict(opened.config.get("config") or {}),
            emulator=qemu,
        )
