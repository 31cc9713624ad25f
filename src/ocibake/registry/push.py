"""Push the images of an OCI layout to registries: blobs (HEAD, cross-repository mount, streamed upload), then child
manifests by digest, then each tag's manifest or index as the exact bytes on disk with its own Content-Type. The
digest the registry reports must equal the local one. Everything is read and verified before the first request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocibake.errors import InputError, OcibakeError, RegistryError
from ocibake.oci.image import Descriptor
from ocibake.oci.layout import Layout
from ocibake.registry.blob_upload import _upload_blob
from ocibake.registry.client import Client, Clients
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress, human_size
from ocibake.registry.push_plan import _media_type, _PushPlan, plan_push, select_tags
from ocibake.registry.push_skip import tags_in_place
from ocibake.registry.reference import Reference, has_registry, parse_reference


@dataclass(frozen=True)
class PushedTag:
    repository: str  # registry/repo
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
    plain_http: tuple[str, ...] = ()  # the registries spoken to over plain HTTP (localhost, or --insecure)

    def lines(self) -> list[str]:
        return [str(t) for t in self.tags]

    def as_json(self) -> dict[str, Any]:
        return {
            "references": self.lines(),
            "tags": [{"repository": t.repository, "tag": t.tag, "digest": t.digest} for t in self.tags],
            "blobs": {"uploaded": self.uploaded, "skipped": self.skipped, "mounted": self.mounted},
            "bytes_uploaded": self.bytes_uploaded,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        repos = sorted({t.repository for t in self.tags})
        return (
            f"pushed {len(self.tags)} tag(s) to {', '.join(repos)}: {self.uploaded} blob(s) uploaded "
            f"({human_size(self.bytes_uploaded)}), {self.skipped} skipped (already there), {self.mounted} mounted, "
            f"in {self.seconds:.2f}s"
        )


def _put_manifest(client: Client, repo: str, ref: str, desc: Descriptor, data: bytes) -> str:
    mt = _media_type(desc, data)
    scopes = (f"repository:{repo}:pull,push",)
    what = f"PUT manifest {ref}" if not ref.startswith("sha256:") else f"PUT manifest {ref[:19]}"
    resp = client.request(
        "PUT",
        f"/v2/{repo}/manifests/{ref}",
        scopes=scopes,
        what=what,
        headers={"Content-Type": mt},
        body=data,
        repository=repo,
    )
    if resp.status_code not in (200, 201):
        raise client.error(what, resp, repository=repo)
    got = resp.headers.get("Docker-Content-Digest")
    if not got:
        head = client.request(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            scopes=scopes,
            what=f"HEAD manifest {ref}",
            headers={"Accept": mt},
            repository=repo,
        )
        got = head.headers.get("Docker-Content-Digest")
    if got != desc.digest:
        raise RegistryError(
            f"registry {client.registry}: {repo}:{ref} is {got or 'of unknown digest'}, not the pushed {desc.digest}",
            code="DIGEST_MISMATCH",
            hint="the registry rewrote the manifest (it may not support OCI media types); nothing else was changed",
        )
    return got


def push_layout(
    layout_path: Path | str,
    repo: str | Sequence[str],
    tags: Sequence[str] | None = None,
    options: RegistryOptions | None = None,
) -> PushResult:
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
    refs = _targets(repo, opts)
    layout = Layout.open(layout_path)
    verified: dict[str, tuple[str, int]] = {}
    plans = [(ref, plan_push(layout, select_tags(layout, tags, ref.tag), verified)) for ref in refs]
    progress = Progress(opts)
    clients = Clients(opts)
    tally = _Tally()
    try:
        for ref, plan in plans:
            _push_repository(clients.get(ref.registry), ref, plan, opts, progress, tally)
    except OcibakeError as exc:
        _note_partial_push(exc, tally.pushed, [ref for ref, _ in plans])
        raise
    finally:
        progress.close()
        clients.close()
    counts = tally.counts
    return PushResult(
        tuple(tally.pushed),
        counts["uploaded"],
        counts["skipped"],
        counts["mounted"],
        tally.sent,
        time.monotonic() - started,
        plain_http=tuple(
            sorted({r.registry for r, _ in plans if (clients.get(r.registry).base or "").startswith("http:")})
        ),
    )


def _targets(repo: str | Sequence[str], opts: RegistryOptions) -> list[Reference]:
    """The repositories to push to, each REGISTRY/REPO[:TAG] (never a digest)."""
    repos = [repo] if isinstance(repo, str) else list(repo)
    if not repos:
        raise InputError("no repository to push to", hint="ocibake push LAYOUT REGISTRY/REPO")
    refs = [parse_reference(r, opts.environ) for r in repos]
    for r in refs:
        if r.digest:
            raise InputError(f"{r}: push to a repository or tag, not a digest", hint="drop the @sha256:... part")
    return refs


@dataclass
class _Tally:
    """What a push did so far: blobs by outcome, bytes sent, tags pushed, and per registry the repositories done
    (later repositories on that registry mount their blobs)."""

    counts: dict[str, int] = field(default_factory=lambda: {"uploaded": 0, "skipped": 0, "mounted": 0})
    sent: int = 0
    pushed: list[PushedTag] = field(default_factory=list)
    done_repos: dict[str, list[str]] = field(default_factory=dict)


def _push_repository(
    client: Client, ref: Reference, plan: _PushPlan, opts: RegistryOptions, progress: Progress, tally: _Tally
) -> None:
    """One repository: nothing when every tag already names its image; else blobs, child manifests, then tags."""
    client.ping()
    in_place = tags_in_place(client, ref.repository, plan)
    if in_place is not None:
        opts.log(f"{ref.name}: every tag already names this image; nothing to send")
        tally.counts["skipped"] += len(plan.blobs)
        tally.pushed.extend(PushedTag(ref.name, tag, digest) for tag, digest in in_place)
        tally.done_repos.setdefault(ref.registry, []).append(ref.repository)
        return
    mount_from = _mount_sources(ref, opts, tally.done_repos.get(ref.registry, []))
    outcomes = _upload_blobs(client, ref, plan, opts, progress, mount_from)
    for kind, n in outcomes:
        tally.counts[kind] += 1
        tally.sent += n
    for desc, data in plan.children:
        _put_manifest(client, ref.repository, desc.digest, desc, data)
    for tag, desc, data in plan.tops:
        digest = _put_manifest(client, ref.repository, tag, desc, data)
        tally.pushed.append(PushedTag(ref.name, tag, digest))
    tally.done_repos.setdefault(ref.registry, []).append(ref.repository)


def _note_partial_push(exc: OcibakeError, pushed: list[PushedTag], refs: list[Reference]) -> None:
    """A push failed: the tags pushed before go along as results (printed on stdout), and the hint names them and
    the repositories not tried."""
    exc.results = tuple(str(t) for t in pushed)
    done = {t.repository for t in pushed}
    failed_at = next((i for i, ref in enumerate(refs) if ref.name not in done), len(refs))
    untried = [ref.name for ref in refs[failed_at + 1 :]]
    notes = []
    if pushed:
        notes.append(f"pushed before the failure: {len(pushed)} tag(s), on stdout")
    if untried:
        notes.append(f"not tried: {', '.join(untried)}")
    if notes:
        exc.hint = "; ".join(([exc.hint] if exc.hint else []) + notes)


def _mount_sources(ref: Reference, opts: RegistryOptions, done_here: list[str]) -> list[str]:
    """--mount-from repositories on ref's registry, then those this run already pushed to it."""
    sources = []
    for m in opts.mount_from:
        mref = parse_reference(
            m if "/" in m and has_registry(m.split("/", 1)[0]) else f"{ref.registry}/{m}", opts.environ
        )
        if mref.registry != ref.registry:
            opts.log(
                f"warning: --mount-from {m} is on {mref.registry}, not {ref.registry}: blobs cannot be mounted "
                "across registries; uploading them"
            )
        elif mref.repository != ref.repository:
            sources.append(mref.repository)
    return list(dict.fromkeys(sources + [r for r in done_here if r != ref.repository]))


