"""Open an image for reading, wherever it is: an OCI layout (`oci:DIR[:TAG|@DIGEST]`) or a registry reference (pulled,
every digest verified, into a private temporary layout that is removed when the image is closed)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.errors import InputError
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES
from ocibake.oci.names import DIGEST_RE

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

BUILD_RECORD_LABEL = "dev.ocibake.build-record"


@dataclass(frozen=True)
class LayoutRef:
    path: Path
    tag: str | None = None
    digest: str | None = None


def parse_layout_ref(text: str) -> LayoutRef:
    """`oci:DIR`, `oci:DIR:TAG` or `oci:DIR@sha256:...` (DIR may not hold ':' when a tag follows)."""
    rest = text[4:]
    if not rest:
        raise InputError(f"{text!r} names no layout directory", hint="e.g. oci:dist/oci/emergency-service:v1.0.0")
    digest = None
    if "@" in rest:
        rest, _, digest = rest.rpartition("@")
        if not DIGEST_RE.match(digest):
            raise InputError(f"{text!r}: {digest!r} is not a digest", hint="digests look like sha256:<64 hex digits>")
        return LayoutRef(Path(rest), None, digest)
    tag = None
    head, sep, tail = rest.rpartition(":")
    if sep and tail and "/" not in tail and not Path(rest).is_dir():
        rest, tag = head, tail
    return LayoutRef(Path(rest), tag, digest)


@dataclass(frozen=True)
class OpenedImage:
    """One image manifest and its config, read and verified, with the layout holding its blobs."""

    reference: str  # as the user gave it
    layout: Layout
    descriptor: Descriptor  # of the manifest
    manifest: dict[str, Any]
    config: dict[str, Any]
    remote: str | None = None  # REGISTRY/REPO when the image came from a registry

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def build_record(self) -> dict[str, Any] | None:
        labels = (self.config.get("config") or {}).get("Labels") or {}
        text = labels.get(BUILD_RECORD_LABEL)
        if not text:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def layers(self) -> list[Descriptor]:
        return [Descriptor.from_json(d) for d in self.manifest.get("layers") or []]

    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    def blob_path(self, digest: str) -> Path:
        return self.layout.blob_path(digest)


def read_image(
    reference: str, layout: Layout, desc: Descriptor, remote: str | None = None, platform: str | None = None
) -> OpenedImage:
    data = layout.read_blob(desc.digest)
    try:
        doc = json.loads(data)
    except ValueError:
        raise InputError(f"{reference}: manifest {desc.digest[:19]} is not JSON", hint="the image is damaged") from None
    media_type = doc.get("mediaType") or desc.media_type
    if media_type in INDEX_TYPES:
        children = [Descriptor.from_json(m) for m in doc.get("manifests") or [] if m.get("mediaType") in MANIFEST_TYPES]
        if platform:
            children = [c for c in children if c.platform is not None and str(c.platform) == platform]
        if len(children) != 1:
            plats = ", ".join(str(c.platform) for c in children if c.platform) or "none"
            raise InputError(
                f"{reference} is an index of {len(children)} images",
                hint=f"name one with --platform (platforms: {plats}) or by its digest",
            )
        return read_image(reference, layout, children[0], remote)
    if media_type not in MANIFEST_TYPES:
        raise InputError(
            f"{reference} is not an image (media type {media_type!r})",
            hint="give the reference of an image, not of an artifact",
        )
    config_desc = doc.get("config") or {}
    try:
        config = json.loads(layout.read_blob(str(config_desc.get("digest", ""))))
    except ValueError:
        raise InputError(f"{reference}: its config is not JSON", hint="the image is damaged") from None
    return OpenedImage(
        reference,
        layout,
        Descriptor(media_type, desc.digest, desc.size, desc.annotations, desc.platform),
        doc,
        config,
        remote,
    )


def only_image(layout: Layout, path: Path) -> Descriptor:
    """The layout's one image (however many tags name it; referrers are not images), else InputError."""
    manifests = layout.manifests()
    referrers = {d.digest for d in manifests if _is_referrer(layout, d)}
    images = list({d.digest: d for d in manifests if d.digest not in referrers}.values())
    if len(images) == 1:
        return images[0]
    tags = sorted({t for d in manifests if (t := (d.annotations or {}).get("org.opencontainers.image.ref.name"))})
    raise InputError(
        f"{path} holds {len(images)} images ({len(tags)} tag{'s' if len(tags) != 1 else ''}, "
        f"{len(referrers)} referrer{'s' if len(referrers) != 1 else ''}); name one with :TAG or @DIGEST",
        hint=f"tags here: {', '.join(tags) or 'none'}",
    )


def open_layout_image(text: str, platform: str | None = None) -> OpenedImage:
    ref = parse_layout_ref(text)
    layout = Layout.open(ref.path)
    if ref.digest:
        found = [d for d in layout.manifests() if d.digest == ref.digest]
        if found:
            desc = found[0]
        elif layout.blob_path(ref.digest).is_file():
            data = layout.read_blob(ref.digest)
            desc = Descriptor(json.loads(data).get("mediaType", ""), ref.digest, len(data))
        else:
            raise InputError(f"{ref.digest} is not in {ref.path}", hint="check the digest, or name a tag")
    elif ref.tag is None:
        desc = only_image(layout, ref.path)
    else:
        desc = layout.resolve(ref.tag)
    return read_image(text, layout, desc, None, platform)


def _is_referrer(layout: Layout, desc: Descriptor) -> bool:
    try:
        return "subject" in json.loads(layout.read_blob(desc.digest))  # bounded (limits.py), checked
    except (InputError, OSError, ValueError, TypeError):
        return False


@contextmanager
def open_image(
    text: str, registry_options: Callable[[], RegistryOptions] | None = None, platform: str | None = None
) -> Iterator[OpenedImage]:
    """An image from `oci:...` or a registry; a pulled one lives in a temporary layout until the block ends."""
    if text.startswith("oci:"):
        yield open_layout_image(text, platform)
        return
    from ocibake.registry.pull import pull
    from ocibake.registry.reference import parse_reference

    options = registry_options() if registry_options is not None else None
    try:
        ref = parse_reference(text, options.environ if options is not None else None)
    except InputError as exc:
        local = re.split(r"[:@]", text, maxsplit=1)[0]
        if local and Path(local).exists():
            raise InputError(
                exc.message, hint=f"{local} exists here: for an OCI layout on disk write oci:{text}"
            ) from None
        raise
    tmp = Path(tempfile.mkdtemp(prefix="ocibake-inspect-"))
    try:
        result = pull(text, tmp / "layout", platform, options)
        layout = Layout.open(tmp / "layout")
        desc = next((d for d in layout.manifests() if d.digest == result.digest), None) or layout.resolve(None)
        yield read_image(text, layout, desc, ref.name, platform)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
