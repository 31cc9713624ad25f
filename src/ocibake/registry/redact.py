"""Secrets out of every line ocibake prints: passwords, basic-auth headers and tokens are registered as they are
learned and replaced by ***, and anything shaped like a credential (Authorization headers, user:password@ in URLs,
token query parameters, token and auth fields of JSON such as docker's config.json) is scrubbed too. Text that only
looks like `user@host` is kept: ocibake's own hints write `oci:DIR@...` and `REPO:TAG@DIGEST` (tests/test_redact.py
runs every string ocibake can print through redact())."""

from __future__ import annotations

import re
import threading

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
# A host after `user:password@`: a name with a dot, localhost, an IP, [IPv6] or NAME:PORT; never `@sha256:`, `@...`,
# `@DIGEST` or `@HOST`, which ocibake's own hints and messages write (`oci:DIR@...`, `REPO:TAG@DIGEST`).
_HOST = r"(?=[\w-]+(?:\.[\w-]+)+|localhost\b|\[|[\w-]+:\d)(?!sha\d+:)"
# A token or base64 credential: 8 or more token characters, not a plain lowercase word (`bearer challenge`).
_TOKEN = r"(?=[A-Za-z0-9._~+/=-]*[A-Z0-9._~+/=])[A-Za-z0-9._~+/=-]{8,}"
_PATTERNS = [
    (re.compile(r"(?i)(authorization\s*[:=]\s*)([A-Za-z]+\s+)?[^\s,'\"}]+"), r"\1\2***"),
    (re.compile(r"\b([Bb]earer|[Bb]asic|BEARER|BASIC)\s+" + _TOKEN), r"\1 ***"),
    (re.compile(r"(://)[^/@\s]+@"), r"\1***@"),
    (re.compile(r"(?<![\w./:-])[^\s/@'\"():]+:[^\s/@'\"]+@" + _HOST), r"***@"),  # user:password@host
    (
        re.compile(
            r"(?i)([?&](?:access_token|refresh_token|token|password|secret|sig|signature|x-amz-signature|"
            r"x-amz-credential|x-amz-security-token|_state)=)[^&\s]+"
        ),
        r"\1***",
    ),
    (
        re.compile(
            r"(?i)(\"(?:token|access_token|refresh_token|password|secret|auth|identitytoken|registrytoken)\"\s*:\s*\")"
            r"[^\"]*"
        ),
        r"\1***",
    ),
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
