"""`ocibake layout check DIR` and `ocibake layout repair DIR`: what in an OCI layout cannot be read, and dropping it.

check exits 0 when every entry of index.json is intact, 4 when one is not (each listed on stderr). repair keeps every
intact image, drops the rest from index.json (blobs are kept) and says what it dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.errors import InputError


@click.group(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake layout check dist/oci/emergency-service", "ocibake layout repair dist/oci/emergency-service"
    ),
)
def layout() -> None:
    """Check or repair an OCI image layout."""


@layout.command(context_settings=CONTEXT, epilog=examples("ocibake layout check dist/oci/emergency-service"))
@click.argument("directory", metavar="DIR")
@output_options()
def check(directory: str, verbose: bool, quiet: bool, json_output: bool) -> int:
    """List the entries of DIR's index.json that cannot be read (exit 4 if any)."""
    from ocibake.oci.layout_repair import check as check_layout

    out = output(verbose, quiet, json_output)
    root = Path(directory)
    problems, total = check_layout(root)
    if out.json:
        print(json.dumps({"layout": str(root), "entries": total, "problems": [p.line() for p in problems]}))
    for p in problems:
        print(f"  {p.line()}", file=sys.stderr)
    if problems:
        raise InputError(
            f"{root}: {len(problems)} of {total} index entries cannot be read"
            if total
            else f"{root}: {problems[0].line()}",
            hint=f"`ocibake layout repair {root}` keeps every intact image and drops the rest",
        )
    if not out.quiet:
        print(f"{root}: {total} entries, all intact", file=sys.stderr)
    return 0


@layout.command(context_settings=CONTEXT, epilog=examples("ocibake layout repair dist/oci/emergency-service"))
@click.argument("directory", metavar="DIR")
@output_options()
def repair(directory: str, verbose: bool, quiet: bool, json_output: bool) -> int:
    """Drop from DIR's index.json every entry that cannot be read; keep every intact image and every blob."""
    from ocibake.oci.layout_repair import repair as repair_layout

    out = output(verbose, quiet, json_output)
    root = Path(directory)
    dropped, kept = repair_layout(root)
    if out.json:
        print(json.dumps({"layout": str(root), "kept": kept, "dropped": [p.line() for p in dropped]}))
    elif not out.quiet:
        for p in dropped:
            print(f"dropped {p.line()}", file=sys.stderr)
        print(f"{root}: kept {kept} entries, dropped {len(dropped)}", file=sys.stderr)
    return 0
