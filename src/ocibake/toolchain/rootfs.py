"""Unpack the layers of an OCI image into a content-addressed directory under the user's cache, safely.

The layers of a toolchain image are untrusted input. Each layer is read twice: the first pass checks its digest and
diff_id, and refuses, before anything is written, entries with absolute paths or ``..`` components, hard links whose
target is absolute or climbs out, symlinks whose target climbs above the root, and device nodes and FIFOs. The second
pass applies the layer's whiteouts (``.wh.NAME`` and the opaque ``.wh..wh..opq``, which per the OCI spec hide only what
lower layers put there) and then writes its entries. Every path is resolved inside the root the way the container
would see it (an absolute symlink target means the root's own path), component by component, never by the host
kernel, so no entry can be written through a symlink to a place outside the root; a chain of symlinks that would climb
above the root is refused. Ownership is not applied (the unpack is rootless), nor are setuid/setgid bits.

The rootfs is assembled in a temporary directory next to its final place and renamed into
``CACHE/rootfs/<chain id>`` (the OCI ChainID of the layers' diff_ids) when complete, so it is unpacked only once and a
half-written one is never used. Every refusal is an InputError with a hint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from collections.abc import Sequence
from pathlib import Path

from ocibake.errors import InputError
from ocibake.oci.limits import UnpackLimits
from ocibake.toolchain.cache import cache_home, check_private_entry, private_mkdir
from ocibake.toolchain.layer_stream import BAD_LAYER_HINT, LayerSource, LayerStream
from ocibake.workdirs import force_rmtree, owned_stage, remove_abandoned_stages

__all__ = ["LayerSource", "chain_id", "unpack_image", "unpack_layers"]

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_SYMLINKS = 40
UNPACKING = "-unpacking-"


def chain_id(diff_ids: Sequence[str]) -> str:
    """The OCI ChainID of a layer stack: what the unpacked filesystem is, whatever the compression."""
    chain = ""
    for diff_id in diff_ids:
        chain = diff_id if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
    return chain


def _refuse(layer: LayerSource | None, name: str, why: str) -> InputError:
    where = f"toolchain layer {layer.digest[:19]} entry" if layer is not None else "path"
    return InputError(f"{where} {name!r} {why}; refused", hint=BAD_LAYER_HINT)


def entry_parts(layer: LayerSource, name: str) -> list[str]:
    """The path components of a tar entry name, refusing absolute paths and `..`."""
    if name.startswith("/"):
        raise _refuse(layer, name, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(layer, name, "climbs out of the root through '..'")
    return parts


def _symlink_escapes(parts: list[str], target: str) -> bool:
    """Does a relative symlink at ``parts`` point above the root (read lexically from where it stands)?"""
    if target.startswith("/"):
        return False  # absolute targets mean the root's own paths, resolved inside the root
    depth = len(parts) - 1
    for comp in target.split("/"):
        if comp == "..":
            depth -= 1
            if depth < 0:
                return True
        elif comp not in ("", "."):
            depth += 1
    return False


def check_member(layer: LayerSource, member: tarfile.TarInfo) -> list[str]:
    """First-pass checks of one entry; returns its path components."""
    parts = entry_parts(layer, member.name)
    if member.ischr() or member.isblk():
        raise _refuse(layer, member.name, "is a device node")
    if member.isfifo():
        raise _refuse(layer, member.name, "is a FIFO")
    if member.islnk():
        if not member.linkname.strip("/.") or member.linkname.startswith("/") or ".." in member.linkname.split("/"):
            raise _refuse(layer, member.name, f"is a hard link to {member.linkname!r}, outside the root")
    elif member.issym():
        if _symlink_escapes(parts, member.linkname):
            raise _refuse(layer, member.name, f"is a symlink to {member.linkname!r}, outside the root")
    elif not (member.isreg() or member.isdir()):
        raise _refuse(layer, member.name, f"has an unsupported tar type {member.type!r}")
    if parts and parts[-1].startswith(WHITEOUT_PREFIX):
        if not (member.isreg() or member.isdir()):
            raise _refuse(layer, member.name, "is a whiteout that is not a plain file")
        hidden = parts[-1][len(WHITEOUT_PREFIX) :]
        if parts[-1] != OPAQUE and hidden in ("", ".", ".."):
            raise _refuse(layer, member.name, "is a whiteout of the directory itself or its parent")
    return parts


def resolve(
    root: Path, parts: Sequence[str], *, follow_last: bool, layer: LayerSource | None = None, name: str = ""
) -> Path:
    """The host path of ``parts`` inside ``root``, following symlinks as the container would see them.

    Absolute symlink targets restart at the root; a `..` that would climb above the root is refused (never clamped),
    as is a loop. Components that do not exist yet are taken literally.
    """
    stack = list(reversed(parts))
    resolved: list[str] = []
    hops = 0
    while stack:
        part = stack.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise _refuse(layer, name, "would be written through a symlink that points outside the root")
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode) and (stack or follow_last):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise _refuse(layer, name, "goes through a symlink loop")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            stack.extend(reversed(target.split("/")))
            continue
        resolved.append(part)
    return Path(root, *resolved)


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        force_rmtree(path)
    else:
        os.unlink(path)


def _first_pass(
    layer: LayerSource, limits: UnpackLimits, before: int
) -> tuple[list[tuple[list[str], tarfile.TarInfo]], int]:
    """Validate every entry, both digests and the unpack limits before anything is written -> (the whiteouts, the
    layer's uncompressed size)."""
    stream = LayerStream(layer, limits, before)
    whiteouts = []
    try:
        for member, _ in stream.members():
            parts = check_member(layer, member)
            if parts and parts[-1].startswith(WHITEOUT_PREFIX):
                whiteouts.append((parts, member))
        stream.verify()
    finally:
        stream.close()
    return whiteouts, stream.tar_bytes.size


def apply_layer(
    layer: LayerSource,
    root: Path,
    dir_modes: dict[str, tuple[int, int]],
    limits: UnpackLimits | None = None,
    before: int = 0,
) -> int:
    """Apply one layer to ``root``: its whiteouts first (they hide only lower layers), then its entries -> its
    uncompressed size. ``before``: what the layers below unpacked to (counted against ``limits``)."""
    limits = limits or UnpackLimits()
    whiteouts, size = _first_pass(layer, limits, before)
    for parts, member in whiteouts:
        parent = resolve(root, parts[:-1], follow_last=True, layer=layer, name=member.name)
        if parts[-1] == OPAQUE:
            if parent.is_dir() and not parent.is_symlink():
                for child in os.listdir(parent):
                    _remove(parent / child)
        else:
            _remove(parent / parts[-1][len(WHITEOUT_PREFIX) :])

    stream = LayerStream(layer, limits, before)
    try:
        for member, tar in stream.members():
            parts = check_member(layer, member)
            if not parts or parts[-1].startswith(WHITEOUT_PREFIX):
                continue
            _write_member(root, parts, member, tar, layer, dir_modes)
        stream.verify()
    finally:
        stream.close()
    return size


def _write_member(
    root: Path,
    parts: list[str],
    member: tarfile.TarInfo,
    tar: tarfile.TarFile,
    layer: LayerSource,
    dir_modes: dict[str, tuple[int, int]],
) -> None:
    parent = resolve(root, parts[:-1], follow_last=True, layer=layer, name=member.name)
    if os.path.lexists(parent) and not os.path.isdir(parent):
        raise _refuse(layer, member.name, "has a parent that is not a directory")
    os.makedirs(parent, mode=0o755, exist_ok=True)
    dest = parent / parts[-1]
    existing = os.lstat(dest) if os.path.lexists(dest) else None
    # No setuid/setgid (a rootless unpack), and nothing writable by group or others: the cached toolchain is run as
    # it is, so nobody else may change it (images do ship 1777 directories, /go/bin in golang images among them).
    mode = member.mode & 0o1755
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            if existing is not None:
                _remove(dest)
            os.mkdir(dest, 0o755)
        os.chmod(dest, 0o755)  # writable while unpacking; the real mode is applied at the end
        dir_modes[str(dest)] = (mode, int(member.mtime))
        return
    if existing is not None:
        _remove(dest)
        dir_modes.pop(str(dest), None)
    if member.issym():
        os.symlink(member.linkname, dest)
    elif member.islnk():
        target = resolve(root, entry_parts(layer, member.linkname), follow_last=False, layer=layer, name=member.name)
        if not os.path.lexists(target) or (os.path.isdir(target) and not os.path.islink(target)):
            raise _refuse(layer, member.name, f"is a hard link to {member.linkname!r}, which is not an earlier file")
        os.link(target, dest, follow_symlinks=False)
        return
    else:
        src = tar.extractfile(member)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(dest, mode)
    os.utime(dest, (member.mtime, member.mtime), follow_symlinks=False)


def unpack_layers(layers: Sequence[LayerSource], root: Path, limits: UnpackLimits | None = None) -> None:
    """Apply ``layers`` in order to the (empty) directory ``root``, within ``limits`` (default: the environment's)."""
    limits = limits or UnpackLimits.from_env(os.environ)
    dir_modes: dict[str, tuple[int, int]] = {}
    unpacked = 0
    for layer in layers:
        unpacked += apply_layer(layer, root, dir_modes, limits, unpacked)
    for path in sorted(dir_modes, key=lambda p: p.count("/"), reverse=True):
        if os.path.isdir(path) and not os.path.islink(path):
            mode, mtime = dir_modes[path]
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))


