"""Manifests, indexes and image configs read from a registry, each checked before it is used: its bytes hashed
against the digest asked for and the one the registry announces, its size bounded (4 MiB), its media type one that
ocibake reads. Pulling, resolving a tag and joining images into an index read through here; blob downloads share
get_blob() and check their digest as they stream (pull.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import requests

from ocibake.errors import RegistryError
from ocibake.oci import json_doc
from ocibake.oci.limits import CONFIG_MAX_BYTES, MANIFEST_MAX_BYTES
from ocibake.oci.media_types import INDEX_TYPES, MANIFEST_TYPES
from ocibake.registry.client import ACCEPT, Client
from ocibake.registry.errors import ConnectionLost
from ocibake.registry.retry import STALL_RETRIES, backoff_delay

MAX_MANIFEST = MANIFEST_MAX_BYTES
MAX_CONFIG = CONFIG_MAX_BYTES


def get_manifest(client: Client, repo: str, ref: str, expect: str | None) -> tuple[bytes, str, str]:
    """The manifest or index ``ref`` (a tag or a digest) -> (bytes, media type, digest), the digest checked against
    ``expect`` and Docker-Content-Digest."""
    what = f"GET manifest {ref if not ref.startswith('sha256:') else ref[:19]}"

    def get() -> requests.Response:
        return client.request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            scopes=(f"repository:{repo}:pull",),
            what=what,
            headers={"Accept": ACCEPT},
            repository=repo,
            stream=True,
        )

    resp, data = read_with_retries(client, get, what, repo, (MAX_MANIFEST, f"manifest {ref}"))
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
        doc_mt = json_doc.loads(data).get("mediaType")
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


def get_blob(client: Client, repo: str, digest: str, what: str) -> requests.Response:
    """GET a blob, its body still to be read (streamed); a refusal is a RegistryError."""
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
    return resp


def get_config(client: Client, repo: str, digest: str) -> bytes:
    """An image config's bytes, checked against ``digest``."""
    what = f"GET config {digest[:19]}"
    _, data = read_with_retries(
        client, lambda: get_blob(client, repo, digest, what), what, repo, (MAX_CONFIG, f"config {digest}")
    )
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise RegistryError(
            f"registry {client.registry}: config {digest} arrived with another digest",
            code="DIGEST_INVALID",
            hint="the registry (or a proxy) served other bytes; nothing was written",
        )
    return data


def read_with_retries(
    client: Client, get: Callable[[], requests.Response], what: str, repo: str, document: tuple[int, str]
) -> tuple[requests.Response, bytes]:
    """GET a document (``get``: the request, itself retried on errors and 5xx) and read its body (``document``: the
    size limit and its name), again from the start when the body is cut short, within the same retry budget as
    every request: a manifest GET rides through a dropped connection as a blob download does."""
    retries = client.opts.retries
    stalls = 0
    for attempt in range(retries + 1):
        resp = get()
        if resp.status_code != 200:
            _ = resp.content  # read the error body before it is reported
            raise client.error(what, resp, repository=repo)
        try:
            return resp, client.read_document(resp, *document)
        except ConnectionLost as exc:
            stalls += "stalled" in exc.message  # a server that stalls once mostly stalls again (retry.py)
            if attempt >= retries or stalls > STALL_RETRIES:
                raise
            delay = backoff_delay(client.opts, attempt, None)
            client.opts.log(
                f"  {what}: {exc.message.rpartition(': ')[2]}; retry {attempt + 1}/{retries} in {delay:.1f}s"
            )
            client.pause(delay)
    raise AssertionError("unreachable")
