"""`ocibake run IMAGE [-- ARGS...]`: run an image rootless, without Docker; `ocibake run SERVICE_DIR --watch`:
build, run, and rebuild and restart on every saved change.

The exit code is the app's (128 + N when signal N ended it); ocibake's own failures before the app starts keep
their usual codes. stdout and stderr are the app's; ocibake's few lines go to stderr.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ocibake.builder.spec import TARGETS
from ocibake.builder.upx import UPX_MODES
from ocibake.cli.common import CommandT, examples, output, output_options
from ocibake.cli.completion import paths, values
from ocibake.cli.group import CONTEXT
from ocibake.cli.registry_options import registry_options
from ocibake.errors import InputError, UsageError

# build options `--watch` passes on to `ocibake build` (name, help)
BUILD_OPTIONS = (
    ("target", "TARGET", f"--watch: the build's target ({'|'.join(TARGETS)}; development: under Delve)"),
    ("version", "VERSION", "--watch: the version injected as main.Version (default: dev)"),
    ("output", "DIR", "--watch: the build's OCI layout (default: dist/oci/NAME)"),
    ("upx", "MODE", f"--watch: UPX mode ({'|'.join(UPX_MODES)}; default here: off, for quick rebuilds)"),
    ("main", "PKG", "--watch: the main package"),
    ("base", "REF", "--watch: the base image (production-alpine, development)"),
    ("delve", "PATH", "--watch: a static dlv for the development target"),
    ("toolchain", "REF", "--watch: where go runs (local, or a toolchain image)"),
)


def build_options(f: CommandT) -> CommandT:
    for name, metavar, help_text in reversed(BUILD_OPTIONS):
        f = click.option(f"--{name}", f"build_{name}", metavar=metavar, help=help_text)(f)
    return f


def _env_options(env: tuple[str, ...], env_files: tuple[str, ...]) -> dict[str, str]:
    from ocibake.run.command import parse_env_pairs, read_env_file

    values: dict[str, str] = {}
    for path in env_files:
        values.update(read_env_file(Path(path), os.environ))
    values.update(parse_env_pairs(env, "-e", os.environ))
    return values


def _interval(text: str | None, health: bool, shell: bool) -> float | None:
    from ocibake.run.health import LONGEST_INTERVAL, SHORTEST_INTERVAL, parse_duration

    if text is None:
        return None
    if not health or shell:
        raise UsageError(
            f"--health-interval does not apply with {'--shell' if shell else '--no-healthcheck'}: no Healthcheck runs",
            hint="leave out one of the two",
        )
    seconds = parse_duration(text)
    if seconds is None:
        raise UsageError(
            f"--health-interval {text!r} is not a duration", hint="a number with a unit: 30s, 1m, 500ms, 1h30m"
        )
    if not SHORTEST_INTERVAL <= seconds <= LONGEST_INTERVAL:
        raise UsageError(f"--health-interval {text!r} is out of range", hint="from 1ms to 8760h (a year)")
    return seconds


@click.command(
    context_settings=CONTEXT,
    epilog=examples(
        "ocibake run dist/oci/emergency-service",
        "ocibake run oci:dist/oci/emergency-service:v1.0.0 -e ENV=production -- --version",
        "ocibake run dist/oci/location-service --shell",
        "ocibake run services/emergency-service --watch --target development",
    ),
)
@click.argument("image", metavar="IMAGE|SERVICE_DIR", shell_complete=paths("dir"))
@click.argument("args", nargs=-1, metavar="[-- ARGS...]")
@click.option("-e", "--env", multiple=True, metavar="NAME=VALUE", help="set a variable (NAME alone: the host's value)")
@click.option("--env-file", multiple=True, metavar="FILE", shell_complete=paths(), help="NAME=VALUE lines to set")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="the image to run in an index (another arch: qemu-user)")
@click.option(
    "--network",
    default="host",
    metavar="host|none",
    shell_complete=values("host", "none"),
    help="host (default: the image's ports are on localhost, as -p P:P gives) or none (a loopback of its own)",
)
@click.option("--entrypoint", metavar="PROGRAM", help="run PROGRAM (with ARGS) in place of the image's entrypoint")
@click.option("--shell", is_flag=True, help="start /bin/sh in the image instead of its entrypoint")
@click.option("--no-healthcheck", "health", flag_value=False, default=True, help="do not run the image's Healthcheck")
@click.option(
    "--health-interval",
    metavar="DURATION",
    help="run the Healthcheck every DURATION (30s, 1m, 500ms, 1h30m) in place of the image's Interval",
)
@click.option("--watch", is_flag=True, help="SERVICE_DIR: build, run, and rebuild and restart on every saved change")
@build_options
@output_options()
@registry_options
def run(
    image: str,
    args: tuple[str, ...],
    env: tuple[str, ...],
    env_file: tuple[str, ...],
    platform: str | None,
    network: str,
    entrypoint: str | None,
    shell: bool,
    health: bool,
    health_interval: str | None,
    watch: bool,
    verbose: bool,
    quiet: bool,
    json_output: bool,
    insecure: bool,
    ca_cert: str | None,
    username: str | None,
    password_stdin: bool,
    timeout: float | None = None,
    **build: str | None,
) -> int:
    """Run an image rootless, as `docker run` would, or a service under --watch.

    IMAGE is an OCI layout directory, oci:DIR[:TAG|@DIGEST] or a registry reference. The image's entrypoint runs
    as its user in a bubblewrap sandbox: its own pid, ipc and uts namespaces, its root read-only, a tmpfs /tmp, no
    host file visible. The network is the host's unless --network none. Ctrl-C and SIGTERM go to the app; the exit
    code is the app's.
    """
    from ocibake.cli.inspect import options_factory
    from ocibake.run.runner import RunOptions, run_image

    out = output(verbose, quiet, json_output)
    if out.json:
        raise UsageError("--json does not apply to `ocibake run`: stdout is the app's", hint="leave out --json")
    if network not in ("host", "none"):
        raise InputError(f"--network {network!r} is not host or none", hint="--network host (default) or none")
    options = RunOptions(
        args=args,
        env=_env_options(env, env_file),
        network=network,
        shell=shell,
        platform=platform,
        health=health,
        health_interval=_interval(health_interval, health, shell),
        entrypoint=entrypoint,
    )
    given = {name: value for name, value in build.items() if value is not None}
    if watch:
        from ocibake.run.watch import watch_service

        return watch_service(image, {k.removeprefix("build_"): v for k, v in given.items()}, options, out.log)
    if given:
        names = ", ".join(f"--{k.removeprefix('build_')}" for k in given)
        raise InputError(f"{names} only apply with --watch", hint="ocibake run SERVICE_DIR --watch " + names)
    return run_image(
        image, options, out.log, options_factory(out, insecure, ca_cert, username, password_stdin, timeout)
    )
