"""`--output SCHEME:PATH`: the output kinds ocibake knows by a scheme prefix, and the refusal of any other.

Without this, `--output docker-archive:x.tar` would silently become a directory named `docker-archive:x.tar`. A
path that merely contains a colon still works when written so it does not look like a scheme (`./a:b`).
"""

from __future__ import annotations

import re

from ocibake.errors import InputError

# Schemes with an output behind them (archives, see archive/target.py); anything else is a directory for a layout.
KNOWN_SCHEMES: tuple[str, ...] = ("docker-archive", "oci-archive")

SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def refuse_unknown_scheme(value: str, what: str = "--output", schemes: tuple[str, ...] = KNOWN_SCHEMES) -> None:
    """InputError when ``value`` starts with `scheme:` and the scheme is not one of ``schemes`` (a command that
    writes only layouts, such as pull, passes none)."""
    m = SCHEME.match(value)
    if m is None or m.group(1) in schemes:
        return
    known = ", ".join(f"{s}:" for s in schemes)
    why = "this command cannot write" if m.group(1) in KNOWN_SCHEMES else "unknown output kind"
    hint = (
        f"known kinds: {known}; " if known else ""
    ) + f"give a directory for an OCI layout (write ./{value} if the name really has a colon)"
    if m.group(1) in KNOWN_SCHEMES:
        hint = f"write a layout here, then `ocibake export DIR {m.group(1)}:FILE`"
    raise InputError(f"{what} {value}: {why} {m.group(1)!r}", hint=hint)
