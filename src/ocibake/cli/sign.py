"""`ocibake generate-key-pair`, `ocibake sign REF --key cosign.key` and `ocibake verify REF --key cosign.pub`: cosign's
key-based signatures, made and checked without cosign. The password comes from COSIGN_PASSWORD (as cosign reads it:
set, even empty, means use it) or a prompt on the terminal. verify exits 7 when no valid signature is found."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.inspect import options_factory
from ocibake.cli.registry_options import registry_options
from ocibake.errors import InputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

    from ocibake.audit.cosign_sign import Verified
    from ocibake.registry.options import RegistryOptions


def password(confirm: bool) -> bytes:
    if "COSIGN_PASSWORD" in os.environ:
        return os.environ["COSIGN_PASSWORD"].encode()
    if not sys.stdin.isatty():
        raise InputError(
            "no password: COSIGN_PASSWORD is not set and there is no terminal to ask on",
            hint="export COSIGN_PASSWORD=... (an empty value means no password), or run on a terminal",
        )
    return click.prompt(
        "Password for the private key" if not confirm else "Enter password for private key",
        hide_input=True,
        confirmation_prompt=confirm,
        default="",
        show_default=False,
        err=True,
    ).encode()


def registry_only(ref: str) -> None:
    if ref.startswith(("oci:", "oci-archive:")):
        raise InputError(
            f"{ref}: sign works on registry references, not OCI layouts",
            hint="push the layout first (ocibake push DIR REGISTRY/REPO), then sign REGISTRY/REPO:TAG; "
            "`ocibake build --push --sign-key cosign.key` signs what it pushes",
        )


def load_signing_key(path: str) -> EllipticCurvePrivateKey:
    from ocibake.audit.cosign_keys import load_private_key

    return load_private_key(Path(path), password(confirm=False))


@click.command(
    "generate-key-pair",
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake generate-key-pair",
        "ocibake generate-key-pair --output-dir keys/   # password from COSIGN_PASSWORD, else a prompt",
    ),
)
@click.option("--output-dir", metavar="DIR", default=".", show_default=True, help="where to write the two files")
@click.option("--force", is_flag=True, help="overwrite existing cosign.key and cosign.pub")
@output_options()
def generate_key_pair(output_dir: str, force: bool, verbose: bool, quiet: bool, json_output: bool) -> int:
    """Write cosign.key (encrypted) and cosign.pub, as cosign does.

    The password comes from COSIGN_PASSWORD, else a prompt. cosign reads both files.
    """
    from ocibake.audit.cosign_keys import generate_key_pair as generate

    out = output(verbose, quiet, json_output)
    key, pub = generate(Path(output_dir), password(confirm=True), force=force)
    if out.json:
        print(json.dumps({"private_key": str(key), "public_key": str(pub)}))
    else:
        print(key)
        print(pub)
    return 0


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake sign registry.example.com/sos/emergency-service:v1.0.0 --key cosign.key",
        "ocibake sign registry.example.com/sos/emergency-service@sha256:... --key cosign.key",
    ),
)
@click.argument("ref", metavar="REF")
@click.option("--key", "key_path", required=True, metavar="PATH", help="cosign.key (encrypted private key)")
@output_options()
@registry_options
def sign(
    ref: str,
    key_path: str,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Sign an image in a registry, as `cosign sign --key` does.

    The signature goes to the tag sha256-<hex>.sig of REF's repository, where cosign looks for it.
    """
    from ocibake.audit.cosign_sign import sign_remote
    from ocibake.audit.image_source import open_verified
    from ocibake.registry.artifacts import Remote

    registry_only(ref)
    out = output(verbose, quiet, json_output)
    key = load_signing_key(key_path)
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    with open_verified(ref, make) as (_layout, desc, _remote, checked):  # nothing damaged gets signed
        digest = desc.digest
    with Remote(ref, make()) as remote:
        tag, added = sign_remote(remote, remote.ref.name, digest, key)
    if out.json:
        print(json.dumps({"reference": f"{remote.ref.name}@{digest}", "signature": f"{remote.ref.name}:{tag}"}))
    else:
        print(f"{remote.ref.name}:{tag}")
        out.log(
            f"signed {remote.ref.name}@{digest} ({checked} blobs checked first)"
            if added
            else f"{remote.ref.name}@{digest}: already signed with this key ({checked} blobs checked)"
        )
    return 0


def verified_signature(
    ref: str, make: Callable[[], RegistryOptions], key: EllipticCurvePublicKey
) -> tuple[str, str, Verified, int]:
    """Every blob of REF checked (a damaged image is never "verified"), then its signature -> (name, digest, the
    signatures that verified, blobs checked). An `oci:` layout is checked offline against the signature it holds."""
    from ocibake.audit.cosign_sign import verify_remote
    from ocibake.audit.image_source import open_verified
    from ocibake.audit.layout_signatures import LayoutSignatures

    with open_verified(ref, make) as (layout, desc, remote_name, checked):
        if remote_name is None:
            return (
                ref.rsplit("@", 1)[0],
                desc.digest,
                verify_remote(LayoutSignatures(layout), desc.digest, key),
                checked,
            )
    from ocibake.registry.artifacts import Remote

    with Remote(ref, make()) as remote:
        return remote.ref.name, desc.digest, verify_remote(remote, desc.digest, key), checked


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake verify registry.example.com/sos/emergency-service:v1.0.0 --key cosign.pub",
        "ocibake verify registry.example.com/sos/emergency-service@sha256:... --key cosign.pub --json",
        "ocibake verify oci:pulled/emergency-service:v1.0.0 --key cosign.pub   # offline, signature in the layout",
        "ocibake verify registry.example.com/sos/app:v1.0.0 --key cosign.pub --attestation slsaprovenance1",
    ),
)
@click.argument("ref", metavar="REF")
@click.option("--key", "key_path", required=True, metavar="PATH", help="cosign.pub (public key)")
@click.option(
    "--attestation",
    metavar="TYPE",
    help="check the image's signed attestation of this type instead (slsaprovenance1, vuln, or a predicate "
    "type URI): its DSSE signature, that its subject is REF's digest; prints its key facts",
)
@output_options()
@registry_options
def verify(
    ref: str,
    key_path: str,
    attestation: str | None,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Check an image's cosign signature with a public key (exit 7 when none is valid).

    Every blob of the image is checked first (a damaged image: exit 4). A signature counts when it verifies with the
    key and its payload names REF's digest. REF may be an OCI layout (oci:DIR:TAG) holding the signature, as
    `ocibake pull` keeps it: that check needs no network.
    """
    from ocibake.audit.cosign_keys import load_public_key

    out = output(verbose, quiet, json_output)
    key = load_public_key(Path(key_path))
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    if attestation is not None:
        from ocibake.cli.attest import verify_attestation_command

        return verify_attestation_command(ref, key, key_path, attestation, make(), out)
    name, digest, result, checked = verified_signature(ref, make, key)
    if out.json:
        print(
            json.dumps(
                {
                    "reference": f"{name}@{digest}",
                    "valid_signatures": result.signatures,
                    "identity": result.identity,
                    "blobs_checked": checked,
                }
            )
        )
    else:
        print(f"{name}@{digest}")
        out.log(f"verified: {result.signatures} valid signature(s) with {key_path}; {checked} blobs checked")
    return 0
