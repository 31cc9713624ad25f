"""Push OCI layouts to, and pull images from, any OCI distribution registry. The only module that imports oras.

From oras-py we use the reference grammar (``oras.container.Container``) and its WWW-Authenticate parser. The HTTP
side is ours, for the reasons in DESIGN.md: every request has a timeout; retries (bounded, with backoff, honouring
Retry-After) only on connection errors, 408, 429 and 5xx; blobs stream from disk (POST, PATCH, PUT ?digest=, resumed
or restarted after a cut); manifests and indexes go up as the exact bytes on disk with their own Content-Type; bearer
tokens are fetched per repository scope and refreshed on 401; basic credentials are sent up front; every digest the
registry reports or serves is checked against the local one.

Secrets (passwords, basic headers, tokens) are registered with ``redact`` and scrubbed from every message and trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import oras.auth.utils
import oras.container
import requests

from ocibake import credentials as creds_mod
from ocibake.credentials import Credentials
from ocibake.errors import InputError, RegistryError
from ocibake.image import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Blob, Descriptor, Platform
from ocibake.publish.layout import INDEX_TYPES, MANIFEST_TYPES, Layout, LayoutWriter, check_output_path

ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
MAX_MANIFEST = 4 << 20
USER_AGENT = "ocibake"

# --------------------------------------------------------------------------------------------------- redaction
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_PATTERNS = [
    (re.compile(r"(?i)(authorization\s*[:=]\s*)([A-Za-z]+\s+)?[^\s,'\"}]+"), r"\1\2***"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(://)[^/@\s]+@"), r"\1***@"),
    (re.compile(r"(?i)([?&](?:access_token|refresh_token|token|password|secret|sig|signature|x-amz-signature|"
                r"x-amz-credential|x-amz-security-token|_state)=)[^&\s]+"), r"\1***"),
    (re.compile(r"(?i)(\"(?:token|access_token|refresh_token|password|secret)\"\s*:\s*\")[^\"]*"), r"\1***"),
]


def add_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Scrub every registered secret and anything shaped like a credential out of ``text``."""
    with _SECRETS_LOCK:
        known = sorted(_SECRETS, key=len, reverse=True)
    for s in known:
        text = text.replace(s, "***")
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


# --------------------------------------------------------------------------------------------------- references
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    def with_tag(self, tag: str | None) -> "Reference":
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _has_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_reference(text: str, environ=None) -> Reference:
    """REGISTRY/REPO[:TAG][@DIGEST]; a bare REPO gets the $OCIBAKE_REGISTRY prefix (like KO_DOCKER_REPO)."""
    env = os.environ if environ is None else environ
    original = text
    text = text.strip()
    if "://" in text:
        raise InputError(f"{original!r}: give a reference, not a URL", hint="e.g. registry.example.com/team/app:v1")
    first = text.split("/", 1)[0]
    if "/" not in text or not _has_registry(first):
        prefix = env.get("OCIBAKE_REGISTRY", "").strip().rstrip("/")
        if not prefix:
            raise InputError(f"{original!r} names no registry",
                             hint="write REGISTRY/REPO (e.g. registry.example.com/team/app), or set OCIBAKE_REGISTRY "
                                  "to a registry/namespace prefix")
        text = f"{prefix}/{text}"
        first = text.split("/", 1)[0]
    registry, _, rest = text.partition("/")
    # oras' grammar splits name, tag and digest; we check each part against the distribution spec ourselves
    try:
        parsed = oras.container.Container(rest, registry=registry)
    except ValueError:
        raise InputError(f"{original!r} is not a valid image reference", hint="REGISTRY/REPO[:TAG][@sha256:DIGEST]") from None
    name = rest.split("@", 1)[0]
    tag_given = ":" in name.rsplit("/", 1)[-1]
    repository = name.rsplit(":", 1)[0] if tag_given else name
    if not HOST_RE.match(registry):
        raise InputError(f"{original!r}: {registry!r} is not a registry host", hint="HOST[:PORT]/REPO[:TAG]")
    if not NAME_RE.match(repository) or len(repository) > 255:
        raise InputError(f"{original!r}: repository {repository!r} is not a valid name",
                         hint="lowercase letters, digits and separators (. _ -), path components joined by /")
    tag = parsed.tag if tag_given else None
    if tag is not None and not TAG_RE.match(tag):
        raise InputError(f"{original!r}: tag {tag!r} is not valid",
                         hint="tags are 1-128 letters, digits, '_', '.', '-', not starting with '.' or '-'")
    digest = parsed.digest
    if digest is not None and not DIGEST_RE.match(digest):
        raise InputError(f"{original!r}: digest {digest!r} is not valid", hint="digests are sha256:<64 lowercase hex>")
    return Reference(registry.lower() if not registry.startswith("[") else registry, repository, tag, digest)


def is_loopback(registry: str) -> bool:
    import ipaddress
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry[1:].split("]")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------- options
def _noop(line: str) -> None:
    pass


