"""The bearer-token exchange of the distribution spec's token authentication: a token per set of scopes, asked of
the realm the registry's challenge names (with the user's credentials when there are any), cached until shortly
before it expires. Tokens are registered as secrets so that no log or error shows them."""

from __future__ import annotations

import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import requests

from ocibake.errors import RegistryError
from ocibake.registry.redact import add_secret, redact
from ocibake.registry.retry import connection_reason

if TYPE_CHECKING:
    from ocibake.registry.client import Client


def bearer_token(client: Client, scopes: tuple[str, ...], force: bool = False) -> str:
    """A token for ``scopes`` from ``client``'s cache, or a new one (always new with ``force``, after a 401)."""
    key = " ".join(scopes)
    with client.lock:
        cached = client.tokens.get(key)
        if not force and cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        challenge = client.challenge
        assert challenge is not None
        realm = challenge.realm
        if not realm:
            raise RegistryError(f"registry {client.registry}: bearer challenge without a realm", code="UNAUTHORIZED")
        _refuse_downgrade(client, realm)
        query = [("scope", s) for s in scopes]
        if challenge.service:
            query.insert(0, ("service", challenge.service))
        creds = client._credentials()
        headers = {"Authorization": f"Basic {creds.basic()}"} if creds else {}
        if creds:
            query.append(("account", creds.username))
        sep = "&" if "?" in realm else "?"
        url = f"{realm}{sep}{urllib.parse.urlencode(query)}"
        try:
            resp = client._with_retries(
                "token",
                lambda: client._send(
                    "GET", url, headers=headers, verify=client.verify if realm.startswith("https") else True
                ),
            )
        except requests.exceptions.RequestException as exc:
            raise RegistryError(
                f"registry {client.registry}: token server {urllib.parse.urlsplit(realm).netloc} "
                f"unreachable ({connection_reason(exc)})",
                hint="check the network path to the token server",
            ) from None
        if resp.status_code != 200:
            raise client.error("getting a token", resp, code="UNAUTHORIZED" if resp.status_code in (401, 403) else None)
        doc = _token_document(resp)
        token = doc.get("token") or doc.get("access_token")
        if not token or not isinstance(token, str):
            raise RegistryError(f"registry {client.registry}: the token server answered no token", code="UNAUTHORIZED")
        add_secret(token)
        client.tokens[key] = (token, time.monotonic() + _refresh_after(doc))
        return token


def _refuse_downgrade(client: Client, realm: str) -> None:
    """The token exchange never downgrades: a registry reached over HTTPS may only name an https realm, or the
    user's password (and the token) would cross the network in cleartext to whoever the challenge names. A plain-HTTP
    realm is accepted only when the registry itself was reached over plain HTTP (loopback, or --insecure), as crane
    does. Nothing at all is sent to a refused realm."""
    scheme = urllib.parse.urlsplit(realm).scheme.lower()
    registry_scheme = urllib.parse.urlsplit(client.base or "https://").scheme
    if scheme == "https" or (scheme == "http" and registry_scheme == "http"):
        return
    raise RegistryError(
        f"registry {client.registry}: refusing the token server {redact(realm)}: its scheme {scheme!r} is not allowed "
        f"for a registry reached over {registry_scheme} (credentials would be sent in cleartext)",
        hint="the registry (or something between it and you) names a token realm that is not https; ask its admins "
        "to serve the realm over https",
        code="INSECURE_REALM",
    )


def _token_document(resp: requests.Response) -> dict[str, Any]:
    """The token server's JSON answer; {} when it is not a JSON object."""
    try:
        doc = resp.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _refresh_after(doc: dict[str, Any]) -> float:
    """Seconds a token may be used before asking for a new one: its lifetime (60 s when the server does not say, as
    the distribution spec suggests) less a margin, so no request starts with a token about to expire."""
    try:
        lifetime = float(doc.get("expires_in") or 60)
    except (TypeError, ValueError):
        lifetime = 60.0
    return max(1.0, lifetime - max(2.0, lifetime * 0.1))
