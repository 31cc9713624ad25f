"""Why a rebuild differs from the image, in plain words: read off the diff of the two images (the build records
field by field, then the files of the layers) and, for the binary, the Go build information of both binaries.
Most specific first; every cause names what differs and both values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibake.audit.diff import FileChange, ImageDiff
from ocibake.audit.image_source import OpenedImage
from ocibake.audit.sbom_attach import Unpack, build_info
from ocibake.errors import OcibakeError

if TYPE_CHECKING:
    from ocibake.toolchain.base import Toolchain

RECORD = "build-record."
Field = tuple[str, object, object]  # (name, value in the image, value in the rebuild)

DATA_LAYERS = (("layers.ca-certificates", "the CA bundle"), ("layers.zoneinfo", "the zoneinfo data"))
SETTINGS = (
    ("upx", "UPX settings"),
    ("go.goflags", "GOFLAGS"),
    ("go.goexperiment", "GOEXPERIMENT"),
    ("go.env", "the Go build environment"),
    ("compression", "layer compression"),
    ("ocibake", "the ocibake release"),
)


@dataclass(frozen=True)
class Evidence:
    """What the causes are read from: the diff, both images, the source files with uncommitted changes, and the
    toolchain (its upx unpacks a UPX-packed binary to read its build information)."""

    diff: ImageDiff
    image: OpenedImage
    rebuilt: OpenedImage
    changed_sources: list[str]
    toolchain: Toolchain | None

    def record(self, prefix: str) -> list[Field]:
        """The differing build record fields under ``prefix``, named without the "build-record." in front."""
        return [(n[len(RECORD) :], a, b) for n, a, b in self.diff.config if n.startswith(RECORD + prefix)]

    def files_with(self, *names: str) -> list[FileChange]:
        """The changed files any of whose fields ``names`` differ."""
        return [f for f in self.diff.changed_files() if any(n in names for n, _, _ in f.fields)]

    @property
    def go_release(self) -> list[Field]:
        return self.record("go.version") + self.record("toolchain.go_version")

    @property
    def binary_changed(self) -> bool:
        return any(f.path == "/app" for f in self.files_with("digest"))

    @property
    def times_differ(self) -> bool:
        return bool(self.files_with("mtime") or self.created)

    @property
    def created(self) -> list[Field]:
        return [c for c in self.diff.config if c[0] == "created"]


def _fmt(fields: list[Field]) -> str:
    return "; ".join(f"{n}: {a} in the image, {b} in the rebuild" for n, a, b in fields)


def _go_release(e: Evidence) -> list[str]:
    go = e.go_release
    return [f"a different Go release: {go[0][1]} built the image, {go[0][2]} the rebuild"] if go else []


def _toolchain(e: Evidence) -> list[str]:
    tool = [f for f in e.record("toolchain") if f[0] != "toolchain.go_version"]
    return [f"a different toolchain ({_fmt(tool)})"] if tool else []


def _data_layers(e: Evidence) -> list[str]:
    causes = []
    for kind, words in DATA_LAYERS:
        fields = e.record(kind)
        if fields:
            short = [(n[len(kind) + 1 :], a, b) for n, a, b in fields]
            versions = [f for f in short if f[0] in ("version", "source", "package")]
            what = "version" if any(f[0] == "version" for f in versions) else "source or content"
            causes.append(f"{words} differs ({what}): {_fmt(versions or short)}")
    return causes


def _source_date_epoch(e: Evidence) -> list[str]:
    epoch = e.record("source_date_epoch")
    if not epoch:
        return []
    return [f"a different SOURCE_DATE_EPOCH: {epoch[0][1]} in the image, {epoch[0][2]} in the rebuild"]


def _settings(e: Evidence) -> list[str]:
    return [f"{words} differ: {_fmt(e.record(prefix))}" for prefix, words in SETTINGS if e.record(prefix)]


def _revision(e: Evidence) -> list[str]:
    revision = e.record("commit") + e.record("dirty")
    if not revision or e.binary_changed:
        return []
    where = f" (uncommitted changes in {', '.join(e.changed_sources)})" if e.changed_sources else ""
    return [f"the source is not the recorded revision{where}: {_fmt(revision)}"]


def _modes(e: Evidence) -> list[str]:
    modes = e.files_with("mode")
    if not modes:
        return []
    shown = []
    for f in modes[:5]:
        a, b = {n: (a, b) for n, a, b in f.fields}["mode"]
        shown.append(f"{f.path} {a:04o} in the image, {b:04o} in the rebuild")
    return ["file modes differ: " + ", ".join(shown)]


def _owners(e: Evidence) -> list[str]:
    owners = [f.path for f in e.files_with("uid", "gid")]
    return ["file owners differ: " + ", ".join(owners[:5])] if owners else []


def _timestamps(e: Evidence) -> list[str]:
    if not e.times_differ or e.record("source_date_epoch"):
        return []
    created = e.created
    when = (
        created[0] if created else next(("mtime", a, b) for n, a, b in e.files_with("mtime")[0].fields if n == "mtime")
    )
    cause = (
        f"timestamps differ although the recorded SOURCE_DATE_EPOCH is the same: {when[1]} in the "
        f"image, {when[2]} in the rebuild (the image's times do not come from its recorded "
        "SOURCE_DATE_EPOCH)"
    )
    return [cause]


def _upx_unpacker(toolchain: Toolchain | None) -> Unpack | None:
    if toolchain is None:
        return None
    return lambda path: toolchain.upx(path, ["-d", "-q"])


def _module_causes(e: Evidence) -> list[str]:
    """What the Go build information of the two binaries says differs: module versions, build settings."""
    try:
        unpack = _upx_unpacker(e.toolchain)
        a, b = build_info(e.image, unpack), build_info(e.rebuilt, unpack)
    except OcibakeError:
        return []
    causes = []
    deps_a = {m.path: (m.replace or m).version for m in a.deps}
    deps_b = {m.path: (m.replace or m).version for m in b.deps}
    changed = [
        f"{p} {deps_a.get(p, '(none)')} -> {deps_b.get(p, '(none)')}"
        for p in sorted(set(deps_a) | set(deps_b))
        if deps_a.get(p) != deps_b.get(p)
    ]
    if changed:
        causes.append("module versions differ: " + ", ".join(changed))
    settings_a, settings_b = dict(a.settings), dict(b.settings)
    flags = [
        f"{k}: {settings_a.get(k)} -> {settings_b.get(k)}"
        for k in sorted(set(settings_a) | set(settings_b))
        if settings_a.get(k) != settings_b.get(k) and k != "DefaultGODEBUG"
    ]
    if flags and a.go_version == b.go_version:
        causes.append("Go build settings differ: " + ", ".join(flags))
    return causes


def _unexplained_binary(e: Evidence) -> str:
    """Why the binary differs when the Go release, the modules and the UPX settings are the same."""
    if (e.record("source_date_epoch") or e.times_differ) and not e.changed_sources:
        return (
            "the binary differs through its build date (BuildDate is set from SOURCE_DATE_EPOCH), "
            "not through a source change: the source tree shows no change"
        )
    if e.changed_sources:
        return (
            "a changed source file: the binary differs with the same Go release and modules, and "
            f"the source tree has uncommitted changes in {', '.join(e.changed_sources)}"
        )
    return (
        "the binary differs with the same Go release, modules and settings: a source file "
        "differs from what was built (or the image's recorded commit is not what it was built "
        "from)"
    )


def _binary(e: Evidence) -> list[str]:
    """Why the binary differs: what its build information shows, else the one explanation left."""
    if not e.binary_changed:
        return []
    module = _module_causes(e)
    if e.go_release or module or e.record("upx"):
        return module
    return [_unexplained_binary(e)]


# Each check names the causes of one kind (none when that kind does not differ), in the order they are reported.
CHECKS: tuple[Callable[[Evidence], list[str]], ...] = (
    _go_release,
    _toolchain,
    _data_layers,
    _source_date_epoch,
    _settings,
    _revision,
    _modes,
    _owners,
    _timestamps,
    _binary,
)


def _other_contents(e: Evidence, causes: list[str]) -> list[str]:
    """Files whose content differs although no data layer's recorded source does."""
    others = [f.path for f in e.files_with("digest", "size") if f.path != "/app" and f.kind == "changed"]
    if not others or any(c.startswith(("the CA bundle", "the zoneinfo")) for c in causes):
        return []
    return ["file contents differ with the same recorded sources: " + ", ".join(others[:5])]


def probable_causes(
    d: ImageDiff,
    image: OpenedImage,
    rebuilt: OpenedImage,
    changed_sources: list[str],
    toolchain: Toolchain | None = None,
) -> list[str]:
    e = Evidence(d, image, rebuilt, changed_sources, toolchain)
    causes = [cause for check in CHECKS for cause in check(e)]
    causes += _other_contents(e, causes)
    if not causes:
        added = [f"{'+' if f.kind == 'added' else '-'}{f.path}" for f in d.changed_files() if f.kind != "changed"]
        if added:
            causes.append("files were added or removed: " + ", ".join(added[:5]))
    if not causes:
        causes.append("only the manifest or config bytes differ: " + d.verdict())
    return causes
