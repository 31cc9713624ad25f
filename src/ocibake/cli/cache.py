"""`ocibake cache info|clean`: what ocibake's private cache holds, part by part (unpacked toolchains and their Go
caches, pulled toolchain and base images, Delve, UPX outputs, layers, go env answers, last binaries), and emptying
it: all of it, some parts (--only), or the entries older than a time (--older-than)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.errors import UsageError

# kept in step with toolchain/cache.py's PARTS (a test checks it); here so `--help` imports nothing more
PART_CHOICES = (
    "rootfs",
    "sandbox",
    "toolchains",
    "pulled",
    "bases",
    "delve",
    "upx",
    "layers",
    "goenv",
    "gobin",
    "go",
    "checks",
    "pinned",
    "tools",
    "other",
)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `45s`, `2w` (or a number of seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise UsageError(f"--older-than {text}: not a time", hint="give a number and a unit: 30d, 12h, 90m, 45s or 2w")
    return float(m.group(1)) * UNITS[m.group(2) or "s"]


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake cache info",
        "ocibake cache info --json",
        "ocibake cache clean",
        "ocibake cache clean --only upx --only layers",
        "ocibake cache clean --older-than 30d",
    ),
)
@click.argument("action", metavar="info|clean", type=click.Choice(["info", "clean"]))
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(PART_CHOICES),
    metavar="PART",
    help=f"clean: only this part (repeatable): {', '.join(PART_CHOICES)}",
)
@click.option("--older-than", metavar="AGE", help="clean: only entries not used for AGE (30d, 12h, 90m, 2w)")
@output_options()
def cache(
    action: str, only: tuple[str, ...], older_than: str | None, verbose: bool, quiet: bool, json_output: bool
) -> int:
    """Show or empty ocibake's cache.

    The cache ($XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake, else with no writable home $TMPDIR/ocibake-cache-UID)
    holds unpacked toolchain images and their Go build and
    module caches, toolchain and base images pulled from registries, Delve builds, UPX-packed binaries and compressed
    layers ($OCIBAKE_UPX_CACHE_MIB and friends bound them), `go env` answers and the last binary built per service.
    `info` shows each part, its entries and size; `clean` empties it, or only some parts (--only), or only what was
    not used for a while (--older-than).
    """
    from ocibake.toolchain import cache as cache_dir

    out = output(verbose, quiet, json_output)
    where = cache_dir.cache_home()
    if action == "info":
        if only or older_than:
            raise UsageError("--only and --older-than belong to `cache clean`", hint="ocibake cache clean --only upx")
        return show(where, out.json)
    age = parse_age(older_than) if older_than is not None else None
    removed, freed = cache_dir.clean(where, only, age)
    if out.json:
        print(json.dumps({"cache": str(where), "removed": removed, "freed": freed, "only": list(only), "age": age}))
    elif not out.quiet:
        from ocibake.units import human_size

        what = f"{', '.join(only)} in " if only else ""
        when = f", entries older than {older_than}" if older_than else ""
        print(f"cleaned {what}{where}{when}: {removed} entries, {human_size(freed)} freed", file=sys.stderr)
    return 0


def show(where: Path, as_json: bool) -> int:
    from ocibake.toolchain import cache as cache_dir
    from ocibake.units import human_size

    cache_dir.check_private(where.resolve())  # what a build would refuse, `info` refuses too, with the same hint
    parts = cache_dir.usage(where)
    if as_json:
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
