"""The toolchain the command line asks for: local programs, or an image run in a sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ocibake.errors import InputError
from ocibake.toolchain.image_ref import parse_toolchain_ref
from ocibake.toolchain.local import LocalToolchain

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions
    from ocibake.toolchain.image import ImageToolchain


def make_toolchain(
    reference: str | None,
    *,
    go: str | None = None,
    upx: str | None = None,
    network: bool = False,
    cache: Path | None = None,
    registry_options: Callable[[], RegistryOptions] | None = None,
) -> LocalToolchain | ImageToolchain:
    """What the build command calls for --toolchain/--go/--upx-bin/--network: a LocalToolchain or an ImageToolchain."""
    ref = parse_toolchain_ref("local" if reference is None else reference)
    if ref.kind == "local":
        return LocalToolchain(go=go, upx=upx)
    if go or upx:
        raise InputError(
            f"--go and --upx-bin choose programs on this host; they do not apply to --toolchain {reference}",
            hint="drop them, or use --toolchain local",
        )
    from ocibake.toolchain.image import ImageToolchain  # the sandbox and unpacking: only when an image is named

    return ImageToolchain(ref.text, network=network, cache=cache, registry_options=registry_options)
