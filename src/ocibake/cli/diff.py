"""`ocibake diff A B`: config, layers and files that differ between two images, and a one-line verdict.

Exit 0 when the two are the same image (same manifest digest), 6 when they differ."""

from __future__ import annotations

import json
import sys

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.inspect import options_factory
from ocibake.cli.registry_options import registry_options

DIFFERENT = 6


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake diff oci:a:v1 oci:b:v1",
        "ocibake diff registry.example.com/sos/app:v1.0.0 oci:dist/oci/app:v1.0.0 --json",
    ),
)
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--platform", help="os/arch[/variant]: the image to compare in an index")
@output_options()
@registry_options
def diff(
    a: str,
    b: str,
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
    """Show how two images differ; exit 0 when identical, 6 when not.

    A and B are registry references or OCI layouts (oci:DIR[:TAG|@DIGEST]).
    """
    from ocibake.audit.diff import diff_images, print_diff
    from ocibake.audit.image_source import open_image

    out = output(verbose, quiet, json_output)
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    with open_image(a, make, platform) as image_a, open_image(b, make, platform) as image_b:
        result = diff_images(image_a, image_b)
    if out.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True, default=str))
    elif out.quiet:
        print(result.verdict())
    else:
        print_diff(result, sys.stdout)
    return 0 if result.identical else DIFFERENT
