"""One blob into one repository: HEAD (already there?), cross-repository mounts, then a streamed upload (chunked
when the registry asks), started again from scratch on a lost connection or a retryable status, within the retry
budget. The registry's digest for the stored bytes must be the local one."""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ocibake.errors import OcibakeError, RegistryError
from ocibake.registry.client import Client
from ocibake.registry.errors import HINTS, Cancelled, ConnectionLost, Retryable, cause
from ocibake.registry.monolithic import upload_small
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress, human_size
from ocibake.registry.retry import backoff_delay, is_retryable_status, retry_after

_WHOLE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class FileSlice:
    """A file region as a request body: known length (Content-Length, no chunked encoding), read from disk as sent."""

    def __init__(
        self,
        path: Path,
        start: int,
        length: int,
        progress: Callable[[int], None],
        cancel: threading.Event | None = None,
    ):
        self.cancel = cancel
        # never through a symlink (checked when the push was planned, and again here: the file may have changed)
        self.f = os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
        self.f.seek(start)
        self.left = length
        self.length = length
        self.progress = progress

    def __len__(self) -> int:
        return self.length

    def read(self, n: int | None = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("upload cancelled")  # aborts the request at once, mid-body
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(min(n, 1 << 20))
        self.left -= len(data)
        self.progress(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                break
            yield chunk

    def close(self) -> None:
        self.f.close()


@dataclass(frozen=True)
class _BlobUpload:
    """One blob going to one repository, and what every request of it needs."""

    client: Client
    repo: str
    digest: str
    size: int
    path: Path
    opts: RegistryOptions
    scopes: tuple[str, ...]
    what: str


@dataclass(frozen=True)
class _MountOutcome:
    """What the cross-repository mounts gave: the repository the blob was mounted from, or an upload session a
    registry opened instead (its Location), and the repositories it was not mountable from."""

    mounted_from: str | None = None
    location: str | None = None
    refused: tuple[str, ...] = ()


def _upload_blob(
    client: Client,
    repo: str,
    digest: str,
    size: int,
    path: Path,
    opts: RegistryOptions,
    progress: Progress,
    mount_from: Sequence[str],
) -> tuple[str, int]:
    """-> ("skipped"|"mounted"|"uploaded", bytes sent)."""
    scopes = (f"repository:{repo}:pull,push", *tuple(f"repository:{m}:pull" for m in mount_from))
    up = _BlobUpload(client, repo, digest, size, path, opts, scopes, f"blob {digest[:19]}")
    if _exists(up):
        progress.done(f"  {digest[:19]}  {human_size(size):>10}  exists, skipped", digest)
        return "skipped", 0
    mount = _mount(up, mount_from)
    if mount.mounted_from is not None:
        progress.done(f"  {digest[:19]}  {human_size(size):>10}  mounted from {mount.mounted_from}", digest)
        return "mounted", 0
    bar = progress.bar(digest, size)
    small = mount.location is None and 0 < size <= opts.monolithic_max and not opts.chunk_size
    try:
        if not (small and _upload_whole(up, bar)):
            _upload_streamed(up, bar, mount.location)
    except BaseException as exc:  # the bar ends as a line that says the upload failed, then the error goes on
        progress.done(f"  {digest[:19]}  {human_size(size):>10}  failed: {_failure(exc)}", digest)
        raise
    why = f" (not mountable from {', '.join(mount.refused)})" if mount.refused else ""
    progress.done(f"  {digest[:19]}  {human_size(size):>10}  uploaded{why}", digest)
    return "uploaded", size


def _failure(exc: BaseException) -> str:
    """Why an upload stopped, in a few words: the HTTP status and OCI error code, or what ended it."""
    if isinstance(exc, RegistryError) and (exc.status or exc.code):
        return cause(exc)
    if isinstance(exc, OcibakeError):
        return exc.message.splitlines()[0][-80:] if exc.message else type(exc).__name__
    if isinstance(exc, Cancelled):
        return "cancelled"
    return "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__


def _exists(up: _BlobUpload) -> bool:
    """HEAD: is the blob in the repository already?"""
    what = f"HEAD {up.what}"
    resp = up.client.request(
        "HEAD", f"/v2/{up.repo}/blobs/{up.digest}", scopes=up.scopes, what=what, repository=up.repo
    )
    if resp.status_code == 200:
        return True
    if resp.status_code != 404:
        raise up.client.error(what, resp, repository=up.repo)
    return False


def _mount(up: _BlobUpload, mount_from: Sequence[str]) -> _MountOutcome:
    """Ask for a cross-repository mount from each source in turn, until one works or the registry opens an upload
    session instead (202); a source the registry refuses (401, 403, 404) is passed over."""
    refused: list[str] = []
    for source in mount_from:
        q = urllib.parse.urlencode({"mount": up.digest, "from": source})
        resp = up.client.request(
            "POST", f"/v2/{up.repo}/blobs/uploads/?{q}", scopes=up.scopes, what=f"mount {up.what}", repository=up.repo
        )
        if resp.status_code == 201:
            return _MountOutcome(mounted_from=source)
        refused.append(source)
        if resp.status_code == 202:
            return _MountOutcome(location=resp.headers.get("Location"), refused=tuple(refused))
        if resp.status_code not in (401, 403, 404):
            raise up.client.error(f"mount {up.what}", resp, repository=up.repo)
    return _MountOutcome(refused=tuple(refused))


def _upload_whole(up: _BlobUpload, bar: Callable[[int], None]) -> bool:
    """The monolithic path (monolithic.py): True when the registry stored the blob; the bar counts the first try."""
    tries: list[int] = []

    def whole(p: Path, n: int) -> FileSlice:
        tries.append(n)
        return FileSlice(p, 0, n, bar if len(tries) == 1 else _uncounted, up.client.cancel)

    return upload_small(up.client, up.repo, up.digest, up.size, up.path, up.scopes, up.what, whole)


def _uncounted(n: int) -> None:
    pass


def _upload_streamed(up: _BlobUpload, bar: Callable[[int], None], location: str | None) -> None:
    """The blob through an upload session: PATCH (one streamed body, or chunks), then PUT with the digest. A lost
    connection or a retryable answer starts it again from a fresh session, within the retry budget."""
    restarts = 0
    while True:
        location, chunk = _session(up, location)
        try:
            location = _send_chunks(up, bar, location, chunk)
            _finish(up, location, restarts)
            return
        except ConnectionLost:
            restarts += 1
            if restarts > up.opts.retries:
                raise
            _wait_to_restart(up, restarts, "connection error", None)
        except Retryable as exc:
            restarts += 1
            if restarts > up.opts.retries:
                raise up.client.error(
                    f"upload {up.what}",
                    None,
                    reason=exc.reason,
                    repository=up.repo,
                    hint="the registry kept failing; run the same command again to resume",
                ) from None
            _wait_to_restart(up, restarts, exc.reason or "connection error", exc.delay)
        location = None  # a fresh upload session: the old one may hold a partial, unresumable write


def _wait_to_restart(up: _BlobUpload, restarts: int, reason: str, hinted: float | None) -> None:
    delay = backoff_delay(up.opts, restarts - 1, hinted)
    up.opts.log(
        f"  {up.what}: upload interrupted ({reason}); starting it again in {delay:.1f}s ({restarts}/{up.opts.retries})"
    )
    up.client.pause(delay)


def _session(up: _BlobUpload, location: str | None) -> tuple[str, int | None]:
    """The upload session to send to: ``location`` (opened by a mount request), else a new one -> (its absolute URL,
    the chunk size: --chunk-size, raised to what the registry asks as OCI-Chunk-Min-Length)."""
    min_chunk = None
    if location is None:
        what = f"start upload of {up.what}"
        resp = up.client.request(
            "POST",
            f"/v2/{up.repo}/blobs/uploads/",
            scopes=up.scopes,
            what=what,
            repository=up.repo,
            headers={"Content-Length": "0"},
        )
        if resp.status_code != 202 or not resp.headers.get("Location"):
            raise up.client.error(what, resp, repository=up.repo)
        location = resp.headers["Location"]
        min_chunk = resp.headers.get("OCI-Chunk-Min-Length")
    chunk = up.opts.chunk_size
    if min_chunk and min_chunk.isdigit():
        chunk = max(int(min_chunk), chunk or 0, 8 << 20)
    return up.client.absolute_url(location), chunk


def _send_chunks(up: _BlobUpload, bar: Callable[[int], None], location: str, chunk: int | None) -> str:
    """PATCH the blob's bytes (whole, or ``chunk`` bytes at a time) -> the session's location for the next request."""

    def sent(n: int) -> None:
        bar(n)
        up.client.touch()

    offset = 0
    while offset < up.size:
        length = up.size - offset if not chunk else min(chunk, up.size - offset)
        body = partial(FileSlice, up.path, offset, length, sent, up.client.cancel)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
        if offset > 0 or chunk:
            headers["Content-Range"] = f"{offset}-{offset + length - 1}"
        resp = up.client.request(
            "PATCH",
            location,
            scopes=up.scopes,
            what=f"upload {up.what}",
            headers=headers,
            body=body,
            retries=0,
            repository=up.repo,
        )
        if resp.status_code != 202:
            if is_retryable_status(resp.status_code):
                raise Retryable(f"HTTP {resp.status_code}", retry_after(resp))
            raise up.client.error(f"upload {up.what}", resp, repository=up.repo)
        location = up.client.absolute_url(resp.headers.get("Location") or location)
        offset += length
    return location


def _finish(up: _BlobUpload, location: str, restarts: int) -> None:
    """PUT ?digest=: close the session; the registry's digest for the stored bytes must be the blob's."""
    q = ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": up.digest})
    what = f"finish upload of {up.what}"
    resp = up.client.request(
        "PUT", location + q, scopes=up.scopes, what=what, headers={"Content-Length": "0"}, retries=0, repository=up.repo
    )
    if is_retryable_status(resp.status_code):
        raise Retryable(f"HTTP {resp.status_code}", retry_after(resp))
    if resp.status_code != 201:
        if resp.status_code == 404 and restarts < up.opts.retries:
            raise Retryable(f"HTTP {resp.status_code} (upload lost)")
        raise up.client.error(what, resp, repository=up.repo)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != up.digest and not _WHOLE_DIGEST.match(got):
        # a response cut short is a lost response, not a result: ask whether the blob is there
        head = up.client.request(
            "HEAD", f"/v2/{up.repo}/blobs/{up.digest}", scopes=up.scopes, what=f"HEAD {up.what}", repository=up.repo
        )
        head.close()
        if head.status_code != 200:
            raise Retryable(f"a partial answer ({got!r}) to the upload of {up.what}")
        got = up.digest
    if got and got != up.digest:
        raise RegistryError(
            f"registry {up.client.registry}: stored blob {up.digest} as {got}",
            code="DIGEST_INVALID",
            hint=HINTS["DIGEST_INVALID"],
        )
