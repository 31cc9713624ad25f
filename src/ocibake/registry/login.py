"""`ocibake login`: prove credentials work on a registry before they are stored."""

from __future__ import annotations

from ocibake.errors import InputError
from ocibake.registry.client import Client
from ocibake.registry.credentials import Credentials
from ocibake.registry.options import RegistryOptions
from ocibake.registry.redact import add_secret
from ocibake.registry.reference import parse_reference


# --------------------------------------------------------------------------------------------------- login
def check_login(registry: str, credentials: Credentials, options: RegistryOptions | None = None) -> bool:
    """Prove ``credentials`` work on ``registry`` (GET /v2/ with them, or a token for them); raises RegistryError.
    Returns whether the registry asks for credentials at all (False: it let GET /v2/ through without any)."""
    opts = options or RegistryOptions()
    ref_host = parse_reference(f"{registry}/x", opts.environ).registry if "/" not in registry else None
    if ref_host is None:
        raise InputError(f"{registry!r}: give only the registry host (HOST[:PORT])", hint="e.g. registry.example.com")
    add_secret(credentials.password)
    add_secret(credentials.basic())
    client = Client(ref_host, RegistryOptions(**{**opts.__dict__, "credentials": credentials}))
    try:
        client.ping()
        if client.challenge is None:
            return False
        if client.challenge.scheme == "bearer":
            client._token(())
            return True
        resp = client.request("GET", "/v2/", scopes=(), what="login")
        if resp.status_code != 200:
            raise client.error("login", resp)
        return True
    finally:
        client.close()
