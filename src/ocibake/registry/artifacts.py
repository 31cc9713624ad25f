"""Small documents next to an image in a registry: OCI 1.1 referrers (the referrers API, and the tag fallback
`sha256-<hex>` the distribution spec describes for registries without it) and tagged artifacts such as cosign's
`sha256-<hex>.sig`. Every manifest and blob read here is checked against its digest."""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ocibake.errors import RegistryError
from ocibake.oci import json_doc
from ocibake.oci.image import Blob, Descriptor, canonical_json
from ocibake.oci.limits import ARTIFACT_BLOB_MAX_BYTES, MANIFEST_MAX_BYTES
from ocibake.oci.media_types import OCI_INDEX, OCI_MANIFEST
from ocibake.registry.blob_upload import _upload_blob
from ocibake.registry.client import ACCEPT, Client, Clients
from ocibake.registry.options import RegistryOptions
from ocibake.registry.progress import Progress
from ocibake.registry.push import _put_manifest
from ocibake.registry.reference import parse_reference

MAX_DOC = MANIFEST_MAX_BYTES


def fallback_tag(digest: str) -> str:
    return digest.replace(":", "-")


class Remote:
    """One repository of one registry, for reading and writing small documents. Use as a context manager."""

    def __init__(self, name: str, options: RegistryOptions | None = None):
        self.opts = options or RegistryOptions()
        ref = parse_reference(name, self.opts.environ)
        self.ref = ref
        self.repo = ref.repository
        self.clients = Clients(self.opts)
        self.client: Client = self.clients.get(ref.registry)

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clients.close()

    def _scopes(self, push: bool = False) -> tuple[str, ...]:
        return (f"repository:{self.repo}:pull,push" if push else f"repository:{self.repo}:pull",)

    def manifest(self, ref: str) -> tuple[bytes, str] | None:
        """(bytes, media type) of the manifest ``ref`` (tag or digest), or None when the registry has none."""
        what = f"GET manifest {ref[:19] if ref.startswith('sha256:') else ref}"
        resp = self.client.request(
            "GET",
            f"/v2/{self.repo}/manifests/{ref}",
            scopes=self._scopes(),
            what=what,
            headers={"Accept": ACCEPT},
            repository=self.repo,
            stream=True,
        )
        if resp.status_code == 404:
            resp.close()
            return None
        if resp.status_code != 200:
            _ = resp.content  # read the error body before it is reported
            raise self.client.error(what, resp, repository=self.repo)
        data = self.client.read_document(resp, MAX_DOC, f"manifest {ref}")
        if ref.startswith("sha256:") and "sha256:" + hashlib.sha256(data).hexdigest() != ref:
            raise RegistryError(
                f"registry {self.client.registry}: manifest {ref} arrived with another digest",
                code="DIGEST_INVALID",
                hint="the registry (or a proxy) served other bytes",
            )
        return data, resp.headers.get("Content-Type", "").split(";")[0].strip()

    def blob(self, digest: str, max_size: int = ARTIFACT_BLOB_MAX_BYTES) -> bytes:
        what = f"GET blob {digest[:19]}"
        resp = self.client.request(
            "GET",
            f"/v2/{self.repo}/blobs/{digest}",
            scopes=self._scopes(),
            what=what,
            repository=self.repo,
            stream=True,
        )
        if resp.status_code != 200:
            _ = resp.content  # read the error body before it is reported
            raise self.client.error(what, resp, repository=self.repo)
        data = self.client.read_document(resp, max_size, f"blob {digest}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError(
                f"registry {self.client.registry}: blob {digest} arrived with another digest",
                code="DIGEST_INVALID",
                hint="the registry (or a proxy) served other bytes",
            )
        return data

    def referrers(self, digest: str) -> tuple[list[dict[str, Any]], str]:
        """(descriptors, "api"|"tag"|"none"): the referrers API when the registry has it, else the fallback tag."""
        listed = self._referrers_api(digest)
        if listed is not None:
            return listed, "api"
        got = self.manifest(fallback_tag(digest))
        if got is None:
            return [], "none"
        try:
            return list(json_doc.loads(got[0]).get("manifests") or []), "tag"
        except (ValueError, AttributeError):
            return [], "tag"

    def _referrers_api(self, digest: str) -> list[dict[str, Any]] | None:
        """What the referrers API lists for ``digest``; None when the registry has no such API."""
        what = f"GET referrers {digest[:19]}"
        resp = self.client.request(
            "GET",
            f"/v2/{self.repo}/referrers/{digest}",
            scopes=self._scopes(),
            what=what,
            headers={"Accept": OCI_INDEX},
            repository=self.repo,
            stream=True,
        )
        if resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith(OCI_INDEX):
            try:
                doc = json_doc.loads(self.client.read_document(resp, MAX_DOC, f"referrers of {digest}"))
                return list(doc.get("manifests") or [])
            except (ValueError, AttributeError):
                return []
        resp.close()
        return None

    def has_manifest(self, digest: str) -> bool:
        what = f"HEAD manifest {digest[:19]}"
        resp = self.client.request(
            "HEAD",
            f"/v2/{self.repo}/manifests/{digest}",
            scopes=self._scopes(),
            what=what,
            headers={"Accept": ACCEPT},
            repository=self.repo,
        )
        resp.close()
        return resp.status_code == 200 and resp.headers.get("Docker-Content-Digest", digest) == digest

    def lists_referrer(self, digest: str, subject: str) -> bool:
        """Whether the manifest ``digest`` is in the registry and listed as a referrer of ``subject``. The fallback
        tag is asked first (registries without the referrers API keep it), once per run for a subject: the SBOM and
        the provenance of one image share the answer. Listed there, the manifest itself is confirmed (one HEAD);
        with no fallback tag, the referrers API lists only what the registry holds."""
        listing = self._fallback_listing(subject)
        if listing is not None:
            return _lists(listing, digest) and self.has_manifest(digest)
        listed = self._referrers_api(subject)
        return listed is not None and any(m.get("digest") == digest for m in listed)

    def _fallback_listing(self, subject: str) -> bytes | None:
        key = (self.client.registry, self.repo, subject)
        with _FALLBACK_LOCK:
            if key in _FALLBACK_SEEN:
                return _FALLBACK_SEEN[key]
        got = self.manifest(fallback_tag(subject))
        listing = got[0] if got is not None else None
        _remember_fallback(key, listing)
        return listing

    def put_blobs(self, blobs: Sequence[tuple[str, bytes]], what: str = "an artifact") -> None:
        """Upload ``blobs`` (HEAD first); the log counts them, as the image's push does, so every blob line that
        follows is announced by its own count."""
        self.opts.log(f"pushing {len(blobs)} blob(s) of {what} to {self.client.registry}/{self.repo}")
        progress = Progress(self.opts)
        try:
            with tempfile.TemporaryDirectory(prefix="ocibake-artifact-") as tmp:
                for i, (digest, data) in enumerate(blobs):
                    path = Path(tmp, str(i))
                    path.write_bytes(data)
                    _upload_blob(self.client, self.repo, digest, len(data), path, self.opts, progress, ())
        finally:
            progress.close()

    def put_manifest(self, ref: str, blob: Blob) -> str:
        return _put_manifest(
            self.client, self.repo, ref, Descriptor(blob.media_type, blob.digest, len(blob.data)), blob.data
        )

    def put_referrer(
        self,
        manifest: Blob,
        blobs: Sequence[tuple[str, bytes]],
        subject: str,
        artifact_type: str,
        annotations: Mapping[str, str] | None = None,
    ) -> str:
        """Push an artifact whose manifest names ``subject``; without the referrers API, add it to the fallback tag's
        index too. -> "api" or "tag"; "present" when the registry already holds it and lists it (nothing sent)."""
        if self.lists_referrer(manifest.digest, subject):
            return "present"
        self.put_blobs(blobs, f"the referrer {manifest.digest[:19]}")
        what = f"PUT manifest {manifest.digest[:19]}"
        resp = self.client.request(
            "PUT",
            f"/v2/{self.repo}/manifests/{manifest.digest}",
            scopes=self._scopes(True),
            what=what,
            headers={"Content-Type": manifest.media_type},
            body=manifest.data,
            repository=self.repo,
        )
        if resp.status_code not in (200, 201):
            raise self.client.error(what, resp, repository=self.repo)
        if resp.headers.get("OCI-Subject") == subject:
            return "api"
        entry = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.data),
            "artifactType": artifact_type,
        }
        if annotations:
            entry["annotations"] = dict(annotations)
        existing = self.manifest(fallback_tag(subject))
        manifests = []
        if existing is not None:
            try:
                manifests = [
                    m for m in json.loads(existing[0]).get("manifests") or [] if m.get("digest") != manifest.digest
                ]
            except ValueError:
                manifests = []
        index = Blob(
            OCI_INDEX, canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, entry]})
        )
        self.put_manifest(fallback_tag(subject), index)
        _remember_fallback((self.client.registry, self.repo, subject), index.data)
        return "tag"


# The fallback tags read or written by this process: (registry, repository, subject) -> the index's bytes (None:
# no such tag). A run asks each once; what it writes there replaces what it read.
_FALLBACK_SEEN: dict[tuple[str, str, str], bytes | None] = {}
_FALLBACK_LOCK = threading.Lock()


def _remember_fallback(key: tuple[str, str, str], listing: bytes | None) -> None:
    with _FALLBACK_LOCK:
        _FALLBACK_SEEN[key] = listing


def _lists(listing: bytes, digest: str) -> bool:
    try:
        return any(m.get("digest") == digest for m in json.loads(listing).get("manifests") or [])
    except (ValueError, AttributeError):
        return False


__all__ = ["OCI_MANIFEST", "Remote", "fallback_tag"]
