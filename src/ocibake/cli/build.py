"""`ocibake build SERVICE_DIR`: flags and ocibake.toml in, an image in an OCI layout out (and pushed, with --push).

stdout carries only `NAME@sha256:...` (after --push, one `REPO:TAG@sha256:...` line per pushed tag), or the JSON report
with --json; logs and the human report go to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from ocibake.builder.spec import COMPRESSIONS, TARGETS
from ocibake.builder.upx import UPX_HELP, UPX_MODES
from ocibake.cli.attachments import attachment_options
from ocibake.cli.common import examples, output, output_options
from ocibake.cli.completion import paths, values, values_or_paths
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, tls_options

if TYPE_CHECKING:
    from ocibake.cli.attachments import AttachChoices
    from ocibake.cli.build_plan import BuildPlan
    from ocibake.cli.settings import Value


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake build services/emergency-service --version v1.0.0",
        "ocibake build emergency-service --version v1.0.0 --upx off --platform linux/arm64",
        "ocibake build services/emergency-service --version v1.0.0 --push registry.example.com/sos/emergency-service",
        "ocibake build services/* --version v1.0.0 --jobs 2 --push registry.example.com/sos/",
    ),
)
@click.argument("services", metavar="SERVICE_DIR...", nargs=-1, required=True, shell_complete=paths("dir"))
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="with several services: build this many at a time, and run at most N go/upx processes at once "
    "(default: the number of cores)",
)
@click.option(
    "--target",
    metavar="|".join(TARGETS),
    shell_complete=values(*TARGETS),
    help="image recipe (default: production, FROM scratch; production-alpine: on --base with a health "
    "check; development: a debug build under Delve)",
)
@click.option(
    "--version",
    "image_version",
    metavar="VERSION",
    help="version injected as main.Version and used as a tag (default: dev)",
)
@click.option("--name", metavar="NAME", help="image name (default: the directory name)")
@click.option("--tag", multiple=True, metavar="TAG", help="tag to write (repeatable; default: VERSION and latest)")
@click.option(
    "--platform",
    metavar="OS/ARCH[/VARIANT],...",
    shell_complete=values(
        "linux/amd64", "linux/arm64", "linux/arm/v7", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64"
    ),
    help="os/arch[/variant], or a comma-separated list for one image index (default: linux/amd64)",
)
@click.option(
    "--compression",
    metavar="|".join(COMPRESSIONS),
    shell_complete=values(*COMPRESSIONS),
    help="layer compression: gzip (default, every runtime reads it) or zstd (smaller, slower to build)",
)
@click.option("--main", metavar="PKG", help="main package, when it is not cmd/main.go, cmd/NAME/main.go or main.go")
@click.option(
    "--output",
    metavar="DIR|docker-archive:FILE|oci-archive:FILE",
    shell_complete=paths("dir"),
    help="OCI layout directory (default: dist/oci/NAME); or an archive file, written besides the layout",
)
@click.option("--port", type=int, help="port the service listens on, for ExposedPorts (default: 8080)")
@click.option(
    "--version-package", metavar="PKG", help="package holding Version, BuildDate and GitCommit for -X (default: main)"
)
@click.option(
    "--ca-bundle",
    metavar="SRC",
    shell_complete=values_or_paths(("certifi", "host", "none")),
    help="certifi (default, pinned), host, a PEM file, or none",
)
@click.option(
    "--zoneinfo",
    metavar="SRC",
    shell_complete=values_or_paths(("tzdata", "host", "none"), "dir"),
    help="tzdata (default, pinned), host, a zoneinfo directory, or none",
)
@click.option("--source", metavar="URL", help="org.opencontainers.image.source (default: git origin)")
@click.option(
    "--no-verify", "verify", flag_value=False, default=None, help="do not run the built binary with --version"
)
@click.option(
    "--verify",
    "verify_mode",
    type=click.Choice(["auto", "always", "never"]),
    default=None,
    help="run the built binary with --version: auto (the default: once per distinct binary and platform; a "
    "rebuild that made the same bytes reuses the outcome), always (every build), never (= --no-verify)",
)
@click.option("--upx", metavar="MODE", shell_complete=values(*UPX_MODES), help=UPX_HELP)
@click.option(
    "--base",
    metavar="REF",
    help="base image: oci:DIR[:TAG|@sha256:...] (an OCI layout) or a registry reference (a bare name is on "
    "Docker Hub, or under $OCIBAKE_REGISTRY); pinned @sha256:... it builds offline once cached",
)
@click.option(
    "--healthcheck",
    metavar="CMD",
    help="production-alpine: the health check's shell command (default: curl -f, else wget, of "
    "http://localhost:PORT/health)",
)
@click.option(
    "--no-healthcheck",
    "healthcheck_on",
    flag_value=False,
    default=None,
    help="production-alpine: no health check in the config",
)
@click.option(
    "--delve",
    metavar="PATH",
    shell_complete=paths(),
    help="development: a static dlv to put in the image (default: built from its Go module, cached)",
)
@click.option(
    "--toolchain",
    metavar="REF",
    shell_complete=values("local", "oci:"),
    help="where go and upx run: local (default: programs on PATH), oci:DIR[:TAG] (an OCI layout) or a "
    "registry reference, ideally pinned @sha256:...; an image runs in a rootless sandbox",
)
@click.option(
    "--network",
    is_flag=True,
    default=None,
    help="let go in the toolchain image reach the network (default: no network in the sandbox)",
)
@click.option(
    "--go",
    metavar="PATH",
    shell_complete=paths(),
    help="the go program to use with --toolchain local (default: go on PATH)",
)
@click.option(
    "--upx-bin",
    metavar="PATH",
    shell_complete=paths(),
    help="the upx program to use with --toolchain local (default: upx on PATH)",
)
@click.option(
    "--force-tags",
    is_flag=True,
    default=None,
    help="let a tag move to an image of another name, or of another version than the tag names",
)
@click.option(
    "--push",
    multiple=True,
    is_flag=False,
    flag_value="",
    metavar="REPO",
    help="after the build, push every tag to REPO (REGISTRY/NAME, or a bare NAME under $OCIBAKE_REGISTRY; "
    "without a value: $OCIBAKE_REGISTRY/IMAGE-NAME). Repeatable",
)
@click.option(
    "--offline",
    metavar="DIR",
    shell_complete=paths("dir"),
    help="build with no network from a bundle made by `ocibake bundle` (also OCIBAKE_OFFLINE=DIR): Go modules, "
    "registry bases and toolchains, Delve",
)
@attachment_options
@tls_options
@output_options()
def build(
    services: tuple[str, ...],
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    jobs: int | None,
    sbom: str,
    provenance: str,
    provenance_times: bool,
    sign_key: str | None,
    timeout: float | None,
    **settings: Value | tuple[str, ...] | None,
) -> int:
    """Build Go services into OCI image layouts.

    Build SERVICE_DIR (a path, or a bare name meaning services/NAME) into an OCI image layout. Settings may also come
    from SERVICE_DIR/ocibake.toml; flags win. Several SERVICE_DIRs are built in parallel (--jobs), each into
    dist/oci/NAME with its own ocibake.toml; stdout then has one line per image in the order given, and stderr one
    summary table. --push REGISTRY/PREFIX/ (ending in /) pushes each service to REGISTRY/PREFIX/NAME.
    """
    from ocibake.cli.attachments import AttachChoices

    out = output(verbose, quiet, json_output)
    offline_dir = settings.pop("offline", None)
    if isinstance(offline_dir, str):  # the one switch every stage reads (toolchain/offline.py)
        os.environ["OCIBAKE_OFFLINE"] = os.path.abspath(offline_dir)
    from ocibake.toolchain import offline

    bundle = offline.offline_dir()  # a bundle that is not one is refused before anything runs
    if bundle is not None:
        offline.manifest(bundle)
    attach = AttachChoices(sbom, provenance, provenance_times)
    flags = flag_values(settings)
    registry = RegistryFlags(insecure=insecure, ca_cert=ca_cert, verbose=out.verbose, quiet=out.quiet, timeout=timeout)
    if len(services) > 1:
        from ocibake.cli.build_many import build_many

        return build_many(services, flags, registry, out, jobs, attach=attach, sign_key=sign_key)
    from ocibake.cli.build_plan import plan_build

    plan = plan_build(services[0], flags, registry, out, sign_key)
    if len(plan.platforms) > 1:
        from ocibake.cli.build_platforms import run_platforms

        return run_platforms(plan, attach)
    return run_single_platform(plan, attach)


def flag_values(given: Mapping[str, Value | tuple[str, ...] | None]) -> dict[str, Value | None]:
    """click's values as settings: a repeatable flag as a list, None when it was not given."""
    return {k: (None if v == () else (list(v) if isinstance(v, tuple) else v)) for k, v in given.items()}


