"""Unpacking toolchain layers: whiteouts applied, every escape refused with nothing written outside the cache,
content-addressed caching, digests checked. Layers are hand-made tars (ocibake's own tar writer refuses bad paths
itself)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from ocibake.errors import InputError
from ocibake.toolchain.cache import cache_home
from ocibake.toolchain.rootfs import LayerSource, chain_id, unpack_image

GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def make_layer(directory: Path, entries: list[tuple], compression: str = "gzip") -> LayerSource:
    """entries: (name, kind, payload) with kind file|dir|symlink|hardlink|chr|fifo|raw-type."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, *rest in entries:
            payload = rest[0] if rest else b""
            info = tarfile.TarInfo(name)
            info.mtime = 1_000_000
            info.mode = rest[1] if len(rest) > 1 else (0o755 if kind == "dir" else 0o644)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "blk": tarfile.BLKTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
    raw = buf.getvalue()
    if compression == "gzip":
        data, media = gzip.compress(raw, mtime=0), GZ
    elif compression == "zstd":
        data, media = zstandard.ZstdCompressor().compress(raw), "application/vnd.oci.image.layer.v1.tar+zstd"
    else:
        data, media = raw, "application/vnd.oci.image.layer.v1.tar"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = directory / digest.split(":")[1]
    path.write_bytes(data)
    return LayerSource(path, media, digest, "sha256:" + hashlib.sha256(raw).hexdigest())


def snapshot(path: Path, skip: Path) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(path):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        found.update(os.path.join(dirpath, n) for n in dirnames + filenames)
    return found


@pytest.fixture
def env(tmp_path):
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    return tmp_path, blobs, cache


def test_whiteouts_and_opaque_directories(env):
    _tmp, blobs, cache = env
    lower = make_layer(
        blobs,
        [
            ("a", "dir"),
            ("a/x", "file", b"x"),
            ("a/y", "file", b"y"),
            ("b", "dir"),
            ("b/old", "file", b"old"),
            ("b/sub", "dir"),
            ("b/sub/deep", "file", b"d"),
            ("c", "file", b"c"),
            ("keep", "file", b"k"),
        ],
    )
    # The opaque marker comes after b/new: it still hides only the lower layer's entries.
    upper = make_layer(
        blobs,
        [
            ("a/.wh.x", "file"),
            ("b", "dir"),
            ("b/new", "file", b"new"),
            ("b/.wh..wh..opq", "file"),
            (".wh.c", "file"),
            ("d", "file", b"d"),
        ],
        compression="zstd",
    )
    root = unpack_image([lower, upper], cache)
    assert root.parent == cache / "rootfs" and root.name == chain_id([lower.diff_id, upper.diff_id]).split(":")[1]
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert files == ["a", "a/y", "b", "b/new", "d", "keep"]
    assert (root / "b/new").read_bytes() == b"new"


def test_unpacked_once_then_cached(env):
    _tmp, blobs, cache = env
    layer = make_layer(blobs, [("usr/bin/tool", "file", b"#!"), ("lib", "symlink", "usr/lib")], compression="none")
    first = unpack_image([layer], cache)
    layer.path.unlink()  # a second unpack would fail: it must not happen
    assert unpack_image([layer], cache) == first
    assert os.readlink(first / "lib") == "usr/lib" and (first / "usr/bin/tool").read_bytes() == b"#!"
    assert [p.name for p in (cache / "rootfs").iterdir()] == [first.name]  # no temp dir left


def test_cache_home_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_home() == tmp_path / "ocibake"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_home() == Path.home() / ".cache" / "ocibake"


