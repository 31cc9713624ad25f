"""Shell completion of option values, through click's own mechanism (`_OCIBAKE_COMPLETE=bash_source ocibake`).

Values are completed without importing any stage package: the choices are passed in by the command module, which has
them already, and paths are left to the shell (click's "dir"/"file" items make bash and zsh complete them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem

# click's shell_complete callback: (context, parameter, the word typed so far) -> the completions
Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def values(*choices: str) -> Completer:
    """Complete one of `choices` (a fixed vocabulary such as --compression gzip|zstd)."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(c) for c in choices if c.startswith(incomplete)]

    return complete


def values_or_paths(choices: Iterable[str], kind: str = "file") -> Completer:
    """Complete a keyword (certifi, host, none...) while the word can still be one, else a path of the given kind.

    One answer holds either words or a path request, never both: click's bash script drops the words when a "file"
    or "dir" item comes with them.
    """
    choices = tuple(choices)

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        words = [CompletionItem(c) for c in choices if c.startswith(incomplete)]
        return words or [CompletionItem(incomplete, type=kind)]

    return complete


def paths(kind: str = "file") -> Completer:
    """Complete a path: kind "dir" for directories only, "file" for any path."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type=kind)]

    return complete
