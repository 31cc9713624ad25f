"""Pull an image or an index from a registry into an OCI layout, verifying every digest it downloads; the layout is
written atomically (publish.layout.LayoutWriter)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from ocibake.errors import InputError, RegistryError
from ocibake.oci import json_doc
from ocibake.oci.image import Blob, Descriptor
from ocibake.oci.layout import Layout, LayoutWriter, check_output_path
from ocibake.oci.layout_check import blob_is_regular
from ocibake.oci.limits import too_large
from ocibake.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, MANIFEST_TYPES
from ocibake.oci.names import DIGEST_RE
from ocibake.oci.platform import Platform
from ocibake.oci.tag_moves import TITLE, VERSION, refuse_unsafe_moves
from ocibake.registry.client import Client, Clients
from ocibake.registry.manifests import MAX_CONFIG, get_blob, get_config, get_manifest
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress, human_size
from ocibake.registry.reference import Reference, parse_reference
from ocibake.registry.retry import backoff_delay, connection_reason


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    layout: Path
    tag: str | None
    downloaded: int
    skipped: int
    bytes_downloaded: int
    seconds: float

    def line(self) -> str:
        return f"{self.reference}@{self.digest}"

    def as_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "layout": str(self.layout),
            "tag": self.tag,
            "blobs": {"downloaded": self.downloaded, "skipped": self.skipped},
            "bytes_downloaded": self.bytes_downloaded,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        return (
            f"pulled {self.reference}@{self.digest} into {self.layout}: {self.downloaded} blob(s) downloaded "
            f"({human_size(self.bytes_downloaded)}), {self.skipped} already there, in {self.seconds:.2f}s"
        )


DOCKER_TYPES = {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}


def _config_platform(writer: LayoutWriter, manifest: bytes) -> Platform | None:
    """The platform a single image's config names, for its entry in index.json (as build writes it)."""
    try:
        config = json_doc.loads(manifest)["config"]["digest"]
        path = writer.blob_file(config)
        if path.stat().st_size > MAX_CONFIG:
            return None
        doc = json_doc.loads(path.read_bytes())
        plat = Platform(doc["os"], doc["architecture"], doc.get("variant", "") or "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not an image config (an artifact): index.json simply names no platform
    return plat if plat.os and plat.architecture else None


def _require_platform(client: Client, repo: str, ref: Reference, manifest: dict[str, Any], want: Platform) -> None:
    """--platform with a single image (no index): its config must say that platform."""
    config = manifest.get("config") or {}
    digest = str(config.get("digest", ""))
    if not DIGEST_RE.match(digest):
        raise RegistryError(f"registry {client.registry}: manifest names a bad config digest", code="MANIFEST_INVALID")
    data = get_config(client, repo, digest)
    try:
        doc = json_doc.loads(data)
        have = Platform(doc.get("os", ""), doc.get("architecture", ""), doc.get("variant", "") or "")
    except (ValueError, AttributeError):
        raise RegistryError(
            f"registry {client.registry}: the config of {ref} is not JSON", code="MANIFEST_INVALID"
        ) from None
    if not _platform_matches({"platform": have.as_json()}, want):
        raise InputError(
            f"{ref} is a single {have} image, not {want}; nothing was written",
            hint=f"drop --platform, or ask for --platform {have}",
        )


def _platform_matches(desc: Mapping[str, Any], want: Platform) -> bool:
    p = desc.get("platform") or {}
    return (
        p.get("os") == want.os
        and p.get("architecture") == want.architecture
        and (not want.variant or p.get("variant", "") == want.variant)
    )


def _config_labels(writer: LayoutWriter, manifest: bytes) -> dict[str, Any]:
    """The labels of a single image's config (staged or in the layout); {} when there are none or no config."""
    try:
        path = writer.blob_file(json_doc.loads(manifest)["config"]["digest"])
        if path.stat().st_size > MAX_CONFIG:
            return {}
        labels = (json_doc.loads(path.read_bytes()).get("config") or {}).get("Labels") or {}
        return labels if isinstance(labels, dict) else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def pull(
    reference: str,
    dest: Path | str,
    platform: str | None = None,
    options: RegistryOptions | None = None,
    force_tags: bool = False,
) -> PullResult:
    """Pull REF into the OCI layout DIR (created or added to, atomically). Every digest is verified.

    Three stages: resolve (the manifests, verified, and the blobs they name), fetch (the blobs not in the layout
    yet, staged), commit (everything moves into the layout and the tag points at the image, at once)."""
    opts = options or RegistryOptions()
    started = time.monotonic()
    ref = parse_reference(reference, opts.environ)
    dest = Path(dest)
    check_output_path(dest, flag="DIR")
    want = _wanted_platform(platform)
    existing = Layout.open(dest) if (dest / "oci-layout").is_file() else None
    clients = Clients(opts)
    client = clients.get(ref.registry)
    progress = Progress(opts)
    try:
        image = _resolve(client, ref, want, opts)
        if existing is not None:  # a blob there that is a symlink (or not a file) is refused before any download
            for digest in image.blobs:
                blob_is_regular(dest, existing.blob_path(digest))
        with LayoutWriter(dest, log=opts.log) as writer:
            fetch = _BlobFetch(client, ref.repository, opts, progress, writer, existing, dest)
            downloaded, skipped, received = _fetch_blobs(fetch, image.blobs)
            _commit(writer, ref, image, force_tags)
    finally:
        progress.close()
        clients.close()
    return PullResult(
        str(ref.with_tag(ref.tag)) if not ref.digest else ref.name,
        image.top.digest,
        dest,
        ref.tag,
        downloaded,
        skipped,
        received,
        time.monotonic() - started,
    )


def _wanted_platform(platform: str | None) -> Platform | None:
    if not platform:
        return None
    try:
        return Platform.parse(platform)
    except ValueError as exc:
        raise InputError(str(exc), hint="for example --platform linux/arm64") from None


# --------------------------------------------------------------------------------------------------- resolve
_Doc = tuple[str, bytes, str]  # a manifest or index: (media type, bytes, digest)


@dataclass(frozen=True)
class _Image:
    """What a reference resolved to: the manifest or index the tag points at (``top``, its bytes ``data``), every
    manifest and index to store (``docs``, with the index a --platform image was picked from), and every blob they
    name (digest -> size)."""

    top: Descriptor
    data: bytes
    docs: list[_Doc]
    blobs: dict[str, int]


def _resolve(client: Client, ref: Reference, want: Platform | None, opts: RegistryOptions) -> _Image:
    docs: list[_Doc] = []
    top, data = _pick(client, ref, want, docs)
    if top.media_type in DOCKER_TYPES:
        opts.log(
            f"note: {ref} is a Docker-format image, stored as it is (its digest kept); skopeo 1.9 and umoci "
            "0.4 read only OCI manifests from a layout"
        )
    blobs = _walk(client, ref.repository, (top.media_type, data, top.digest), docs)
    return _Image(top, data, docs, blobs)


def _pick(client: Client, ref: Reference, want: Platform | None, docs: list[_Doc]) -> tuple[Descriptor, bytes]:
    """The manifest or index REF names; with --platform, the image of that platform (its index kept in ``docs``)."""
    repo = ref.repository
    data, mt, digest = get_manifest(client, repo, ref.digest or ref.tag or "latest", ref.digest)
    if mt in INDEX_TYPES and want is not None:
        child = _child_for(ref, json_doc.loads(data).get("manifests") or [], want)
        # The index itself is kept as a blob (not in index.json), so a reference pinned to the index's digest
        # can later be resolved from the layout without the registry.
        docs.append((mt, data, digest))
        data, mt, digest = get_manifest(client, repo, child.digest, child.digest)
        return Descriptor(mt, digest, len(data), {}, child.platform), data
    if mt in MANIFEST_TYPES and want is not None:
        _require_platform(client, repo, ref, json_doc.loads(data), want)
    return Descriptor(mt, digest, len(data)), data


def _child_for(ref: Reference, children: list[dict[str, Any]], want: Platform) -> Descriptor:
    """The first image of an index's ``children`` for platform ``want``."""
    match = [c for c in children if _platform_matches(c, want)]
    if not match:
        have = (
            ", ".join(
                str(Platform(**{k: c.get("platform", {}).get(k, "") for k in ("os", "architecture", "variant")}))
                for c in children
                if c.get("platform")
            )
            or "none"
        )
        raise InputError(f"{ref} has no image for {want}", hint=f"platforms in it: {have}")
    return Descriptor.from_json(match[0])


def _walk(client: Client, repo: str, first: _Doc, docs: list[_Doc]) -> dict[str, int]:
    """``first`` and every manifest and index under it (fetched and verified), added to ``docs`` -> the blobs they
    name (digest -> size)."""
    blobs: dict[str, int] = {}
    stack = [first]
    while stack:
        mt, data, digest = stack.pop()
        docs.append((mt, data, digest))
        doc = json_doc.loads(data)
        if mt in INDEX_TYPES:
            for child in doc.get("manifests") or []:
                if child.get("mediaType") not in MANIFEST_TYPES + INDEX_TYPES:
                    continue
                cdata, cmt, cdigest = get_manifest(client, repo, child["digest"], child["digest"])
                stack.append((cmt, cdata, cdigest))
        else:
            for d in [doc.get("config"), *list(doc.get("layers") or [])]:
                if d:
                    if not DIGEST_RE.match(str(d.get("digest"))):
                        raise RegistryError(
                            f"registry {client.registry}: manifest names a bad digest", code="MANIFEST_INVALID"
                        )
                    blobs[d["digest"]] = int(d["size"])
            _check_config_size(client, doc.get("config"))
    return blobs


def _check_config_size(client: Client, config: Any) -> None:
    """A config over the limit every reader applies (4 MiB) is refused before anything is downloaded."""
    size = config.get("size") if isinstance(config, dict) else None
    if isinstance(size, int) and size > MAX_CONFIG:
        what = f"config {config.get('digest')}"
        raise RegistryError(
            f"registry {client.registry}: {too_large(what, size, MAX_CONFIG)}",
            code="SIZE_INVALID",
            hint="skopeo and every runtime refuse such an image; nothing was written",
        )


# --------------------------------------------------------------------------------------------------- fetch
@dataclass(frozen=True)
class _BlobFetch:
    """Where blobs come from (``client``, ``repo``) and go (``writer`` stages them for ``dest``)."""

    client: Client
    repo: str
    opts: RegistryOptions
    progress: Progress
    writer: LayoutWriter
    existing: Layout | None
    dest: Path


def _fetch_blobs(fetch: _BlobFetch, blobs: dict[str, int]) -> tuple[int, int, int]:
    """Every blob, in parallel, biggest first -> (downloaded, already in the layout, bytes downloaded)."""
    counts = {"downloaded": 0, "skipped": 0}
    received = 0
    with ThreadPoolExecutor(max_workers=max(1, fetch.opts.jobs)) as pool:
        for kind, n in pool.map(lambda item: _fetch_blob(fetch, *item), sorted(blobs.items(), key=lambda kv: -kv[1])):
            counts[kind] += 1
            received += n
    return counts["downloaded"], counts["skipped"], received


def _fetch_blob(fetch: _BlobFetch, digest: str, size: int) -> tuple[str, int]:
    """-> ("skipped"|"downloaded", bytes downloaded)."""
    existing = fetch.existing
    # a kept blob is staged as a hard link: safe from a concurrent writer's cleanup until the commit
    if existing is not None and existing.has_intact_blob(digest, size) and fetch.writer.keep_blob(digest):
        fetch.progress.done(f"  {digest[:19]}  {human_size(size):>10}  already in the layout", digest)
        return "skipped", 0
    if existing is not None and existing.blob_path(digest).exists():
        fetch.opts.log(f"note: blob {digest[:19]} in {fetch.dest} does not match its digest; downloading it again")
    target = fetch.writer.scratch_file("blob-")
    bar = fetch.progress.bar(digest, size)
    n = _download(fetch, digest, size, target, bar)
    fetch.writer.add_blob_file(target, digest)
    fetch.progress.done(f"  {digest[:19]}  {human_size(size):>10}  downloaded", digest)
    return "downloaded", n


def _download(fetch: _BlobFetch, digest: str, size: int, target: Path, bar: Callable[[int], None]) -> int:
    """GET the blob into ``target``, again from the start after a lost connection (within the retry budget) -> its
    size, once its digest and size are checked."""
    client = fetch.client
    what = f"GET blob {digest[:19]}"
    for attempt in range(fetch.opts.retries + 1):
        resp = get_blob(client, fetch.repo, digest, what)
        try:
            got, n = _save_body(client, resp, target, size, bar)
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if attempt >= fetch.opts.retries:
                why = client.watchdog.current_failure(client.registry)
                raise RegistryError(
                    f"registry {client.registry}: {what} failed: connection error ({why or connection_reason(exc)})",
                    hint="run the same command again",
                ) from None
            client.pause(backoff_delay(fetch.opts, attempt, None))
            continue
        finally:
            resp.close()
        if got != digest or n != size:
            raise RegistryError(
                f"registry {client.registry}: blob {digest} arrived as {got} ({n} of {size} bytes)",
                code="DIGEST_INVALID",
                hint="the registry (or a proxy) served other bytes; nothing was written",
            )
        return n
    raise AssertionError("unreachable")


def _save_body(
    client: Client, resp: requests.Response, target: Path, size: int, bar: Callable[[int], None]
) -> tuple[str, int]:
    """The streamed body into ``target`` (no further than one chunk past ``size``) -> (its digest, its length).
    A body the watchdog cut short raises ConnectionError, as a dropped connection does."""
    h = hashlib.sha256()
    n = 0
    with open(target, "wb") as f:
        for chunk in resp.iter_content(64 << 10):
            client.touch()
            h.update(chunk)
            f.write(chunk)
            n += len(chunk)
            bar(len(chunk))
            if n > size:
                break
    why = client.watchdog.current_failure(client.registry)
    if why is not None:  # the body was cut short by the stall watchdog
        raise requests.exceptions.ConnectionError(why)
    return "sha256:" + h.hexdigest(), n


# --------------------------------------------------------------------------------------------------- commit
def _commit(writer: LayoutWriter, ref: Reference, image: _Image, force_tags: bool) -> None:
    """The manifests and indexes join the staged blobs; REF's tag (none when pulled by digest alone) points at the
    image. An image that names itself (a title label) may not take a tag from an image of another name."""
    for mt, data, _digest in image.docs:
        writer.add_blob(Blob(mt, data))
    top = image.top
    if top.media_type in MANIFEST_TYPES and top.platform is None:
        top = Descriptor(top.media_type, top.digest, top.size, {}, _config_platform(writer, image.data))
    if not ref.tag and ref.digest:
        writer.commit([], [top])
        return
    tag = ref.tag or "latest"
    labels = _config_labels(writer, image.data) if top.media_type in MANIFEST_TYPES else {}
    name = labels.get(TITLE)

    def check(layout: Layout) -> None:
        if isinstance(name, str):  # an image that names itself: its tag may not move across names
            refuse_unsafe_moves(layout, [tag], top.digest, name, str(labels.get(VERSION) or ""), force_tags)

    writer.commit([(tag, top)], check=check)
