"""The registry client: HTTP transport, authentication and errors, one Client per registry host.

From oras-py we use the reference grammar (reference.py) and its WWW-Authenticate parser (ping.py). The HTTP side is
ours, for the reasons in DESIGN.md: every request has a timeout; retries (bounded, with backoff, honouring
Retry-After) only on connection errors, 408, 429 and 5xx (retry.py); bearer tokens are fetched per repository scope
and refreshed on 401; basic credentials are sent up front. Pushing (push.py) and pulling (pull.py) share this client.

Secrets (passwords, basic headers, tokens) are registered with ``redact.add_secret`` and scrubbed from every message
and trace.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Protocol

import requests
import urllib3

from ocibake.errors import RegistryError
from ocibake.oci.limits import too_large
from ocibake.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from ocibake.registry import credentials as creds_mod
from ocibake.registry.bearer import bearer_token
from ocibake.registry.certs_d import host_certs
from ocibake.registry.credentials import Credentials
from ocibake.registry.deadline import Watchdog, WatchedAdapter
from ocibake.registry.errors import HINTS, STATUS_CODES, Cancelled, ConnectionLost, _oci_error
from ocibake.registry.options import RegistryOptions
from ocibake.registry.ping import Challenge, challenge_of, connect, parse_www_authenticate
from ocibake.registry.redact import add_secret, redact
from ocibake.registry.reference import API_HOSTS, is_loopback
from ocibake.registry.retry import connection_reason, with_retries
from ocibake.registry.trust import trust_store

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
USER_AGENT = "ocibake"


# What GET /v2/ said, per (registry, host, --insecure, TLS trust), for the life of the process: see Client.ping.
_PINGED: dict[tuple[str, str, bool, str], tuple[str, bool | str, Challenge | None]] = {}
_PINGED_LOCK = threading.Lock()


class StreamBody(Protocol):
    """A request body read from disk as it is sent: its length known up front, closed after each attempt."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def read(self, n: int | None = -1) -> bytes: ...

    def close(self) -> None: ...


