"""The `ocibake` command group: global flags, commands loaded only when they run, usage errors in ocibake's format.

Each command family lives in its own module and is imported only when that command runs (or its help is shown), so
`ocibake --help` and `ocibake --version` load click and nothing else, and a command never pays for another's imports.
"""

from __future__ import annotations

import click

import ocibake
from ocibake.errors import UsageError

# name -> (module:attribute, one-line help). The help is here so that `ocibake --help` imports no command module.
COMMANDS = {
    "build": ("ocibake.cli.build:build", "build a Go service into an OCI image layout"),
    "push": ("ocibake.cli.registry:push", "push the images of an OCI layout to a registry"),
    "pull": ("ocibake.cli.registry:pull", "pull an image (or index) into an OCI layout"),
    "login": ("ocibake.cli.registry:login", "store registry credentials in docker's config.json"),
    "logout": ("ocibake.cli.registry:logout", "remove the credentials `login` stored for a registry"),
    "bundle": (
        "ocibake.cli.bundle:bundle",
        "gather what offline builds need (modules, images, Delve) into a directory",
    ),
    "cache": (
        "ocibake.cli.cache:cache",
        "show what ocibake's cache holds, or clean it (all, --only PART, --older-than AGE)",
    ),
    "resolve": ("ocibake.cli.resolve:resolve", "build, push and pin the ocibake://PATH images in Kubernetes YAML"),
    "export": ("ocibake.cli.export:export", "write an OCI layout's images to a docker-archive or oci-archive file"),
    "index": ("ocibake.cli.index:index", "join single-platform images into one image index"),
    "inspect": ("ocibake.cli.inspect:inspect", "show an image's config, layers, files, build record and referrers"),
    "diff": ("ocibake.cli.diff:diff", "show how two images differ (exit 6 when they do)"),
    "audit": ("ocibake.cli.audit:audit", "rebuild an image from source and check it is the same (exit 6 if not)"),
    "generate-key-pair": ("ocibake.cli.sign:generate_key_pair", "write cosign.key and cosign.pub, as cosign does"),
    "sign": ("ocibake.cli.sign:sign", "sign an image in a registry (cosign's format)"),
    "verify": ("ocibake.cli.sign:verify", "check an image's cosign signature (exit 7 when none is valid)"),
    "sbom": ("ocibake.cli.sbom:sbom", "print or write an image's SBOM (its SPDX referrer)"),
    "scan": ("ocibake.cli.scan:scan", "find known vulnerabilities in an image's Go binary (exit 8 on findings)"),
    "layout": ("ocibake.cli.layout:layout", "check or repair an OCI image layout"),
    "run": ("ocibake.cli.run:run", "run an image rootless, without Docker; --watch: rebuild and restart on changes"),
}

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, _, attr = COMMANDS[name][0].partition(":")
        # __import__ rather than importlib.import_module: the same import, and `python -X importtime` shows it
        command = getattr(__import__(module, fromlist=[attr]), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{COMMANDS[name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


def command_in(argv: list[str]) -> str | None:
    """The command an argument list runs (the first word that names one), for hints and error reports."""
    for arg in argv:
        if arg == "--":
            return None
        if arg in COMMANDS:
            return arg
    return None


def usage_error(exc: click.UsageError, argv: list[str] | None = None) -> UsageError:
    """click's usage error as ocibake's: one line, and a hint that names the help of the command that was run."""
    argv = argv or []
    command = command_in(argv)
    before_command = (
        isinstance(exc, click.NoSuchOption)
        and command is not None
        and exc.option_name in argv
        and argv.index(exc.option_name) < argv.index(command)
    )
    path = f"ocibake {command}" if command and not before_command else "ocibake"
    hint = f"see `{path} --help`"
    if isinstance(exc, click.NoSuchOption):
        message = f"unrecognized arguments: {exc.option_name}"
        likely = (
            sorted(p for p in exc.possibilities or () if p.startswith(exc.option_name))
            or sorted(exc.possibilities or ())[:2]
        )
        if likely:
            hint = f"did you mean {' or '.join(likely)}? {hint}"
    else:
        message = " ".join(exc.format_message().split()).rstrip(".")  # click's choice lists span lines
        if message.startswith("Got unexpected extra argument"):
            message = "unrecognized arguments: " + message.split("(", 1)[-1].rstrip(")")
        elif message.startswith("No such command"):
            hint = f"commands: {', '.join(COMMANDS)}; {hint}"
        message = message[:1].lower() + message[1:]
    return UsageError(message, hint=hint)


@click.group(
    cls=LazyGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    help="Build reproducible OCI images of Go services without a container daemon.",
    epilog="\b\nExamples:\n  ocibake build services/emergency-service --version v1.0.0\n"
    "  ocibake push dist/oci/emergency-service registry.example.com/sos/emergency-service -t v1.0.0\n"
    "  ocibake build --help",
)
@click.version_option(ocibake.__version__, "--version", prog_name="ocibake", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="show more detail, and a traceback on internal errors")
@click.option("-q", "--quiet", is_flag=True, help="print only results (stdout) and errors")
@click.option("--json", "json_output", is_flag=True, help="print the result as JSON on stdout")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    metavar="auto|always|never",
    help="colour on stderr (default: auto, on a terminal only; NO_COLOR turns it off, FORCE_COLOR on); every "
    "command takes it",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool, json_output: bool, color: str | None) -> None:
    ctx.obj = {"verbose": verbose, "quiet": quiet, "json": json_output}
    if ctx.invoked_subcommand is None:
        if json_output:  # stdout stays one JSON document: the error, not the help text
            raise UsageError("no command given", hint=f"commands: {', '.join(COMMANDS)}; see `ocibake --help`")
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)
