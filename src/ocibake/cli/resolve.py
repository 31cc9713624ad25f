"""`ocibake resolve -f FILE_OR_DIR [--push REPO_PREFIX]`: Kubernetes YAML with `ocibake://PATH` image references in,
the same YAML on stdout with each replaced by the pushed `REPO@sha256:...` of the service at PATH.

All or nothing: the YAML is written to stdout only once every service is built and pushed; any failure (an unknown
path, a YAML syntax error, a failed build or push) exits non-zero with nothing on stdout. Logs go to stderr.
"""

from __future__ import annotations

import os
import sys

import click

from ocibake.cli.common import examples, output, output_options
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, tls_options
from ocibake.errors import UsageError


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake resolve -f deploy/ --push registry.example.com/sos > deploy.resolved.yaml",
        "ocibake resolve -f examples/kubernetes/emergency-service.yaml --push 127.0.0.1:5000/sos --version v1.0.0",
        "OCIBAKE_REGISTRY=registry.example.com/sos ocibake resolve -f deploy/ | kubectl apply -f -",
    ),
)
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    required=True,
    metavar="FILE_OR_DIR",
    help="Kubernetes YAML file, or a directory searched recursively for *.yaml/*.yml (repeatable)",
)
@click.option(
    "--push",
    "push_prefix",
    metavar="REPO_PREFIX",
    help="push each service to REPO_PREFIX/NAME (default: $OCIBAKE_REGISTRY/NAME)",
)
@click.option("--version", "image_version", metavar="VERSION", help="version of every service (default: dev)")
@click.option("--platform", help="os/arch[/variant] (default: linux/amd64)")
@click.option("--upx", metavar="MODE", help="UPX mode for every service (default: the target's)")
@click.option(
    "-j", "--jobs", type=click.IntRange(1, 64), default=2, show_default=True, help="services built at the same time"
)
@tls_options
@output_options()
def resolve(
    files: tuple[str, ...],
    push_prefix: str | None,
    image_version: str | None,
    platform: str | None,
    upx: str | None,
    jobs: int,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    timeout: float | None = None,
) -> int:
    """Build, push and pin every ocibake://PATH image in Kubernetes YAML.

    Every `ocibake://PATH` string (PATH: a service directory, or a name under services/) is built once with its
    ocibake.toml, pushed, and replaced by REPO@sha256:DIGEST. Everything else in the YAML, comments included, is
    written as it was.
    """
    from ocibake.cli.resolve_builds import build_and_push, plan_services
    from ocibake.resolve.documents import collect_files, join, read_file, rewrite

    out = output(verbose, quiet, json_output)
    if out.json:
        raise UsageError("resolve writes YAML; --json is not supported", hint="drop --json")
    if push_prefix is not None and not push_prefix.strip():
        raise UsageError("--push needs a REPO_PREFIX", hint="e.g. --push registry.example.com/sos")
    if not push_prefix and not os.environ.get("OCIBAKE_REGISTRY", "").strip():
        raise UsageError(
            "resolve pushes every service: give --push REPO_PREFIX or set OCIBAKE_REGISTRY",
            hint="e.g. --push registry.example.com/sos",
        )
    yaml_files = [read_file(path) for path in collect_files(files)]
    references = [ref for f in yaml_files for ref in f.references]
    flags = {"image_version": image_version, "platform": platform, "upx": upx}
    services = plan_services(references, push_prefix.strip() if push_prefix else None, flags)
    out.log(
        f"{len(yaml_files)} file(s), {len(references)} ocibake:// reference(s), {len(services)} service(s) "
        "to build and push"
    )
    registry = RegistryFlags(insecure=insecure, ca_cert=ca_cert, verbose=out.verbose, quiet=out.quiet, timeout=timeout)
    resolved = build_and_push(services, flags, registry, out.log, jobs) if services else {}
    text = join(rewrite(f, resolved) for f in yaml_files)
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0
