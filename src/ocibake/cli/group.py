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
    "cache": ("ocibake.cli.cache:cache", "show or empty the toolchain cache"),
    "layout": ("ocibake.cli.layout:layout", "check or repair an OCI image layout"),
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
        return getattr(__import__(module, fromlist=[attr]), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])


def usage_error(exc: click.UsageError) -> UsageError:
    """click's usage error as ocibake's: one line, and a hint that names the help to read."""
    path = exc.ctx.command_path if exc.ctx is not None else "ocibake"
    hint = f"see `{path} --help`"
    if isinstance(exc, click.NoSuchOption):
        message = f"unrecognized arguments: {exc.option_name}"
        if exc.possibilities:
            hint = f"did you mean {' or '.join(sorted(exc.possibilities))}? {hint}"
    else:
        message = exc.format_message().rstrip(".")
        if message.startswith("Got unexpected extra argument"):
            message = "unrecognized arguments: " + message.split("(", 1)[-1].rstrip(")")
        elif message.startswith("No such command"):
            hint = f"commands: {', '.join(COMMANDS)}; {hint}"
        message = message[:1].lower() + message[1:]
    return UsageError(message, hint=hint)


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=True,
             help="Build reproducible OCI images of Go services without a container daemon.")
@click.version_option(ocibake.__version__, "--version", prog_name="ocibake", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="show more detail, and a traceback on internal errors")
@click.option("-q", "--quiet", is_flag=True, help="print only results (stdout) and errors")
@click.option("--json", "json_output", is_flag=True, help="print the result as JSON on stdout")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool, json_output: bool):
    ctx.obj = {"verbose": verbose, "quiet": quiet, "json": json_output}
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help(), err=True)
        ctx.exit(2)
