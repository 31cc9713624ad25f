"""Open an image for reading, wherever it is: an OCI layout (`oci:DIR[:TAG|@DIGEST]`) or a registry reference (pulled,
every digest verified, into a private temporary layout that is removed when the image is closed)."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.errors import InputError, RegistryError
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, REF_NAME
from ocibake.oci.names import DIGEST_RE
from ocibake.oci.platform import Platform
from ocibake.oci.verified import DamagedImageError, read_document, read_index, verified_image, verify_tree

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
    blobs_checked: int = 0  # index, manifest, config and layers checked by the verified reader

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


def _check_platform(reference: str, config: dict[str, Any], platform: str | None) -> None:
    """--platform on a single image must be the image's own platform (as pull checks), never silently ignored."""
    if not platform:
        return
    own = "/".join(str(config.get(k)) for k in ("os", "architecture", "variant") if config.get(k))
    try:
        wanted = str(Platform.parse(platform))
    except ValueError as exc:
        raise InputError(str(exc), hint="for example --platform linux/arm64") from None
    if wanted != own:
        raise InputError(
            f"{reference} is a {own} image, not {wanted}", hint=f"leave out --platform, or name a {wanted} image"
        )


def read_image(
    reference: str, layout: Layout, desc: Descriptor, remote: str | None = None, platform: str | None = None
) -> OpenedImage:
    """The image ``desc`` names (an index: its one image, or the one for ``platform``), read through the verified
    reader: every blob checked against its digest and size, every layer against its diff_id."""
    doc = _verified_doc(reference, layout, desc)
    media_type = doc.get("mediaType") or desc.media_type
    if media_type in INDEX_TYPES:
        images = [c for c in read_index(layout, desc, reference) if c.media_type in MANIFEST_TYPES]
        children = [c for c in images if c.platform is not None and str(c.platform) == platform] if platform else images
        if len(children) != 1:
            plats = ", ".join(str(c.platform) for c in images if c.platform) or "none"
            raise InputError(
                f"{reference} has no {platform} image"
                if platform
                else f"{reference} is an index of {len(images)} images",
                hint=f"name one with --platform (platforms: {plats}) or by its digest",
            )
        image = read_image(reference, layout, children[0], remote)
        return replace(image, blobs_checked=image.blobs_checked + 1)
    if media_type not in MANIFEST_TYPES:
        raise InputError(
            f"{reference} is not an image (media type {media_type!r})",
            hint="give the reference of an image, not of an artifact",
        )
    checked = verified_image(layout, Descriptor(media_type, desc.digest, desc.size, {}, desc.platform), reference)
    _check_platform(reference, checked.config, platform)
    return OpenedImage(
        reference,
        layout,
        Descriptor(media_type, desc.digest, desc.size, desc.annotations, desc.platform),
        checked.manifest,
        checked.config,
        remote,
        checked.blobs,
    )


def _verified_doc(reference: str, layout: Layout, desc: Descriptor) -> dict[str, Any]:
    data = read_document(layout, desc, f"{reference}: manifest")
    try:
        doc = json.loads(data)
    except ValueError:
        raise DamagedImageError(f"{reference}: manifest {desc.digest} is not JSON") from None
    if not isinstance(doc, dict):
        raise DamagedImageError(f"{reference}: manifest {desc.digest} is not a JSON object")
    return doc


def only_image(layout: Layout, path: Path) -> Descriptor:
    """The layout's one image (however many tags name it; referrers are not images), else InputError."""
    from ocibake.audit.layout_signatures import is_artifact_tag

    manifests = [d for d in layout.manifests() if not is_artifact_tag(d.annotations.get(REF_NAME, ""))]
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


def layout_descriptor(text: str) -> tuple[Layout, Descriptor]:
    """The layout and the manifest or index descriptor `oci:DIR[:TAG|@DIGEST]` names (nothing read but index.json
    and, for a digest index.json does not list, that one document, checked against the digest)."""
    ref = parse_layout_ref(text)
    layout = Layout.open(ref.path)
    if ref.digest:
        found = [d for d in layout.manifests() if d.digest == ref.digest]
        if found:
            return layout, found[0]
        if layout.blob_path(ref.digest).is_file():
            data = layout.read_blob(ref.digest)
            try:
                media_type = str(json.loads(data).get("mediaType", ""))
            except (ValueError, AttributeError):
                raise DamagedImageError(f"{text}: {ref.digest} is not a JSON manifest or index") from None
            return layout, Descriptor(media_type, ref.digest, len(data))
        raise InputError(f"{ref.digest} is not in {ref.path}", hint="check the digest, or name a tag")
    if ref.tag is None:
        return layout, only_image(layout, ref.path)
    return layout, layout.resolve(ref.tag)


def open_layout_image(text: str, platform: str | None = None) -> OpenedImage:
    layout, desc = layout_descriptor(text)
    return read_image(text, layout, desc, None, platform)


def _is_referrer(layout: Layout, desc: Descriptor) -> bool:
    try:
        return "subject" in json.loads(layout.read_blob(desc.digest))  # bounded (limits.py), checked
    except (InputError, OSError, ValueError, TypeError):
        return False


@contextmanager
def located(
    text: str, registry_options: Callable[[], RegistryOptions] | None = None, platform: str | None = None
) -> Iterator[tuple[Layout, Descriptor, str | None]]:
    """(layout, descriptor, REGISTRY/REPO or None) for `oci:...` or a registry reference. A registry image is pulled
    (every download checked as it streams) into a temporary layout that lives until the block ends; a blob the
    registry serves with other bytes is a DamagedImageError, as in a layout."""
    if text.startswith("oci:"):
        layout, desc = layout_descriptor(text)
        yield layout, desc, None
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
        try:
            result = pull(text, tmp / "layout", platform, options)
        except RegistryError as exc:
            if exc.code != "DIGEST_INVALID":
                raise
            raise DamagedImageError(f"{text}: {exc.message}") from None
        layout = Layout.open(tmp / "layout")
        desc = next((d for d in layout.manifests() if d.digest == result.digest), None) or layout.resolve(None)
        yield layout, desc, ref.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def open_image(
    text: str, registry_options: Callable[[], RegistryOptions] | None = None, platform: str | None = None
) -> Iterator[OpenedImage]:
    """An image from `oci:...` or a registry, read through the verified reader (see read_image)."""
    with located(text, registry_options, platform) as (layout, desc, remote):
        yield read_image(text, layout, desc, remote, platform)


@contextmanager
def open_verified(
    text: str, registry_options: Callable[[], RegistryOptions] | None = None
) -> Iterator[tuple[Layout, Descriptor, str | None, int]]:
    """What REF names, an index or an image, with every blob under it checked (verify_tree) -> (layout,
    descriptor, REGISTRY/REPO or None, blobs checked). For commands that act on the whole of it: sign, verify."""
    with located(text, registry_options) as (layout, desc, remote):
        yield layout, desc, remote, verify_tree(layout, desc, text)
