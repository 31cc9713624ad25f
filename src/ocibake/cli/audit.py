"""`ocibake audit REF --source DIR`: rebuild the image from DIR with its recorded settings and toolchain and compare.

stdout: the verdict and, on a mismatch, the probable causes (the whole diff with -v; everything as JSON with --json).
Exit 0 only when the rebuild has the image's digest; 6 when it differs; 4 when the audit cannot run (no build
record, the source at another revision)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.diff import DIFFERENT
from ocibake.cli.group import CONTEXT
from ocibake.cli.inspect import options_factory
from ocibake.cli.registry_options import registry_options

if TYPE_CHECKING:
    from ocibake.audit.image_source import OpenedImage
    from ocibake.audit.provenance_check import Fact
    from ocibake.registry.options import RegistryOptions


def check_signature(image: OpenedImage, key_path: str, make: Callable[[], RegistryOptions]) -> str:
    """The image's cosign signature checked with ``key_path`` (in its layout, or in its registry) -> what was
    checked; SignatureError (exit 7) when none verifies."""
    from ocibake.audit.cosign_keys import load_public_key
    from ocibake.audit.cosign_sign import verify_remote
    from ocibake.audit.layout_signatures import LayoutSignatures

    key = load_public_key(Path(key_path))
    if image.remote is None:
        result = verify_remote(LayoutSignatures(image.layout), image.digest, key)
    else:
        from ocibake.registry.artifacts import Remote

        with Remote(image.reference, make()) as remote:
            result = verify_remote(remote, image.digest, key)
    return f"the signature ({result.signatures} valid with {key_path})"


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake audit registry.example.com/sos-app/emergency-service:v1.0.0 --source .",
        "ocibake audit oci:dist/oci/emergency-service:v1.0.0 --source services/emergency-service --json",
        "ocibake audit REG/app@sha256:... --source . --toolchain REG/golang@sha256:...",
    ),
)
@click.argument("ref", metavar="REF")
@click.option("--source", "source", required=True, metavar="DIR", help="the service's source (holding go.mod)")
@click.option(
    "--toolchain", metavar="REF", help="the toolchain image the build record names (by digest); default: local programs"
)
@click.option("--go", metavar="PATH", help="the go program to use with a local toolchain (default: go on PATH)")
@click.option("--upx-bin", metavar="PATH", help="the upx program to use with a local toolchain (default: upx on PATH)")
@click.option("--platform", help="os/arch[/variant]: the image to audit in an index")
@click.option(
    "--key", "key_path", metavar="PATH", help="cosign.pub: check the image's signature first (exit 7 if none)"
)
@output_options()
@registry_options
def audit(
    ref: str,
    source: str,
    toolchain: str | None,
    go: str | None,
    upx_bin: str | None,
    platform: str | None,
    key_path: str | None,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Rebuild an image from source and check it is the same (exit 0), or say why not (exit 6).

    Reads the image's build record, checks that DIR is at the recorded commit, rebuilds with the recorded settings
    and toolchain, compares digests and, when they differ, diffs the two images and names the probable cause.
    """
    from ocibake.audit.diff import print_diff
    from ocibake.audit.image_source import open_image
    from ocibake.audit.provenance_check import provenance_lines
    from ocibake.audit.rebuild import audit as run_audit
    from ocibake.errors import InputError
    from ocibake.toolchain.choose import make_toolchain

    out = output(verbose, quiet, json_output)
    source_dir = Path(source)
    if not source_dir.is_dir():
        raise InputError(f"--source {source}: not a directory", hint="pass the service's source directory")
    make = options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    tc = make_toolchain(toolchain, go=go, upx=upx_bin, registry_options=make)
    with open_image(ref, make, platform) as image:
        signature = check_signature(image, key_path, make) if key_path else None
        result = run_audit(image, source_dir, tc, log=out.log, signature=signature)
        facts = provenance_facts(image, make)
    if out.json:
        doc = result.as_json()
        doc["provenance"] = None if facts is None else [{**vars(f), "agrees": f.agrees} for f in facts]
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        if result.diff is not None and out.verbose:
            print_diff(result.diff, sys.stdout)
        print(result.verdict())  # the verdict first: scripts read the first line
        for cause in result.causes:
            print(f"probable cause: {cause}")
        for line in provenance_lines(facts):
            print(line)
    return 0 if result.reproduced else DIFFERENT


def provenance_facts(image: OpenedImage, make: Callable[[], RegistryOptions]) -> list[Fact] | None:
    """The image's provenance held against its build record; None when it has no provenance."""
    from ocibake.audit.provenance_check import compare, read_provenance

    statement = read_provenance(image, make)
    if statement is None or image.build_record is None:
        return None
    return compare(statement, image.build_record, image.digest)