@dataclass(frozen=True)
class RegistryOptions:
    insecure: bool = False                       # allow plain HTTP and unverified TLS for any host
    ca_cert: Path | None = None                  # an extra CA bundle (PEM)
    credentials: Credentials | None = None       # explicit --username/--password-stdin
    mount_from: tuple[str, ...] = ()             # repositories (same registry) to try a cross-repo mount from
    retries: int = 5                             # retries after the first attempt (per request)
    backoff: float = 0.4                         # first retry delay; doubles, capped at max_delay
    max_delay: float = 10.0
    max_retry_after: float = 60.0                # a longer Retry-After fails instead of waiting
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    chunk_size: int | None = None                # PATCH in chunks of this size (None: one streamed PATCH)
    jobs: int = 4                                # blobs uploaded/downloaded in parallel
    log: Callable[[str], None] = _noop           # progress lines (stderr)
    trace: Callable[[str], None] | None = None   # -v: one line per request (redacted)
    progress_bar: bool = False                   # stderr is a terminal
    environ: dict | None = None                  # for tests: the environment to read credentials from


# --------------------------------------------------------------------------------------------------- errors
HINTS = {
    "UNAUTHORIZED": "log in with `ocibake login {registry} -u USER --password-stdin`, or set OCIBAKE_USERNAME and "
                    "OCIBAKE_PASSWORD",
    "DENIED": "the account may not do this in {repository}; ask the registry's admins for push/pull rights",
    "NAME_UNKNOWN": "the repository {repository} does not exist on {registry} (or you may not see it)",
    "NAME_INVALID": "the registry refuses the repository name {repository}",
    "MANIFEST_UNKNOWN": "no such tag or digest in {repository}",
    "MANIFEST_INVALID": "the registry refused the manifest; it may not accept this media type",
    "MANIFEST_BLOB_UNKNOWN": "the registry does not have a blob the manifest names; push again",
    "BLOB_UNKNOWN": "the registry does not have that blob; push again",
    "BLOB_UPLOAD_UNKNOWN": "the upload was lost (registry restarted?); push again",
    "BLOB_UPLOAD_INVALID": "the upload was refused; push again",
    "DIGEST_INVALID": "the registry computed another digest for the uploaded bytes; is a proxy altering them?",
    "SIZE_INVALID": "the registry saw another size for the uploaded bytes; is a proxy altering them?",
    "TAG_INVALID": "the registry refused the tag",
    "TOOMANYREQUESTS": "the registry rate-limits you; wait and push again",
    "UNSUPPORTED": "the registry does not support this operation",
}
STATUS_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 429: "TOOMANYREQUESTS"}


def _oci_error(resp: requests.Response) -> tuple[str | None, str]:
    try:
        doc = resp.json() if resp.content and len(resp.content) < 65536 else None
        err = (doc or {}).get("errors", [])[0]
        return str(err.get("code") or "") or None, str(err.get("message") or "")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return None, ""


class ConnectionLost(RegistryError):
    """The registry could not be reached or dropped the connection (after the retries)."""


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


# --------------------------------------------------------------------------------------------------- client
class _FileSlice:
    """A file region as a request body: known length (Content-Length, no chunked encoding), read from disk as sent."""

    def __init__(self, path: Path, start: int, length: int, progress: Callable[[int], None]):
        self.f = open(path, "rb")
        self.f.seek(start)
        self.left = length
        self.length = length
        self.progress = progress

    def __len__(self) -> int:
        return self.length

    def read(self, n: int = -1) -> bytes:
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


