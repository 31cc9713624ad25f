"""Colour on stderr, for people at a terminal: errors and their hints stand out, warnings differ from information,
build steps, the result lines and the `next:` block are easy to find.

Whether to colour follows the usual conventions: `--color never|always` wins; else NO_COLOR (set and not empty)
turns it off, FORCE_COLOR (set, not empty, not 0 or false) turns it on; else only when stderr is a terminal (and TERM
is not dumb). stdout (references, JSON) is never coloured, and nothing is when it is off: pipes and files get the
same bytes as before. Library code prints plain lines; this module recognises them as they are written to stderr and
styles each whole line with click.style. Partial writes (an in-place progress line, a bar) pass through untouched.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

import click

from ocibake.errors import UsageError

CHOICES = ("auto", "always", "never")

Styler = Callable[[str], str]


def _style(**kw: Any) -> Styler:
    return lambda text: click.style(text, **kw)


ERROR = _style(fg="red", bold=True)
HINT = _style(fg="cyan")
WARNING = _style(fg="yellow")
STEP = _style(fg="blue")
SUCCESS = _style(fg="green", bold=True)
NEXT = _style(bold=True)
COMMAND = _style(fg="green")
PREFIX = _style(fg="magenta")

# (pattern on the line after any `[service] ` prefix, style); the first that matches wins
RULES: tuple[tuple[re.Pattern[str], Styler], ...] = (
    (re.compile(r"^(ocibake: )?(error|internal error):|^ocibake: (interrupted|terminated)"), ERROR),
    (re.compile(r"^\s+hint: "), HINT),
    (re.compile(r"^(ocibake: )?warning:|^\s*warning: "), WARNING),
    (re.compile(r"^\s+sha256:[0-9a-f]{12}\s+\S+ \S+\s+failed: "), ERROR),
    (re.compile(r"^\S+\s+exit \d+\s"), ERROR),
    (re.compile(r"^\d+ built, 0 failed$|^image {5}\S|^pushed \d+ tag\(s\)|^\S+\s+ok\s+\d"), SUCCESS),
    (re.compile(r"^\d+ built, \d+ failed$"), ERROR),
    (re.compile(r"^(module |go build |compressing |upx |sbom |built |pushing |ocibake: building )"), STEP),
    (re.compile(r"^next:$"), NEXT),
)
_ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_REDRAW = re.compile(r"\r([^\r\x1b]*)(\x1b\[K)")
_SERVICE = re.compile(r"^(\[[^\]\s]+\] )(.*)$", re.DOTALL)


def wanted(choice: str | None, stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Colour on ``stream``? --color first, then NO_COLOR, then FORCE_COLOR, then whether it is a terminal."""
    env = os.environ if environ is None else environ
    if choice == "never":
        return False
    if choice == "always":
        return True
    if env.get("NO_COLOR"):
        return False
    force = env.get("FORCE_COLOR")
    if force and force.lower() not in ("0", "false"):
        return True
    try:
        return stream.isatty() and env.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def style_line(line: str, in_next: bool = False) -> str:
    """One whole line of stderr, styled by what it is (``in_next``: it follows a `next:` line)."""
    m = _SERVICE.match(line)
    prefix, body = (m.group(1), m.group(2)) if m else ("", line)
    styler = COMMAND if in_next and body.startswith("  ") else next((s for p, s in RULES if p.search(body)), None)
    styled = styler(body) if styler is not None else body
    return (PREFIX(prefix) if prefix else "") + styled


class StyledStream:
    """stderr with whole lines styled (see style_line); anything else is delegated to the stream it wraps."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.at_line_start = True
        self.in_next = False
        self.lock = threading.Lock()  # services log from their own threads

    def write(self, text: str) -> int:
        with self.lock:
            self.stream.write(self._styled(text))
        return len(text)

    def _styled(self, text: str) -> str:
        out = []
        for piece in re.split(r"(\n)", text):
            if piece == "\n":
                out.append(piece)
                self.at_line_start = True
                continue
            if not piece:
                continue
            if self.at_line_start and "\r" not in piece and "\x1b" not in piece:
                self.in_next = piece == "next:" or (self.in_next and piece.startswith("  "))
                out.append(style_line(piece, self.in_next and piece != "next:"))
                self.at_line_start = False
            else:  # an in-place redraw: after `\r` and escape codes only, the cursor is at the line's start again
                redraw = _REDRAW.fullmatch(piece)  # a live step line (builder/elapsed.py): styled as its log line
                out.append(f"\r{style_line(redraw.group(1))}{redraw.group(2)}" if redraw and redraw.group(1) else piece)
                tail = piece.rsplit("\r", 1)[1] if "\r" in piece else piece
                self.at_line_start = (self.at_line_start or "\r" in piece) and not _ESCAPES.sub("", tail)
        return "".join(out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def take_color(argv: list[str]) -> tuple[list[str], str | None]:
    """--color WHEN / --color=WHEN, anywhere before `--`, taken out of ``argv`` (every command accepts it)."""
    rest: list[str] = []
    choice: str | None = None
    it = iter(argv)
    for arg in it:
        if arg == "--":
            rest += [arg, *it]
            break
        if arg == "--color":
            choice = next(it, "")
        elif arg.startswith("--color="):
            choice = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if choice is not None and choice not in CHOICES:
        raise UsageError(f"--color {choice or '(no value)'}: not one of {', '.join(CHOICES)}", hint="--color never")
    return rest, choice


def install(choice: str | None) -> Callable[[], None]:
    """Style stderr for this run when colour is wanted; returns how to undo it."""
    if not wanted(choice, sys.stderr) or isinstance(sys.stderr, StyledStream):
        return lambda: None
    original = sys.stderr
    sys.stderr = StyledStream(original)  # a TextIO in all that callers use (the rest is delegated)

    def restore() -> None:
        sys.stderr = original

    return restore