def run_single_platform(plan: BuildPlan, attach: AttachChoices) -> int:
    """Build one image (its SBOM and provenance), push it with --push, write the archive --output names; stdout: its
    reference, or one REPO:TAG@DIGEST line per pushed tag, or the JSON report."""
    from ocibake.builder.bake import bake
    from ocibake.cli.attachments import make_attachments
    from ocibake.cli.build_plan import push_built
    from ocibake.cli.export import write_build_archive
    from ocibake.report import print_human, print_result

    spec, out = plan.spec, plan.out
    result = bake(
        spec, plan.toolchain, log=plan.log, registry_options=plan.registry_options, toolchain_ref=plan.toolchain_ref
    )
    # the sbom and provenance lines belong with the build's lines; the `next:` block comes last, after the push
    attached = make_attachments(attach, spec, result, plan.toolchain, plan.toolchain_ref, out.log)
    if not out.json and not out.quiet:
        print_human(result, sys.stderr)
    pushed = push_built(plan, result, attached)
    written = (
        write_build_archive(plan.archive, result, spec.platform, log=out.log) if plan.archive is not None else None
    )
    print_result(
        result,
        out=sys.stdout,
        err=sys.stderr,
        json_output=out.json,
        quiet=out.quiet,
        pushed=pushed,
        archive=written,
        tls_flags=plan.registry.tls_flags(),
        signed=plan.key is not None,
    )
    return 0
