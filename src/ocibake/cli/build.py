"""`ocibake build SERVICE_DIR`: flags and ocibake.toml in, an image in an OCI layout out (and pushed, with --push).

stdout carries only `NAME@sha256:...` (after --push, one `REPO:TAG@sha256:...` line per pushed tag), or the JSON report
with --json; logs and the human report go to stderr.
"""

from __future__ import annotations

import sys

import click

from ocibake.build.spec import COMPRESSIONS, TARGETS
from ocibake.build.upx import UPX_HELP
from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, make_options, tls_options
from ocibake.errors import OcibakeError

@click.command(context_settings=CONTEXT, epilog=examples(
    "ocibake build services/emergency-service --version v1.0.0",
    "ocibake build emergency-service --version v1.0.0 --upx off --platform linux/arm64",
    "ocibake build services/emergency-service --version v1.0.0 --push registry.example.com/sos/emergency-service",
    "ocibake build services/* --version v1.0.0 --jobs 2 --push registry.example.com/sos/"))
@click.argument("services", metavar="SERVICE_DIR...", nargs=-1, required=True)
@click.option("-j", "--jobs", type=click.IntRange(min=1), metavar="N",
              help="with several services: build this many at a time, and run at most N go/upx processes at once "
                   "(default: the number of cores)")
@click.option("--target", metavar="|".join(TARGETS), help="image recipe (default: production, FROM scratch)")
@click.option("--version", "image_version", metavar="VERSION",
              help="version injected as main.Version and used as a tag (default: dev)")
@click.option("--name", help="image name (default: the directory name)")
@click.option("--tag", multiple=True, metavar="TAG", help="tag to write (repeatable; default: VERSION and latest)")
@click.option("--platform", help="os/arch[/variant] (default: linux/amd64)")
@click.option("--compression", metavar="|".join(COMPRESSIONS),
              help="layer compression: gzip (default, every runtime reads it) or zstd (smaller, slower to build)")
@click.option("--main", help="main package, when it is not cmd/main.go, cmd/NAME/main.go or main.go")
@click.option("--output", metavar="DIR", help="OCI layout directory (default: dist/oci/NAME)")
@click.option("--port", type=int, help="port the service listens on, for ExposedPorts (default: 8080)")
@click.option("--version-package", metavar="PKG",
              help="package holding Version, BuildDate and GitCommit for -X (default: main)")
@click.option("--ca-bundle", metavar="SRC", help="certifi (default, pinned), host, a PEM file, or none")
@click.option("--zoneinfo", metavar="SRC", help="tzdata (default, pinned), host, a zoneinfo directory, or none")
@click.option("--source", metavar="URL", help="org.opencontainers.image.source (default: git origin)")
@click.option("--no-verify", "verify", flag_value=False, default=None,
              help="do not run the built binary with --version")
@click.option("--upx", metavar="MODE", help=UPX_HELP)
@click.option("--toolchain", metavar="REF",
              help="where go and upx run: local (default: programs on PATH), oci:DIR[:TAG] (an OCI layout) or a "
                   "registry reference, ideally pinned @sha256:...; an image runs in a rootless sandbox")
@click.option("--network", is_flag=True, default=None,
              help="let go in the toolchain image reach the network (default: no network in the sandbox)")
@click.option("--go", metavar="PATH", help="the go program to use with --toolchain local (default: go on PATH)")
@click.option("--upx-bin", metavar="PATH", help="the upx program to use with --toolchain local (default: upx on PATH)")
@click.option("--push", multiple=True, is_flag=False, flag_value="", metavar="REPO",
              help="after the build, push every tag to REPO (REGISTRY/NAME, or a bare NAME under $OCIBAKE_REGISTRY; "
                   "without a value: $OCIBAKE_REGISTRY/IMAGE-NAME). Repeatable")
@tls_options
@output_options()
def build(services: tuple[str, ...], verbose: bool, quiet: bool, json_output: bool, insecure: bool,
          ca_cert: str | None, jobs: int | None, **settings) -> int:
    """Build Go services into OCI image layouts.

    Build SERVICE_DIR (a path, or a bare name meaning services/NAME) into an OCI image layout. Settings may also come
    from SERVICE_DIR/ocibake.toml; flags win. Several SERVICE_DIRs are built in parallel (--jobs), each into
    dist/oci/NAME with its own ocibake.toml; stdout then has one line per image in the order given, and stderr one
    summary table. --push REGISTRY/PREFIX/ (ending in /) pushes each service to REGISTRY/PREFIX/NAME.
    """
    from ocibake.build.bake import bake
    from ocibake.cli.build_spec import (Choices, make_toolchain, push_repo_names, push_targets, resolve_service_dir,
                                        spec_from_choices)
    from ocibake.cli.settings import load_settings
    from ocibake.report import print_human, print_result
    out = output(verbose, quiet, json_output)
    flags = {k: (None if v == () else (list(v) if isinstance(v, tuple) else v)) for k, v in settings.items()}
    registry = RegistryFlags(insecure=insecure, ca_cert=ca_cert, verbose=out.verbose, quiet=out.quiet)
    if len(services) > 1:
        from ocibake.cli.build_many import build_many
        return build_many(services, flags, registry, out, jobs)
    service_dir = resolve_service_dir(services[0])
    choices = Choices(flags, load_settings(service_dir))
    spec = spec_from_choices(choices, service_dir)
    targets = push_targets(choices, spec.name)
    toolchain = make_toolchain(choices, service_dir, registry, log_warnings=not out.quiet)
    result = bake(spec, toolchain, log=out.log)
    if not out.json and not out.quiet:
        print_human(result, sys.stderr, tuple(push_repo_names(targets)))
    pushed = None
    if targets:
        from ocibake.registry.push import push_layout
        from ocibake.report import command_name
        try:
            pushed = push_layout(spec.output, targets, list(result.tags), make_options(registry))
        except OcibakeError as exc:
            exc.results = (result.reference, *exc.results)
            tags = " ".join(f"-t {t}" for t in result.tags)
            exc.hint = (f"{exc.hint + '; ' if exc.hint else ''}the image is built in {spec.output}: push it again "
                        f"with `{command_name()} push {spec.output} {' '.join(targets)} {tags}`")
            raise
    print_result(result, out=sys.stdout, err=sys.stderr, json_output=out.json, quiet=out.quiet, pushed=pushed)
    return 0
