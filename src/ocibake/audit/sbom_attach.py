"""Make the SBOM of an image in a layout and store it there as a referrer (and push it, with the image, as a
referrer in a registry). The Go build information comes from the entrypoint binary in the image itself; a
UPX-packed binary is unpacked first with the toolchain's upx (`upx -d`) on a temporary copy."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocibake.audit.base_packages import base_graph
from ocibake.audit.goinfo import BuildInfo, read_build_info
from ocibake.audit.image_source import OpenedImage, open_layout_image
from ocibake.audit.layer_files import read_file
from ocibake.audit.referrers import Artifact, add_to_layout, stored_artifact
from ocibake.audit.sbom import IMAGE_ID, SPDX_TYPE, sbom_artifact
from ocibake.audit.vendor_sums import with_vendored_sums
from ocibake.errors import InputError

Unpack = Callable[[Path], None]  # decompress a UPX-packed binary in place


APP_PATH = "/app"  # where every ocibake target puts the service's binary


def image_file(image: OpenedImage, path: str) -> bytes | None:
    """The content of the regular file ``path`` as the image's layers leave it (the topmost layer holding it)."""
    for desc in reversed(image.layers()):
        data = read_file(image.blob_path(desc.digest), path)
        if data is not None:
            return data
    return None


def entrypoint_binary(image: OpenedImage) -> bytes:
    """The app binary, /app (not the entrypoint: in development that is Delve), else the entrypoint's program."""
    entry = ((image.config.get("config") or {}).get("Entrypoint") or [APP_PATH])[0]
    for path in dict.fromkeys((APP_PATH, entry)):
        data = image_file(image, path)
        if data is not None:
            return data
    raise InputError(f"{image.reference} holds no {APP_PATH} (the app binary)", hint="is this an ocibake image?")


def _unpacked(data: bytes, unpack: Unpack | None) -> bytes:
    if b"UPX!" in data[:4096] and unpack is not None:
        with tempfile.TemporaryDirectory(prefix="ocibake-sbom-") as tmp:
            path = Path(tmp, "app")
            path.write_bytes(data)
            path.chmod(0o755)
            unpack(path)
            data = path.read_bytes()
    return data


def build_info(image: OpenedImage, unpack: Unpack | None = None) -> BuildInfo:
    return read_build_info(_unpacked(entrypoint_binary(image), unpack))


def tool_build_infos(image: OpenedImage) -> list[tuple[str, BuildInfo]]:
    """Other Go programs the image runs: its entrypoint when that is not the app (Delve in development)."""
    entry = ((image.config.get("config") or {}).get("Entrypoint") or [APP_PATH])[0]
    if entry == APP_PATH:
        return []
    data = image_file(image, entry)
    if data is None:
        return []
    try:
        return [(entry, read_build_info(data))]
    except InputError:
        return []  # not a Go program: nothing to describe from build information


def image_sbom(image: OpenedImage, name: str, unpack: Unpack | None = None, source: Path | None = None) -> Artifact:
    """The image's SBOM; ``source`` (the service directory, when at hand) gives a vendored build's checksums."""
    record = image.build_record
    epoch = int((record or {}).get("source_date_epoch") or 0)
    tools = tool_build_infos(image)
    info = with_vendored_sums(build_info(image, unpack), source)
    base = base_graph(record, lambda path: image_file(image, path), IMAGE_ID)
    return sbom_artifact(name, image.descriptor, info, record, epoch, tools, base)


def attach_sbom(
    layout: Path, digest: str, name: str, unpack: Unpack | None = None, source: Path | None = None
) -> Artifact:
    """The image's SBOM, stored in ``layout`` as its referrer. The SBOM is a function of the image (same digest, same
    bytes), so one already there is taken as it is: a no-op rebuild unpacks no binary and rewrites no blob."""
    stored = stored_artifact(layout, digest, SPDX_TYPE)
    if stored is not None:
        return stored
    image = open_layout_image(f"oci:{layout}@{digest}")
    artifact = image_sbom(image, name, unpack, source)
    add_to_layout(layout, artifact)
    return artifact


def check_sbom(data: bytes, digest: str) -> dict[str, Any]:
    """Parse a stored SBOM blob and check it describes the image ``digest``."""
    try:
        doc: dict[str, Any] = json.loads(data)
    except ValueError:
        raise InputError("the SBOM blob is not JSON", hint="it is damaged; build the image again") from None
    if doc.get("spdxVersion") != "SPDX-2.3" or not str(doc.get("documentNamespace", "")).endswith(
        "sha256-" + digest.split(":", 1)[-1]
    ):
        raise InputError("the SBOM does not describe this image", hint="it is damaged or belongs to another image")
    return doc


__all__ = ["SPDX_TYPE", "attach_sbom", "build_info", "check_sbom", "image_sbom"]
