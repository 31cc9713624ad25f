"""A small blob in as few requests as the registry allows.

The distribution spec's monolithic upload is one request: `POST /v2/<repo>/blobs/uploads/?digest=<d>` with the blob as
its body, answered 201 once stored. Registries that do not implement it answer 202 with an upload session instead
(Debian's distribution 2.8 does): the blob then goes whole in the one `PUT <location>?digest=<d>` that closes the
session, two requests instead of POST, PATCH and PUT. The POST is retried as any request is (connection errors, 408,
429, 5xx). Anything else (a refusal, a lost connection, a digest other than
the blob's) returns None, and the caller uploads the usual way from a fresh session, so this never fails a push.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path

from ocibake.registry.client import Client, StreamBody
from ocibake.registry.errors import ConnectionLost

MONOLITHIC_MAX = 4 << 20  # the default bound (RegistryOptions.monolithic_max, $OCIBAKE_REGISTRY_MONOLITHIC_MAX)


def upload_small(
    client: Client,
    repo: str,
    digest: str,
    size: int,
    path: Path,
    scopes: tuple[str, ...],
    what: str,
    body: Callable[[Path, int], StreamBody],
) -> bool:
    """True when the registry stored the blob (201 with this digest) in one POST, or in POST + PUT-with-body."""
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    q = urllib.parse.urlencode({"digest": digest})
    try:
        resp = client.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?{q}",
            scopes=scopes,
            what=f"upload {what}",
            headers=headers,
            body=lambda: body(path, size),
            repository=repo,
        )
        resp.close()
        if resp.status_code == 201:
            return resp.headers.get("Docker-Content-Digest") in (None, digest)
        location = resp.headers.get("Location")
        if resp.status_code != 202 or not location:
            return False
        location = client.absolute_url(location)
        sep = "&" if "?" in location else "?"
        resp = client.request(
            "PUT",
            f"{location}{sep}{q}",
            scopes=scopes,
            what=f"upload {what}",
            headers=headers,
            body=lambda: body(path, size),
            retries=0,
            repository=repo,
        )
        resp.close()
        return resp.status_code == 201 and resp.headers.get("Docker-Content-Digest") in (None, digest)
    except ConnectionLost:
        return False
