"""`ocibake bundle SERVICE_DIR... --output DIR`: everything the builds need, for `ocibake build --offline DIR` on a
machine with no network; `ocibake bundle --check DIR`: every file of a bundle against its SHA256SUMS."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocibake.cli.common import Output, examples, output, output_options
from ocibake.cli.completion import paths
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, tls_options
from ocibake.errors import UsageError

if TYPE_CHECKING:
    from ocibake.builder.bundle import BundleRequest


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake bundle services/* --output airgap-bundle",
        "ocibake bundle services/api --target development --platform linux/amd64,linux/arm64 --output bundle",
        "ocibake bundle services/api --base alpine:3.20 --toolchain registry.example.com/golang:1.22 --output bundle",
        "ocibake bundle --check bundle",
    ),
)
@click.argument("services", metavar="SERVICE_DIR...", nargs=-1, shell_complete=paths("dir"))
@click.option(
    "--output", "output_dir", metavar="DIR", shell_complete=paths("dir"), help="the bundle directory (made or replaced)"
)
@click.option("--check", "check_dir", metavar="DIR", shell_complete=paths("dir"), help="verify a bundle's files")
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT],...",
    default="linux/amd64",
    show_default=True,
    help="the platforms the offline builds are for (bases and Delve are gathered for each)",
)
@click.option(
    "--target",
    type=click.Choice(["production", "production-alpine", "development"]),
    help="development: add Delve, built for every --platform",
)
@click.option("--base", multiple=True, metavar="REF", help="a registry base image to add, pinned (repeatable)")
@click.option(
    "--toolchain", multiple=True, metavar="REF", help="a registry toolchain image to add, pinned (repeatable)"
)
@click.option("--go", metavar="PATH", shell_complete=paths(), help="the go program (default: go on PATH)")
@tls_options
@output_options()
def bundle(
    services: tuple[str, ...],
    output_dir: str | None,
    check_dir: str | None,
    platform: str,
    target: str | None,
    base: tuple[str, ...],
    toolchain: tuple[str, ...],
    go: str | None,
    insecure: bool,
    ca_cert: str | None,
    timeout: float | None,
    verbose: bool,
    quiet: bool,
    json_output: bool,
) -> int:
    """Gather what offline builds need into a directory.

    On a connected machine: the Go modules of every SERVICE_DIR (goproxy/, used as GOPROXY=file://), the --base and
    --toolchain images pinned by digest (images/, an OCI layout), and with --target development Delve for every
    --platform. Copy the directory to the air-gapped machine and build there with `ocibake build --offline DIR`
    (or OCIBAKE_OFFLINE=DIR). `--check DIR` verifies every file against the bundle's SHA256SUMS.
    """
    out = output(verbose, quiet, json_output)
    if check_dir is not None:
        if services or output_dir:
            raise UsageError("--check takes only the bundle", hint="ocibake bundle --check DIR")
        from ocibake.toolchain import offline

        checked = offline.check(Path(check_dir))
        print(
            json.dumps({"bundle": check_dir, "files": checked}) if out.json else f"{check_dir}: {checked} files intact"
        )
        return 0
    if not services or not output_dir:
        raise UsageError("bundle needs SERVICE_DIR... and --output DIR", hint="ocibake bundle services/* --output DIR")
    from ocibake.builder.bundle import BundleRequest
    from ocibake.cli.build_spec import parse_platforms, resolve_service_dir

    dirs = tuple(resolve_service_dir(s) for s in services)
    from_files = _registry_refs(dirs)
    request = BundleRequest(
        services=dirs,
        output=Path(output_dir),
        platforms=parse_platforms(platform),
        development=target == "development",
        bases=tuple(dict.fromkeys((*base, *from_files["base"]))),
        toolchains=tuple(dict.fromkeys((*toolchain, *from_files["toolchain"]))),
        go=go or "go",
    )
    flags = RegistryFlags(insecure=insecure, ca_cert=ca_cert, verbose=out.verbose, quiet=out.quiet, timeout=timeout)
    return _make(request, flags, out)


def _registry_refs(services: tuple[Path, ...]) -> dict[str, list[str]]:
    """The registry bases and toolchains the services' ocibake.toml files name (top level, [build], every
    [target.NAME]); `oci:` layouts and `local` are files already."""
    from ocibake.cli.settings import load_settings

    out: dict[str, list[str]] = {"base": [], "toolchain": []}
    for service in services:
        settings = load_settings(service)
        for table in (settings.common, *settings.targets.values()):
            for key, refs in out.items():
                value = table.get(key)
                if isinstance(value, str) and value != "local" and not value.startswith("oci:"):
                    refs.append(value)
    return out


def _make(request: BundleRequest, flags: RegistryFlags, out: Output) -> int:
    from ocibake.builder.bundle import make_bundle
    from ocibake.cli.registry_options import make_options
    from ocibake.toolchain.local import LocalToolchain

    summary = make_bundle(request, LocalToolchain(go=request.go), lambda: make_options(flags), out.log)
    dest = request.output
    if out.json:
        doc = {"bundle": str(dest), "modules": summary.modules, "images": summary.images, "delve": summary.delve}
        print(json.dumps({**doc, "files": summary.files}, indent=2))
        return 0
    if not out.quiet:
        print(
            f"bundle {dest}: {len(summary.modules)} modules, {len(summary.images)} images, Delve for "
            f"{', '.join(summary.delve) or 'no platform'}; {summary.files} files in SHA256SUMS",
            file=sys.stderr,
        )
        print(f"  offline: ocibake build --offline {dest} SERVICE_DIR ...", file=sys.stderr)
    print(dest)
    return 0