class Client:
    """One registry host: scheme, TLS, auth state (basic header or bearer tokens per scope), retrying requests."""

    def __init__(self, registry: str, options: RegistryOptions):
        self.registry = registry
        self.opts = options
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if is_loopback(registry):
            self.session.trust_env = False           # no proxy (and no .netrc) for loopback
        self.verify: bool | str = str(options.ca_cert) if options.ca_cert else True
        if options.ca_cert and not Path(options.ca_cert).is_file():
            raise InputError(f"--ca-cert {options.ca_cert} does not exist", hint="give the path of a PEM CA certificate")
        self.base: str | None = None
        self.challenge: tuple[str, dict] | None = None     # ("basic"|"bearer", params) from GET /v2/
        self.creds: Credentials | None = None
        self._creds_loaded = False
        self.tokens: dict[str, str] = {}
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

    def error(self, what: str, resp: requests.Response | None = None, *, repository: str = "",
              reason: str | None = None, code: str | None = None, hint: str | None = None) -> RegistryError:
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
            hint = (f"the registry refused the credentials for user {self.creds.username!r} from {self.creds.source}; "
                    f"check them, or log in again with `ocibake login {self.registry} -u USER --password-stdin`")
        if hint is None and status is not None and status >= 500:
            hint = "the registry failed; try again later"
        return RegistryError(redact(text), hint=redact(hint) if hint else None, status=status, code=code)

    # ---------------------------------------------------------------- transport
    def _send(self, method: str, url: str, *, headers: dict | None = None, body=None, stream: bool = False,
              allow_redirects: bool = True, verify=None) -> requests.Response:
        started = time.monotonic()
        self.trace(f"> {method} {url}")
        resp = self.session.request(method, url, headers=headers, data=body, stream=stream,
                                    timeout=(self.opts.connect_timeout, self.opts.read_timeout),
                                    verify=self.verify if verify is None else verify, allow_redirects=allow_redirects)
        self.trace(f"< {resp.status_code} {method} {url} ({(time.monotonic() - started) * 1000:.0f} ms)")
        return resp

    def _delay(self, attempt: int, hinted: float | None) -> float:
        if hinted is not None:
            return hinted
        return min(self.opts.max_delay, self.opts.backoff * (2 ** attempt))

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
        for key in ("Connection refused", "Name or service not known", "Temporary failure in name resolution",
                    "timed out", "Connection reset", "Connection aborted", "RemoteDisconnected",
                    "No route to host", "certificate verify failed", "wrong version number",
                    "Max retries exceeded", "IncompleteRead", "Broken pipe"):
            if key in text:
                return key if key != "Max retries exceeded" else type(exc).__name__
        return type(exc).__name__

    def ping(self) -> None:
        """GET /v2/: pick the scheme, learn the auth challenge, prove it speaks the registry API."""
        if self.base is not None:
            return
        candidates: list[tuple[str, bool | str]] = [("https", self.verify)]
        plain_ok = self.opts.insecure or is_loopback(self.registry)
        if self.opts.insecure:
            candidates = [("https", False)]
        last_exc: Exception | None = None
        resp = None
        for scheme, verify in candidates + ([("http", True)] if plain_ok else []):
            url = f"{scheme}://{self.registry}/v2/"
            try:
                resp = self._with_retries("GET /v2/", lambda: self._send("GET", url, verify=verify), retries=2)
            except requests.exceptions.SSLError as exc:
                last_exc = exc
                if "certificate verify failed" in str(exc) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise RegistryError(
                        f"registry {self.registry}: TLS certificate not trusted ({self._tls_reason(exc)})",
                        hint="pass the registry's CA with --ca-cert PATH (or --insecure to skip verification)",
                        code="TLS") from None
                continue      # not TLS at all: try plain HTTP when allowed
            except requests.exceptions.RequestException as exc:
                last_exc = exc
                if isinstance(exc, requests.exceptions.ConnectionError) and "Name or service not known" in str(exc):
                    break
                continue
            self.verify = verify
            self.base = f"{scheme}://{self.registry}"
            break
        if self.base is None or resp is None:
            reason = self._connection_reason(last_exc) if last_exc else "no answer"
            if last_exc is not None and isinstance(last_exc, requests.exceptions.SSLError) and not plain_ok:
                raise RegistryError(f"registry {self.registry}: TLS handshake failed ({reason})",
                                    hint="plain HTTP is used only for localhost/127.0.0.1 or with --insecure")
            raise RegistryError(f"registry {self.registry}: cannot connect ({reason})",
                                hint="check the host name and port, the network and any proxy")
        api = resp.headers.get("Docker-Distribution-API-Version", "")
        challenge = resp.headers.get("WWW-Authenticate", "")
        if resp.status_code == 401 and challenge:
            scheme, _, _ = challenge.partition(" ")
            params = oras.auth.utils.parse_auth_header(challenge)
            self.challenge = (scheme.lower(), {"realm": params.realm, "service": params.service})
        elif resp.status_code == 200 and (api.startswith("registry/2") or resp.headers.get("Content-Type", "").startswith("application/json")):
            self.challenge = None
        else:
            self.base = None
            raise RegistryError(f"registry {self.registry}: GET /v2/ answered HTTP {resp.status_code}, which is not "
                                "the OCI distribution API", status=resp.status_code,
                                hint="is this a registry? check the host and port (and the path: only HOST[:PORT] "
                                     "belongs before the repository)")
        self.trace(f"{self.registry}: {self.base}, auth {self.challenge[0] if self.challenge else 'none'}")

    def _tls_reason(self, exc: Exception) -> str:
        m = re.search(r"certificate verify failed: ([^(')]+)", str(exc))
        return m.group(1).strip() if m else "certificate verify failed"

    def _with_retries(self, what: str, attempt_fn: Callable[[], requests.Response], retries: int | None = None):
        """Call ``attempt_fn`` until it returns a non-retryable response; retry connection errors, 408, 429, 5xx."""
        retries = self.opts.retries if retries is None else retries
        attempt = 0
        while True:
            try:
                resp = attempt_fn()
                if resp.status_code in (408, 429) or resp.status_code >= 500:
                    hinted = self._retry_after(resp)
                    if attempt >= retries or (hinted is not None and hinted > self.opts.max_retry_after):
                        return resp
                    resp.close()
                    raise _Retryable(f"HTTP {resp.status_code}", hinted)
                return resp
            except _Retryable as r:
                delay = self._delay(attempt, r.delay)
                reason = r.reason
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if isinstance(exc, requests.exceptions.SSLError) or attempt >= retries:
                    raise
                if "Name or service not known" in str(exc) or "Temporary failure in name resolution" in str(exc):
                    raise
                delay = self._delay(attempt, None)
                reason = self._connection_reason(exc)
            attempt += 1
            self.opts.log(f"  {what}: {reason}; retry {attempt}/{retries} in {delay:.1f}s")
            time.sleep(delay)

    # ---------------------------------------------------------------- auth
    def _token(self, scopes: tuple[str, ...], force: bool = False) -> str:
        key = " ".join(scopes)
        with self.lock:
            if not force and key in self.tokens:
                return self.tokens[key]
            assert self.challenge is not None
            params = self.challenge[1]
            realm = params.get("realm")
            if not realm:
                raise RegistryError(f"registry {self.registry}: bearer challenge without a realm", code="UNAUTHORIZED")
            query = [("scope", s) for s in scopes]
            if params.get("service"):
                query.insert(0, ("service", params["service"]))
            creds = self._credentials()
            headers = {"Authorization": f"Basic {creds.basic()}"} if creds else {}
            if creds:
                query.append(("account", creds.username))
            sep = "&" if "?" in realm else "?"
            url = f"{realm}{sep}{urllib.parse.urlencode(query)}"
            try:
                resp = self._with_retries("token", lambda: self._send("GET", url, headers=headers,
                                                                      verify=self.verify if realm.startswith("https") else True))
            except requests.exceptions.RequestException as exc:
                raise RegistryError(f"registry {self.registry}: token server {urllib.parse.urlsplit(realm).netloc} "
                                    f"unreachable ({self._connection_reason(exc)})",
                                    hint="check the network path to the token server") from None
            if resp.status_code != 200:
                raise self.error("getting a token", resp, code="UNAUTHORIZED" if resp.status_code in (401, 403) else None)
            try:
                doc = resp.json()
                token = doc.get("token") or doc.get("access_token")
            except ValueError:
                token = None
            if not token:
                raise RegistryError(f"registry {self.registry}: the token server answered no token", code="UNAUTHORIZED")
            add_secret(token)
            self.tokens[key] = token
            return token

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

    def request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...], what: str,
                headers: dict | None = None, body: Callable[[], object] | bytes | None = None, stream: bool = False,
                retries: int | None = None, repository: str = "") -> requests.Response:
        """An authenticated request with retries. ``body`` may be a factory, called afresh for every attempt."""
        self.ping()
        url = path_or_url if "://" in path_or_url else f"{self.base}{path_or_url}"
        refreshed = False
        while True:
            def attempt():
                data = body() if callable(body) else body
                try:
                    return self._send(method, url, headers={**(headers or {}), **self._auth_header(scopes)},
                                      body=data, stream=stream)
                finally:
                    if hasattr(data, "close"):
                        data.close()
            try:
                resp = self._with_retries(what, attempt, retries)
            except requests.exceptions.RequestException as exc:
                raise ConnectionLost(f"registry {self.registry}: {what} failed: connection error "
                                     f"({self._connection_reason(exc)})",
                                    hint="the registry is unreachable or dropped the connection; run the same command "
                                         "again to resume") from None
            if resp.status_code == 401 and not refreshed and self.challenge is not None:
                # an expired or under-scoped token: fetch a fresh one (with the scope the registry asked for)
                refreshed = True
                challenge = resp.headers.get("WWW-Authenticate", "")
                if challenge.lower().startswith("bearer"):
                    self.challenge = ("bearer", {**self.challenge[1], **{k: v for k, v in vars(
                        oras.auth.utils.parse_auth_header(challenge)).items() if k in ("realm", "service") and v}})
                    asked = oras.auth.utils.parse_auth_header(challenge).scope
                    if asked and asked not in scopes:
                        scopes = tuple(scopes) + (asked,)
                    self.trace(f"{self.registry}: 401, refreshing the token")
                    resp.close()
                    self._token(scopes, force=True)
                    continue
                if self.challenge[0] == "basic" and self._credentials() is not None:
                    pass  # the credentials were sent and refused: report it
            return resp

    def close(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PushedTag:
    repository: str   # registry/repo
    tag: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}@{self.digest}"


