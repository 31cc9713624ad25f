"""Registry base images, pulled once into ocibake's content-addressed cache (CACHE/bases, an OCI layout).

A reference is first resolved to a digest (one verified GET; a pinned REF@sha256:... needs none), then the blobs the
platform needs are read from the cache when all are there, else pulled by digest (every digest verified, the same
credentials, TLS and retry rules as `ocibake pull`). So a base pinned by digest builds with no registry at all once it
has been pulled, and a tag is looked up each time but its layers are downloaded once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ocibake.builder.base_image import BaseImage, BaseRef, image_from_layout
from ocibake.errors import InputError, RegistryError
from ocibake.oci.layout import Layout
from ocibake.oci.platform import Platform
from ocibake.toolchain import offline
from ocibake.toolchain.cache import cache_home, private_cache, private_mkdir

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions
    from ocibake.registry.reference import Reference

_PULL_LOCK = threading.Lock()


def base_reference(text: str) -> Reference:
    """The registry reference of a base; a bare name (alpine:3.20) is under $OCIBAKE_REGISTRY, else Docker Hub."""
    from ocibake.registry.reference import parse_reference

    environ = dict(os.environ)
    if not environ.get("OCIBAKE_REGISTRY", "").strip():
        environ["OCIBAKE_REGISTRY"] = "docker.io"
    return parse_reference(text, environ)


def _from_cache(store: Path, digest: str, name: str, platform: Platform, what: str) -> BaseImage | None:
    """The image if every blob it needs is in the cache (sizes checked here, bytes when the layers are read)."""
    if not (store / "index.json").is_file():
        return None
    layout = Layout.open(store)
    if not layout.blob_path(digest).is_file():
        return None
    try:
        image = image_from_layout(layout, digest, name, platform, what)
    except InputError:
        return None  # something is missing or damaged: pull it again
    if any(not layer.path.is_file() or layer.path.stat().st_size != layer.size for layer in image.layers):
        return None
    return image


def _from_bundle(bundle: Path, parsed: Reference, name: str, platform: Platform, what: str) -> BaseImage:
    """Offline: the base as the bundle pinned it (its digest, or the one given), read from the bundle's images."""
    digest = parsed.digest or offline.pinned_image(bundle, name)
    image = _from_cache(bundle / "images", digest, name, platform, what) if digest else None
    if image is None:
        raise offline.missing(
            bundle,
            f"base image {name}{'@' + digest if digest else ''} for {platform}",
            f"--base {what} --platform {platform}",
        )
    return image


def resolve_registry_base(
    ref: BaseRef,
    platform: Platform,
    options_factory: Callable[[], RegistryOptions],
    cache: Path | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> BaseImage:
    from ocibake.registry.pull import pull
    from ocibake.registry.resolve import resolve_digest

    parsed = base_reference(ref.text)
    name = str(parsed.with_tag(parsed.tag))
    bundle = offline.offline_dir()
    if bundle is not None:
        return _from_bundle(bundle, parsed, name, platform, ref.text)
    root = private_cache(cache or cache_home())
    store = root / "bases"
    digest = parsed.digest
    options = None
    try:
        if digest is None:
            options = options_factory()
            digest = resolve_digest(parsed, options)
        # one pull at a time into the cache (the platforms of one run resolve their bases in parallel)
        with _PULL_LOCK:
            image = _from_cache(store, digest, name, platform, ref.text)
            if image is not None:
                return image
            options = options or options_factory()
            private_mkdir(store.parent)
            log(f"pulling base {name}@{digest} for {platform} into the cache")
            pull(f"{parsed.name}@{digest}", store, str(platform), options)
    except RegistryError as exc:
        if not parsed.digest:
            exc.hint = (
                f"{exc.hint + '; ' if exc.hint else ''}a base pinned by digest (REF@sha256:...) is taken from "
                "the cache once pulled, with no registry"
            )
        raise
    image = _from_cache(store, digest, name, platform, ref.text)
    if image is None:
        # the pull succeeded, so what is missing is this platform: let the layout reader say so
        return image_from_layout(Layout.open(store), digest, name, platform, ref.text)
    return image
