"""What refers to a pulled image travels with it: after `ocibake pull`, the SBOMs, signatures and attestations about
each pulled manifest (the top one and, for an index, every image in it) are pulled into the same layout. Referrers
come from the registry's referrers API or, without it, the `sha256-<hex>` fallback tag, and are stored untagged in
index.json (where `oras discover --oci-layout` and `ocibake inspect` find them); cosign's tagged artifacts
(`sha256-<hex>.sig`, `.att`, `.sbom`) keep their tags, so `ocibake verify oci:DIR:TAG` checks a signature offline.
Every manifest and blob is checked against its digest as any pull's are."""

from __future__ import annotations

import json
from pathlib import Path

from ocibake.errors import RegistryError
from ocibake.oci.layout import Layout
from ocibake.oci.media_types import INDEX_TYPES
from ocibake.registry.artifacts import Remote, fallback_tag
from ocibake.registry.options import RegistryOptions
from ocibake.registry.pull import pull
from ocibake.registry.reference import parse_reference

COSIGN_SUFFIXES = (".sig", ".att", ".sbom")


def pulled_manifests(dest: Path, digest: str) -> list[str]:
    """``digest`` and, when it is an index in ``dest``, the manifests it lists (that were pulled)."""
    layout = Layout.open(dest)
    out = [digest]
    try:
        doc = json.loads(layout.read_blob(digest))
    except ValueError:
        return out
    if doc.get("mediaType") in INDEX_TYPES:
        out += [
            str(m.get("digest")) for m in doc.get("manifests") or [] if layout.blob_path(str(m.get("digest"))).is_file()
        ]
    return out


def _artifacts_of(remote: Remote, repo: str, subject: str) -> list[str]:
    """References of the referrers of ``subject`` and of cosign's tags about it that the registry has."""
    found, _how = remote.referrers(subject)
    wanted = [f"{repo}@{d['digest']}" for d in found if isinstance(d.get("digest"), str)]
    for suffix in COSIGN_SUFFIXES:
        tag = fallback_tag(subject) + suffix
        if remote.manifest(tag) is not None:
            wanted.append(f"{repo}:{tag}")
    return wanted


def pull_referrers(reference: str, dest: Path, digest: str, options: RegistryOptions) -> list[str]:
    """Copy the artifacts that refer to ``digest`` (and the images under it) into ``dest`` -> their references
    (REPO@DIGEST for referrers, REPO:TAG for cosign's tags), in the order they were pulled."""
    repo = parse_reference(reference, options.environ).name
    wanted: list[str] = []
    with Remote(reference, options) as remote:
        for subject in pulled_manifests(dest, digest):
            try:
                wanted += _artifacts_of(remote, repo, subject)
            except RegistryError as exc:  # the image is pulled; say plainly what did not come with it
                options.log(f"warning: the referrers of {subject} could not be listed, none copied: {exc.message}")
    pulled = []
    for ref in dict.fromkeys(wanted):
        pull(ref, dest, None, options)
        pulled.append(ref)
    return pulled