@dataclass(frozen=True)
class PushResult:
    tags: tuple[PushedTag, ...]
    uploaded: int
    skipped: int
    mounted: int
    bytes_uploaded: int
    seconds: float

    def lines(self) -> list[str]:
        return [str(t) for t in self.tags]

    def as_json(self) -> dict:
        return {"references": self.lines(),
                "tags": [{"repository": t.repository, "tag": t.tag, "digest": t.digest} for t in self.tags],
                "blobs": {"uploaded": self.uploaded, "skipped": self.skipped, "mounted": self.mounted},
                "bytes_uploaded": self.bytes_uploaded, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        repos = sorted({t.repository for t in self.tags})
        return (f"pushed {len(self.tags)} tag(s) to {', '.join(repos)}: {self.uploaded} blob(s) uploaded "
                f"({_human(self.bytes_uploaded)}), {self.skipped} skipped (already there), {self.mounted} mounted, "
                f"in {self.seconds:.2f}s")


@dataclass(frozen=True)
class PullResult:
    reference: str
    digest: str
    layout: Path
    tag: str | None
    downloaded: int
    skipped: int
    bytes_downloaded: int
    seconds: float

    def line(self) -> str:
        return f"{self.reference}@{self.digest}"

    def as_json(self) -> dict:
        return {"reference": self.reference, "digest": self.digest, "layout": str(self.layout), "tag": self.tag,
                "blobs": {"downloaded": self.downloaded, "skipped": self.skipped},
                "bytes_downloaded": self.bytes_downloaded, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        return (f"pulled {self.reference}@{self.digest} into {self.layout}: {self.downloaded} blob(s) downloaded "
                f"({_human(self.bytes_downloaded)}), {self.skipped} already there, in {self.seconds:.2f}s")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class _Progress:
    """A bar per blob on a terminal, else one line per finished blob."""

    def __init__(self, opts: RegistryOptions):
        self.opts = opts
        self.lock = threading.Lock()

    def bar(self, digest: str, size: int) -> Callable[[int], None]:
        if not self.opts.progress_bar:
            return lambda n: None
        done = [0, 0.0]

        def update(n: int) -> None:
            done[0] += n
            now = time.monotonic()
            if now - done[1] < 0.1 and done[0] < size:
                return
            done[1] = now
            width = 30
            filled = int(width * done[0] / size) if size else width
            with self.lock:
                sys.stderr.write(f"\r  {digest[7:19]} [{'#' * filled}{'.' * (width - filled)}] "
                                 f"{_human(done[0])}/{_human(size)}")
                sys.stderr.flush()
        return update

    def done(self, line: str) -> None:
        with self.lock:
            if self.opts.progress_bar:
                sys.stderr.write("\r\033[K")
            self.opts.log(line)


# --------------------------------------------------------------------------------------------------- push
@dataclass
class _PushPlan:
    blobs: dict[str, tuple[int, Path]] = field(default_factory=dict)        # digest -> (size, path)
    children: list[tuple[Descriptor, bytes]] = field(default_factory=list)  # manifests under an index (by digest)
    tops: list[tuple[str, Descriptor, bytes]] = field(default_factory=list) # (tag, descriptor, bytes)


def _media_type(desc: Descriptor, data: bytes) -> str:
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared or desc.media_type


def _verified_bytes(layout: Layout, desc: Descriptor) -> bytes:
    path = layout.blob_path(desc.digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{desc.digest} is missing from {layout.root}", hint="the layout is incomplete; rebuild it") from None
    if len(data) != desc.size or "sha256:" + hashlib.sha256(data).hexdigest() != desc.digest:
        raise InputError(f"manifest {desc.digest} in {layout.root} does not match its digest or size; nothing was pushed",
                         hint="the layout is damaged; rebuild or re-pull it")
    return data


def _file_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def plan_push(layout: Layout, tagged: Sequence[tuple[str, Descriptor]]) -> _PushPlan:
    """Read and verify everything that will be pushed, before anything is sent."""
    plan = _PushPlan()
    seen_children: set[str] = set()

    def manifest(desc: Descriptor, data: bytes) -> None:
        doc = json.loads(data)
        for d in [doc.get("config")] + list(doc.get("layers") or []):
            if not d:
                continue
            blob = Descriptor.from_json(d)
            if blob.digest in plan.blobs:
                continue
            path = layout.blob_path(blob.digest)
            if not path.is_file():
                raise InputError(f"blob {blob.digest} is missing from {layout.root}; nothing was pushed",
                                 hint="the layout is incomplete; rebuild or re-pull it")
            digest, size = _file_digest(path)
            if digest != blob.digest or size != blob.size:
                raise InputError(f"blob {blob.digest} in {layout.root} does not match its digest or size; "
                                 "nothing was pushed", hint="the layout is damaged; rebuild or re-pull it")
            plan.blobs[blob.digest] = (size, path)

    def walk(desc: Descriptor, data: bytes) -> None:
        mt = _media_type(desc, data)
        if mt in INDEX_TYPES:
            for child in json.loads(data).get("manifests") or []:
                cd = Descriptor.from_json(child)
                if cd.digest in seen_children:
                    continue
                seen_children.add(cd.digest)
                cdata = _verified_bytes(layout, cd)
                walk(cd, cdata)
                plan.children.append((cd, cdata))
        elif mt in MANIFEST_TYPES:
            manifest(desc, data)
        else:
            raise InputError(f"{desc.digest} in {layout.root} has media type {mt!r}, not a manifest or index",
                             hint="ocibake pushes OCI/Docker image manifests and indexes")

    for tag, desc in tagged:
        data = _verified_bytes(layout, desc)
        try:
            walk(desc, data)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"{desc.digest} in {layout.root} is not a valid manifest ({type(exc).__name__})",
                             hint="the layout is damaged; rebuild it") from None
        plan.tops.append((tag, desc, data))
    return plan


def select_tags(layout: Layout, tags: Sequence[str] | None) -> list[tuple[str, Descriptor]]:
    """Which (tag, descriptor) pairs to push: all tags in the layout, or the named ones (a single untagged image in
    the layout may be given any tag)."""
    available = layout.tags()
    if not tags:
        if not available:
            manifests = layout.manifests()
            raise InputError(f"{layout.root} has no tagged images" + (f" ({len(manifests)} untagged)" if manifests else ""),
                             hint="name a tag with --tag TAG")
        return sorted(available.items())
    out = []
    for tag in tags:
        if not TAG_RE.match(tag):
            raise InputError(f"tag {tag!r} is not valid", hint="tags are 1-128 letters, digits, '_', '.', '-'")
        if tag in available:
            out.append((tag, available[tag]))
            continue
        manifests = layout.manifests()
        digests = {m.digest for m in manifests}
        if len(digests) == 1:
            d = manifests[0]
            out.append((tag, Descriptor(d.media_type, d.digest, d.size, {}, d.platform)))
            continue
        raise InputError(f"tag {tag!r} is not in {layout.root}", hint=f"tags here: {', '.join(sorted(available)) or 'none'}")
    return out


class _Clients:
    def __init__(self, options: RegistryOptions):
        self.options = options
        self.by_host: dict[str, Client] = {}

    def get(self, registry: str) -> Client:
        if registry not in self.by_host:
            self.by_host[registry] = Client(registry, self.options)
        return self.by_host[registry]

    def close(self) -> None:
        for c in self.by_host.values():
            c.close()


def _upload_blob(client: Client, repo: str, digest: str, size: int, path: Path, opts: RegistryOptions,
                 progress: _Progress, mount_from: Sequence[str]) -> tuple[str, int]:
    """-> ("skipped"|"mounted"|"uploaded", bytes sent)."""
    scopes = (f"repository:{repo}:pull,push",) + tuple(f"repository:{m}:pull" for m in mount_from)
    what = f"blob {digest[:19]}"
    resp = client.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, what=f"HEAD {what}", repository=repo)
    if resp.status_code == 200:
        progress.done(f"  {digest[:19]}  {_human(size):>10}  exists, skipped")
        return "skipped", 0
    if resp.status_code not in (404,):
        raise client.error(f"HEAD {what}", resp, repository=repo)
    location = None
    for source in mount_from:
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        resp = client.request("POST", f"/v2/{repo}/blobs/uploads/?{q}", scopes=scopes, what=f"mount {what}",
                              repository=repo)
        if resp.status_code == 201:
            progress.done(f"  {digest[:19]}  {_human(size):>10}  mounted from {source}")
            return "mounted", 0
        if resp.status_code == 202:
            location = resp.headers.get("Location")
            break
        if resp.status_code not in (401, 403, 404):
            raise client.error(f"mount {what}", resp, repository=repo)
    sent_total = 0
    restarts = 0
    bar = progress.bar(digest, size)
    while True:
        if location is None:
            resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, what=f"start upload of {what}",
                                  repository=repo, headers={"Content-Length": "0"})
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
            while offset < size or (size == 0 and offset == 0 and chunk is not None and False):
                length = size - offset if not chunk else min(chunk, size - offset)
                start = offset

                def body(start=start, length=length):
                    return _FileSlice(path, start, length, bar)
                headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length)}
                if start > 0 or chunk:
                    headers["Content-Range"] = f"{start}-{start + length - 1}"
                resp = client.request("PATCH", location, scopes=scopes, what=f"upload {what}", headers=headers,
                                      body=body, retries=0, repository=repo)
                if resp.status_code != 202:
                    if resp.status_code in (408, 429) or resp.status_code >= 500:
                        raise _Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
                    raise client.error(f"upload {what}", resp, repository=repo)
                location = urllib.parse.urljoin(client.base + "/", resp.headers.get("Location") or location)
                sent_total += length
                offset += length
            q = ("&" if "?" in location else "?") + urllib.parse.urlencode({"digest": digest})
            resp = client.request("PUT", location + q, scopes=scopes, what=f"finish upload of {what}",
                                  headers={"Content-Length": "0"}, retries=0, repository=repo)
            if resp.status_code in (408, 429) or resp.status_code >= 500:
                raise _Retryable(f"HTTP {resp.status_code}", client._retry_after(resp))
            if resp.status_code != 201:
                if resp.status_code == 404 and restarts < opts.retries:
                    raise _Retryable(f"HTTP {resp.status_code} (upload lost)")
                raise client.error(f"finish upload of {what}", resp, repository=repo)
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != digest:
                raise RegistryError(f"registry {client.registry}: stored blob {digest} as {got}", code="DIGEST_INVALID",
                                    hint=HINTS["DIGEST_INVALID"])
            progress.done(f"  {digest[:19]}  {_human(size):>10}  uploaded")
            return "uploaded", size
        except (_Retryable, ConnectionLost) as exc:
            restarts += 1
            if restarts > opts.retries:
                if isinstance(exc, RegistryError):
                    raise
                raise client.error(f"upload {what}", None, reason=exc.reason, repository=repo,
                                   hint="the registry kept failing; run the same command again to resume") from None
            delay = client._delay(restarts - 1, getattr(exc, "delay", None))
            opts.log(f"  {what}: upload interrupted ({getattr(exc, 'reason', None) or 'connection error'}); "
                     f"starting it again in {delay:.1f}s ({restarts}/{opts.retries})")
            time.sleep(delay)
            location = None   # a fresh upload session: the old one may hold a partial, unresumable write


