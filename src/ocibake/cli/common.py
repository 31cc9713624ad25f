"""What every command shares: -v/-q/--json (accepted before the command too), and the log line printer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

# a command function being decorated with click options (the decorator returns it, options attached)
CommandT = TypeVar("CommandT", bound=Callable[..., Any])

VERBOSE_HELP = "show more detail, and a traceback on internal errors"


@dataclass(frozen=True)
class Output:
    """How much to print, from the flags given before or after the command."""

    verbose: bool = False
    quiet: bool = False
    json: bool = False

    def log(self, line: str) -> None:
        if not self.quiet:  # one locked write per line, above any progress bars: services never share a row
            from ocibake.registry.progress import print_line

            print_line(line)


def output_options(verbose_help: str = VERBOSE_HELP) -> Callable[[CommandT], CommandT]:
    """-v, -q and --json on a command; `ocibake -v push ...` sets them too (see output())."""

    def decorate(f: CommandT) -> CommandT:
        f = click.option("--json", "json_output", is_flag=True, help="print the result as JSON on stdout")(f)
        f = click.option("-q", "--quiet", is_flag=True, help="print only results (stdout) and errors")(f)
        return click.option("-v", "--verbose", is_flag=True, help=verbose_help)(f)

    return decorate


def output(verbose: bool, quiet: bool, json_output: bool) -> Output:
    top = click.get_current_context().find_root().obj or {}
    return Output(
        verbose=verbose or top.get("verbose", False),
        quiet=quiet or top.get("quiet", False),
        json=json_output or top.get("json", False),
    )


def examples(*lines: str) -> str:
    """A help epilog of example command lines, kept as written (click rewraps other text)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
