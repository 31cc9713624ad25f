"""What `ocibake build` attaches to the image it built: the SBOM (an SPDX referrer in the layout, pushed with the
image as a referrer, `--sbom none` to skip), the SLSA provenance (an in-toto statement, likewise; `--provenance
none` to skip) and, with `--sign-key`, a cosign-compatible signature of each pushed image and its provenance signed
as a DSSE envelope in the `.att` tag cosign reads. Logs go to stderr; stdout keeps only the build's references."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import CommandT
from ocibake.oci.media_types import INDEX_TYPES

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.audit.referrers import Artifact
    from ocibake.builder.bake import BuildResult
    from ocibake.builder.spec import BuildSpec
    from ocibake.oci.layout import Layout
    from ocibake.registry.artifacts import Remote
    from ocibake.registry.options import RegistryOptions
    from ocibake.registry.push import PushResult
    from ocibake.toolchain.base import Toolchain

SBOM_CHOICES = ("spdx", "none")
PROVENANCE_CHOICES = ("slsa", "none")


@dataclass(frozen=True)
class AttachChoices:
    """--sbom, --provenance and --provenance-times."""

    sbom: str = "spdx"
    provenance: str = "slsa"
    provenance_times: bool = False


@dataclass(frozen=True)
class Attached:
    """What the build attached to its image in the layout (pushed with it)."""

    sbom: Artifact | None = None
    provenance: Artifact | None = None
    statement: bytes | None = None  # the provenance statement, signed on push with --sign-key
    subject: str = ""  # (a platform of an index) the image they belong to, when it is not what the tags name

    @property
    def referrers(self) -> list[Artifact]:
        return [a for a in (self.sbom, self.provenance) if a is not None]


def attachment_options(f: CommandT) -> CommandT:
    f = click.option(
        "--provenance-times",
        is_flag=True,
        help="put the build's start and end times in the provenance (it then differs from build to build)",
    )(f)
    f = click.option(
        "--provenance",
        type=click.Choice(PROVENANCE_CHOICES),
        default="slsa",
        show_default=True,
        help="write a SLSA v1 provenance statement into the layout as a referrer (pushed with the image; signed "
        "as a cosign attestation with --sign-key)",
    )(f)
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
    sbom: str,
    layout: Path,
    digest: str,
    name: str,
    toolchain: Toolchain,
    log: Callable[[str], None],
    source: Path | None = None,
) -> Artifact | None:
    """The SBOM artifact, written into ``layout`` as a referrer of ``digest``; None with --sbom none."""
    if sbom == "none":
        return None
    from ocibake.audit.sbom_attach import attach_sbom

    artifact = attach_sbom(layout, digest, name, unpack=lambda path: toolchain.upx(path, ["-d", "-q"]), source=source)
    log(f"sbom      SPDX 2.3 {artifact.manifest.digest} (referrer of {digest[:19]}) in {layout}")
    return artifact


def make_provenance(
    choices: AttachChoices,
    spec: BuildSpec,
    result: BuildResult,
    toolchain: Toolchain,
    toolchain_ref: str | None,
    log: Callable[[str], None],
) -> tuple[Artifact | None, bytes | None]:
    """The provenance statement of the image ``result`` built, written into its layout as a referrer."""
    if choices.provenance == "none":
        return None, None
    from ocibake.audit.attestation import attest_layout
    from ocibake.builder import slsa
    from ocibake.oci.image import Descriptor
    from ocibake.oci.media_types import OCI_MANIFEST
    from ocibake.toolchain.local import LocalToolchain

    facts = slsa.BuildFacts(
        spec=spec,
        digest=result.image.digest,
        tags=result.tags,
        source_url=(spec.source_url if spec.source_url is not None else result.git.remote) or result.module.path,
        service_path=slsa.service_path(spec),
        go_path=toolchain.go_program() if isinstance(toolchain, LocalToolchain) else "",
        toolchain_ref=toolchain_ref,
        times=slsa.run_times(result.seconds.get("total", 0.0)) if choices.provenance_times else None,
        layer_digests={layer.kind: layer.digest for layer in result.layers},
    )
    statement = slsa.statement_bytes(result.record, facts)
    subject = Descriptor(OCI_MANIFEST, result.image.digest, len(result.image.manifest.data))
    artifact = attest_layout(result.layout, subject, statement)
    log(f"provenance SLSA v1 {artifact.manifest.digest} (referrer of {result.image.digest[:19]})")
    return artifact, statement


def make_attachments(
    choices: AttachChoices,
    spec: BuildSpec,
    result: BuildResult,
    toolchain: Toolchain,
    toolchain_ref: str | None,
    log: Callable[[str], None],
) -> Attached:
    """The SBOM and the provenance of the image ``result`` built, in its layout."""
    sbom = make_sbom(choices.sbom, result.layout, result.image.digest, result.name, toolchain, log, spec.service_dir)
    provenance, statement = make_provenance(choices, spec, result, toolchain, toolchain_ref, log)
    return Attached(sbom, provenance, statement)


def signing_key(sign_key: str | None) -> EllipticCurvePrivateKey | None:
    """The --sign-key, decrypted before the build starts (a wrong password fails at once, not after the push)."""
    if not sign_key:
        return None
    from ocibake.cli.sign import load_signing_key

    return load_signing_key(sign_key)


def push_attachments(
    attached: Attached | None,
    pushed: PushResult,
    key: EllipticCurvePrivateKey | None,
    options: RegistryOptions,
    log: Callable[[str], None],
) -> None:
    """Push the SBOM and provenance referrers next to every pushed image, then sign each image with ``key`` (when
    given) and attach its provenance, signed, where cosign looks."""
    from ocibake.registry.artifacts import Remote

    attached = attached or Attached()
    repos = sorted({(t.repository, t.digest) for t in pushed.tags})
    for repo, digest in repos:
        with Remote(repo, options) as remote:
            for artifact in attached.referrers:
                how = remote.put_referrer(
                    artifact.manifest, artifact.blobs, digest, artifact.artifact_type, artifact.annotations
                )
                what = "sbom      " if artifact is attached.sbom else "provenance "
                log(what + _referrer_outcome(how, repo, digest))
            if key is not None:
                _sign_pushed(remote, repo, digest, key, attached.statement, log)


def _sign_pushed(
    remote: Remote,
    repo: str,
    digest: str,
    key: EllipticCurvePrivateKey,
    statement: bytes | None,
    log: Callable[[str], None],
) -> None:
    from ocibake.audit.cosign_sign import sign_remote

    tag, added = sign_remote(remote, repo, digest, key)
    done = "signed   " if added else "already signed with this key: nothing sent;"
    log(f"{done} {repo}@{digest[:19]} (cosign signature, tag {tag})")
    if statement is not None:
        from ocibake.audit.attestation import attest_remote

        tag, added = attest_remote(remote, digest, statement, key)
        done = "attested " if added else "already attested with this key: nothing sent;"
        log(f"{done} {repo}@{digest[:19]} (SLSA provenance, DSSE-signed, tag {tag})")


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
    for repo, top in sorted({(t.repository, t.digest) for t in pushed.tags}):
        found = [(digest, entry) for digest in _subjects(source, top) for entry in layout_referrers(source, digest)]
        if not found:
            continue
        with Remote(repo, options) as remote:
            for digest, entry in found:
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


def _subjects(layout: Layout, digest: str) -> list[str]:
    """``digest`` and, for an index, every manifest it lists: each platform image has its own SBOM."""
    try:
        doc = json.loads(layout.read_blob(digest))
    except ValueError:
        return [digest]
    children = doc.get("manifests") if isinstance(doc, dict) and doc.get("mediaType") in INDEX_TYPES else None
    return [digest, *(str(c.get("digest")) for c in children or [] if isinstance(c, dict))]


def push_platform_provenance(
    made: list[Attached],
    pushed: PushResult,
    key: EllipticCurvePrivateKey | None,
    options: RegistryOptions,
    log: Callable[[str], None],
) -> None:
    """A multi-platform build: each platform image's provenance, pushed as its referrer (and, with ``key``, signed
    into its `.att` tag) in every repository the index went to."""
    from ocibake.registry.artifacts import Remote

    for repo in sorted({t.repository for t in pushed.tags}):
        with Remote(repo, options) as remote:
            for one in made:
                assert one.provenance is not None
                artifact = one.provenance
                remote.put_referrer(
                    artifact.manifest, artifact.blobs, one.subject, artifact.artifact_type, artifact.annotations
                )
                log(f"provenance pushed to {repo} as a referrer of {one.subject[:19]}")
                if key is not None and one.statement is not None:
                    from ocibake.audit.attestation import attest_remote

                    tag, _ = attest_remote(remote, one.subject, one.statement, key)
                    log(f"attested  {repo}@{one.subject[:19]} (SLSA provenance, DSSE-signed, tag {tag})")