def _put_manifest(client: Client, repo: str, ref: str, desc: Descriptor, data: bytes) -> str:
    mt = _media_type(desc, data)
    scopes = (f"repository:{repo}:pull,push",)
    what = f"PUT manifest {ref}" if not ref.startswith("sha256:") else f"PUT manifest {ref[:19]}"
    resp = client.request("PUT", f"/v2/{repo}/manifests/{ref}", scopes=scopes, what=what,
                          headers={"Content-Type": mt}, body=data, repository=repo)
    if resp.status_code not in (200, 201):
        raise client.error(what, resp, repository=repo)
    got = resp.headers.get("Docker-Content-Digest")
    if not got:
        head = client.request("HEAD", f"/v2/{repo}/manifests/{ref}", scopes=scopes, what=f"HEAD manifest {ref}",
                              headers={"Accept": mt}, repository=repo)
        got = head.headers.get("Docker-Content-Digest")
    if got != desc.digest:
        raise RegistryError(f"registry {client.registry}: {repo}:{ref} is {got or 'of unknown digest'}, "
                            f"not the pushed {desc.digest}", code="DIGEST_MISMATCH",
                            hint="the registry rewrote the manifest (it may not support OCI media types); "
                                 "nothing else was changed")
    return got


def push_layout(layout_path: Path | str, repo: str | Sequence[str], tags: Sequence[str] | None = None,
                options: RegistryOptions | None = None) -> PushResult:
    """Push the images of an OCI layout to one or more repositories (REGISTRY/REPO, or a bare name with
    $OCIBAKE_REGISTRY). ``tags``: layout tags to push (default: all). A tag in ``repo`` (REPO:TAG) adds that tag.

    Order per repository: blobs (HEAD, mount, upload), child manifests by digest, then each tag's manifest or index.
    Everything is read and verified before the first request.
    """
    opts = options or RegistryOptions()
    started = time.monotonic()
    repos = [repo] if isinstance(repo, str) else list(repo)
    if not repos:
        raise InputError("no repository to push to", hint="ocibake push LAYOUT REGISTRY/REPO")
    refs = [parse_reference(r, opts.environ) for r in repos]
    for r in refs:
        if r.digest:
            raise InputError(f"{r}: push to a repository or tag, not a digest", hint="drop the @sha256:... part")
    layout = Layout.open(layout_path)
    wanted = list(tags or [])
    for r in refs:
        if r.tag and r.tag not in wanted:
            wanted.append(r.tag)
    plan = plan_push(layout, select_tags(layout, wanted or None))
    progress = _Progress(opts)
    clients = _Clients(opts)
    counts = {"uploaded": 0, "skipped": 0, "mounted": 0}
    sent = 0
    pushed: list[PushedTag] = []
    try:
        for ref in refs:
            client = clients.get(ref.registry)
            client.ping()
            mount_from = []
            for m in opts.mount_from:
                mref = parse_reference(m if "/" in m and _has_registry(m.split("/", 1)[0]) else f"{ref.registry}/{m}",
                                       opts.environ)
                if mref.registry == ref.registry and mref.repository != ref.repository:
                    mount_from.append(mref.repository)
            opts.log(f"pushing {len(plan.blobs)} blob(s) to {ref.name}")
            items = sorted(plan.blobs.items(), key=lambda kv: -kv[1][0])
            if items:
                # prime the token once, so parallel uploads share it
                client.request("HEAD", f"/v2/{ref.repository}/blobs/{items[0][0]}",
                               scopes=(f"repository:{ref.repository}:pull,push",)
                               + tuple(f"repository:{m}:pull" for m in mount_from),
                               what="HEAD blob", repository=ref.repository).close()
            with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
                futures = [pool.submit(_upload_blob, client, ref.repository, d, size, path, opts, progress, mount_from)
                           for d, (size, path) in items]
                outcomes = [f.result() for f in futures]
            for kind, n in outcomes:
                counts[kind] += 1
                sent += n
            for desc, data in plan.children:
                _put_manifest(client, ref.repository, desc.digest, desc, data)
            for tag, desc, data in plan.tops:
                digest = _put_manifest(client, ref.repository, tag, desc, data)
                pushed.append(PushedTag(ref.name, tag, digest))
    finally:
        clients.close()
    return PushResult(tuple(pushed), counts["uploaded"], counts["skipped"], counts["mounted"], sent,
                      time.monotonic() - started)


