"""The OCI distribution spec's grammar for repository names, tags and digests, shared by the build and the registry
code so that a name the build accepts is one every registry accepts."""

from __future__ import annotations

import re

from ocibake.errors import InputError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Path components of lowercase alphanumerics and separators, joined by "/" (at most 255 characters in all).
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def refuse_credentials(text: str, what: str) -> None:
    """An "@" in a reference may only introduce a digest (@sha256:...); anything else is USER:PASSWORD@HOST, which is
    refused without being echoed anywhere."""
    rest = text.strip().split("://", 1)[-1].lstrip("/")
    at = rest.find("@")
    if at < 0:
        return
    before, after = rest[:at], rest[at + 1 :]
    digest_like = re.match(r"[a-z][a-z0-9]*(?:[+._-][a-z][a-z0-9]*)*:[A-Za-z0-9=_-]{32,}$", after)
    if "/" in after or ("/" not in before and not digest_like):
        raise InputError(
            f"{what} holds credentials (USER:PASSWORD@HOST); they do not belong there, and are not shown here",
            hint="give REGISTRY/REPO, and the credentials with `ocibake login` or OCIBAKE_USERNAME/OCIBAKE_PASSWORD",
        )
