"""How registry failures are told: the OCI error code and message out of a response, a hint per code, and the
exceptions a transfer raises between attempts."""

from __future__ import annotations

import requests

from ocibake.errors import RegistryError

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
# what an OCI error code means, in a few words (a summary table's cell, a failed progress line)
CAUSES = {
    "UNAUTHORIZED": "not logged in, or the credentials were refused",
    "DENIED": "not allowed for this account",
    "NAME_UNKNOWN": "no such repository",
    "NAME_INVALID": "repository name refused",
    "MANIFEST_UNKNOWN": "no such tag or digest",
    "MANIFEST_INVALID": "manifest refused",
    "MANIFEST_BLOB_UNKNOWN": "a blob of the manifest is missing",
    "BLOB_UNKNOWN": "blob missing",
    "BLOB_UPLOAD_UNKNOWN": "upload lost",
    "BLOB_UPLOAD_INVALID": "upload refused",
    "DIGEST_INVALID": "the bytes arrived with another digest",
    "DIGEST_MISMATCH": "the registry stored another digest",
    "SIZE_INVALID": "the bytes arrived with another size",
    "TAG_INVALID": "tag refused",
    "TOOMANYREQUESTS": "rate-limited",
    "UNSUPPORTED": "not supported by the registry",
}


def cause(exc: RegistryError) -> str:
    """A registry failure in words: `HTTP 401 UNAUTHORIZED (not logged in, or the credentials were refused)`;
    the first line of the message when the registry gave no status or code (a lost connection)."""
    parts = [f"HTTP {exc.status}" if exc.status else "", exc.code or ""]
    said = " ".join(p for p in parts if p)
    if not said:
        return exc.message.splitlines()[0] if exc.message else type(exc).__name__
    words = CAUSES.get(exc.code or "")
    return f"{said} ({words})" if words else said


def _oci_error(resp: requests.Response) -> tuple[str | None, str]:
    try:
        doc = resp.json() if resp.content and len(resp.content) < 65536 else None
        err = (doc or {}).get("errors", [])[0]
        return str(err.get("code") or "") or None, str(err.get("message") or "")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return None, ""


class ConnectionLost(RegistryError):
    """The registry could not be reached or dropped the connection (after the retries)."""


class Cancelled(Exception):
    """Raised in a transfer thread once the operation is cancelled (the main thread is handling Ctrl-C or SIGTERM)."""


class Retryable(Exception):
    def __init__(self, reason: str, delay: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