# --------------------------------------------------------------------------------------------------- pull
def _get_manifest(client: Client, repo: str, ref: str, expect: str | None) -> tuple[bytes, str, str]:
    """-> (bytes, media type, digest), the digest checked against ``expect`` and Docker-Content-Digest."""
    what = f"GET manifest {ref if not ref.startswith('sha256:') else ref[:19]}"
    resp = client.request("GET", f"/v2/{repo}/manifests/{ref}", scopes=(f"repository:{repo}:pull",), what=what,
                          headers={"Accept": ACCEPT}, repository=repo, stream=True)
    if resp.status_code != 200:
        resp.content
        raise client.error(what, resp, repository=repo)
    data = resp.raw.read(MAX_MANIFEST + 1, decode_content=True)
    resp.close()
    if len(data) > MAX_MANIFEST:
        raise RegistryError(f"registry {client.registry}: manifest {ref} is larger than 4 MiB", code="MANIFEST_INVALID")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    header = resp.headers.get("Docker-Content-Digest")
    if (expect and digest != expect) or (header and header.startswith("sha256:") and header != digest):
        raise RegistryError(f"registry {client.registry}: manifest {ref} has digest {digest}, expected "
                            f"{expect or header}", code="DIGEST_INVALID",
                            hint="the registry (or a proxy) served other bytes than it announced; nothing was written")
    mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
    try:
        doc_mt = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        raise RegistryError(f"registry {client.registry}: manifest {ref} is not JSON", code="MANIFEST_INVALID") from None
    mt = doc_mt or mt
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        raise RegistryError(f"registry {client.registry}: {ref} has media type {mt!r}", code="UNSUPPORTED",
                            hint="ocibake pulls OCI/Docker image manifests and indexes")
    return data, mt, digest


