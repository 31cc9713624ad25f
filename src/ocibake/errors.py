"""The one error family of ocibake.

Library code raises these; only ``cli.py`` turns them into messages and exit codes. Every error carries a one-line
human message and, where there is something the user can do, a hint.
"""

from __future__ import annotations


class OcibakeError(Exception):
    """Base class: a message for humans, an optional hint, and the exit code the CLI uses."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Extra output shown under the message (a compiler's output, say). Must never hold secrets.
        self.detail = detail
        # Results completed before the failure (pushed references, say): the CLI prints them on stdout.
        self.results: tuple[str, ...] = ()


class UsageError(OcibakeError):
    """The command line itself is wrong."""

    exit_code = 2


class ToolchainError(OcibakeError):
    """go, upx or the toolchain sandbox is missing or failed."""

    exit_code = 3


class InputError(OcibakeError):
    """The service, a setting, a path or a layout given to ocibake is not usable."""

    exit_code = 4


class RegistryError(OcibakeError):
    """A registry refused or failed a request."""

    exit_code = 5

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None,
                 status: int | None = None, code: str | None = None):
        super().__init__(message, hint, detail)
        self.status = status
        self.code = code
