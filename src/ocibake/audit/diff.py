"""`ocibake diff A B`: how two images differ. The config field by field (the build record label unfolded into its own
fields), layers paired by diff_id (unpaired ones by position and kind), and for each pair of differing layers the files
added, removed or changed (content digest, size, mode, uid/gid, mtime, link target); then a one-line verdict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ocibake.audit.image_source import BUILD_RECORD_LABEL, OpenedImage
from ocibake.audit.layer_files import FileEntry, layer_files
from ocibake.audit.value_window import windows

FILE_FIELDS = ("type", "digest", "size", "mode", "uid", "gid", "mtime", "link")


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    if isinstance(value, dict) and value:
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def _config_fields(config: dict[str, Any]) -> dict[str, object]:
    config = json.loads(json.dumps(config))
    labels = (config.get("config") or {}).get("Labels") or {}
    record = labels.pop(BUILD_RECORD_LABEL, None)
    config.pop("rootfs", None)  # compared as layers
    fields = flatten(config)
    if record:
        try:
            fields.update(flatten(json.loads(record), "build-record"))
        except ValueError:
            fields["build-record"] = record
    return fields


@dataclass(frozen=True)
class FileChange:
    path: str
    kind: str  # added | removed | changed
    fields: tuple[tuple[str, object, object], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "fields": {name: {"a": a, "b": b} for name, a, b in self.fields}}

    def line(self) -> str:
        if self.kind != "changed":
            return f"{'+' if self.kind == 'added' else '-'} {self.path}"
        parts = []
        for name, a, b in self.fields:
            parts.append(f"{name} {_shown(name, a)} -> {_shown(name, b)}")
        return f"~ {self.path}: {', '.join(parts)}"


@dataclass(frozen=True)
class LayerPair:
    index_a: int | None
    index_b: int | None
    diff_id_a: str | None
    diff_id_b: str | None
    created_by: str
    files: tuple[FileChange, ...] = ()

    @property
    def same(self) -> bool:
        return self.diff_id_a == self.diff_id_b

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.index_a,
            "b": self.index_b,
            "diff_id_a": self.diff_id_a,
            "diff_id_b": self.diff_id_b,
            "created_by": self.created_by,
            "same": self.same,
            "files": [f.as_json() for f in self.files],
        }


@dataclass(frozen=True)
class ImageDiff:
    a: str
    b: str
    digest_a: str
    digest_b: str
    config: tuple[tuple[str, object, object], ...]
    layers: tuple[LayerPair, ...]
    manifest: tuple[tuple[str, object, object], ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return self.digest_a == self.digest_b

    def changed_files(self) -> list[FileChange]:
        return [f for pair in self.layers for f in pair.files]

    def verdict(self) -> str:
        if self.identical:
            return f"identical: both are {self.digest_a}"
        layers = [p for p in self.layers if not p.same]
        files = self.changed_files()
        parts = []
        if self.config:
            parts.append(f"{len(self.config)} config field(s)")
        if layers:
            parts.append(f"{len(layers)} of {len(self.layers)} layer(s) ({len(files)} file(s))")
        if self.manifest:
            parts.append(f"{len(self.manifest)} manifest field(s)")
        return "different: " + (", ".join(parts) if parts else "only the manifest bytes") + " differ"

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "digest_a": self.digest_a,
            "digest_b": self.digest_b,
            "identical": self.identical,
            "verdict": self.verdict(),
            "config": [{"field": n, "a": a, "b": b} for n, a, b in self.config],
            "manifest": [{"field": n, "a": a, "b": b} for n, a, b in self.manifest],
            "layers": [p.as_json() for p in self.layers],
        }


def compare_fields(a: Mapping[str, object], b: Mapping[str, object]) -> tuple[tuple[str, object, object], ...]:
    return tuple((k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def _files(image: OpenedImage, index: int | None) -> dict[str, FileEntry]:
    if index is None:
        return {}
    desc = image.layers()[index]
    return {f.path: f for f in layer_files(image.blob_path(desc.digest), desc.media_type)}


def compare_files(a: dict[str, FileEntry], b: dict[str, FileEntry]) -> tuple[FileChange, ...]:
    changes = []
    for path in sorted(set(a) | set(b)):
        if path not in b:
            changes.append(FileChange(path, "removed"))
        elif path not in a:
            changes.append(FileChange(path, "added"))
        else:
            diffs = tuple(
                (n, getattr(a[path], n), getattr(b[path], n))
                for n in FILE_FIELDS
                if getattr(a[path], n) != getattr(b[path], n)
            )
            if diffs:
                changes.append(FileChange(path, "changed", diffs))
    return tuple(changes)


def _kind(image: OpenedImage, i: int) -> str:
    history = [h for h in image.config.get("history") or [] if not h.get("empty_layer")]
    return str(history[i].get("comment") or history[i].get("created_by") or "") if i < len(history) else ""


def pair_layers(a: OpenedImage, b: OpenedImage) -> list[tuple[int | None, int | None]]:
    ids_a, ids_b = a.diff_ids(), b.diff_ids()
    pairs: list[tuple[int | None, int | None]] = []
    used_b: set[int] = set()
    unpaired_a = []
    for i, d in enumerate(ids_a):
        j = next((j for j, e in enumerate(ids_b) if e == d and j not in used_b), None)
        if j is None:
            unpaired_a.append(i)
        else:
            used_b.add(j)
            pairs.append((i, j))
    rest_b = [j for j in range(len(ids_b)) if j not in used_b]
    for i in unpaired_a:
        # the same kind of layer (history comment), else the same position
        j = next((j for j in rest_b if _kind(b, j) and _kind(b, j) == _kind(a, i)), None)
        if j is None:
            j = i if i in rest_b else None
        if j is not None:
            rest_b.remove(j)
        pairs.append((i, j))
    pairs.extend((None, j) for j in rest_b)
    return sorted(pairs, key=lambda p: (p[0] if p[0] is not None else 1 << 30, p[1] or 0))


def diff_images(a: OpenedImage, b: OpenedImage) -> ImageDiff:
    ids_a, ids_b = a.diff_ids(), b.diff_ids()
    layers = []
    for i, j in pair_layers(a, b):
        da = ids_a[i] if i is not None else None
        db = ids_b[j] if j is not None else None
        files = () if da == db else compare_files(_files(a, i), _files(b, j))
        kind = _kind(a, i) if i is not None else _kind(b, j) if j is not None else ""
        layers.append(LayerPair(i, j, da, db, kind, files))
    man_a = {k: v for k, v in flatten(a.manifest).items() if not k.startswith(("layers", "config"))}
    man_b = {k: v for k, v in flatten(b.manifest).items() if not k.startswith(("layers", "config"))}
    return ImageDiff(
        a.reference,
        b.reference,
        a.digest,
        b.digest,
        compare_fields(_config_fields(a.config), _config_fields(b.config)),
        tuple(layers),
        compare_fields(man_a, man_b),
    )


def print_diff(d: ImageDiff, out: TextIO) -> None:
    w = out.write
    w(f"a  {d.a}  {d.digest_a}\nb  {d.b}  {d.digest_b}\n")
    if d.config:
        w("\nconfig\n")
        for name, a, b in d.config:
            shown_a, shown_b = windows(a, b)
            w(f"  {name}\n    a: {shown_a}\n    b: {shown_b}\n")
    if d.manifest:
        w("\nmanifest\n")
        for name, a, b in d.manifest:
            shown_a, shown_b = windows(a, b)
            w(f"  {name}\n    a: {shown_a}\n    b: {shown_b}\n")
    w("\nlayers\n")
    for p in d.layers:
        where = f"a[{'-' if p.index_a is None else p.index_a}] b[{'-' if p.index_b is None else p.index_b}]"
        state = (
            "same" if p.same else ("only in b" if p.index_a is None else "only in a" if p.index_b is None else "differ")
        )
        w(f"  {where} {state:<9} {p.created_by}\n")
        for f in p.files:
            w(f"      {f.line()}\n")
    w(f"\n{d.verdict()}\n")


def _shown(field: str, value: object) -> str:
    """A file field as a diff line shows it: modes in octal, digests by their first 12 hex digits."""
    if field == "mode" and isinstance(value, int):
        return f"{value:04o}"
    if field == "digest":
        return str(value)[7:19]
    return str(value)
