"""The registry client: references, HTTP transport, authentication and errors. With reference.py, the only place that
imports oras.

From oras-py we use the reference grammar (``oras.container.Container``) and its WWW-Authenticate parser. The HTTP
side is ours, for the reasons in DESIGN.md: every request has a timeout; retries (bounded, with backoff, honouring
Retry-After) only on connection errors, 408, 429 and 5xx; bearer tokens are fetched per repository scope and
refreshed on 401; basic credentials are sent up front. Pushing (push.py) and pulling (pull.py) share this client.

Secrets (passwords, basic headers, tokens) are registered with ``redact.add_secret`` and scrubbed from every message
and trace.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable

import oras.auth.utils
import requests
import urllib3

from ocibake.errors import RegistryError
from ocibake.oci.media_types import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from ocibake.registry import credentials as creds_mod
from ocibake.registry.bearer import bearer_token
from ocibake.registry.credentials import Credentials
from ocibake.registry.deadline import Watchdog, WatchedAdapter
from ocibake.registry.errors import HINTS, STATUS_CODES, Cancelled, ConnectionLost, Retryable, _oci_error
from ocibake.registry.options import RegistryOptions
from ocibake.registry.redact import add_secret, redact
from ocibake.registry.reference import API_HOSTS, is_loopback
from ocibake.registry.trust import system_bundle, trust_store

STALL_RETRIES = 1
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
USER_AGENT = "ocibake"


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
        # The system's CAs (plus --ca-cert), not only the certifi bundle requests would use (see trust.py).
        self.verify: bool | str = trust_store(options.ca_cert, options.environ)
        if options.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.cancel = threading.Event()  # set to stop uploads in flight (Ctrl-C, SIGTERM)
        self.base: str | None = None
        self.challenge: tuple[str, dict] | None = None  # ("basic"|"bearer", params) from GET /v2/
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
        headers: dict | None = None,
        body=None,
        stream: bool = False,
        allow_redirects: bool = True,
        verify=None,
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
            close = resp.close

            def close_and_end():
                self.watchdog.end(entry)
                close()

            resp.close = close_and_end
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
            data = resp.raw.read(limit, decode_content=True)
            why = self.watchdog.current_failure(self.registry)
            if why is not None:
                raise requests.exceptions.ConnectionError(why)
            return data
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as exc:
            why = self.watchdog.current_failure(self.registry) or self._connection_reason(exc)
            raise ConnectionLost(
                f"registry {self.registry}: reading a response failed: connection error ({why})",
                hint="the registry is unreachable, too slow or dropped the connection; run the same command again",
            ) from None
        finally:
            resp.close()

    def _delay(self, attempt: int, hinted: float | None) -> float:
        if hinted is not None:
            return hinted
        return min(self.opts.max_delay, self.opts.backoff * (2**attempt))

    def _retry_after(self, resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After")
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
        return max(0.0, seconds)

    def _connection_reason(self, exc: Exception) -> str:
        text = str(exc)
        if text.startswith("stalled:"):
            return text
        for key in (
            "Connection refused",
            "Name or service not known",
            "Temporary failure in name resolution",
            "timed out",
            "Connection reset",
            "Connection aborted",
            "RemoteDisconnected",
            "No route to host",
            "certificate verify failed",
            "wrong version number",
            "Max retries exceeded",
            "IncompleteRead",
            "Broken pipe",
        ):
            if key in text:
                return key if key != "Max retries exceeded" else type(exc).__name__
        return type(exc).__name__

    def ping(self) -> None:
        """GET /v2/: pick the scheme, learn the auth challenge, prove it speaks the registry API."""
        if self.base is not None:
            return
        candidates: list[tuple[str, bool | str]] = [("https", self.verify)]
        # Plain HTTP for loopback or --insecure, and only when the server does not speak TLS at all: a certificate
        # that fails verification is an error, never a reason to try without TLS (--ca-cert is checked up front).
        plain_ok = self.opts.insecure or is_loopback(self.registry)
        if self.opts.insecure:
            candidates = [("https", False)]
            self.opts.log(f"warning: TLS certificates of {self.registry} are not verified (--insecure)")
        last_exc: Exception | None = None
        resp = None
        for scheme, verify in candidates + ([("http", True)] if plain_ok else []):
            url = f"{scheme}://{self.host}/v2/"
            try:
                resp = self._with_retries(
                    f"GET {url}", lambda url=url, verify=verify: self._send("GET", url, verify=verify), retries=2
                )
            except requests.exceptions.SSLError as exc:
                last_exc = exc
                if "certificate verify failed" in str(exc) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    reason = self._tls_reason(exc)
                    if "mismatch" in reason.lower():
                        hint = (
                            "the certificate was issued for another name; use the host name or address it names "
                            "(or --insecure to skip verification)"
                        )
                    elif self.opts.ca_cert:
                        hint = (
                            f"the certificate is signed neither by {self.opts.ca_cert} nor by a CA of "
                            f"{system_bundle(os.environ)}; check the CA file"
                        )
                    else:
                        hint = (
                            f"pass the registry's CA with --ca-cert PATH (trusted now: {self.verify}), or --insecure "
                            "to skip verification"
                        )
                    raise RegistryError(
                        f"registry {self.registry}: TLS certificate not trusted ({reason})", hint=hint, code="TLS"
                    ) from None
                continue  # not TLS at all: try plain HTTP when allowed
            except requests.exceptions.RequestException as exc:
                last_exc = exc
                # An unknown host or a closed port is the same for plain HTTP: do not try (and retry) it again.
                if isinstance(exc, requests.exceptions.ConnectionError) and self._connection_reason(exc) in (
                    "Name or service not known",
                    "Connection refused",
                ):
                    break
                continue
            self.verify = verify
            self.base = f"{scheme}://{self.host}"
            break
        if self.base is None or resp is None:
            reason = self._connection_reason(last_exc) if last_exc else "no answer"
            if last_exc is not None and isinstance(last_exc, requests.exceptions.SSLError) and not plain_ok:
                raise RegistryError(
                    f"registry {self.registry}: TLS handshake failed ({reason})",
                    hint="plain HTTP is used only for localhost/127.0.0.1 or with --insecure",
                )
            raise RegistryError(
                f"registry {self.registry}: cannot connect ({reason})",
                hint="check the host name and port, the network and any proxy",
            )
        api = resp.headers.get("Docker-Distribution-API-Version", "")
        challenge = resp.headers.get("WWW-Authenticate", "")
        if resp.status_code == 401 and challenge:
            scheme, _, _ = challenge.partition(" ")
            params = oras.auth.utils.parse_auth_header(challenge)
            self.challenge = (scheme.lower(), {"realm": params.realm, "service": params.service})
        elif resp.status_code == 200 and (
            api.startswith("registry/2") or resp.headers.get("Content-Type", "").startswith("application/json")
        ):
            self.challenge = None
        else:
            self.base = None
            raise RegistryError(
                f"registry {self.registry}: GET /v2/ answered HTTP {resp.status_code}, which is not "
                "the OCI distribution API",
                status=resp.status_code,
                hint="is this a registry? check the host and port (and the path: only HOST[:PORT] "
                "belongs before the repository)",
            )
        self.trace(f"{self.registry}: {self.base}, auth {self.challenge[0] if self.challenge else 'none'}")

    def pause(self, seconds: float) -> None:
        """Sleep before a retry, unless the operation is being cancelled."""
        if self.cancel.wait(seconds):
            raise Cancelled("cancelled")

    def _tls_reason(self, exc: Exception) -> str:
        m = re.search(r"certificate verify failed: (.+?)(?: \(_ssl\.c|['\"]\)|$)", str(exc))
        return m.group(1).strip().rstrip(".") if m else "certificate verify failed"

    def _with_retries(self, what: str, attempt_fn: Callable[[], requests.Response], retries: int | None = None):
        """Call ``attempt_fn`` until it returns a non-retryable response; retry connection errors, 408, 429, 5xx."""
        retries = self.opts.retries if retries is None else retries
        attempt = 0
        stalls = 0
        while True:
            try:
                resp = attempt_fn()
                if resp.status_code in (408, 429) or resp.status_code >= 500:
                    hinted = self._retry_after(resp)
                    if hinted is not None and hinted > self.opts.max_retry_after:
                        self.opts.log(
                            f"  {what}: HTTP {resp.status_code}, and the registry asks to wait {hinted:.0f}s "
                            f"(more than {self.opts.max_retry_after:.0f}s): giving up; push again later"
                        )
                        return resp
                    if attempt >= retries:
                        return resp
                    resp.close()
                    raise Retryable(f"HTTP {resp.status_code}", hinted)
                return resp
            except Retryable as r:
                delay = self._delay(attempt, r.delay)
                reason = r.reason
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                if isinstance(exc, requests.exceptions.SSLError) or attempt >= retries:
                    raise
                if str(exc).startswith("stalled:"):
                    stalls += 1  # a server that stalls once mostly stalls again: one more try only
                    if stalls > STALL_RETRIES:
                        raise
                if "Name or service not known" in str(exc) or "Temporary failure in name resolution" in str(exc):
                    raise
                delay = self._delay(attempt, None)
                reason = self._connection_reason(exc)
            attempt += 1
            self.opts.log(f"  {what}: {reason}; retry {attempt}/{retries} in {delay:.1f}s")
            self.pause(delay)

    # ---------------------------------------------------------------- auth
    def _token(self, scopes: tuple[str, ...], force: bool = False) -> str:
        return bearer_token(self, scopes, force)

    def _auth_header(self, scopes: tuple[str, ...], force: bool = False) -> dict:
        if self.challenge is None:
            return {}
        kind = self.challenge[0]
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
        headers: dict | None = None,
        body: Callable[[], object] | bytes | None = None,
        stream: bool = False,
        retries: int | None = None,
        repository: str = "",
    ) -> requests.Response:
        """An authenticated request with retries. ``body`` may be a factory, called afresh for every attempt."""
        self.ping()
        url = path_or_url if "://" in path_or_url else f"{self.base}{path_or_url}"
        refreshed = False
        while True:

            def attempt(scopes=scopes):
                data = body() if callable(body) else body
                try:
                    return self._send(
                        method, url, headers={**(headers or {}), **self._auth_header(scopes)}, body=data, stream=stream
                    )
                finally:
                    if hasattr(data, "close"):
                        data.close()

            try:
                resp = self._with_retries(what, attempt, retries)
            except requests.exceptions.RequestException as exc:
                raise ConnectionLost(
                    f"registry {self.registry}: {what} failed: connection error ({self._connection_reason(exc)})",
                    hint="the registry is unreachable or dropped the connection; run the same command again to resume",
                ) from None
            if resp.status_code == 401 and not refreshed and self.challenge is not None:
                # an expired or under-scoped token: fetch a fresh one (with the scope the registry asked for)
                refreshed = True
                challenge = resp.headers.get("WWW-Authenticate", "")
                if challenge.lower().startswith("bearer"):
                    self.challenge = (
                        "bearer",
                        {
                            **self.challenge[1],
                            **{
                                k: v
                                for k, v in vars(oras.auth.utils.parse_auth_header(challenge)).items()
                                if k in ("realm", "service") and v
                            },
                        },
                    )
                    asked = oras.auth.utils.parse_auth_header(challenge).scope
                    if asked and asked not in scopes:
                        scopes = (*tuple(scopes), asked)
                    self.trace(f"{self.registry}: 401, refreshing the token")
                    resp.close()
                    self._token(scopes, force=True)
                    continue
                if self.challenge[0] == "basic" and self._credentials() is not None:
                    pass  # the credentials were sent and refused: report it
            return resp

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
