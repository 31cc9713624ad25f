"""When a registry request is tried again, and how long to wait first.

Only connection errors, timeouts, a body cut short, 408, 429 and 5xx are retried, never a TLS failure or an unknown
host; within the request's budget, with exponential backoff capped at ``max_delay``, honouring a Retry-After the
registry sends unless it asks for more than ``max_retry_after``. A request the stall watchdog cut (deadline.py) gets
one more try only: a server that stalls once mostly stalls again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import requests

from ocibake.registry.errors import Retryable
from ocibake.registry.options import RegistryOptions

STALL_RETRIES = 1

_KNOWN_REASONS = (
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
)


def is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def backoff_delay(opts: RegistryOptions, attempt: int, hinted: float | None) -> float:
    """Seconds to wait before retry ``attempt + 1``: the registry's Retry-After when it sent one, else backoff."""
    if hinted is not None:
        return hinted
    return min(opts.max_delay, opts.backoff * 2.0**attempt)


def retry_after(resp: requests.Response) -> float | None:
    """The response's Retry-After in seconds (a number or an HTTP date), or None."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def connection_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a failed connection, for messages."""
    text = str(exc)
    if text.startswith("stalled:"):
        return text
    for key in _KNOWN_REASONS:
        if key in text:
            return key if key != "Max retries exceeded" else type(exc).__name__
    return type(exc).__name__


def with_retries(
    what: str,
    attempt_fn: Callable[[], requests.Response],
    opts: RegistryOptions,
    pause: Callable[[float], None],
    retries: int | None = None,
    connection_retries: int | None = None,
) -> requests.Response:
    """Call ``attempt_fn`` until it returns a non-retryable response; retry connection errors, 408, 429, 5xx.

    Waits with ``pause`` (which raises when the operation is cancelled). The last retryable response is returned as
    it is, for the caller to report; the last connection error is raised. ``connection_retries``: fewer tries for
    connection errors than for answers (a first contact gives up sooner on a port nobody listens on)."""
    retries = opts.retries if retries is None else retries
    connection_retries = retries if connection_retries is None else min(retries, connection_retries)
    attempt = 0
    stalls = 0
    while True:
        try:
            return _retryable_response(what, attempt_fn(), opts, last=attempt >= retries)
        except Retryable as r:
            delay = backoff_delay(opts, attempt, r.delay)
            reason, most = r.reason, retries
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            if isinstance(exc, requests.exceptions.SSLError) or attempt >= connection_retries:
                raise
            if str(exc).startswith("stalled:"):
                stalls += 1
                if stalls > STALL_RETRIES:
                    raise
            if "Name or service not known" in str(exc) or "Temporary failure in name resolution" in str(exc):
                raise
            delay = backoff_delay(opts, attempt, None)
            reason, most = connection_reason(exc), connection_retries
        attempt += 1
        opts.log(f"  {what}: {reason}; retry {attempt}/{most} in {delay:.1f}s")
        pause(delay)


def _retryable_response(what: str, resp: requests.Response, opts: RegistryOptions, last: bool) -> requests.Response:
    """``resp``, unless its status is worth another try: then it is closed and Retryable raised."""
    if not is_retryable_status(resp.status_code):
        return resp
    hinted = retry_after(resp)
    if hinted is not None and hinted > opts.max_retry_after:
        opts.log(
            f"  {what}: HTTP {resp.status_code}, and the registry asks to wait {hinted:.0f}s "
            f"(more than {opts.max_retry_after:.0f}s): giving up; push again later"
        )
        return resp
    if last:
        return resp
    resp.close()
    raise Retryable(f"HTTP {resp.status_code}", hinted)
