"""One blob into one repository: HEAD (already there?), cross-repository mounts, then a streamed upload (chunked
when the registry asks), started again from scratch on a lost connection or a retryable status, within the retry
budget. The registry's digest for the stored bytes must be the local one."""

from __future__ import annotations

import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from ocibake.errors import RegistryError
from ocibake.registry.client import Client
from ocibake.registry.errors import HINTS, Cancelled, ConnectionLost, Retryable
from ocibake.registry.monolithic import upload_small
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress, human_size

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

    def read(self, n: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("upload cancelled")  # aborts the request at once, mid-body
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
    what = f"blob {digest[:19]}"
    resp = client.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, what=f"HEAD {what}", repository=repo)
    if resp.status_code == 200:
        progress.done(f"  {digest[:19]}  {human_size(size):>10}  exists, skipped", digest)
        return "skipped", 0
    if resp.status_code != 404:
        raise client.error(f"HEAD {what}", resp, repository=repo)
    location = None
    not_mounted = []
    for source in mount_from:
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = client.request(
            "POST", f"/v2/{repo}/blobs/uploads/?{q}", scopes=scopes, what=f"mount {what}", repository=repo
        )
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
    if location is None and 0 < size <= opts.monolithic_max and not opts.chunk_size:
        tries = []

        def whole(p: Path, n: int) -> FileSlice:  # the progress bar counts the first attempt
            tries.append(n)
            return FileSlice(p, 0, n, bar if len(tries) == 1 else (lambda k: None), client.cancel)

        if upload_small(client, repo, digest, size, path, scopes, what, whole):
            why = f" (not mountable from {', '.join(not_mounted)})" if not_mounted else ""
            progress.done(f"  {digest[:19]}  {human_size(size):>10}  uploaded{why}", digest)
            return "uploaded", size
    while True:
        if location is None:
            resp = client.request(
                "POST",
                f"/v2/{repo}/blobs/uploads/",
                scopes=scopes,
                what=f"start upload of {what}",
                repository=repo,
                headers={"Content-Length": "0"},
            )
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
            while offset < size:
                length = size - offset if not chunk else min(chunk, size - offset)
                start = offset

                def body(start=start, length=length):
                    return FileSlice(path, start, length, lambda n: (bar(n), client.touch()), client.cancel)

                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
                if start > 0 or chunk:
                    headers["Content-Range"] = f"{start}-{start + length - 1}"
                resp = client.request(
                    "PATCH",
                    location,
                    scopes=scopes,
                    what=f"upload {what}",
                    headers=headers,
                    body=body,
                    retries=0,
                    repository=repo,
                )
                if resp.status_code != 202:
                    if resp.status_code in (408, 429) or resp.status_code >= 500:
                        raise Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
                    raise client.error(f"upload {what}", resp, repository=repo)
                location = urllib.parse.urljoin(client.base + "/", resp.headers.get("Location") or location)
                sent_total += length
                offset += length
            q = ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
            resp = client.request(
                "PUT",
                location + q,
                scopes=scopes,
                what=f"finish upload of {what}",
                headers={"Content-Length": "0"},
                retries=0,
                repository=repo,
            )
            if resp.status_code in (408, 429) or resp.status_code >= 500:
                raise Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
            if resp.status_code != 201:
                if resp.status_code == 404 and restarts < opts.retries:
                    raise Retryable(f"HTTP {resp.status_code} (upload lost)")
                raise client.error(f"finish upload of {what}", resp, repository=repo)
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest and not _WHOLE_DIGEST.match(got):
                # a response cut short is a lost response, not a result: ask whether the blob is there
                head = client.request(
                    "HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, what=f"HEAD {what}", repository=repo
                )
                head.close()
                if head.status_code != 200:
                    raise Retryable(f"a partial answer ({got!r}) to the upload of {what}")
                got = digest
            if got and got != digest:
                raise RegistryError(
                    f"registry {client.registry}: stored blob {digest} as {got}",
                    code="DIGEST_INVALID",
                    hint=HINTS["DIGEST_INVALID"],
                )
            why = f" (not mountable from {', '.join(not_mounted)})" if not_mounted else ""
            progress.done(f"  {digest[:19]}  {human_size(size):>10}  uploaded{why}", digest)
            return "uploaded", size
        except (Retryable, ConnectionLost) as exc:
            restarts += 1
            if restarts > opts.retries:
                if isinstance(exc, RegistryError):
                    raise
                raise client.error(
                    f"upload {what}",
                    None,
                    reason=exc.reason,
                    repository=repo,
                    hint="the registry kept failing; run the same command again to resume",
                ) from None
            delay = client._delay(restarts - 1, getattr(exc, "delay", None))
            opts.log(
                f"  {what}: upload interrupted ({getattr(exc, 'reason', None) or 'connection error'}); "
                f"starting it again in {delay:.1f}s ({restarts}/{opts.retries})"
            )
            client.pause(delay)
            location = None  # a fresh upload session: the old one may hold a partial, unresumable write
