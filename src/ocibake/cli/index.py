"""`ocibake index`: join single-platform images into one image index, in a registry (--push) or a layout (--output).

The scale-out of `build --platform A,B`: one CI runner per platform builds and pushes by digest, a last job joins them.
The index is byte-identical to the one a single multi-platform run writes for the same images in the same order.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ocibake.cli.common import examples, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, make_options, registry_options
from ocibake.errors import UsageError


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake index --push registry.example.com/sos/app:v1 registry.example.com/sos/app@sha256:A "
        "registry.example.com/sos/app@sha256:B",
        "ocibake index --output dist/oci/app --tag v1 oci:dist/amd64:v1 oci:dist/arm64:v1",
    ),
)
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("--push", "push_to", metavar="REPO:TAG", help="push the index to REPO:TAG (the images must be in REPO)")
@click.option("--output", metavar="DIR", help="write the index, with every image's blobs, into this OCI layout")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="with --output: the index's tag (repeatable)")
@output_options()
@registry_options
def index(
    images: tuple[str, ...],
    push_to: str | None,
    output: str | None,
    tags: tuple[str, ...],
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> int:
    """Join single-platform images into one image index.

    IMAGE is REPO@sha256:... with --push, oci:DIR:TAG with --output. Every image must exist and be a single image,
    and no platform may repeat. Prints the index's reference.
    """
    from ocibake.cli.common import output as make_output

    out = make_output(verbose, quiet, json_output)
    if push_to and not output:
        from ocibake.registry.index_push import push_index

        flags = RegistryFlags(
            insecure=insecure,
            ca_cert=ca_cert,
            username=username,
            password_stdin=password_stdin,
            verbose=out.verbose,
            quiet=out.quiet,
            timeout=timeout,
        )
        blob, pushed = push_index(push_to, images, make_options(flags))
        lines = [str(p) for p in pushed]
    elif output and not push_to:
        if not tags:
            raise UsageError("--output needs at least one --tag", hint="e.g. --output dist/oci/app --tag v1")
        from ocibake.oci.index_layout import write_index_layout

        blob = write_index_layout(Path(output).absolute(), tags, images)
        lines = [f"{output}:{t}@{blob.digest}" for t in tags]
    else:
        raise UsageError("give one of --push REPO:TAG or --output DIR", hint="see `ocibake index --help`")
    if out.json:
        print(
            json.dumps({"digest": blob.digest, "references": lines, "size": len(blob.data)}, indent=2, sort_keys=True)
        )
    else:
        print("\n".join(lines))
        if not out.quiet:
            print(f"index {blob.digest} of {len(images)} images", file=sys.stderr)
    return 0