ESCAPES = {
    "absolute path": ([[("etc/ok", "file", b"1"), ("/VICTIM", "file", b"x")]], "absolute path"),
    "dot-dot": ([[("a", "dir"), ("a/../../VICTIM", "file", b"x")]], "'..'"),
    "symlink pointing out": ([[("link", "symlink", "../../../VICTIM")]], "symlink to"),
    # d/x -> .. is the root; d/y -> x/.. looks like d/ when read lexically but is the root's parent.
    "write through a symlink chain": (
        [[("d", "dir"), ("d/x", "symlink", ".."), ("d/y", "symlink", "x/..")], [("d/y/VICTIM", "file", b"x")]],
        "through a symlink",
    ),
    "hard link to an absolute path": ([[("hl", "hardlink", "/etc/passwd")]], "hard link"),
    "hard link climbing out": ([[("hl", "hardlink", "../../VICTIM")]], "hard link"),
    # s -> / is the root itself; s/etc/hostname must be the root's own (absent) file, never the host's.
    "hard link through a symlink": (
        [[("s", "symlink", "/")], [("hl", "hardlink", "s/etc/hostname")]],
        "not an earlier file",
    ),
    "character device": ([[("dev/null", "chr")]], "device node"),
    "block device": ([[("dev/sda", "blk")]], "device node"),
    "fifo": ([[("pipe", "fifo")]], "FIFO"),
    # a whiteout of ".." would delete the root's parent: every other unpacked toolchain in the cache
    "whiteout of the parent": ([[("f", "file", b"1"), (".wh...", "file")]], "whiteout of the directory itself"),
    "whiteout of the parent under a symlink": (
        [[("d", "dir"), ("d/s", "symlink", ".."), ("d/.wh...", "file")]],
        "whiteout of the directory itself",
    ),
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_escapes_are_refused_and_nothing_is_written_outside(env, case):
    tmp, blobs, cache = env
    layers_entries, expected = ESCAPES[case]
    layers = [make_layer(blobs, entries) for entries in layers_entries]
    (tmp / "work").mkdir()
    before = snapshot(tmp, cache)
    with pytest.raises(InputError) as info:
        unpack_image(layers, cache)
    assert expected in info.value.message and "refused" in info.value.message
    assert info.value.hint
    assert snapshot(tmp, cache) == before
    assert not any(p.name == "VICTIM" for p in tmp.rglob("*"))
    assert list((cache / "rootfs").iterdir()) == []  # the half-unpacked temp dir is gone too


def test_absolute_symlinks_resolve_inside_the_root(env):
    """Container semantics: writing through `etc -> /etc` or `s -> /` lands in the root, never on the host."""
    _tmp, blobs, cache = env
    host_passwd = Path("/etc/passwd").read_bytes()
    lower = make_layer(blobs, [("real", "dir"), ("etc", "symlink", "/real"), ("s", "symlink", "/")])
    upper = make_layer(
        blobs,
        [
            ("etc/passwd", "file", b"root:x:0:0::/:/bin/sh\n"),
            ("s/tmp/marker", "file", b"m"),
            ("hl", "hardlink", "s/real/passwd"),
        ],
    )
    root = unpack_image([lower, upper], cache)
    assert (root / "real/passwd").read_bytes() == b"root:x:0:0::/:/bin/sh\n"
    assert (root / "tmp/marker").read_bytes() == b"m" and os.path.samefile(root / "hl", root / "real/passwd")
    assert Path("/etc/passwd").read_bytes() == host_passwd and not Path("/tmp/marker").exists()


def test_digest_mismatch_is_refused(env):
    _tmp, blobs, cache = env
    layer = make_layer(blobs, [("f", "file", b"1")])
    bad = LayerSource(layer.path, layer.media_type, layer.digest, "sha256:" + "0" * 64)
    with pytest.raises(InputError, match="diff_id"):
        unpack_image([bad], cache)
    data = bytearray(layer.path.read_bytes())
    data[-5] ^= 0xFF
    layer.path.write_bytes(bytes(data))
    with pytest.raises(InputError):
        unpack_image([layer], cache)


def test_nothing_unpacked_is_writable_by_group_or_others(env):
    """golang images ship /go/bin as 1777 and first on PATH: unpacked like that, any local user could swap `go`."""
    _tmp, blobs, cache = env
    layer = make_layer(
        blobs,
        [
            ("go", "dir", b"", 0o1777),
            ("go/bin", "dir", b"", 0o1777),
            ("go/bin/go", "file", b"#!/bin/sh\n", 0o777),
            ("suid", "file", b"x", 0o4755),
        ],
    )
    root = unpack_image([layer], cache)
    for path in (root / "go", root / "go/bin", root / "go/bin/go", root / "suid"):
        assert path.stat().st_mode & 0o6022 == 0, (path, oct(path.stat().st_mode))
