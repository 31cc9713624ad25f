"""`ocibake push`, `ocibake pull` and `ocibake login`.

stdout carries results only (`repo:tag@sha256:...` lines, or JSON with --json); progress, the summary and -v request
traces go to stderr, with every secret redacted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ocibake.credentials import Credentials
from ocibake.errors import InputError, UsageError
from ocibake.oci_names import refuse_credentials


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="show every request (secrets redacted)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only results (stdout) and errors")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP and unverified TLS (plain HTTP is always allowed for localhost/127.0.0.1)")
    p.add_argument("--ca-cert", metavar="PATH", help="trust this CA (PEM) for the registry's TLS certificate")
    p.add_argument("-u", "--username", help="registry user (the password comes from --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password (or token) from stdin")


def add_commands(subparsers) -> None:
    """Register push, pull and login on ``subparsers`` (from ArgumentParser.add_subparsers)."""
    p = subparsers.add_parser("push", help="push the images of an OCI layout to a registry",
                              description="Push an OCI layout's tagged images to REPO (REGISTRY/NAME, or a bare NAME "
                                          "under $OCIBAKE_REGISTRY): blobs, manifests, then tags. All tags in the layout "
                                          "by default. Prints REPO:TAG@DIGEST per tag.")
    p.add_argument("layout", metavar="LAYOUT")
    p.add_argument("repos", metavar="REPO", nargs="+", help="one or more repositories to push to")
    p.add_argument("-t", "--tag", action="append", metavar="TAG",
                   help="push only this tag of the layout (repeatable); with REPO:NEWTAG, the image to push as NEWTAG")
    p.add_argument("--mount-from", action="append", metavar="REPO", default=[],
                   help="try a cross-repository mount of blobs from REPO (same registry) first")
    _add_common(p)
    p.set_defaults(handler=cmd_push)

    p = subparsers.add_parser("pull", help="pull an image (or index) into an OCI layout",
                              description="Pull REF into the OCI layout DIR, verifying every digest. An index is pulled "
                                          "whole, or only the image for --platform.")
    p.add_argument("ref", metavar="REF")
    p.add_argument("dest", metavar="DIR")
    p.add_argument("--platform", help="os/arch[/variant]: pull only that image out of an index")
    _add_common(p)
    p.set_defaults(handler=cmd_pull)

    p = subparsers.add_parser("login", help="store registry credentials in docker's config.json",
                              description="Check USER's password (from stdin) against REGISTRY and store it like "
                                          "`docker login` does (credential helper if configured, else config.json, "
                                          "mode 0600).")
    p.add_argument("registry", metavar="REGISTRY")
    _add_common(p)
    p.set_defaults(handler=cmd_login)


def _explicit_credentials(args: argparse.Namespace) -> Credentials | None:
    if getattr(args, "password_stdin", False):
        if not args.username:
            raise UsageError("--password-stdin needs --username", hint="ocibake login HOST -u USER --password-stdin")
        password = sys.stdin.read()
        if password.endswith("\n"):
            password = password[:-1]
        if password.endswith("\r"):
            password = password[:-1]
        if not password:
            raise InputError("no password on stdin", hint="pipe it in: echo \"$TOKEN\" | ocibake ... --password-stdin")
        return Credentials(args.username, password, "--username/--password-stdin")
    if getattr(args, "username", None):
        raise UsageError("--username needs --password-stdin (passwords are never taken as arguments)",
                         hint="echo \"$PASSWORD\" | ocibake ... -u USER --password-stdin")
    return None


def options_from_args(args: argparse.Namespace, **extra):
    from ocibake.publish.progress import print_line
    from ocibake.publish.redact import redact
    from ocibake.publish.registry import RegistryOptions

    quiet = getattr(args, "quiet", False)

    def log(line: str) -> None:
        if not quiet:
            print_line(redact(line))

    def trace(line: str) -> None:
        print_line(f"ocibake: {redact(line)}")

    for key, name, conv in (("OCIBAKE_REGISTRY_RETRIES", "retries", int), ("OCIBAKE_REGISTRY_BACKOFF", "backoff", float)):
        if os.environ.get(key):
            try:
                extra.setdefault(name, conv(os.environ[key]))
            except ValueError:
                raise InputError(f"{key}={os.environ[key]!r} is not a number", hint="unset it, or give a number") from None
    return RegistryOptions(insecure=args.insecure, ca_cert=Path(args.ca_cert) if args.ca_cert else None,
                           credentials=_explicit_credentials(args), log=log,
                           trace=trace if args.verbose else None,
                           progress_bar=not quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb",
                           **extra)


def cmd_push(args: argparse.Namespace) -> int:
    from ocibake.publish.push import push_layout
    options = options_from_args(args, mount_from=tuple(args.mount_from))
    result = push_layout(Path(args.layout), args.repos, args.tag, options)
    if args.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    else:
        for line in result.lines():
            print(line)
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from ocibake.publish.pull import pull
    result = pull(args.ref, Path(args.dest), args.platform, options_from_args(args))
    if args.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    else:
        print(result.line())
    if not args.quiet:
        print(result.summary(), file=sys.stderr)
    return 0


def cmd_login(args: argparse.Namespace) -> int:
    from ocibake import credentials
    from ocibake.publish.registry import check_login
    if not args.password_stdin:
        raise UsageError("login reads the password from stdin", hint="echo \"$PASSWORD\" | ocibake login HOST -u USER --password-stdin")
    options = options_from_args(args)
    creds = options.credentials
    refuse_credentials(args.registry, "the registry name")
    registry = args.registry.strip()
    for prefix in ("https://", "http://"):
        if registry.startswith(prefix):
            registry = registry[len(prefix):]
    registry = registry.rstrip("/")
    asks = check_login(registry, creds, options)
    where = credentials.store(registry, creds)
    if args.json:
        print(json.dumps({"registry": registry, "username": creds.username, "stored_in": where,
                          "registry_asks_for_credentials": asks}))
    elif not args.quiet:
        print(f"logged in to {registry} as {creds.username}; credentials stored in {where}", file=sys.stderr)
        if not asks:
            print(f"note: {registry} asks for no credentials (anonymous access is allowed), so they were not "
                  "checked; they are sent once it asks", file=sys.stderr)
    return 0
