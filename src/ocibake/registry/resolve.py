"""Resolve a registry reference (REPO:TAG) to the digest of its manifest or index, with one verified GET."""

from __future__ import annotations

from ocibake.registry.client import Clients
from ocibake.registry.manifests import get_manifest
from ocibake.registry.options import RegistryOptions
from ocibake.registry.reference import Reference


def resolve_digest(ref: Reference, options: RegistryOptions | None = None) -> str:
    """The digest REF names now (its own digest if pinned); the manifest's bytes are hashed, not trusted."""
    opts = options or RegistryOptions()
    clients = Clients(opts)
    try:
        client = clients.get(ref.registry)
        _, _, digest = get_manifest(client, ref.repository, ref.digest or ref.tag or "latest", ref.digest)
        return digest
    finally:
        clients.close()
