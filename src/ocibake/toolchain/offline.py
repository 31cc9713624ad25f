"""Offline builds: everything a build would fetch comes from a bundle made by `ocibake bundle` on a connected machine.

A bundle is a plain directory (copy it, tar it, put it on a disk):
  bundle.json   what it holds: the services it was made for, the images (reference -> digest), Delve's platforms
  goproxy/      the Go modules of every service, in the module proxy's file layout (GOPROXY=file://.../goproxy)
  images/       an OCI layout with the toolchain and base images, every blob by digest
  delve/VERSION/ARCH/dlv   Delve for the development target, per platform
  SHA256SUMS    the sha256 of every other file, checked by `ocibake bundle --check`

`ocibake build --offline DIR` (or OCIBAKE_OFFLINE=DIR) is the one switch: go gets GOPROXY=file://DIR/goproxy (and no
checksum database, no toolchain download), registry bases and toolchains are read from DIR/images by the digest the
bundle pinned, Delve from DIR/delve; nothing asks the network, and a piece the bundle lacks is named with the command
that adds it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ocibake.errors import InputError

ENV = "OCIBAKE_OFFLINE"
MANIFEST = "bundle.json"
SUMS = "SHA256SUMS"
FORMAT = 1


def offline_dir() -> Path | None:
    """The bundle offline builds use ($OCIBAKE_OFFLINE, which `build --offline DIR` sets), or None when online."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return None
    path = Path(text).absolute()
    if not (path / MANIFEST).is_file():
        raise InputError(
            f"offline bundle {path} has no {MANIFEST}: it is not a bundle made by `ocibake bundle`",
            hint="make one on a connected machine: `ocibake bundle SERVICE_DIR... --output DIR`, and copy DIR here",
        )
    return path


def manifest(bundle: Path) -> dict[str, Any]:
    try:
        data = json.loads((bundle / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read {bundle / MANIFEST}: {exc}", hint="check it with `ocibake bundle --check`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(
            f"{bundle / MANIFEST} is not a bundle of format {FORMAT}", hint="make it again with this ocibake version"
        )
    return data


def go_env(bundle: Path) -> dict[str, str]:
    """What go needs to take modules from the bundle only."""
    return {
        "GOPROXY": f"file://{bundle / 'goproxy'}",
        "GOSUMDB": "off",  # go.sum still checks every module; there is no checksum database to ask offline
        "GOTOOLCHAIN": "local",
    }


def missing(bundle: Path, what: str, add: str) -> InputError:
    """The error for a piece the bundle lacks, with the `ocibake bundle` arguments that add it."""
    return InputError(
        f"offline: the bundle {bundle} holds no {what}",
        hint=f"on a connected machine, run `ocibake bundle SERVICE_DIR... {add} --output DIR` and copy DIR here",
    )


def pinned_image(bundle: Path, name: str) -> str | None:
    """The digest the bundle pinned for the image reference ``name`` (as parsed: registry/repository:tag)."""
    entry = manifest(bundle).get("images", {}).get(name)
    return entry.get("digest") if isinstance(entry, dict) else None


def delve(bundle: Path, version: str, arch: str) -> Path | None:
    """The bundle's Delve for ``arch``, checked against SHA256SUMS first (it goes into the image as it is)."""
    path = bundle / "delve" / version / arch / "dlv"
    if not path.is_file():
        return None
    check_file(bundle, path)
    return path


def check_file(bundle: Path, path: Path) -> None:
    """One file of the bundle against its line in SHA256SUMS; an InputError naming it when it differs or is not
    listed."""
    rel = path.relative_to(bundle).as_posix()
    try:
        lines = (bundle / SUMS).read_text().splitlines()
    except OSError:
        raise InputError(f"{bundle} has no readable {SUMS}", hint="is it a bundle made by `ocibake bundle`?") from None
    want = next((d for d, _, r in (line.partition("  ") for line in lines) if r == rel), None)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if want != digest.hexdigest():
        raise InputError(
            f"bundle {bundle}: {rel} " + ("is not listed in SHA256SUMS" if want is None else "has changed"),
            hint="copy the bundle again from its source (`ocibake bundle --check DIR` checks all of it)",
        )


def file_sums(bundle: Path) -> dict[str, str]:
    """relative path -> sha256 of every regular file in the bundle except SHA256SUMS."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(bundle):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(bundle).as_posix()
            if rel == SUMS:
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            out[rel] = digest.hexdigest()
    return out


def write_sums(bundle: Path) -> int:
    sums = file_sums(bundle)
    (bundle / SUMS).write_text("".join(f"{h}  {rel}\n" for rel, h in sorted(sums.items())))
    return len(sums)


def check(bundle: Path) -> int:
    """Verify every file against SHA256SUMS (and that none is missing or added); returns the number checked."""
    try:
        lines = (bundle / SUMS).read_text().splitlines()
    except OSError:
        raise InputError(f"{bundle} has no readable {SUMS}", hint="is it a bundle made by `ocibake bundle`?") from None
    listed = {}
    for line in lines:
        digest, _, rel = line.partition("  ")
        listed[rel] = digest
    actual = file_sums(bundle)
    for rel, want in sorted(listed.items()):
        if rel not in actual:
            raise InputError(f"bundle {bundle}: {rel} is missing", hint="copy the bundle again, or make it again")
        if actual[rel] != want:
            raise InputError(
                f"bundle {bundle}: {rel} has changed (sha256 {actual[rel]}, the bundle says {want})",
                hint="copy the bundle again from its source, or make it again with `ocibake bundle`",
            )
    extra = sorted(set(actual) - set(listed))
    if extra:
        raise InputError(
            f"bundle {bundle}: {extra[0]} is not part of it ({len(extra)} unlisted file(s))",
            hint="remove what was added, or make the bundle again",
        )
    return len(listed)
