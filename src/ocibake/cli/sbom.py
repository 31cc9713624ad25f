"""`ocibake sbom REF [--output FILE] [--platform P]`: print or write an image's SBOM (its SPDX referrer), as
`cosign download sbom` does; the image and the SBOM are checked against their digests first."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.inspect import options_factory
from ocibake.cli.registry_options import registry_options


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file beside it, renamed into place (never half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake sbom oci:dist/oci/emergency-service:v1.0.0",
        "ocibake sbom registry.example.com/sos/emergency-service:v1.0.0 --output sbom.spdx.json",
        "ocibake sbom registry.example.com/sos/app:v1 --platform linux/arm64",
    ),
)
@click.argument("ref", metavar="REF")
@click.option("--output", "output_file", metavar="FILE", help="write the SBOM to FILE instead of stdout")
@click.option("--platform", help="os/arch[/variant]: the image whose SBOM to show in an index")
@output_options()
@registry_options
def sbom(
    ref: str,
    output_file: str | None,
    platform: str | None,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Print (or write to --output) the SPDX SBOM stored with an image.

    REF is a registry reference or an OCI layout, oci:DIR[:TAG|@DIGEST].
    """
    from ocibake.audit.image_source import open_image
    from ocibake.audit.sbom_fetch import image_sbom_document
    from ocibake.errors import InputError, disk_error

    out = output(verbose, quiet, json_output)
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    with open_image(ref, make, platform) as image:
        data = image_sbom_document(image, make)
        digest = image.digest
    if output_file is None:
        sys.stdout.write(data.decode())
        sys.stdout.write("\n" if not data.endswith(b"\n") else "")
        return 0
    dest = Path(output_file)
    if dest.is_dir():
        raise InputError(f"--output {output_file} is a directory", hint="name a file, e.g. --output sbom.spdx.json")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(dest, data)
    except OSError as exc:
        raise disk_error(exc) or InputError(
            f"cannot write {output_file}: {exc.strerror}", hint="name a file in a directory you can write"
        ) from None
    out.log(f"wrote the SBOM of {digest} to {output_file}")
    return 0