def _upload_blobs(
    client: Client, ref: Reference, plan: _PushPlan, opts: RegistryOptions, progress: Progress, mount_from: list[str]
) -> list[tuple[str, int]]:
    """Every blob of ``plan``, in parallel, biggest first; an interrupt cancels the uploads in flight."""
    opts.log(f"pushing {len(plan.blobs)} blob(s) to {ref.name}")
    items = sorted(plan.blobs.items(), key=lambda kv: -kv[1][0])
    if not items:
        return []
    if client.challenge is not None and client.challenge.scheme == "bearer":
        _prime_token(client, ref, items[0][0], mount_from)
    pool = ThreadPoolExecutor(max_workers=max(1, opts.jobs), thread_name_prefix="ocibake-push")
    try:
        futures = [
            pool.submit(_upload_blob, client, ref.repository, d, size, path, opts, progress, mount_from)
            for d, (size, path) in items
        ]
        return [f.result() for f in futures]
    except BaseException:
        client.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _prime_token(client: Client, ref: Reference, digest: str, mount_from: list[str]) -> None:
    """One HEAD before the parallel uploads, so they share one bearer token for the push (and mount) scopes instead
    of each asking the token server. Registries without token auth need none."""
    client.request(
        "HEAD",
        f"/v2/{ref.repository}/blobs/{digest}",
        scopes=(f"repository:{ref.repository}:pull,push", *tuple(f"repository:{m}:pull" for m in mount_from)),
        what="HEAD blob",
        repository=ref.repository,
    ).close()
