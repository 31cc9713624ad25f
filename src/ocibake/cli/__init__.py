"""The command line: `ocibake COMMAND ...` on click, and the one place where errors become exit codes.

Exit codes: 0 ok, 1 a bug in ocibake, 2 usage, 3 toolchain (go, upx, the sandbox), 4 bad input, 5 registry,
6 the images differ (diff, audit), 7 no valid signature (verify), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM). Library code raises OcibakeError subclasses; only main() turns them into a one-line message with a hint
on stderr (a traceback only with -v) and an exit code.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from ocibake.errors import OcibakeError, UsageError


class Terminated(BaseException):
    """SIGTERM (a CI job cancelled, `timeout`): unwinds like Ctrl-C, so temporary files and staged blobs go away."""


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise Terminated()


def _still_ignored(signum: int, frame: FrameType | None) -> None:
    """SIGINT for an ocibake started with it ignored (a background job of a script): still ignored here, but as a
    handler, not SIG_IGN, which the programs ocibake starts would inherit. They run in process groups of their own
    and get SIGINT only from ocibake, when it stops them (go cleans up on SIGINT)."""


def install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, _still_ignored)


def print_error(exc: OcibakeError, verbose: bool, prefix: str = "") -> None:
    """The error on stderr: `ocibake: error: MESSAGE`, the detail, `  hint: HINT`; each line after ``prefix`` (a
    service's `[name] ` when several services share stderr)."""
    from ocibake.registry.redact import redact  # the last line of defence: no secret in any error

    def say(text: str) -> None:
        for line in text.splitlines() or [""]:
            print(f"{prefix}{line}", file=sys.stderr)

    say(f"ocibake: error: {redact(exc.message)}")
    if exc.detail:
        detail = exc.detail if verbose or len(exc.detail) < 8000 else "...\n" + exc.detail[-8000:]
        say(redact(detail))
    if exc.hint:
        say(f"  hint: {redact(exc.hint)}")
    if verbose and exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)


def _report_failure(exc: OcibakeError, argv: list[str], verbose: bool) -> int:
    if "--json" in argv:  # stdout stays one JSON document, failure or not
        import json

        from ocibake.registry.redact import redact

        print(
            json.dumps(
                {
                    "references": list(exc.results),
                    "built": list(exc.built),
                    "error": {
                        "message": redact(exc.message),
                        "hint": redact(exc.hint) if exc.hint else None,
                        "exit_code": exc.exit_code,
                        "status": getattr(exc, "status", None),
                        "code": getattr(exc, "code", None),
                    },
                },
                indent=2,
            )
        )
    else:
        for line in exc.results:
            print(line)
    print_error(exc, verbose)
    return exc.exit_code


def _unchanged() -> None:
    pass


def asks_verbose(argv: list[str]) -> bool:
    """-v or --verbose anywhere before `--`, alone or in a cluster of short flags (`-qv`)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--verbose" or (
            arg.startswith("-") and not arg.startswith("--") and "v" in arg[1:] and arg[1:].isalpha()
        ):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    import click

    from ocibake.cli.group import cli, usage_error
    from ocibake.cli.style import install, take_color

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = asks_verbose(argv)
    install_signal_handlers()
    restore_stderr: Callable[[], None] = _unchanged  # replaced once the colour choice is known
    try:
        try:
            argv, color = take_color(argv)
            restore_stderr = install(color)
            result = cli.main(argv, prog_name="ocibake", standalone_mode=False)
        except click.UsageError as exc:
            raise usage_error(exc, argv) from None
        return result if isinstance(result, int) else 0
    except OcibakeError as exc:
        return _report_failure(exc, argv, verbose)
    except (KeyboardInterrupt, click.Abort):
        print("ocibake: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("ocibake: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 1
    except Exception as exc:  # noqa: BLE001 a bug: say so briefly, the traceback only with -v
        from ocibake.errors import disk_error

        mapped = disk_error(exc) if isinstance(exc, OSError) else None
        if mapped is not None:  # disk full, read-only, permission denied: not a bug
            mapped.__cause__ = exc
            return _report_failure(mapped, argv, verbose)
        if verbose:
            traceback.print_exc()
        print(f"ocibake: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: run again with -v for a traceback, and report it", file=sys.stderr)
        return 1
    finally:
        sys.stderr.flush()
        restore_stderr()


__all__ = ["Terminated", "UsageError", "main", "print_error"]
