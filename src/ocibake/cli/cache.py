"""`ocibake cache info|clean`: what the private cache holds (unpacked toolchains, their Go caches, pulled images),
and emptying it."""

from __future__ import annotations

import json
import sys

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT


@click.command(
    context_settings=CONTEXT, epilog=examples("ocibake cache info", "ocibake cache info --json", "ocibake cache clean")
)
@click.argument("action", metavar="info|clean", type=click.Choice(["info", "clean"]))
@output_options()
def cache(action: str, verbose: bool, quiet: bool, json_output: bool) -> int:
    """Show or empty the toolchain cache.

    The cache ($XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake, else with no writable home $TMPDIR/ocibake-cache-UID)
    holds unpacked toolchain images, their Go build and
    module caches, toolchain images pulled from registries, and UPX-packed binaries ($OCIBAKE_UPX_CACHE_MIB bounds
    them, default 512). `info` shows what it holds; `clean` empties it.
    """
    from ocibake.toolchain import cache as cache_dir
    from ocibake.units import human_size

    out = output(verbose, quiet, json_output)
    where = cache_dir.cache_home()
    if action == "clean":
        freed = cache_dir.clean(where)
        if out.json:
            print(json.dumps({"cache": str(where), "freed": freed}))
        elif not out.quiet:
            print(f"emptied {where}: {human_size(freed)} freed", file=sys.stderr)
        return 0
    cache_dir.check_private(where.resolve())  # what a build would refuse, `info` refuses too, with the same hint
    parts = cache_dir.usage(where)
    if out.json:
        print(json.dumps({"cache": str(where), "parts": [vars(p) for p in parts]}, indent=2))
        return 0
    print(f"{where}")
    for part in parts:
        print(
            f"  {part.name + '/':<12} {part.entries:>4} {'entry  ' if part.entries == 1 else 'entries'} "
            f"{human_size(part.size):>12}  {part.what}"
        )
    print(f"  {'total':<12} {'':>12} {human_size(sum(p.size for p in parts)):>12}")
    return 0
