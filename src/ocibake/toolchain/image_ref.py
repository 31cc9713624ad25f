"""Which toolchain image `--toolchain` names, resolved to a manifest digest for this host's platform.

``oci:DIR[:TAG]`` or ``oci:DIR@sha256:...`` is an image in an OCI layout on disk; ``REGISTRY/REPO[:TAG][@sha256:...]``
one in a registry, pulled for this host's platform into CACHE/pulled (every digest verified). A reference pinned by
digest that is already there is used with no registry at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.errors import InputError, RegistryError
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, REF_NAME
from ocibake.oci.names import refuse_credentials
from ocibake.oci.platform import host_architecture
from ocibake.toolchain import offline
from ocibake.toolchain.cache import private_mkdir
from ocibake.toolchain.layer_stream import LayerSource

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

REF_HINT = (
    "use --toolchain local, oci:DIR[:TAG] for an OCI image layout on disk (e.g. made with "
    "`skopeo copy docker://golang:1.21-alpine oci:toolchains/go1.21:latest`), or a registry reference such as "
    "registry.example/golang:1.21-alpine@sha256:..."
)


@dataclass(frozen=True)
class ToolchainRef:
    kind: str  # "local" | "oci" | "registry"
    text: str  # as given
    path: str = ""  # oci: the layout directory
    tag: str | None = None  # oci: the tag, if any
    digest: str | None = None  # oci: a pinned manifest digest, if any


def parse_toolchain_ref(text: str | None) -> ToolchainRef:
    """``local`` (or None), ``oci:DIR[:TAG]``, ``oci:DIR@sha256:HEX`` or a registry reference; anything else is an
    InputError."""
    if text is None or text.strip() == "local":
        return ToolchainRef("local", "local")
    text = text.strip()
    if not text:
        raise InputError("--toolchain is empty (an unset variable?)", hint=REF_HINT)
    if not text.startswith("oci:"):
        refuse_credentials(text, "--toolchain")
    if "://" in text:
        raise InputError(f"unknown toolchain reference {text!r}: give a reference, not a URL", hint=REF_HINT)
    if text.startswith("oci:"):
        rest = text[4:]
        digest = None
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            if not digest.startswith("sha256:") or len(digest) != 71:
                raise InputError(
                    f"toolchain reference {text!r} has an invalid digest", hint="digests look like sha256:<64 hex>"
                )
        tag = None
        head, sep, tail = rest.rpartition(":")
        if sep and head and "/" not in tail:
            rest, tag = head, tail
        if not rest:
            raise InputError(f"toolchain reference {text!r} names no directory", hint=REF_HINT)
        return ToolchainRef("oci", text, path=rest, tag=tag, digest=digest)
    first = text.split("/", 1)[0]
    if ("/" in text and ("." in first or ":" in first or first == "localhost")) or "@sha256:" in text:
        return ToolchainRef("registry", text)
    raise InputError(f"unknown toolchain reference {text!r}", hint=REF_HINT)


@dataclass(frozen=True)
class ResolvedImage:
    digest: str  # the manifest digest: what --toolchain is pinned to
    config: dict[str, Any]  # the image's config document
    layers: tuple[LayerSource, ...]


def _host_platform() -> tuple[str, str]:
    return "linux", host_architecture()


def resolve_layout(ref: ToolchainRef) -> ResolvedImage:
    """The manifest, config and layer blobs of an image in an OCI layout (an index picks this host's platform)."""
    root = Path(ref.path)
    if not root.exists():
        raise InputError(f"unknown toolchain reference {ref.text!r}: {root} does not exist", hint=REF_HINT)
    layout = Layout.open(root)
    if ref.digest:
        matches = [d for d in layout.manifests() if d.digest == ref.digest]
        if ref.tag:
            matches = [d for d in matches if d.annotations.get(REF_NAME) == ref.tag]
        if not matches:
            raise InputError(
                f"toolchain {ref.text!r}: {ref.digest} is not in {root}",
                hint="the layout holds a different image than the one pinned; re-copy the pinned one",
            )
        desc = matches[0]
    else:
        desc = layout.resolve(ref.tag)
    media_type, digest = desc.media_type, desc.digest
    doc = json.loads(layout.read_blob(digest))
    if media_type in INDEX_TYPES or doc.get("manifests"):
        want = _host_platform()
        picks = [
            m
            for m in doc.get("manifests", [])
            if (m.get("platform", {}).get("os"), m.get("platform", {}).get("architecture")) == want
        ]
        if not picks:
            raise InputError(
                f"toolchain {ref.text!r} has no image for {want[0]}/{want[1]}",
                hint="use a toolchain image built for this host's platform (it cross-compiles anyway)",
            )
        media_type, digest = picks[0]["mediaType"], picks[0]["digest"]
        doc = json.loads(layout.read_blob(digest))
    if media_type not in MANIFEST_TYPES:
        raise InputError(f"toolchain {ref.text!r} is a {media_type}, not an image manifest", hint=REF_HINT)
    config = json.loads(layout.read_blob(doc["config"]["digest"]))
    want = _host_platform()
    have = (config.get("os", ""), config.get("architecture", ""))
    if have != want:
        raise InputError(
            f"toolchain {ref.text!r} is a {have[0]}/{have[1]} image; this host runs {want[0]}/{want[1]}",
            hint="use a toolchain image for this host's platform (go cross-compiles to any --platform)",
        )
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    layer_descs = doc.get("layers", [])
    if len(diff_ids) != len(layer_descs):
        raise InputError(
            f"toolchain {ref.text!r}: the config lists {len(diff_ids)} layers, the manifest {len(layer_descs)}",
            hint="the image is damaged; re-copy it",
        )
    layers = tuple(
        LayerSource(layout.blob_path(layer["digest"]), layer["mediaType"], layer["digest"], diff_id)
        for layer, diff_id in zip(layer_descs, diff_ids, strict=True)
    )
    return ResolvedImage(digest=digest, config=config, layers=layers)


def _pinned_in_cache(layout_dir: Path, digest: str) -> str | None:
    """The manifest digest for this host of a pinned reference already pulled into ``layout_dir``, or None.

    A reference pinned by digest names fixed content, so once it has been pulled (and verified) the registry is not
    asked again: builds work air-gapped from then on."""
    if not (layout_dir / "index.json").is_file():
        return None
    layout = Layout.open(layout_dir)
    path = layout.blob_path(digest)
    if not path.is_file():
        return None
    doc = json.loads(layout.read_blob(digest))
    if doc.get("manifests") is not None:
        want = _host_platform()
        picks = [
            m["digest"]
            for m in doc["manifests"]
            if (m.get("platform", {}).get("os"), m.get("platform", {}).get("architecture")) == want
        ]
        digest = picks[0] if picks else ""
    listed = {d.digest for d in layout.manifests()}
    return digest if digest in listed else None


def resolve_registry(ref: ToolchainRef, cache: Path, options: RegistryOptions | None = None) -> ResolvedImage:
    """Pull the image for this host's platform into CACHE/pulled (an OCI layout; every digest verified), then read it
    from there. A reference pinned by digest that is already there is not pulled again."""
    from ocibake.registry.pull import pull
    from ocibake.registry.reference import parse_reference

    parsed = parse_reference(ref.text)
    bundle = offline.offline_dir()
    if bundle is not None:  # offline: the image the bundle pinned, from the bundle's images
        images = bundle / "images"
        pinned = parsed.digest or offline.pinned_image(bundle, str(parsed.with_tag(parsed.tag)))
        found = _pinned_in_cache(images, pinned) if pinned else None
        if found is None:
            raise offline.missing(bundle, f"toolchain image {ref.text}", f"--toolchain {ref.text}")
        return resolve_layout(ToolchainRef("oci", f"oci:{images}@{found}", path=str(images), digest=found))
    dest = cache / "pulled"
    digest = _pinned_in_cache(dest, parsed.digest) if parsed.digest else None
    if digest is None:
        private_mkdir(dest.parent)
        os_name, arch = _host_platform()
        try:
            result = pull(ref.text, dest, f"{os_name}/{arch}", options)
        except RegistryError as exc:
            if not parsed.digest:
                exc.hint = (
                    f"{exc.hint + '; ' if exc.hint else ''}a toolchain pinned by digest (REF@sha256:...) is "
                    "taken from the cache once pulled, with no registry"
                )
            raise
        digest = result.digest
    return resolve_layout(ToolchainRef("oci", f"oci:{dest}@{digest}", path=str(dest), digest=digest))
