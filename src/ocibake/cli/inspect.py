"""`ocibake inspect REF`: an image's manifest, config, layers and their files, build record and referrers.

REF is a registry reference or `oci:DIR[:TAG|@DIGEST]`. stdout: the report (JSON with --json)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import Output, examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, make_options, registry_options

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions


def options_factory(
    out: Output,
    insecure: bool,
    ca_cert: str | None,
    username: str | None = None,
    password_stdin: bool = False,
    timeout: float | None = None,
) -> Callable[[], RegistryOptions]:
    """RegistryOptions made on first use, then the same ones: a local image never asks for credentials."""
    flags = RegistryFlags(
        insecure=insecure,
        ca_cert=ca_cert,
        username=username,
        password_stdin=password_stdin,
        verbose=out.verbose,
        quiet=True,
        timeout=timeout,
    )
    made: list[RegistryOptions] = []

    def make() -> RegistryOptions:
        if not made:
            made.append(make_options(flags))
        return made[0]

    return make


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake inspect oci:dist/oci/emergency-service:v1.0.0",
        "ocibake inspect registry.example.com/sos-app/emergency-service:v1.0.0 --json",
        "ocibake inspect oci:dist/oci/emergency-service@sha256:... --no-files",
    ),
)
@click.argument("ref", metavar="REF")
@click.option("--platform", help="os/arch[/variant]: the image to inspect in an index")
@click.option("--no-files", "files", flag_value=False, default=True, help="do not list the files of each layer")
@output_options()
@registry_options
def inspect(
    ref: str,
    platform: str | None,
    files: bool,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Show what an image is: config, layers and files, build record, referrers.

    REF is a registry reference (REGISTRY/REPO:TAG or @DIGEST) or an OCI layout, oci:DIR[:TAG|@DIGEST].
    """
    from ocibake.audit.image_source import open_image
    from ocibake.audit.inspect import inspect_image, print_inspect

    out = output(verbose, quiet, json_output)
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    with open_image(ref, make, platform) as image:
        doc = inspect_image(image, with_files=files, registry_options=make)
    if out.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print_inspect(doc, sys.stdout)
    return 0