class Client:
    """One registry host: scheme, TLS, auth state (basic header or bearer tokens per scope), retrying requests."""

    def __init__(self, registry: str, options: RegistryOptions, watchdog: Watchdog | None = None):
        self.registry = registry  # as the user wrote it: messages, credentials
        self.host = API_HOSTS.get(registry, registry)  # where the API answers
        self.opts = options
        self.watchdog = watchdog or Watchdog(options.timeout, options.stall_timeout)
        self._own_watchdog = watchdog is None
        self.session = requests.Session()
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, WatchedAdapter())
        self.session.headers["User-Agent"] = USER_AGENT
        if is_loopback(registry):
            self.session.trust_env = False  # no proxy (and no .netrc) for loopback
        # The system's CAs, plus --ca-cert and the registry's certs.d (trust.py, certs_d.py), not only certifi's.
        self.certs = host_certs(registry, options.environ)
        what = f"{options.ca_cert_from} {options.ca_cert}"
        self.verify: bool | str = trust_store(options.ca_cert, options.environ, self.certs.cas, what)
        if self.certs.client is not None:  # mutual TLS: certs.d's NAME.cert and NAME.key
            self.session.cert = (str(self.certs.client[0]), str(self.certs.client[1]))
        if options.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.cancel = threading.Event()  # set to stop uploads in flight (Ctrl-C, SIGTERM)
        self.base: str | None = None
        self.challenge: Challenge | None = None  # from GET /v2/
        self.creds: Credentials | None = None
        self._creds_loaded = False
        self.tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, monotonic time to renew it)
        self.lock = threading.Lock()

    # ---------------------------------------------------------------- logging
    def trace(self, line: str) -> None:
        if self.opts.trace:
            self.opts.trace(redact(line))

    def _credentials(self) -> Credentials | None:
        if not self._creds_loaded:
            self.creds = creds_mod.lookup(self.registry, self.opts.credentials, self.opts.environ)
            self._creds_loaded = True
            if self.creds:
                add_secret(self.creds.password)
                add_secret(self.creds.basic())
                self.trace(f"credentials for {self.registry} from {self.creds.source} (user {self.creds.username})")
        return self.creds

    def error(
        self,
        what: str,
        resp: requests.Response | None = None,
        *,
        repository: str = "",
        reason: str | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> RegistryError:
        status = resp.status_code if resp is not None else None
        message = ""
        if resp is not None:
            c, message = _oci_error(resp)
            code = code or c or STATUS_CODES.get(resp.status_code)
        parts = [f"registry {self.registry}: {what} failed"]
        if status is not None:
            parts.append(f"HTTP {status}")
        if code:
            parts.append(code)
        text = ": ".join([parts[0], " ".join(parts[1:])]) if len(parts) > 1 else parts[0]
        if message or reason:
            text += f" ({message or reason})"
        if hint is None and code in HINTS:
            hint = HINTS[code].format(registry=self.registry, repository=repository or "the repository")
        if code == "UNAUTHORIZED" and self.creds is not None:
            if self.creds.source.startswith("OCIBAKE_USERNAME"):
                fix = "check OCIBAKE_USERNAME and OCIBAKE_PASSWORD (they take precedence over stored logins)"
            elif self.creds.source.startswith("--username"):
                fix = "check the user and the password given on stdin"
            else:
                fix = f"check them, or log in again with `ocibake login {self.registry} -u USER --password-stdin`"
            hint = (
                f"the registry refused the credentials for user {self.creds.username!r} from {self.creds.source}; {fix}"
            )
        if hint is None and status in STATUS_CODES:
            hint = HINTS[STATUS_CODES[status]].format(registry=self.registry, repository=repository or "the repository")
        if hint is None and status is not None and status >= 500:
            hint = "the registry failed; try again later"
        if hint is None and status is not None and 400 <= status < 500:
            hint = (
                f"the registry refused the request (HTTP {status}); run again with -v to see the requests, or ask "
                "its admins whether it accepts OCI images in this repository"
            )
        return RegistryError(redact(text), hint=redact(hint) if hint else None, status=status, code=code)

    # ---------------------------------------------------------------- transport
    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: StreamBody | bytes | None = None,
        stream: bool = False,
        allow_redirects: bool = True,
        verify: bool | str | None = None,
    ) -> requests.Response:
        started = time.monotonic()
        self.trace(f"> {method} {url}")
        entry = self.watchdog.begin(self.registry)
        try:
            resp = self.session.request(
                method,
                url,
                headers=headers,
                data=body,
                stream=stream,
                timeout=(self.opts.connect_timeout, self.opts.read_timeout),
                verify=self.verify if verify is None else verify,
                allow_redirects=allow_redirects,
            )
        except requests.exceptions.RequestException as exc:
            self.watchdog.end(entry)
            why = self.watchdog.failure(entry, self.registry)  # RegistryError once the operation's deadline has passed
            if why is not None:
                raise requests.exceptions.ConnectionError(why) from exc
            raise
        why = self.watchdog.failure(entry, self.registry)
        if why is not None:  # cut by the watchdog: a response that ended early is no answer
            self.watchdog.end(entry)
            resp.close()
            raise requests.exceptions.ConnectionError(why)
        if stream:
            # the body is read later: watched until it is closed (progress reported with touch())
            _end_watch_on_close(resp, lambda: self.watchdog.end(entry))
        else:
            self.watchdog.end(entry)
        self.trace(f"< {resp.status_code} {method} {url} ({(time.monotonic() - started) * 1000:.0f} ms)")
        return resp

    def touch(self) -> None:
        """The request running in this thread moved bytes (keeps the stall watchdog off it)."""
        self.watchdog.touch()

    def read_body(self, resp: requests.Response, limit: int) -> bytes:
        """Up to ``limit`` bytes of a streamed response; a connection lost or cut meanwhile is a RegistryError."""
        try:
            data: bytes = resp.raw.read(limit, decode_content=True)
            why = self.watchdog.current_failure(self.registry)
            if why is not None:
                raise requests.exceptions.ConnectionError(why)
            return data
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            why = self.watchdog.current_failure(self.registry) or connection_reason(exc)
            raise ConnectionLost(
                f"registry {self.registry}: reading a response failed: connection error ({why})",
                hint="the registry is unreachable, too slow or dropped the connection; run the same command again",
            ) from None
        finally:
            resp.close()

    def read_document(self, resp: requests.Response, limit: int, what: str) -> bytes:
        """A document's body (manifest, index, config, artifact blob) read to at most ``limit`` bytes: a larger one,
        announced or not, is refused having read no more than ``limit`` + 1 bytes (limits.py)."""
        announced = resp.headers.get("Content-Length", "")
        size = int(announced) if announced.isascii() and announced.isdigit() else None
        data = b"" if size is not None and size > limit else self.read_body(resp, limit + 1)
        if size is not None and size <= limit and len(data) < size:  # the connection ended early: try again
            raise ConnectionLost(
                f"registry {self.registry}: reading {what} failed: response cut short ({len(data)} of {size} bytes)",
                hint="the registry or a proxy dropped the connection; run the same command again",
            )
        if (size is not None and size > limit) or len(data) > limit:
            resp.close()
            raise RegistryError(
                f"registry {self.registry}: {too_large(what, size, limit)}",
                code="SIZE_INVALID",
                hint="ocibake reads manifests and configs of at most 4 MiB, as the distribution spec suggests and "
                "skopeo enforces; the registry serves something that is no image, or a hostile one",
            )
        return data

    def ping(self) -> str:
        """GET /v2/ once (ping.py): pick the scheme, learn the auth challenge, prove it speaks the registry API.
        -> the base URL (scheme://host) of every request. Asked once per process for the same registry and TLS
        settings: a push and the referrers and signature that follow it share the answer."""
        if self.base is not None:
            return self.base
        key = (self.registry, self.host, self.opts.insecure, str(self.verify))
        with _PINGED_LOCK:
            known = _PINGED.get(key)
        if known is None:
            scheme, verify, resp = connect(self)
            known = (scheme, verify, challenge_of(self.registry, resp))
            with _PINGED_LOCK:
                _PINGED[key] = known
        scheme, self.verify, self.challenge = known
        self.base = f"{scheme}://{self.host}"
        self.trace(f"{self.registry}: {self.base}, auth {self.challenge.scheme if self.challenge else 'none'}")
        return self.base

    def absolute_url(self, location: str) -> str:
        """A path or URL the registry answered with (an upload's Location) as an absolute URL."""
        return urllib.parse.urljoin(self.ping() + "/", location)

    def pause(self, seconds: float) -> None:
        """Sleep before a retry, unless the operation is being cancelled."""
        if self.cancel.wait(seconds):
            raise Cancelled("cancelled")

    def _with_retries(
        self,
        what: str,
        attempt_fn: Callable[[], requests.Response],
        retries: int | None = None,
        connection_retries: int | None = None,
    ) -> requests.Response:
        """retry.with_retries() with this client's options, its waits cut short by a cancel."""
        return with_retries(what, attempt_fn, self.opts, self.pause, retries, connection_retries)

    # ---------------------------------------------------------------- auth
    def _token(self, scopes: tuple[str, ...], force: bool = False) -> str:
        return bearer_token(self, scopes, force)

    def _auth_header(self, scopes: tuple[str, ...], force: bool = False) -> dict[str, str]:
        if self.challenge is None:
            return {}
        kind = self.challenge.scheme
        if kind == "basic":
            creds = self._credentials()
            if creds is None:
                return {}
            return {"Authorization": f"Basic {creds.basic()}"}
        if kind == "bearer":
            return {"Authorization": f"Bearer {self._token(scopes, force)}"}
        return {}

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], StreamBody] | bytes | None = None,
        stream: bool = False,
        retries: int | None = None,
        repository: str = "",
    ) -> requests.Response:
        """An authenticated request with retries. ``body`` may be a factory, called afresh for every attempt."""
        base = self.ping()
        url = path_or_url if "://" in path_or_url else f"{base}{path_or_url}"
        refreshed = False
        while True:
            attempt = partial(self._attempt, method, url, scopes, headers, body, stream)
            try:
                resp = self._with_retries(what, attempt, retries)
            except requests.exceptions.RequestException as exc:
                raise ConnectionLost(
                    f"registry {self.registry}: {what} failed: connection error ({connection_reason(exc)})",
                    hint="the registry is unreachable or dropped the connection; run the same command again to resume",
                ) from None
            if resp.status_code == 401 and not refreshed and self.challenge is not None:
                refreshed = True
                renewed = self._renew_token(resp, scopes)
                if renewed is not None:
                    scopes = renewed
                    continue
            return resp  # a 401 still (basic credentials refused, or the fresh token too) is the caller's to report

    def _attempt(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        headers: Mapping[str, str] | None,
        body: Callable[[], StreamBody] | bytes | None,
        stream: bool,
    ) -> requests.Response:
        """One try of request(): a fresh body from its factory, the auth header as it is now."""
        data = body() if callable(body) else body
        try:
            return self._send(
                method, url, headers={**(headers or {}), **self._auth_header(scopes)}, body=data, stream=stream
            )
        finally:
            if data is not None and not isinstance(data, bytes):
                data.close()

    def _renew_token(self, resp: requests.Response, scopes: tuple[str, ...]) -> tuple[str, ...] | None:
        """After a 401 that asks for a bearer token (the one sent expired, or lacks a scope): a fresh token, with the
        scope the registry asked for -> the scopes to try again with; None when the 401 asks for no bearer token."""
        challenge = resp.headers.get("WWW-Authenticate", "")
        if self.challenge is None or not challenge.lower().startswith("bearer"):
            return None
        asked = parse_www_authenticate(challenge)
        self.challenge = Challenge(
            "bearer", realm=asked.realm or self.challenge.realm, service=asked.service or self.challenge.service
        )
        if asked.scope and asked.scope not in scopes:
            scopes = (*scopes, asked.scope)
        self.trace(f"{self.registry}: 401, refreshing the token")
        resp.close()
        self._token(scopes, force=True)
        return scopes

    def close(self) -> None:
        self.session.close()
        if self._own_watchdog:
            self.watchdog.close()


class Clients:
    def __init__(self, options: RegistryOptions):
        self.options = options
        self.by_host: dict[str, Client] = {}
        self.watchdog = Watchdog(options.timeout, options.stall_timeout)  # one deadline for the operation

    def get(self, registry: str) -> Client:
        if registry not in self.by_host:
            self.by_host[registry] = Client(registry, self.options, self.watchdog)
        return self.by_host[registry]

    def close(self) -> None:
        for c in self.by_host.values():
            c.close()
        self.watchdog.close()


def _end_watch_on_close(resp: requests.Response, end_watch: Callable[[], None]) -> None:
    """Make ``resp.close()`` end the watch of its request first: the watchdog follows a streamed body until then."""
    close = resp.close

    def close_and_end() -> None:
        end_watch()
        close()

    resp.close = close_and_end  # type: ignore[method-assign]  # requests.Response has no hook for its close()
