"""Push the images of an OCI layout to registries: blobs (HEAD, cross-repository mount, streamed upload), then child
manifests by digest, then each tag's manifest or index as the exact bytes on disk with its own Content-Type. The
digest the registry reports must equal the local one. Everything is read and verified before the first request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ocibake.errors import InputError, OcibakeError, RegistryError
from ocibake.image import Descriptor
from ocibake.oci_names import TAG_RE
from ocibake.publish.layout import INDEX_TYPES, MANIFEST_TYPES, Layout
from ocibake.publish.progress import Progress, human_size
from ocibake.publish.registry import (HINTS, Cancelled, Client, Clients, ConnectionLost, RegistryOptions, Retryable,
                                      has_registry, parse_reference)


@dataclass(frozen=True)
class PushedTag:
    repository: str   # registry/repo
    tag: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class PushResult:
    tags: tuple[PushedTag, ...]
    uploaded: int
    skipped: int
    mounted: int
    bytes_uploaded: int
    seconds: float

    def lines(self) -> list[str]:
        return [str(t) for t in self.tags]

    def as_json(self) -> dict:
        return {"references": self.lines(),
                "tags": [{"repository": t.repository, "tag": t.tag, "digest": t.digest} for t in self.tags],
                "blobs": {"uploaded": self.uploaded, "skipped": self.skipped, "mounted": self.mounted},
                "bytes_uploaded": self.bytes_uploaded, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        repos = sorted({t.repository for t in self.tags})
        return (f"pushed {len(self.tags)} tag(s) to {', '.join(repos)}: {self.uploaded} blob(s) uploaded "
                f"({human_size(self.bytes_uploaded)}), {self.skipped} skipped (already there), {self.mounted} mounted, "
                f"in {self.seconds:.2f}s")


class FileSlice:
    """A file region as a request body: known length (Content-Length, no chunked encoding), read from disk as sent."""

    def __init__(self, path: Path, start: int, length: int, progress: Callable[[int], None],
                 cancel: threading.Event | None = None):
        self.cancel = cancel
        self.f = open(path, "rb")
        self.f.seek(start)
        self.left = length
        self.length = length
        self.progress = progress

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("upload cancelled")      # aborts the request at once, mid-body
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(min(n, 1 << 20))
        self.left -= len(data)
        self.progress(len(data))
        return data

    def __iter__(self):
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                break
            yield chunk

    def close(self) -> None:
        self.f.close()


@dataclass
class _PushPlan:
    blobs: dict[str, tuple[int, Path]] = field(default_factory=dict)        # digest -> (size, path)
    children: list[tuple[Descriptor, bytes]] = field(default_factory=list)  # manifests under an index (by digest)
    tops: list[tuple[str, Descriptor, bytes]] = field(default_factory=list) # (tag, descriptor, bytes)


def _media_type(desc: Descriptor, data: bytes) -> str:
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared or desc.media_type


def _verified_bytes(layout: Layout, desc: Descriptor) -> bytes:
    path = layout.blob_path(desc.digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{desc.digest} is missing from {layout.root}", hint="the layout is incomplete; rebuild it") from None
    if len(data) != desc.size or "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise InputError(f"manifest {desc.digest} in {layout.root} does not match its digest or size; nothing was pushed",
                         hint="the layout is damaged; rebuild or re-pull it")
    return data


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def plan_push(layout: Layout, tagged: Sequence[tuple[str, Descriptor]],
              verified: dict[str, tuple[str, int]] | None = None) -> _PushPlan:
    """Read and verify everything that will be pushed, before anything is sent (``verified`` caches blob hashes)."""
    verified = {} if verified is None else verified
    plan = _PushPlan()
    seen_children: set[str] = set()

    def manifest(desc: Descriptor, data: bytes) -> None:
        doc = json.loads(data)
        for d in [doc.get("config")] + list(doc.get("layers") or []):
            if not d:
                continue
            blob = Descriptor.from_json(d)
            if blob.digest in plan.blobs:
                continue
            path = layout.blob_path(blob.digest)
            if not path.is_file():
                raise InputError(f"blob {blob.digest} is missing from {layout.root}; nothing was pushed",
                                 hint="the layout is incomplete; rebuild or re-pull it")
            if blob.digest not in verified:
                verified[blob.digest] = _file_digest(path)
            digest, size = verified[blob.digest]
            if digest != blob.digest or size != blob.size:
                raise InputError(f"blob {blob.digest} in {layout.root} does not match its digest or size; "
                                 "nothing was pushed", hint="the layout is damaged; rebuild or re-pull it")
            plan.blobs[blob.digest] = (size, path)

    def walk(desc: Descriptor, data: bytes) -> None:
        mt = _media_type(desc, data)
        if mt in INDEX_TYPES:
            for child in json.loads(data).get("manifests") or []:
                cd = Descriptor.from_json(child)
                if cd.digest in seen_children:
                    continue
                seen_children.add(cd.digest)
                cdata = _verified_bytes(layout, cd)
                walk(cd, cdata)
                plan.children.append((cd, cdata))
        elif mt in MANIFEST_TYPES:
            manifest(desc, data)
        else:
            raise InputError(f"{desc.digest} in {layout.root} has media type {mt!r}, not a manifest or index",
                             hint="ocibake pushes OCI/Docker image manifests and indexes")

    for tag, desc in tagged:
        data = _verified_bytes(layout, desc)
        try:
            walk(desc, data)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{desc.digest} in {layout.root} is not a valid manifest ({type(exc).__name__})",
                             hint="the layout is damaged; rebuild it") from None
        plan.tops.append((tag, desc, data))
    return plan


def select_tags(layout: Layout, tags: Sequence[str] | None, as_tag: str | None = None) -> list[tuple[str, Descriptor]]:
    """Which (registry tag, descriptor) pairs to push to one repository.

    Without ``as_tag``: the layout tags named by ``tags`` (each must be there; a layout holding one untagged image
    may give it any tag), or all of them. With ``as_tag`` (REPO:TAG): one image pushed as that tag, like `crane push`:
    the one ``tags`` names, else the layout's own tag of that name, else the layout's only image.
    """
    available = layout.tags()
    manifests = layout.manifests()
    only = manifests[0] if len({m.digest for m in manifests}) == 1 else None
    here = f"tags here: {', '.join(sorted(available)) or 'none'}"
    for tag in list(tags or []) + ([as_tag] if as_tag else []):
        if not TAG_RE.match(tag):
            raise InputError(f"tag {tag!r} is not valid", hint="tags are 1-128 letters, digits, '_', '.', '-'")
    if as_tag:
        if tags and len(tags) > 1:
            raise InputError(f"REPO:{as_tag} pushes one image, and --tag names {len(tags)}",
                             hint="give one --tag (the image to push as that tag), or drop :TAG from the repository")
        if tags:
            source = tags[0]
            if source not in available:
                raise InputError(f"tag {source!r} is not in {layout.root}", hint=here)
            return [(as_tag, available[source])]
        if as_tag in available:
            return [(as_tag, available[as_tag])]
        if only is not None:
            return [(as_tag, Descriptor(only.media_type, only.digest, only.size, {}, only.platform))]
        raise InputError(f"{layout.root} holds {len(manifests)} images; which one is {as_tag!r}?",
                         hint=f"name it with --tag TAG ({here})")
    if not tags:
        if not available:
            raise InputError(f"{layout.root} has no tagged images" + (f" ({len(manifests)} untagged)" if manifests else ""),
                             hint="push to REPO:TAG to give the image a tag")
        return sorted(available.items())
    out = []
    for tag in dict.fromkeys(tags):
        if tag in available:
            out.append((tag, available[tag]))
        elif only is not None and not available:
            out.append((tag, Descriptor(only.media_type, only.digest, only.size, {}, only.platform)))
        else:
            raise InputError(f"tag {tag!r} is not in {layout.root}; nothing was pushed",
                             hint=f"{here}; to push an image under a new tag, push to REPO:NEWTAG --tag OLD")
    return out


def _upload_blob(client: Client, repo: str, digest: str, size: int, path: Path, opts: RegistryOptions,
                 progress: Progress, mount_from: Sequence[str]) -> tuple[str, int]:
    """-> ("skipped"|"mounted"|"uploaded", bytes sent)."""
    scopes = (f"repository:{repo}:pull,push",) + tuple(f"repository:{m}:pull" for m in mount_from)
    what = f"blob {digest[:19]}"
    resp = client.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, what=f"HEAD {what}", repository=repo)
    if resp.status_code == 200:
        progress.done(f"  {digest[:19]}  {human_size(size):>10}  exists, skipped", digest)
        return "skipped", 0
    if resp.status_code not in (404,):
        raise client.error(f"HEAD {what}", resp, repository=repo)
    location = None
    not_mounted = []
    for source in mount_from:
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = client.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", scopes=scopes, what=f"mount {what}",
                              repository=repo)
        if resp.status_code == 201:
            progress.done(f"  {digest[:19]}  {human_size(size):>10}  mounted from {source}", digest)
            return "mounted", 0
        not_mounted.append(source)
        if resp.status_code == 202:
            location = resp.headers.get("Location")
            break
        if resp.status_code not in (401, 403, 404):
            raise client.error(f"mount {what}", resp, repository=repo)
    sent_total = 0
    restarts = 0
    bar = progress.bar(digest, size)
    while True:
        if location is None:
            resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, what=f"start upload of {what}",
                                  repository=repo, headers={"Content-Length": "0"})
            if resp.status_code != 202 or not resp.headers.get("Location"):
                raise client.error(f"start upload of {what}", resp, repository=repo)
            location = resp.headers["Location"]
            min_chunk = resp.headers.get("OCI-Chunk-Min-Length")
        else:
            min_chunk = None
        location = urllib.parse.urljoin(client.base + "/", location)
        chunk = opts.chunk_size
        if min_chunk and min_chunk.isdigit():
            chunk = max(int(min_chunk), chunk or 0, 8 << 20)
        offset = 0
        try:
            while offset < size or (size == 0 and offset == 0 and chunk is not None and False):
                length = size - offset if not chunk else min(chunk, size - offset)
                start = offset

                def body(start=start, length=length):
                    return FileSlice(path, start, length, bar, client.cancel)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
                if start > 0 or chunk:
                    headers["Content-Range"] = f"{start}-{start + length - 1}"
                resp = client.request("PATCH", location, scopes=scopes, what=f"upload {what}", headers=headers,
                                      body=body, retries=0, repository=repo)
                if resp.status_code != 202:
                    if resp.status_code in (408, 429) or resp.status_code >= 500:
                        raise Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
                    raise client.error(f"upload {what}", resp, repository=repo)
                location = urllib.parse.urljoin(client.base + "/", resp.headers.get("Location") or location)
                sent_total += length
                offset += length
            q = ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
            resp = client.request("PUT", location + q, scopes=scopes, what=f"finish upload of {what}",
                                  headers={"Content-Length": "0"}, retries=0, repository=repo)
            if resp.status_code in (408, 429) or resp.status_code >= 500:
                raise Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
            if resp.status_code != 201:
                if resp.status_code == 404 and restarts < opts.retries:
                    raise Retryable(f"HTTP {resp.status_code} (upload lost)")
                raise client.error(f"finish upload of {what}", resp, repository=repo)
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise RegistryError(f"registry {client.registry}: stored blob {digest} as {got}", code="DIGEST_INVALID",
                                    hint=HINTS["DIGEST_INVALID"])
            why = f" (not mountable from {', '.join(not_mounted)})" if not_mounted else ""
            progress.done(f"  {digest[:19]}  {human_size(size):>10}  uploaded{why}", digest)
            return "uploaded", size
        except (Retryable, ConnectionLost) as exc:
            restarts += 1
            if restarts > opts.retries:
                if isinstance(exc, RegistryError):
                    raise
                raise client.error(f"upload {what}", None, reason=exc.reason, repository=repo,
                                   hint="the registry kept failing; run the same command again to resume") from None
            delay = client._delay(restarts - 1, getattr(exc, "delay", None))
            opts.log(f"  {what}: upload interrupted ({getattr(exc, 'reason', None) or 'connection error'}); "
                     f"starting it again in {delay:.1f}s ({restarts}/{opts.retries})")
            client.pause(delay)
            location = None   # a fresh upload session: the old one may hold a partial, unresumable write


def _put_manifest(client: Client, repo: str, ref: str, desc: Descriptor, data: bytes) -> str:
    mt = _media_type(desc, data)
    scopes = (f"repository:{repo}:pull,push",)
    what = f"PUT manifest {ref}" if not ref.startswith("sha256:") else f"PUT manifest {ref[:19]}"
    resp = client.request("PUT", f"/v2/{repo}/manifests/{ref}", scopes=scopes, what=what,
                          headers={"Content-Type": mt}, body=data, repository=repo)
    if resp.status_code not in (200, 201):
        raise client.error(what, resp, repository=repo)
    got = resp.headers.get("Docker-Content-Digest")
    if not got:
        head = client.request("HEAD", f"/v2/{repo}/manifests/{ref}", scopes=scopes, what=f"HEAD manifest {ref}",
                              headers={"Accept": mt}, repository=repo)
        got = head.headers.get("Docker-Content-Digest")
    if got != desc.digest:
        raise RegistryError(f"registry {client.registry}: {repo}:{ref} is {got or 'of unknown digest'}, "
                            f"not the pushed {desc.digest}", code="DIGEST_MISMATCH",
                            hint="the registry rewrote the manifest (it may not support OCI media types); "
                                 "nothing else was changed")
    return got


def push_layout(layout_path: Path | str, repo: str | Sequence[str], tags: Sequence[str] | None = None,
                options: RegistryOptions | None = None) -> PushResult:
    """Push the images of an OCI layout to one or more repositories (REGISTRY/REPO, or a bare name with
    $OCIBAKE_REGISTRY). ``tags``: layout tags to push (default: all); REPO:TAG pushes one image as TAG (see
    select_tags).

    Order per repository: blobs (HEAD, mount, upload), child manifests by digest, then each tag's manifest or index.
    Everything is read and verified before the first request. Repositories on the same registry mount the blobs of
    the ones pushed before them. A failure after some repositories are complete raises with their references in
    ``results``; Ctrl-C or SIGTERM stops the uploads in flight at once.
    """
    opts = options or RegistryOptions()
    started = time.monotonic()
    repos = [repo] if isinstance(repo, str) else list(repo)
    if not repos:
        raise InputError("no repository to push to", hint="ocibake push LAYOUT REGISTRY/REPO")
    refs = [parse_reference(r, opts.environ) for r in repos]
    for r in refs:
        if r.digest:
            raise InputError(f"{r}: push to a repository or tag, not a digest", hint="drop the @sha256:... part")
    layout = Layout.open(layout_path)
    verified: dict[str, tuple[str, int]] = {}
    plans = [(ref, plan_push(layout, select_tags(layout, tags, ref.tag), verified)) for ref in refs]
    progress = Progress(opts)
    clients = Clients(opts)
    counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
    sent = 0
    pushed: list[PushedTag] = []
    done_repos: dict[str, list[str]] = {}           # registry -> repositories complete in this run
    try:
        for ref, plan in plans:
            client = clients.get(ref.registry)
            client.ping()
            mount_from = _mount_sources(ref, opts, done_repos.get(ref.registry, []))
            outcomes = _upload_blobs(client, ref, plan, opts, progress, mount_from)
            for kind, n in outcomes:
                counts[kind] += 1
                sent += n
            for desc, data in plan.children:
                _put_manifest(client, ref.repository, desc.digest, desc, data)
            for tag, desc, data in plan.tops:
                digest = _put_manifest(client, ref.repository, tag, desc, data)
                pushed.append(PushedTag(ref.name, tag, digest))
            done_repos.setdefault(ref.registry, []).append(ref.repository)
    except OcibakeError as exc:
        exc.results = tuple(str(t) for t in pushed)
        done = {t.repository for t in pushed}
        failed_at = next((i for i, (ref, _) in enumerate(plans) if ref.name not in done), len(plans))
        untried = [ref.name for ref, _ in plans[failed_at + 1:]]
        notes = []
        if pushed:
            notes.append(f"pushed before the failure: {len(pushed)} tag(s), on stdout")
        if untried:
            notes.append(f"not tried: {', '.join(untried)}")
        if notes:
            exc.hint = "; ".join(([exc.hint] if exc.hint else []) + notes)
        raise
    finally:
        progress.close()
        clients.close()
    return PushResult(tuple(pushed), counts["uploaded"], counts["skipped"], counts["mounted"], sent,
                      time.monotonic() - started)


def _mount_sources(ref, opts: RegistryOptions, done_here: list[str]) -> list[str]:
    """--mount-from repositories on ref's registry, then those this run already pushed to it."""
    sources = []
    for m in opts.mount_from:
        mref = parse_reference(m if "/" in m and has_registry(m.split("/", 1)[0]) else f"{ref.registry}/{m}",
                               opts.environ)
        if mref.registry != ref.registry:
            opts.log(f"warning: --mount-from {m} is on {mref.registry}, not {ref.registry}: blobs cannot be mounted "
                     "across registries; uploading them")
        elif mref.repository != ref.repository:
            sources.append(mref.repository)
    return list(dict.fromkeys(sources + [r for r in done_here if r != ref.repository]))


def _upload_blobs(client: Client, ref, plan: _PushPlan, opts: RegistryOptions, progress: Progress,
                  mount_from: list[str]) -> list[tuple[str, int]]:
    """Every blob of ``plan``, in parallel, biggest first; an interrupt cancels the uploads in flight."""
    opts.log(f"pushing {len(plan.blobs)} blob(s) to {ref.name}")
    items = sorted(plan.blobs.items(), key=lambda kv: -kv[1][0])
    if not items:
        return []
    # prime the token once, so parallel uploads share it
    client.request("HEAD", f"/v2/{ref.repository}/blobs/{items[0][0]}",
                   scopes=(f"repository:{ref.repository}:pull,push",) + tuple(f"repository:{m}:pull" for m in mount_from),
                   what="HEAD blob", repository=ref.repository).close()
    pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs), thread_name_prefix="ocibake-push")
    try:
        futures = [pool.submit(_upload_blob, client, ref.repository, d, size, path, opts, progress, mount_from)
                   for d, (size, path) in items]
        return [f.result() for f in futures]
    except BaseException:
        client.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
