"""Pull an image or an index from a registry into an OCI layout, verifying every digest it downloads; the layout is
written atomically (publish.layout.LayoutWriter)."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

from ocibake.errors import InputError, RegistryError
from ocibake.oci.image import Blob, Descriptor
from ocibake.oci.layout import Layout, LayoutWriter, check_output_path
from ocibake.oci.layout_check import blob_is_regular
from ocibake.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, INDEX_TYPES, MANIFEST_TYPES
from ocibake.oci.names import DIGEST_RE
from ocibake.oci.platform import Platform
from ocibake.oci.tag_moves import TITLE, VERSION, refuse_unsafe_moves
from ocibake.registry.client import ACCEPT, Client, Clients
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress, human_size
from ocibake.registry.reference import parse_reference

MAX_MANIFEST = 4 << 20


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

    def as_json(self) -> dict:
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


def _get_manifest(client: Client, repo: str, ref: str, expect: str | None) -> tuple[bytes, str, str]:
    """-> (bytes, media type, digest), the digest checked against ``expect`` and Docker-Content-Digest."""
    what = f"GET manifest {ref if not ref.startswith('sha256:') else ref[:19]}"
    resp = client.request(
        "GET",
        f"/v2/{repo}/manifests/{ref}",
        scopes=(f"repository:{repo}:pull",),
        what=what,
        headers={"Accept": ACCEPT},
        repository=repo,
        stream=True,
    )
    if resp.status_code != 200:
        _ = resp.content  # read the error body before it is reported
        raise client.error(what, resp, repository=repo)
    data = client.read_body(resp, MAX_MANIFEST + 1)
    if len(data) > MAX_MANIFEST:
        raise RegistryError(f"registry {client.registry}: manifest {ref} is larger than 4 MiB", code="MANIFEST_INVALID")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    header = resp.headers.get("Docker-Content-Digest")
    if (expect and digest != expect) or (header and header.startswith("sha256:") and header != digest):
        raise RegistryError(
            f"registry {client.registry}: manifest {ref} has digest {digest}, expected {expect or header}",
            code="DIGEST_INVALID",
            hint="the registry (or a proxy) served other bytes than it announced; nothing was written",
        )
    mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        doc_mt = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        raise RegistryError(
            f"registry {client.registry}: manifest {ref} is not JSON", code="MANIFEST_INVALID"
        ) from None
    mt = doc_mt or mt
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        raise RegistryError(
            f"registry {client.registry}: {ref} has media type {mt!r}",
            code="UNSUPPORTED",
            hint="ocibake pulls OCI/Docker image manifests and indexes",
        )
    return data, mt, digest


DOCKER_TYPES = {DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}
MAX_CONFIG = 4 << 20


def _config_platform(writer: LayoutWriter, manifest: bytes) -> Platform | None:
    """The platform a single image's config names, for its entry in index.json (as build writes it)."""
    try:
        config = json.loads(manifest)["config"]["digest"]
        path = writer.blob_file(config)
        if path.stat().st_size > MAX_CONFIG:
            return None
        doc = json.loads(path.read_bytes())
        plat = Platform(doc["os"], doc["architecture"], doc.get("variant", "") or "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not an image config (an artifact): index.json simply names no platform
    return plat if plat.os and plat.architecture else None


def get_config(client: Client, repo: str, digest: str) -> bytes:
    """An image config's bytes, checked against ``digest``."""
    what = f"GET config {digest[:19]}"
    resp = client.request(
        "GET",
        f"/v2/{repo}/blobs/{digest}",
        scopes=(f"repository:{repo}:pull",),
        what=what,
        stream=True,
        repository=repo,
    )
    if resp.status_code != 200:
        _ = resp.content  # read the error body before it is reported
        raise client.error(what, resp, repository=repo)
    data = client.read_body(resp, MAX_CONFIG + 1)
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise RegistryError(
            f"registry {client.registry}: config {digest} arrived with another digest",
            code="DIGEST_INVALID",
            hint="the registry (or a proxy) served other bytes; nothing was written",
        )
    return data


def _require_platform(client: Client, repo: str, ref, manifest: dict, want: Platform) -> None:
    """--platform with a single image (no index): its config must say that platform."""
    config = manifest.get("config") or {}
    digest = str(config.get("digest", ""))
    if not DIGEST_RE.match(digest):
        raise RegistryError(f"registry {client.registry}: manifest names a bad config digest", code="MANIFEST_INVALID")
    data = get_config(client, repo, digest)
    try:
        doc = json.loads(data)
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


def _platform_matches(desc: dict, want: Platform) -> bool:
    p = desc.get("platform") or {}
    return (
        p.get("os") == want.os
        and p.get("architecture") == want.architecture
        and (not want.variant or p.get("variant", "") == want.variant)
    )


def _config_labels(writer: LayoutWriter, manifest: bytes) -> dict:
    """The labels of a single image's config (staged or in the layout); {} when there are none or no config."""
    try:
        path = writer.blob_file(json.loads(manifest)["config"]["digest"])
        if path.stat().st_size > MAX_CONFIG:
            return {}
        labels = (json.loads(path.read_bytes()).get("config") or {}).get("Labels") or {}
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
    """Pull REF into the OCI layout DIR (created or added to, atomically). Every digest is verified."""
    opts = options or RegistryOptions()
    started = time.monotonic()
    ref = parse_reference(reference, opts.environ)
    dest = Path(dest)
    check_output_path(dest, flag="DIR")
    want = None
    if platform:
        try:
            want = Platform.parse(platform)
        except ValueError as exc:
            raise InputError(str(exc), hint="for example --platform linux/arm64") from None
    existing = Layout.open(dest) if (dest / "oci-layout").is_file() else None
    clients = Clients(opts)
    client = clients.get(ref.registry)
    repo = ref.repository
    docs: list[tuple[str, bytes, str]] = []  # (media type, bytes, digest) of manifests/indexes to store
    blobs: dict[str, int] = {}
    progress = Progress(opts)
    try:
        data, mt, digest = _get_manifest(client, repo, ref.digest or ref.tag or "latest", ref.digest)
        top = Descriptor(mt, digest, len(data))
        if mt in INDEX_TYPES and want is not None:
            children = json.loads(data).get("manifests") or []
            match = [c for c in children if _platform_matches(c, want)]
            if not match:
                have = (
                    ", ".join(
                        str(
                            Platform(**{k: c.get("platform", {}).get(k, "") for k in ("os", "architecture", "variant")})
                        )
                        for c in children
                        if c.get("platform")
                    )
                    or "none"
                )
                raise InputError(f"{ref} has no image for {want}", hint=f"platforms in it: {have}")
            c = Descriptor.from_json(match[0])
            # The index itself is kept as a blob (not in index.json), so a reference pinned to the index's digest
            # can later be resolved from the layout without the registry.
            docs.append((mt, data, digest))
            data, mt, digest = _get_manifest(client, repo, c.digest, c.digest)
            top = Descriptor(mt, digest, len(data), {}, c.platform)
        elif mt in MANIFEST_TYPES and want is not None:
            _require_platform(client, repo, ref, json.loads(data), want)
        if DOCKER_TYPES & {mt, top.media_type}:
            opts.log(
                f"note: {ref} is a Docker-format image, stored as it is (its digest kept); skopeo 1.9 and umoci "
                "0.4 read only OCI manifests from a layout"
            )
        stack = [(mt, data, digest)]
        while stack:
            mt_, data_, digest_ = stack.pop()
            docs.append((mt_, data_, digest_))
            doc = json.loads(data_)
            if mt_ in INDEX_TYPES:
                for child in doc.get("manifests") or []:
                    if child.get("mediaType") not in MANIFEST_TYPES + INDEX_TYPES:
                        continue
                    cdata, cmt, cdigest = _get_manifest(client, repo, child["digest"], child["digest"])
                    stack.append((cmt, cdata, cdigest))
            else:
                for d in [doc.get("config"), *list(doc.get("layers") or [])]:
                    if d:
                        if not DIGEST_RE.match(str(d.get("digest"))):
                            raise RegistryError(
                                f"registry {client.registry}: manifest names a bad digest", code="MANIFEST_INVALID"
                            )
                        blobs[d["digest"]] = int(d["size"])
        if existing is not None:  # a blob there that is a symlink (or not a file) is refused before any download
            for bdigest in blobs:
                blob_is_regular(dest, existing.blob_path(bdigest))
        counts = {"downloaded": 0, "skipped": 0}
        received = [0]
        with LayoutWriter(dest, log=opts.log) as writer:

            def fetch(item):
                bdigest, size = item
                # a kept blob is staged as a hard link: safe from a concurrent writer's cleanup until the commit
                if existing is not None and existing.has_intact_blob(bdigest, size) and writer.keep_blob(bdigest):
                    progress.done(f"  {bdigest[:19]}  {human_size(size):>10}  already in the layout", bdigest)
                    return "skipped", 0
                if existing is not None and existing.blob_path(bdigest).exists():
                    opts.log(f"note: blob {bdigest[:19]} in {dest} does not match its digest; downloading it again")
                target = writer.scratch_file("blob-")
                bar = progress.bar(bdigest, size)
                what = f"GET blob {bdigest[:19]}"
                for attempt in range(opts.retries + 1):
                    resp = client.request(
                        "GET",
                        f"/v2/{repo}/blobs/{bdigest}",
                        scopes=(f"repository:{repo}:pull",),
                        what=what,
                        stream=True,
                        repository=repo,
                    )
                    if resp.status_code != 200:
                        _ = resp.content  # read the error body before it is reported
                        raise client.error(what, resp, repository=repo)
                    h = hashlib.sha256()
                    n = 0
                    try:
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
                    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                        if attempt >= opts.retries:
                            why = client.watchdog.current_failure(client.registry)
                            raise RegistryError(
                                f"registry {client.registry}: {what} failed: connection error "
                                f"({why or client._connection_reason(exc)})",
                                hint="run the same command again",
                            ) from None
                        client.pause(client._delay(attempt, None))
                        continue
                    finally:
                        resp.close()
                    got = "sha256:" + h.hexdigest()
                    if got != bdigest or n != size:
                        raise RegistryError(
                            f"registry {client.registry}: blob {bdigest} arrived as {got} ({n} of {size} bytes)",
                            code="DIGEST_INVALID",
                            hint="the registry (or a proxy) served other bytes; nothing was written",
                        )
                    writer.add_blob_file(target, bdigest)
                    progress.done(f"  {bdigest[:19]}  {human_size(size):>10}  downloaded", bdigest)
                    return "downloaded", n
                raise AssertionError("unreachable")

            with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
                for kind, n in pool.map(fetch, sorted(blobs.items(), key=lambda kv: -kv[1])):
                    counts[kind] += 1
                    received[0] += n
            for mt_, data_, _digest in docs:
                writer.add_blob(Blob(mt_, data_))
            if top.media_type in MANIFEST_TYPES and top.platform is None:
                top = Descriptor(top.media_type, top.digest, top.size, {}, _config_platform(writer, data))
            if ref.tag or not ref.digest:
                tag = ref.tag or "latest"
                labels = _config_labels(writer, data) if top.media_type in MANIFEST_TYPES else {}
                name = labels.get(TITLE)

                def check(layout: Layout) -> None:
                    if isinstance(name, str):  # an image that names itself: its tag may not move across names
                        refuse_unsafe_moves(layout, [tag], top.digest, name, str(labels.get(VERSION) or ""), force_tags)

                writer.commit([(tag, top)], check=check)
            else:
                writer.commit([], [top])
    finally:
        progress.close()
        clients.close()
    return PullResult(
        str(ref.with_tag(ref.tag)) if not ref.digest else ref.name,
        top.digest,
        dest,
        ref.tag,
        counts["downloaded"],
        counts["skipped"],
        received[0],
        time.monotonic() - started,
    )
