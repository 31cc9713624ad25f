"""Image references: REGISTRY/REPO[:TAG][@DIGEST] through oras-py's grammar, each part checked against the
distribution spec; Docker Hub's names; which hosts are loopback (plain HTTP allowed)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import oras.container

from ocibake.errors import InputError
from ocibake.oci.names import DIGEST_RE, NAME_RE, TAG_RE, refuse_credentials

# --------------------------------------------------------------------------------------------------- references
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

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.registry, self.repository, tag, None)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


# Docker Hub answers the API elsewhere than its name, and keeps single-name images under library/.
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def has_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_reference(text: str, environ: Mapping[str, str] | None = None) -> Reference:
    """REGISTRY/REPO[:TAG][@DIGEST]; a bare REPO gets the $OCIBAKE_REGISTRY prefix (like KO_DOCKER_REPO)."""
    env = os.environ if environ is None else environ
    original = text
    text = text.strip()
    refuse_credentials(text, "a reference")
    if "://" in text:
        raise InputError(f"{original!r}: give a reference, not a URL", hint="e.g. registry.example.com/team/app:v1")
    first = text.split("/", 1)[0]
    if "/" not in text or not has_registry(first):
        prefix = env.get("OCIBAKE_REGISTRY", "").strip().rstrip("/")
        if not prefix:
            raise InputError(
                f"{original!r} names no registry",
                hint="write REGISTRY/REPO (e.g. registry.example.com/team/app), or set OCIBAKE_REGISTRY "
                "to a registry/namespace prefix",
            )
        refuse_credentials(prefix, "OCIBAKE_REGISTRY")
        if "://" in prefix or not has_registry(prefix.split("/", 1)[0]):
            raise InputError(
                f"OCIBAKE_REGISTRY={prefix!r} is not a registry/namespace prefix",
                hint="set it to HOST[:PORT][/NAMESPACE], e.g. registry.example.com/team (no scheme)",
            )
        text = f"{prefix}/{text}"
        first = text.split("/", 1)[0]
    registry, _, rest = text.partition("/")
    # oras' grammar splits name, tag and digest; we check each part against the distribution spec ourselves
    try:
        digest = _oras_digest(rest, registry)
    except ValueError:
        raise InputError(
            f"{original!r} is not a valid image reference", hint="REGISTRY/REPO[:TAG][@sha256:DIGEST]"
        ) from None
    name = rest.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    tag_given = ":" in last
    # the tag starts at the first ':' of the last component, so 'app:a:b' has the (invalid) tag 'a:b'
    repository = (head + "/" if head else "") + last.split(":", 1)[0] if tag_given else name
    if not HOST_RE.match(registry):
        raise InputError(f"{original!r}: {registry!r} is not a registry host", hint="HOST[:PORT]/REPO[:TAG]")
    if not NAME_RE.match(repository) or len(repository) > 255:
        raise InputError(
            f"{original!r}: repository {repository!r} is not a valid name",
            hint="lowercase letters, digits and separators (. _ -), path components joined by /",
        )
    tag = last.split(":", 1)[1] if tag_given else None
    if tag is not None and not TAG_RE.match(tag):
        raise InputError(
            f"{original!r}: tag {tag!r} is not valid",
            hint="tags are 1-128 letters, digits, '_', '.', '-', not starting with '.' or '-'",
        )
    if digest is not None and not DIGEST_RE.match(digest):
        raise InputError(f"{original!r}: digest {digest!r} is not valid", hint="digests are sha256:<64 lowercase hex>")
    registry = registry.lower() if not registry.startswith("[") else registry
    if registry in DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return Reference(registry, repository, tag, digest)


def _oras_digest(rest: str, registry: str) -> str | None:
    """The digest of REPO[:TAG][@DIGEST] by oras-py's reference grammar; ValueError when the grammar refuses it."""
    digest = oras.container.Container(rest, registry=registry).digest
    return None if digest is None else str(digest)


def is_loopback(registry: str) -> bool:
    import ipaddress

    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry[1:].split("]")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
