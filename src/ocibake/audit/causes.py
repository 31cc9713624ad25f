"""Why a rebuild differs from the image, in plain words: read off the diff of the two images (the build records
field by field, then the files of the layers) and, for the binary, the Go build information of both binaries.
Most specific first; every cause names what differs and both values."""

from __future__ import annotations

from ocibake.audit.diff import ImageDiff
from ocibake.audit.image_source import OpenedImage

RECORD = "build-record."


def _record_fields(d: ImageDiff, prefix: str) -> list[tuple[str, object, object]]:
    return [(n[len(RECORD) :], a, b) for n, a, b in d.config if n.startswith(RECORD + prefix)]


def _fmt(fields: list[tuple[str, object, object]]) -> str:
    return "; ".join(f"{n}: {a} in the image, {b} in the rebuild" for n, a, b in fields)


def _module_causes(image: OpenedImage, rebuilt: OpenedImage, toolchain) -> list[str]:
    from ocibake.audit.sbom_attach import build_info
    from ocibake.errors import OcibakeError

    try:
        unpack = (lambda path: toolchain.upx(path, ["-d", "-q"])) if toolchain is not None else None
        a, b = build_info(image, unpack), build_info(rebuilt, unpack)
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


def probable_causes(
    d: ImageDiff, image: OpenedImage, rebuilt: OpenedImage, changed_sources: list[str], toolchain=None
) -> list[str]:
    causes: list[str] = []
    go = _record_fields(d, "go.version") + _record_fields(d, "toolchain.go_version")
    if go:
        causes.append(f"a different Go release: {go[0][1]} built the image, {go[0][2]} the rebuild")
    tool = [f for f in _record_fields(d, "toolchain") if f[0] != "toolchain.go_version"]
    if tool:
        causes.append(f"a different toolchain ({_fmt(tool)})")
    for kind, words in (("layers.ca-certificates", "the CA bundle"), ("layers.zoneinfo", "the zoneinfo data")):
        fields = _record_fields(d, kind)
        if fields:
            short = [(n[len(kind) + 1 :], a, b) for n, a, b in fields]
            versions = [f for f in short if f[0] in ("version", "source", "package")]
            what = "version" if any(f[0] == "version" for f in versions) else "source or content"
            causes.append(f"{words} differs ({what}): {_fmt(versions or short)}")
    epoch = _record_fields(d, "source_date_epoch")
    if epoch:
        causes.append(f"a different SOURCE_DATE_EPOCH: {epoch[0][1]} in the image, {epoch[0][2]} in the rebuild")
    for prefix, words in (
        ("upx", "UPX settings"),
        ("go.goflags", "GOFLAGS"),
        ("go.goexperiment", "GOEXPERIMENT"),
        ("go.env", "the Go build environment"),
        ("compression", "layer compression"),
        ("ocibake", "the ocibake release"),
    ):
        fields = _record_fields(d, prefix)
        if fields:
            causes.append(f"{words} differ: {_fmt(fields)}")

    revision = _record_fields(d, "commit") + _record_fields(d, "dirty")
    binary_changed = any(
        f.path == "/app" and any(n == "digest" for n, _, _ in f.fields) for p in d.layers for f in p.files
    )
    if revision and not binary_changed:
        where = f" (uncommitted changes in {', '.join(changed_sources)})" if changed_sources else ""
        causes.append(f"the source is not the recorded revision{where}: {_fmt(revision)}")

    files = [(p, f) for p in d.layers for f in p.files]
    modes = [f for _, f in files if any(n == "mode" for n, _, _ in f.fields)]
    if modes:
        causes.append(
            "file modes differ: "
            + ", ".join(
                f"{f.path} { {n: (a, b) for n, a, b in f.fields}['mode'][0]:04o} in the image, "
                f"{ {n: (a, b) for n, a, b in f.fields}['mode'][1]:04o} in the rebuild"
                for f in modes[:5]
            )
        )
    owners = [f.path for _, f in files if any(n in ("uid", "gid") for n, _, _ in f.fields)]
    if owners:
        causes.append("file owners differ: " + ", ".join(owners[:5]))
    times = [f for _, f in files if any(n == "mtime" for n, _, _ in f.fields)]
    created = [c for c in d.config if c[0] == "created"]
    if (times or created) and not epoch:
        when = created[0] if created else ("mtime", *next((a, b) for n, a, b in times[0].fields if n == "mtime"))
        causes.append(
            f"timestamps differ although the recorded SOURCE_DATE_EPOCH is the same: {when[1]} in the "
            f"image, {when[2]} in the rebuild (the image's times do not come from its recorded "
            "SOURCE_DATE_EPOCH)"
        )
    if binary_changed:
        module = _module_causes(image, rebuilt, toolchain)
        causes.extend(module)
        if not go and not module and not _record_fields(d, "upx"):
            if (epoch or times or created) and not changed_sources:
                causes.append(
                    "the binary differs through its build date (BuildDate is set from SOURCE_DATE_EPOCH), "
                    "not through a source change: the source tree shows no change"
                )
            elif changed_sources:
                causes.append(
                    "a changed source file: the binary differs with the same Go release and modules, and "
                    f"the source tree has uncommitted changes in {', '.join(changed_sources)}"
                )
            else:
                causes.append(
                    "the binary differs with the same Go release, modules and settings: a source file "
                    "differs from what was built (or the image's recorded commit is not what it was built "
                    "from)"
                )
    others = [
        f.path
        for _, f in files
        if f.path != "/app" and f.kind == "changed" and any(n in ("digest", "size") for n, _, _ in f.fields)
    ]
    if others and not any(c.startswith(("the CA bundle", "the zoneinfo")) for c in causes):
        causes.append("file contents differ with the same recorded sources: " + ", ".join(others[:5]))
    added = [f"{'+' if f.kind == 'added' else '-'}{f.path}" for _, f in files if f.kind != "changed"]
    if added and not causes:
        causes.append("files were added or removed: " + ", ".join(added[:5]))
    if not causes:
        causes.append("only the manifest or config bytes differ: " + d.verdict())
    return causes
