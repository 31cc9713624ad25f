"""The registry flags (--insecure, --ca-cert, -u/--password-stdin) and the environment's registry settings, turned
into RegistryOptions for push, pull, login, `build --push` and registry toolchains.

Nothing here imports requests or oras: RegistryOptions is made only when a registry is about to be asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ocibake.cli.common import CommandT
from ocibake.cli.completion import paths
from ocibake.errors import InputError, UsageError

if TYPE_CHECKING:
    from ocibake.registry.credentials import Credentials
    from ocibake.registry.options import RegistryOptions

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class RegistryFlags:
    insecure: bool = False
    ca_cert: str | None = None
    username: str | None = None
    password_stdin: bool = False
    verbose: bool = False
    quiet: bool = False
    timeout: float | None = None  # --timeout: seconds for the whole registry operation

    def tls_flags(self) -> tuple[str, ...]:
        """--insecure and --ca-cert as given, for the commands the report suggests next."""
        return (("--insecure",) if self.insecure else ()) + (("--ca-cert", self.ca_cert) if self.ca_cert else ())


TIMEOUT_HELP = (
    "give up a registry operation (push, pull, login) after this many seconds in all (default: 300); a "
    "request that makes no progress for 15 s is cut and retried"
)


def timeout_option(f: CommandT) -> CommandT:
    return click.option("--timeout", type=click.FloatRange(min=1, max=7 * 86400), metavar="SECONDS", help=TIMEOUT_HELP)(
        f
    )


def tls_options(f: CommandT) -> CommandT:
    """--insecure and --ca-cert, as `build` takes them for --push and registry toolchains."""
    f = timeout_option(f)
    f = click.option(
        "--ca-cert", metavar="PATH", shell_complete=paths(), help="registries: trust this CA (PEM) for TLS"
    )(f)
    return click.option(
        "--insecure",
        is_flag=True,
        help="registries: allow plain HTTP and unverified TLS (plain HTTP is always allowed for localhost)",
    )(f)


def registry_options(f: CommandT) -> CommandT:
    """--insecure, --ca-cert, -u/--username and --password-stdin, as push, pull and login take them."""
    f = timeout_option(f)
    f = click.option("--password-stdin", is_flag=True, help="read the password (or token) from stdin")(f)
    f = click.option(
        "-u", "--username", metavar="USER", help="registry user (the password comes from --password-stdin)"
    )(f)
    f = click.option(
        "--ca-cert",
        metavar="PATH",
        shell_complete=paths(),
        help="trust this CA (PEM) for the registry's TLS certificate",
    )(f)
    return click.option(
        "--insecure",
        is_flag=True,
        help="allow plain HTTP and unverified TLS (plain HTTP is always allowed for localhost/127.0.0.1)",
    )(f)


def explicit_credentials(flags: RegistryFlags) -> Credentials | None:
    from ocibake.registry.credentials import Credentials

    if flags.password_stdin:
        if not flags.username:
            raise UsageError("--password-stdin needs --username", hint="ocibake login HOST -u USER --password-stdin")
        password = sys.stdin.read()
        password = password.removesuffix("\n")
        password = password.removesuffix("\r")
        if not password:
            raise InputError("no password on stdin", hint='pipe it in: echo "$TOKEN" | ocibake ... --password-stdin')
        return Credentials(flags.username, password, "--username/--password-stdin")
    if flags.username:
        raise UsageError(
            "--username needs --password-stdin (passwords are never taken as arguments)",
            hint='echo "$PASSWORD" | ocibake ... -u USER --password-stdin',
        )
    return None


def _environment_number(key: str, convert: Callable[[str], Number], default: Number) -> Number:
    """A number from the environment (OCIBAKE_REGISTRY_RETRIES...), else ``default``; bad input when it is not one."""
    text = os.environ.get(key)
    if not text:
        return default
    try:
        return convert(text)
    except ValueError:
        raise InputError(f"{key}={text!r} is not a number", hint="unset it, or give a number") from None


def make_options(flags: RegistryFlags, mount_from: tuple[str, ...] = (), prefix: str = "") -> RegistryOptions:
    """RegistryOptions for these flags: logs on stderr (redacted), a request trace with -v, progress bars on a
    terminal, retry settings from OCIBAKE_REGISTRY_RETRIES and OCIBAKE_REGISTRY_BACKOFF; ``mount_from``: the
    repositories to try a cross-repository blob mount from; ``prefix``: put before every log and trace line (the
    service's `[name] ` when several services share stderr). OCIBAKE_CA_CERT stands for --ca-cert when the flag is
    not given; the registry's certs.d CAs and client certificate are read per host by the client (certs_d.py)."""
    from ocibake.registry.options import RegistryOptions
    from ocibake.registry.progress import print_line
    from ocibake.registry.redact import redact

    def log(line: str) -> None:
        if not flags.quiet:
            print_line(prefix + redact(line))

    def trace(line: str) -> None:
        print_line(f"{prefix}ocibake: {redact(line)}")

    defaults = RegistryOptions()
    retries = _environment_number("OCIBAKE_REGISTRY_RETRIES", int, defaults.retries)
    backoff = _environment_number("OCIBAKE_REGISTRY_BACKOFF", float, defaults.backoff)
    monolithic_max = _environment_number("OCIBAKE_REGISTRY_MONOLITHIC_MAX", int, defaults.monolithic_max)
    env_ca = os.environ.get("OCIBAKE_CA_CERT", "").strip()
    return RegistryOptions(
        insecure=flags.insecure,
        ca_cert=Path(flags.ca_cert) if flags.ca_cert else Path(env_ca) if env_ca else None,
        ca_cert_from="--ca-cert" if flags.ca_cert or not env_ca else "OCIBAKE_CA_CERT",
        credentials=explicit_credentials(flags),
        mount_from=mount_from,
        retries=retries,
        backoff=backoff,
        monolithic_max=monolithic_max,
        timeout=float(flags.timeout) if flags.timeout is not None else defaults.timeout,
        log=log,
        trace=trace if flags.verbose else None,
        progress_bar=not flags.quiet and sys.stderr.isatty() and os.environ.get("TERM") != "dumb",
        label=prefix,
    )