def unpack_image(layers: Sequence[LayerSource], cache: Path | None = None) -> Path:
    """The unpacked rootfs of ``layers`` under ``cache``/rootfs/<chain id>, unpacked now unless it already is."""
    diff_ids = [layer.diff_id or layer.digest for layer in layers]
    key = chain_id(diff_ids).split(":", 1)[-1] if layers else hashlib.sha256(b"").hexdigest()
    base = (cache or cache_home()) / "rootfs"
    final = base / key
    _remove_abandoned_unpacks(base)  # of every toolchain, also when this one is unpacked already
    if final.is_dir():
        check_private_entry(final, f"the unpacked toolchain {final.name[:12]}")
        return final
    private_mkdir(base)
    stage = owned_stage(base, f".{key[:12]}{UNPACKING}")
    try:
        tmp = stage / "rootfs"
        tmp.mkdir(mode=0o755)
        os.chmod(tmp, 0o755)
        unpack_layers(layers, tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a concurrent unpack that finished first
                raise
    finally:
        force_rmtree(stage)
    return final


def _remove_abandoned_unpacks(base: Path) -> None:
    """What killed unpacks left in ``base`` (``.<key>-unpacking-<pid>-*``), whichever toolchain they were for."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for prefix in sorted({n[: n.index(UNPACKING) + len(UNPACKING)] for n in names if UNPACKING in n}):
        remove_abandoned_stages(base, prefix)
