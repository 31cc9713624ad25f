"""The first request to a registry, GET /v2/: which scheme it answers on, whether it speaks the distribution API, and
how it wants to be authenticated.

HTTPS is tried first; plain HTTP only for a loopback host or with --insecure, and only when the server does not speak
TLS at all: a certificate that fails verification is an error with a hint, never a reason to drop TLS. A loopback
host is asked over plain HTTP first (as docker and crane treat localhost registries), which saves a TLS handshake
attempt on every command; a TLS server there refuses the plain request (400, or a closed connection) and is then
asked over HTTPS, with the same rules. A loopback registry for which a CA or client certificate was named is taken
at its word: HTTPS only, never plain HTTP. The 401
challenge is parsed with oras-py's WWW-Authenticate parser (wrapped here with types); the client keeps it and the
bearer tokens it leads to (bearer.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import oras.auth.utils
import requests

from ocibake.errors import RegistryError
from ocibake.registry.certs_d import roots
from ocibake.registry.reference import is_loopback
from ocibake.registry.retry import connection_reason
from ocibake.registry.trust import system_bundle

if TYPE_CHECKING:
    from ocibake.registry.client import Client


@dataclass(frozen=True)
class AuthParams:
    """The parameters of a WWW-Authenticate challenge that token authentication uses."""

    realm: str | None = None
    service: str | None = None
    scope: str | None = None


@dataclass(frozen=True)
class Challenge:
    """How a registry asks to be authenticated: ``scheme`` "basic" or "bearer" (lowercase), and for bearer tokens
    the token server (``realm``) and the ``service`` to ask it for."""

    scheme: str
    realm: str | None = None
    service: str | None = None


def parse_www_authenticate(header: str) -> AuthParams:
    """realm, service and scope of a WWW-Authenticate header, by oras-py's parser."""
    parsed = oras.auth.utils.parse_auth_header(header)
    return AuthParams(realm=parsed.realm, service=parsed.service, scope=parsed.scope)


def connect(client: Client) -> tuple[str, bool | str, requests.Response]:
    """GET /v2/ on the first scheme that answers -> (scheme, the TLS verification that worked, the response).

    RegistryError when the certificate is not trusted, or when no scheme answers."""
    candidates: list[tuple[str, bool | str]] = [("https", client.verify)]
    # Plain HTTP for loopback or --insecure, and only when the server does not speak TLS at all: a certificate
    # that fails verification is an error, never a reason to try without TLS (--ca-cert is checked up front).
    plain_ok = client.opts.insecure or (is_loopback(client.registry) and not _expects_tls(client))
    if client.opts.insecure:
        candidates = [("https", False)]
        client.opts.log(f"warning: TLS certificates of {client.registry} are not verified (--insecure)")
    if plain_ok and is_loopback(client.registry):
        candidates = [("http", True), *candidates]
    elif plain_ok:
        candidates = [*candidates, ("http", True)]
    last_exc: Exception | None = None
    for scheme, verify in candidates:
        url = f"{scheme}://{client.host}/v2/"
        try:
            resp = _get(client, url, verify)
        except requests.exceptions.SSLError as exc:
            last_exc = exc
            if "certificate verify failed" in str(exc) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise _untrusted(client, exc) from None
            if any(alert in str(exc) for alert in CLIENT_CERT_ALERTS):
                raise _client_cert_refused(client, exc) from None
            continue  # not TLS at all: try plain HTTP when allowed
        except requests.exceptions.RequestException as exc:
            last_exc = exc
            # An unknown host or a closed port is the same for plain HTTP: do not try (and retry) it again.
            if isinstance(exc, requests.exceptions.ConnectionError) and connection_reason(exc) in (
                "Name or service not known",
                "Connection refused",
            ):
                break
            continue
        if scheme == "http" and (scheme, verify) != candidates[-1] and resp.status_code == HTTP_TO_TLS_PORT:
            resp.close()
            continue  # a TLS server refusing a plain request: ask it over HTTPS
        return scheme, verify, resp
    raise _unreachable(client.registry, last_exc, plain_ok, _expects_tls(client))


# what a TLS server answers to a plain HTTP request (Go's net/http, nginx)
HTTP_TO_TLS_PORT = 400


def _expects_tls(client: Client) -> bool:
    """The user named a CA or a client certificate for this registry (--ca-cert, OCIBAKE_CA_CERT, certs.d): it
    speaks TLS, so it is asked over HTTPS only, even on loopback."""
    return bool(client.opts.ca_cert or client.certs.cas or client.certs.client)


