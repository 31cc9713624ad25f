"""Secrets out of every line ocibake prints: passwords, basic-auth headers and tokens are registered as they are
learned and replaced by ***, and anything shaped like a credential (Authorization headers, user:password@ in URLs,
token query parameters, token fields of JSON) is scrubbed too."""

from __future__ import annotations

import re
import threading

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_PATTERNS = [
    (re.compile(r"(?i)(authorization\s*[:=]\s*)([A-Za-z]+\s+)?[^\s,'\"}]+"), r"\1\2***"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(://)[^/@\s]+@"), r"\1***@"),
    (re.compile(r"(?<![\w./:-])[^\s/@'\":]+:[^\s/@'\"]+@(?!sha\d+:)(?=[\w.\[-])"), r"***@"),  # user:password@host
    (
        re.compile(
            r"(?i)([?&](?:access_token|refresh_token|token|password|secret|sig|signature|x-amz-signature|"
            r"x-amz-credential|x-amz-security-token|_state)=)[^&\s]+"
        ),
        r"\1***",
    ),
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
