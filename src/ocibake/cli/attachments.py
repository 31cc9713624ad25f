"""What `ocibake build` attaches to the image it built: the SBOM (an SPDX referrer in the layout, pushed with the
image as a referrer, `--sbom none` to skip) and, with `--sign-key`, a cosign-compatible signature of each pushed
image. Logs go to stderr; stdout keeps only the build's references."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import CommandT

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.audit.referrers import Artifact
    from ocibake.registry.options import RegistryOptions
    from ocibake.registry.push import PushResult
    from ocibake.toolchain.base import Toolchain

SBOM_CHOICES = ("spdx", "none")


def attachment_options(f: CommandT) -> CommandT:
    f = click.option(
        "--sign-key",
        metavar="PATH",
        help="sign every pushed image with this cosign.key (password from COSIGN_PASSWORD or a prompt)",
    )(f)
    return click.option(
        "--sbom",
        type=click.Choice(SBOM_CHOICES),
        default="spdx",
        metavar="spdx|none",
        help="write an SPDX 2.3 SBOM into the layout as a referrer of the image, pushed with it (default: spdx)",
    )(f)


def make_sbom(
    sbom: str, layout: Path, digest: str, name: str, toolchain: Toolchain, log: Callable[[str], None]
) -> Artifact | None:
    """The SBOM artifact, written into ``layout`` as a referrer of ``digest``; None with --sbom none."""
    if sbom == "none":
        return None
    from ocibake.audit.sbom_attach import attach_sbom

    artifact = attach_sbom(layout, digest, name, unpack=lambda path: toolchain.upx(path, ["-d", "-q"]))
    log(f"sbom      SPDX 2.3 {artifact.manifest.digest} (referrer of {digest[:19]}) in {layout}")
    return artifact


def signing_key(sign_key: str | None) -> EllipticCurvePrivateKey | None:
    """The --sign-key, decrypted before the build starts (a wrong password fails at once, not after the push)."""
    if not sign_key:
        return None
    from ocibake.cli.sign import load_signing_key

    return load_signing_key(sign_key)


def push_attachments(
    artifact: Artifact | None,
    pushed: PushResult,
    key: EllipticCurvePrivateKey | None,
    options: RegistryOptions,
    log: Callable[[str], None],
) -> None:
    """Push the SBOM referrer next to every pushed image, then sign each image with ``key`` (when given)."""
    from ocibake.registry.artifacts import Remote

    repos = sorted({(t.repository, t.digest) for t in pushed.tags})
    for repo, digest in repos:
        with Remote(repo, options) as remote:
            if artifact is not None:
                how = remote.put_referrer(
                    artifact.manifest, artifact.blobs, digest, artifact.artifact_type, artifact.annotations
                )
                log(f"sbom      {_referrer_outcome(how, repo, digest)}")
            if key is not None:
                from ocibake.audit.cosign_sign import sign_remote

                tag, added = sign_remote(remote, repo, digest, key)
                done = "signed   " if added else "already signed with this key: nothing sent;"
                log(f"{done} {repo}@{digest[:19]} (cosign signature, tag {tag})")


def push_layout_referrers(
    layout: Path, pushed: PushResult, options: RegistryOptions, log: Callable[[str], None]
) -> None:
    """`ocibake push`: the referrers (SBOMs) the layout holds for the pushed images go along, as referrers."""
    from ocibake.audit.referrers import layout_referrers
    from ocibake.oci.image import Blob
    from ocibake.oci.layout import Layout
    from ocibake.oci.limits import ARTIFACT_BLOB_MAX_BYTES
    from ocibake.registry.artifacts import Remote

    source = Layout.open(layout)
    for repo, digest in sorted({(t.repository, t.digest) for t in pushed.tags}):
        found = layout_referrers(source, digest)
        if not found:
            continue
        with Remote(repo, options) as remote:
            for entry in found:
                data = source.read_blob(entry["digest"])
                doc = json.loads(data)
                blobs = [
                    (d["digest"], source.read_blob(d["digest"], ARTIFACT_BLOB_MAX_BYTES))
                    for d in [doc["config"], *doc.get("layers", [])]
                ]
                how = remote.put_referrer(
                    Blob(entry["mediaType"], data), blobs, digest, entry["artifactType"], entry.get("annotations")
                )
                log(f"referrer  {entry['artifactType']} {entry['digest'][:19]} {_referrer_outcome(how, repo, digest)}")


def _referrer_outcome(how: str, repo: str, subject: str) -> str:
    if how == "present":
        return f"already in {repo} as a referrer of {subject[:19]}: nothing sent"
    where = "referrers API" if how == "api" else "tag " + subject.replace(":", "-")
    return f"pushed to {repo} as a referrer of {subject[:19]} ({where})"
