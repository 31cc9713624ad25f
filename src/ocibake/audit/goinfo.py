"""The Go build information a binary carries (what `go version -m` prints), read without running go: the Go
release, the main module, every dependency with its version and checksum, and the build settings.

The format (Go 1.18+): a 32-byte header starting with "\\xff Go buildinf:" on a 16-byte boundary, then the Go version
and the module information as varint-length-prefixed strings, the latter framed by 16-byte sentinels. A UPX-packed
binary hides it: decompress it first (`upx -d`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ocibake.errors import InputError

MAGIC = b"\xff Go buildinf:"


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replace: Module | None = None


@dataclass(frozen=True)
class BuildInfo:
    go_version: str
    path: str  # the main package
    main: Module
    deps: tuple[Module, ...] = ()
    settings: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _module(fields: list[str]) -> Module:
    return Module(fields[0], fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else "")


def parse_modinfo(go_version: str, text: str) -> BuildInfo:
    path, main, deps, settings = "", Module("", ""), [], []
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "path":
            path = rest
        elif kind == "mod":
            main = _module(fields)
        elif kind == "dep":
            deps.append(_module(fields))
        elif kind == "=>" and deps:
            deps[-1] = Module(deps[-1].path, deps[-1].version, deps[-1].sum, _module(fields))
        elif kind == "build":
            key, _, value = rest.partition("=")
            settings.append((key, value))
    return BuildInfo(go_version, path, main, tuple(deps), tuple(settings))


def read_build_info(data: bytes) -> BuildInfo:
    pos = 0
    while True:
        pos = data.find(MAGIC, pos)
        if pos < 0:
            hint = (
                "it is UPX-packed: decompress it with `upx -d` first"
                if b"UPX!" in data[:4096]
                else "is it a Go binary built with Go 1.18 or later?"
            )
            raise InputError("the binary carries no Go build information", hint=hint)
        if pos % 16 == 0:
            break
        pos += 1
    flags = data[pos + 15]
    if not flags & 0x2:
        raise InputError(
            "the binary's Go build information is in the pre-1.18 format", hint="rebuild it with Go 1.18 or later"
        )
    p = pos + 32
    n, p = _varint(data, p)
    version = data[p : p + n].decode()
    p += n
    n, p = _varint(data, p)
    mod = data[p : p + n]
    if len(mod) >= 33 and mod[-17] == 0x0A:
        mod = mod[16:-16]
    return parse_modinfo(version, mod.decode(errors="replace"))
