"""`ocibake push`, `ocibake pull` and `ocibake login`.

stdout carries results only (`repo:tag@sha256:...` lines, or JSON with --json); progress, the summary and -v request
traces go to stderr, with every secret redacted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ocibake.cli.common import Output, examples, output, output_options
from ocibake.cli.completion import paths
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import RegistryFlags, make_options, registry_options
from ocibake.errors import UsageError

TRACE_HELP = "show every request (secrets redacted)"


def _flags(
    out: Output,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
) -> RegistryFlags:
    return RegistryFlags(
        insecure=insecure,
        ca_cert=ca_cert,
        username=username,
        password_stdin=password_stdin,
        verbose=out.verbose,
        quiet=out.quiet,
        timeout=timeout,
    )


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake push dist/oci/emergency-service registry.example.com/sos/emergency-service",
        "ocibake push dist/oci/emergency-service registry.example.com/sos/emergency-service -t v1.0.0",
        "ocibake push dist/oci/emergency-service registry.example.com/sos/emergency-service:stable -t v1.0.0",
    ),
)
@click.argument("layout", metavar="LAYOUT", shell_complete=paths("dir"))
@click.argument("repos", metavar="REPO...", nargs=-1, required=True)
@click.option(
    "-t",
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="push only this tag of the layout (repeatable); with REPO:NEWTAG, the image to push as NEWTAG",
)
@click.option(
    "--mount-from",
    multiple=True,
    metavar="REPO",
    help="try a cross-repository mount of blobs from REPO (same registry) first",
)
@output_options(TRACE_HELP)
@registry_options
def push(
    layout: str,
    repos: tuple[str, ...],
    tags: tuple[str, ...],
    mount_from: tuple[str, ...],
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None,
) -> int:
    """Push the images of an OCI layout to a registry.

    Push LAYOUT's tagged images to each REPO (REGISTRY/NAME, or a bare NAME under $OCIBAKE_REGISTRY): blobs,
    manifests, then tags. All tags in the layout by default. Prints REPO:TAG@DIGEST per tag.
    """
    from ocibake.registry.push import push_layout

    out = output(verbose, quiet, json_output)
    options = make_options(
        _flags(out, insecure, ca_cert, username, password_stdin, timeout), mount_from=tuple(mount_from)
    )
    result = push_layout(Path(layout), list(repos), list(tags) or None, options)
    from ocibake.cli.attachments import push_layout_referrers

    push_layout_referrers(Path(layout), result, options, out.log)
    if out.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    else:
        for line in result.lines():
            print(line)
    if not out.quiet:
        print(result.summary(), file=sys.stderr)
    return 0


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake pull registry.example.com/sos/emergency-service:v1.0.0 dist/oci/emergency-service",
        "ocibake pull registry.example.com/golang:1.21@sha256:... toolchains/go1.21 --platform linux/amd64",
    ),
)
@click.argument("ref", metavar="REF")
@click.argument("dest", metavar="DIR", shell_complete=paths("dir"))
@click.option("--platform", help="os/arch[/variant]: pull only that image out of an index")
@click.option(
    "--force-tags",
    is_flag=True,
    help="let the tag move from an image of another name (or version) in DIR to the pulled one",
)
@click.option(
    "--no-referrers",
    "referrers",
    flag_value=False,
    default=True,
    help="pull only the image, not the SBOMs, signatures and attestations that refer to it",
)
@output_options(TRACE_HELP)
@registry_options
def pull(
    ref: str,
    dest: str,
    platform: str | None,
    force_tags: bool,
    referrers: bool,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None,
) -> int:
    """Pull an image (or index) into an OCI layout.

    Pull REF into the OCI layout DIR, verifying every digest. An index is pulled whole, or only the image for
    --platform. The SBOMs, signatures and attestations that refer to what was pulled come along (referrers API or
    the sha256-<hex> fallback tag; cosign's .sig/.att tags), unless --no-referrers.
    """
    from ocibake.cli.output_scheme import refuse_unknown_scheme
    from ocibake.registry.pull import pull as pull_image
    from ocibake.registry.pull_referrers import pull_referrers

    refuse_unknown_scheme(dest, "DIR", schemes=())  # pull writes a layout; `ocibake export` makes archives
    out = output(verbose, quiet, json_output)
    options = make_options(_flags(out, insecure, ca_cert, username, password_stdin, timeout))
    result = pull_image(ref, Path(dest), platform, options, force_tags=force_tags)
    artifacts = pull_referrers(ref, Path(dest), result.digest, options) if referrers else []
    if out.json:
        print(json.dumps({**result.as_json(), "referrers": artifacts}, indent=2, sort_keys=True))
    else:
        print(result.line())
    if not out.quiet:
        print(result.summary(), file=sys.stderr)
        for artifact in artifacts:
            print(f"referrer  {artifact}", file=sys.stderr)
    return 0


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        'echo "$REGISTRY_PASSWORD" | ocibake login registry.example.com -u ci-bot --password-stdin',
        "ocibake login 127.0.0.1:5000 -u admin --password-stdin < password.txt",
        "ocibake login registry.internal:5000 --ca-cert certs/internal-ca.pem -u ci-bot --password-stdin < token",
    ),
)
@click.argument("registry", metavar="REGISTRY")
@output_options(TRACE_HELP)
@registry_options
def login(
    registry: str,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None,
) -> int:
    """Store registry credentials in docker's config.json.

    Check USER's password (from stdin) against REGISTRY and store it like `docker login` does (credential helper if
    configured, else config.json, mode 0600).
    """
    from ocibake.registry import credentials
    from ocibake.registry.login import check_login

    out = output(verbose, quiet, json_output)
    if not password_stdin:
        raise UsageError(
            "login reads the password from stdin", hint='echo "$PASSWORD" | ocibake login HOST -u USER --password-stdin'
        )
    options = make_options(_flags(out, insecure, ca_cert, username, password_stdin, timeout))
    creds = options.credentials
    if creds is None:  # with --password-stdin, make_options has read them (or refused a missing --username)
        raise UsageError(
            "login needs --username", hint='echo "$PASSWORD" | ocibake login HOST -u USER --password-stdin'
        )
    registry = _registry_host(registry)
    asks = check_login(registry, creds, options)
    where = credentials.store(registry, creds)
    if out.json:
        print(
            json.dumps(
                {
                    "registry": registry,
                    "username": creds.username,
                    "stored_in": where,
                    "registry_asks_for_credentials": asks,
                }
            )
        )
    elif not out.quiet:
        print(f"logged in to {registry} as {creds.username}; credentials stored in {where}", file=sys.stderr)
        if not asks:
            print(
                f"note: {registry} asks for no credentials (anonymous access is allowed), so they were not "
                "checked; they are sent once it asks",
                file=sys.stderr,
            )
    return 0


def _registry_host(registry: str) -> str:
    """REGISTRY as login and logout take it: a host, `https://` or a trailing `/` tolerated, never credentials."""
    from ocibake.oci.names import refuse_credentials

    refuse_credentials(registry, "the registry name")
    registry = registry.strip()
    for prefix in ("https://", "http://"):
        registry = registry.removeprefix(prefix)
    return registry.rstrip("/")


@click.command(
    context_settings=CONTEXT,
    epilog=examples("ocibake logout registry.example.com", "ocibake logout 127.0.0.1:5000 --json"),
)
@click.argument("registry", metavar="REGISTRY")
@output_options()
def logout(registry: str, verbose: bool, quiet: bool, json_output: bool) -> int:
    """Remove the credentials `ocibake login` stored for REGISTRY.

    As `docker logout`: the credential helper's entry (when config.json names one for this host) and the host's
    entries in docker's config.json. Says where they were; credentials in OCIBAKE_USERNAME/OCIBAKE_PASSWORD or in
    podman's auth.json are not touched.
    """
    from ocibake.registry import credentials

    out = output(verbose, quiet, json_output)
    host = _registry_host(registry)
    removed = credentials.erase(host)
    if out.json:
        print(json.dumps({"registry": host, "removed_from": removed}))
    elif not out.quiet:
        where = " and ".join(removed)
        line = f"logged out of {host}: credentials removed from {where}" if removed else None
        print(line or f"not logged in to {host}: {credentials.docker_config_path()} holds no credentials for it")
    return 0
