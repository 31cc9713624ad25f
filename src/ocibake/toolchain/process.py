"""Running a toolchain program: its output captured, interrupts passed on as Ctrl-C, failures as ToolchainErrors
that carry the command line and the program's own output."""

from __future__ import annotations

import contextlib
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocibake.errors import DiskError, OcibakeError, ToolchainError
from ocibake.toolchain import jobs
from ocibake.toolchain.child_guard import GroupGuard, signal_group


def run_captured(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    job_slot: bool = True,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with stdout and stderr together, except that when ocibake itself is interrupted or terminated
    the program (and all it started) gets SIGINT, as from Ctrl-C, and a few seconds to clean up (go removes its work
    directory on SIGINT, not on SIGTERM) before SIGKILL; and if ocibake is killed, they die too (child_guard.py).
    Each program holds a job slot while it runs (see jobs.py), unless ``job_slot`` is False (a quick check whose
    time is measured, such as the built binary's `--version`)."""
    # In a process group of its own, guarded: if ocibake is killed, the program and its children die too.
    with (
        jobs.slot() if job_slot else contextlib.nullcontext(),
        subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",  # a program's output is shown, never a reason to fail
            process_group=0,
        ) as proc,
    ):
        jobs.started(proc)
        guard = None
        try:
            guard = GroupGuard(proc.pid)
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            out, _ = proc.communicate()
            raise subprocess.TimeoutExpired(argv, timeout or 0, output=out) from None
        except BaseException:
            proc.send_signal(signal.SIGINT)  # go ends its own children and removes its work directory
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            signal_group(proc, signal.SIGKILL)  # and whatever is left of the group
            proc.wait()
            raise
        finally:
            jobs.finished(proc)
            if proc.poll() is not None:
                # what the program started and left behind (go's compile children after go exits on SIGINT) goes too
                signal_group(proc, signal.SIGKILL)
            if guard is not None:
                guard.release()
    return subprocess.CompletedProcess(argv, proc.returncode, out)


def command_line(argv: Sequence[str], shown_env: Mapping[str, str] | None = None) -> str:
    """The command as a shell line, prefixed with the variables ocibake set (so a failure can be re-run by hand)."""
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (shown_env or {}).items())
    return f"{prefix} {shlex.join(argv)}" if prefix else shlex.join(argv)


def timeout_output(exc: subprocess.TimeoutExpired) -> str:
    """What a timed-out program printed before it was stopped: bytes from subprocess.run, text from run_captured
    (typeshed types ``stdout`` as bytes only; ``output`` is the same attribute, untyped)."""
    output: str | bytes | None = exc.output
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    what: str,
    timeout: float | None = None,
    hint: str | None = None,
    shown_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a toolchain program; a failure becomes a ToolchainError with the command line (with ``shown_env``) and
    its output."""
    try:
        proc = run_captured(list(argv), cwd=cwd, env=dict(env) if env is not None else None, timeout=timeout)
    except OSError as exc:
        raise ToolchainError(f"{what}: cannot run {argv[0]}: {exc.strerror}", hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(
            f"{what} timed out after {timeout:.0f}s: {command_line(argv, shown_env)}",
            detail=timeout_output(exc).strip(),
            hint=hint,
        ) from exc
    if proc.returncode != 0:
        raise tool_failure(
            f"{what} failed (exit {proc.returncode}): {command_line(argv, shown_env)}", proc.stdout, hint
        )
    return proc


# what go, upx and the sandbox print when the disk refused a write: the disk's fault (exit 4), not the toolchain's
_DISK_FULL = {
    "no space left on device": "no space left on device",
    "disk quota exceeded": "disk quota exceeded",
}


def tool_failure(message: str, output: str, hint: str | None = None) -> OcibakeError:
    """A failed program: a DiskError (exit 4) when its output says the disk was full, else a ToolchainError."""
    lowered = output.lower()
    for phrase, what in _DISK_FULL.items():
        if phrase in lowered:
            return DiskError(
                f"{message}: {what}",
                detail=output.strip(),
                hint="free some space (go's build cache: `go clean -cache`; ocibake's: `ocibake cache clean`), or "
                "build on another disk; nothing was changed",
            )
    return ToolchainError(message, detail=output.strip(), hint=hint)