def challenge_of(registry: str, resp: requests.Response) -> Challenge | None:
    """The auth challenge of GET /v2/'s answer (None: no authentication asked); RegistryError when the answer is not
    the distribution API's."""
    api = resp.headers.get("Docker-Distribution-API-Version", "")
    challenge = resp.headers.get("WWW-Authenticate", "")
    if resp.status_code == 401 and challenge:
        scheme, _, _ = challenge.partition(" ")
        params = parse_www_authenticate(challenge)
        return Challenge(scheme.lower(), realm=params.realm, service=params.service)
    if resp.status_code == 200 and (
        api.startswith("registry/2") or resp.headers.get("Content-Type", "").startswith("application/json")
    ):
        return None
    raise RegistryError(
        f"registry {registry}: GET /v2/ answered HTTP {resp.status_code}, which is not the OCI distribution API",
        status=resp.status_code,
        hint="is this a registry? check the host and port (and the path: only HOST[:PORT] belongs before the "
        "repository)",
    )


def _get(client: Client, url: str, verify: bool | str) -> requests.Response:
    # answers (500, 429...) get the operation's whole retry budget, as every other request; connection errors two
    # retries, so a wrong port or a plain-HTTP server asked for TLS fails fast
    return client._with_retries(f"GET {url}", lambda: client._send("GET", url, verify=verify), connection_retries=2)


def _untrusted(client: Client, exc: Exception) -> RegistryError:
    """The certificate failed verification: say why, and what to trust instead."""
    reason = _tls_reason(exc)
    if "mismatch" in reason.lower():
        hint = (
            "the certificate was issued for another name; use the host name or address it names "
            "(or --insecure to skip verification)"
        )
    elif client.opts.ca_cert or client.certs.cas:
        given = [str(p) for p in ((client.opts.ca_cert,) if client.opts.ca_cert else ()) + client.certs.cas]
        hint = (
            f"the certificate is signed neither by {', '.join(given)} nor by a CA of "
            f"{system_bundle(os.environ)}; check the CA file"
        )
    else:
        hint = (
            f"put the registry's CA (PEM) in {certs_d_example(client.registry)} (read by podman and skopeo too), "
            "or name it with OCIBAKE_CA_CERT or --ca-cert PATH; --insecure skips verification"
        )
    return RegistryError(f"registry {client.registry}: TLS certificate not trusted ({reason})", hint=hint, code="TLS")


# TLS alerts a server sends when it wants a client certificate it did not get, or does not accept the one it got
CLIENT_CERT_ALERTS = ("ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_REQUIRED", "ALERT_UNKNOWN_CA", "ALERT_ACCESS_DENIED")


def _client_cert_refused(client: Client, exc: Exception) -> RegistryError:
    """The server refused the TLS handshake over the client certificate (mutual TLS)."""
    m = re.search(r"\] ([^()\]]+?) \(_ssl", str(exc))
    reason = m.group(1) if m else "the server refused the client certificate"
    if client.certs.client is None:
        hint = (
            f"the registry asks for a client certificate: put it and its key as client.cert and client.key in "
            f"{certs_d_example(client.registry).removesuffix('/ca.crt')}/ (as for podman and docker)"
        )
    else:
        hint = (
            f"the registry does not accept the client certificate {client.certs.client[0]}; check it is the right one"
        )
    return RegistryError(f"registry {client.registry}: TLS handshake refused ({reason})", hint=hint, code="TLS")


def certs_d_example(registry: str) -> str:
    """Where this user would put a registry's CA: in the first certs.d root ocibake searches."""
    return f"{roots(os.environ)[0] / registry}/ca.crt"


def _unreachable(registry: str, last_exc: Exception | None, plain_ok: bool, tls_named: bool) -> RegistryError:
    reason = connection_reason(last_exc) if last_exc else "no answer"
    if last_exc is not None and isinstance(last_exc, requests.exceptions.SSLError) and not plain_ok:
        if tls_named and is_loopback(registry):
            return RegistryError(
                f"registry {registry}: TLS handshake failed ({reason}): it does not seem to speak TLS, and a CA or "
                "client certificate was named for it",
                hint="a loopback registry is used over plain HTTP when no CA is named: drop --ca-cert (or "
                "OCIBAKE_CA_CERT, or its certs.d directory), or check the port",
            )
        return RegistryError(
            f"registry {registry}: TLS handshake failed ({reason})",
            hint="plain HTTP is used only for localhost/127.0.0.1 or with --insecure",
        )
    if "wrong version number" in reason:  # TLS asked of something that answered neither TLS nor HTTP
        reason = "it answers neither HTTP nor TLS"
    return RegistryError(
        f"registry {registry}: cannot connect ({reason})",
        hint="check the host name and port, the network and any proxy",
    )


def _tls_reason(exc: Exception) -> str:
    m = re.search(r"certificate verify failed: (.+?)(?: \(_ssl\.c|['\"]\)|$)", str(exc))
    return m.group(1).strip().rstrip(".") if m else "certificate verify failed"
