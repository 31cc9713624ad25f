"""The OCI distribution spec's grammar for repository names, tags and digests, shared by the build and the registry
code so that a name the build accepts is one every registry accepts."""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Path components of lowercase alphanumerics and separators, joined by "/" (at most 255 characters in all).
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