def _platform_matches(desc: dict, want: Platform) -> bool:
    p = desc.get("platform") or {}
    return (p.get("os") == want.os and p.get("architecture") == want.architecture
            and (not want.variant or p.get("variant", "") == want.variant))


def pull(reference: str, dest: Path | str, platform: str | None = None,
         options: RegistryOptions | None = None) -> PullResult:
    """Pull REF into the OCI layout DIR (created or added to, atomically). Every digest is verified."""
    opts = options or RegistryOptions()
    started = time.monotonic()
    ref = parse_reference(reference, opts.environ)
    dest = Path(dest)
    check_output_path(dest)
    want = None
    if platform:
        try:
            want = Platform.parse(platform)
        except ValueError as exc:
            raise InputError(str(exc), hint="for example --platform linux/arm64") from None
    existing = Layout.open(dest) if (dest / "oci-layout").is_file() else None
    clients = _Clients(opts)
    client = clients.get(ref.registry)
    repo = ref.repository
    docs: list[tuple[str, bytes, str]] = []         # (media type, bytes, digest) of manifests/indexes to store
    blobs: dict[str, int] = {}
    progress = _Progress(opts)
    try:
        data, mt, digest = _get_manifest(client, repo, ref.digest or ref.tag or "latest", ref.digest)
        top = Descriptor(mt, digest, len(data))
        if mt in INDEX_TYPES and want is not None:
            children = json.loads(data).get("manifests") or []
            match = [c for c in children if _platform_matches(c, want)]
            if not match:
                have = ", ".join(str(Platform(**{k: c.get("platform", {}).get(k, "") for k in ("os", "architecture", "variant")}))
                                 for c in children if c.get("platform")) or "none"
                raise InputError(f"{ref} has no image for {want}", hint=f"platforms in it: {have}")
            c = Descriptor.from_json(match[0])
            data, mt, digest = _get_manifest(client, repo, c.digest, c.digest)
            top = Descriptor(mt, digest, len(data), {}, c.platform)
        stack = [(mt, data, digest)]
        while stack:
            mt_, data_, digest_ = stack.pop()
            docs.append((mt_, data_, digest_))
            doc = json.loads(data_)
            if mt_ in INDEX_TYPES:
                for child in doc.get("manifests") or []:
                    if child.get("mediaType") not in MANIFEST_TYPES + INDEX_TYPES:
                        continue
                    cdata, cmt, cdigest = _get_manifest(client, repo, child["digest"], child["digest"])
                    stack.append((cmt, cdata, cdigest))
            else:
                for d in [doc.get("config")] + list(doc.get("layers") or []):
                    if d:
                        if not DIGEST_RE.match(str(d.get("digest"))):
                            raise RegistryError(f"registry {client.registry}: manifest names a bad digest",
                                                code="MANIFEST_INVALID")
                        blobs[d["digest"]] = int(d["size"])
        counts = {"downloaded": 0, "skipped": 0}
        received = [0]
        with LayoutWriter(dest) as writer:
            def fetch(item):
                bdigest, size = item
                if existing is not None and existing.blob_path(bdigest).is_file():
                    progress.done(f"  {bdigest[:19]}  {_human(size):>10}  already in the layout")
                    return "skipped", 0
                target = writer.scratch_file("blob-")
                bar = progress.bar(bdigest, size)
                what = f"GET blob {bdigest[:19]}"
                for attempt in range(opts.retries + 1):
                    resp = client.request("GET", f"/v2/{repo}/blobs/{bdigest}", scopes=(f"repository:{repo}:pull",),
                                          what=what, stream=True, repository=repo)
                    if resp.status_code != 200:
                        resp.content
                        raise client.error(what, resp, repository=repo)
                    h = hashlib.sha256()
                    n = 0
                    try:
                        with open(target, "wb") as f:
                            for chunk in resp.iter_content(1 << 20):
                                h.update(chunk)
                                f.write(chunk)
                                n += len(chunk)
                                bar(len(chunk))
                                if n > size:
                                    break
                    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                        if attempt >= opts.retries:
                            raise RegistryError(f"registry {client.registry}: {what} failed: connection error "
                                                f"({client._connection_reason(exc)})",
                                                hint="run the same command again") from None
                        time.sleep(client._delay(attempt, None))
                        continue
                    finally:
                        resp.close()
                    got = "sha256:" + h.hexdigest()
                    if got != bdigest or n != size:
                        raise RegistryError(f"registry {client.registry}: blob {bdigest} arrived as {got} "
                                            f"({n} of {size} bytes)", code="DIGEST_INVALID",
                                            hint="the registry (or a proxy) served other bytes; nothing was written")
                    writer.add_blob_file(target, bdigest)
                    progress.done(f"  {bdigest[:19]}  {_human(size):>10}  downloaded")
                    return "downloaded", n
                raise AssertionError("unreachable")

            with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
                for kind, n in pool.map(fetch, sorted(blobs.items(), key=lambda kv: -kv[1])):
                    counts[kind] += 1
                    received[0] += n
            for mt_, data_, digest_ in docs:
                writer.add_blob(Blob(mt_, data_))
            if ref.tag or not ref.digest:
                writer.commit([(ref.tag or "latest", top)])
            else:
                writer.commit([], [top])
    finally:
        clients.close()
    return PullResult(str(ref.with_tag(ref.tag)) if not ref.digest else ref.name, top.digest, dest, ref.tag,
                      counts["downloaded"], counts["skipped"], received[0], time.monotonic() - started)


# --------------------------------------------------------------------------------------------------- login
def check_login(registry: str, credentials: Credentials, options: RegistryOptions | None = None) -> None:
    """Prove ``credentials`` work on ``registry`` (GET /v2/ with them, or a token for them); raises RegistryError."""
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
            return
        if client.challenge[0] == "bearer":
            client._token(())
            return
        resp = client.request("GET", "/v2/", scopes=(), what="login")
        if resp.status_code != 200:
            raise client.error("login", resp)
    finally:
        client.close()
