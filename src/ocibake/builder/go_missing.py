"""A go build that failed because a module is missing and may not be downloaded (GOPROXY=off, offline builds, a
vendor/ directory that lacks it): say which module, and the ways to get it, instead of only go's output."""

from __future__ import annotations

import re
from pathlib import Path

from ocibake.errors import ToolchainError

DOWNLOADING = re.compile(r"^go: downloading (\S+) (v\S+)$", re.MULTILINE)
LOOKUP_DISABLED = re.compile(r"(?:^|\s)(?:go: )?(\S+)@(v\S+): module lookup disabled by GOPROXY=off", re.MULTILINE)
FROM_FILE_PROXY = re.compile(r"(\S+)@(v\S+): reading file://\S+: no such file or directory")
NOT_VENDORED = re.compile(r"cannot find module providing package (\S+): import lookup disabled by -mod=vendor")


def missing_module(output: str) -> tuple[str, str] | None:
    """(what is missing, why it could not be had) from go's output, or None when go failed for another reason."""
    if "module lookup disabled by GOPROXY=off" in output:
        named = LOOKUP_DISABLED.search(output) or DOWNLOADING.search(output)
        what = f"module {named.group(1)} {named.group(2)}" if named else "a module"
        return what, "it is not in the module cache and GOPROXY=off forbids downloading it"
    from_file = FROM_FILE_PROXY.search(output)
    if from_file:
        return (
            f"module {from_file.group(1)} {from_file.group(2)}",
            "the file:// module proxy (GOPROXY) does not hold it",
        )
    vendored = NOT_VENDORED.search(output)
    if vendored:
        return f"package {vendored.group(1)}", "it is not in vendor/ (-mod=vendor) and go may not look elsewhere"
    return None


def explain(exc: ToolchainError, service_dir: Path, offline: Path | None = None) -> ToolchainError:
    """``exc`` with a message naming the missing module and a hint that gets it, when that is why go failed."""
    found = missing_module(exc.detail or "")
    if found is None:
        return exc
    what, why = found
    if offline:
        fix = (
            f"the bundle {offline} does not hold it: on a connected machine, make the bundle again with this service "
            f"(`ocibake bundle {service_dir} ... --output DIR`) and copy it over"
        )
    else:
        fix = (
            f"vendor it (`go mod vendor` in {service_dir}, then build with GOFLAGS=-mod=vendor), bundle it "
            f"(`ocibake bundle {service_dir} --output DIR` on a connected machine, then "
            "`ocibake build --offline DIR`), "
            "or allow downloads (unset GOPROXY=off; with a toolchain image, --network)"
        )
    exc.message = f"go build failed: {what} is missing ({why})"
    exc.hint = fix
    return exc
