"""`ocibake layout check|repair DIR`: find what in a layout cannot be read, and drop exactly that.

An entry of index.json is intact when it is a valid descriptor and everything under it (the manifest or index, every
child manifest, the config and every layer) is a regular file inside the layout with the right size and digest.
check() lists the entries that are not; repair() rewrites index.json (under the writers' lock, by rename) with the
intact entries only, in their order, and keeps every blob. An index.json that is not JSON at all is kept beside it as
index.json.damaged and replaced by an empty index.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocibake.errors import InputError
from ocibake.oci import json_doc
from ocibake.oci.image import canonical_json
from ocibake.oci.layout import LAYOUT_FILE, digest_path
from ocibake.oci.layout_check import entry_problem, open_blob
from ocibake.oci.layout_lock import locked
from ocibake.oci.media_types import INDEX_TYPES, OCI_INDEX, REF_NAME

MAX_JSON = 4 << 20


@dataclass(frozen=True)
class Problem:
    entry: int | None  # position in index.json (None: index.json itself)
    tag: str | None
    reason: str

    def line(self) -> str:
        if self.entry is None:
            return f"index.json: {self.reason}"
        return f"entry {self.entry}" + (f" (tag {self.tag})" if self.tag else "") + f": {self.reason}"


def _read_index(root: Path) -> tuple[dict[str, Any] | None, str | None]:
    if (root / "index.json").is_symlink():
        raise InputError(
            f"{root}/index.json is a symlink; a layout's files must be inside it",
            hint=f"replace it by the file it points to, or move {root} aside",
        )
    try:
        index = json_doc.loads((root / "index.json").read_bytes())
    except FileNotFoundError:
        return None, "missing"
    except ValueError as exc:
        return None, f"not readable JSON ({exc})"
    except OSError as exc:
        return None, f"not readable JSON ({type(exc).__name__})"
    if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
        return None, "not an OCI image index"
    return index, None


def _blob_problem(root: Path, desc: object, seen: dict[str, str | None], depth: int = 0) -> str | None:
    """Why the blob ``desc`` names, or anything under it, cannot be read (None: intact). ``seen`` caches results."""
    problem = entry_problem(desc)
    if problem or not isinstance(desc, dict):  # entry_problem() finds one in anything but a dict
        return f"a descriptor {problem}"
    digest = desc["digest"]
    if digest in seen:
        return seen[digest]
    seen[digest] = None  # a cycle reads as intact here; depth bounds it anyway
    reason = None
    try:
        with open_blob(root, digest_path(root, digest)) as f:
            if os.fstat(f.fileno()).st_size != desc["size"]:
                reason = f"blob {digest[:19]} has the wrong size"
            else:
                h = hashlib.sha256()
                head = b""
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
                    if len(head) <= MAX_JSON:
                        head += chunk
                if "sha256:" + h.hexdigest() != digest:
                    reason = f"blob {digest[:19]} does not match its digest"
                elif desc["mediaType"].endswith(
                    ("manifest.v1+json", "manifest.list.v2+json", "index.v1+json", "manifest.v2+json")
                ):
                    reason = _document_problem(root, head, desc["mediaType"], seen, depth)
    except FileNotFoundError:
        reason = f"blob {digest[:19]} is missing"
    except InputError as exc:
        reason = exc.message
    seen[digest] = reason
    return reason


def _document_problem(root: Path, data: bytes, media_type: str, seen: dict[str, str | None], depth: int) -> str | None:
    if depth > 8:
        return "indexes nested too deep"
    try:
        doc = json_doc.loads(data)
        children = (
            doc.get("manifests")
            if media_type in INDEX_TYPES or "manifests" in doc
            else [doc.get("config"), *list(doc.get("layers") or [])]
        )
        if not isinstance(children, list):
            return "a manifest that is not an object with a list of descriptors"
    except (ValueError, AttributeError, TypeError):
        return "a manifest that is not valid JSON"
    for child in children:
        reason = _blob_problem(root, child, seen, depth + 1)
        if reason:
            return reason
    return None


def check(root: Path) -> tuple[list[Problem], int]:
    """(problems, number of entries) of the layout at ``root``."""
    if not (root / LAYOUT_FILE).is_file():
        raise InputError(f"{root} is not an OCI image layout (no oci-layout)", hint="pass the directory of a layout")
    index, why = _read_index(root)
    if index is None:
        return [Problem(None, None, why or "unreadable")], 0
    problems: list[Problem] = []
    seen: dict[str, str | None] = {}
    entries = index.get("manifests", [])
    for i, entry in enumerate(entries):
        tag = (
            (entry.get("annotations") or {}).get(REF_NAME)
            if isinstance(entry, dict) and isinstance(entry.get("annotations"), dict)
            else None
        )
        reason = entry_problem(entry) or _blob_problem(root, entry, seen)
        if reason:
            problems.append(Problem(i, tag if isinstance(tag, str) else None, reason))
    return problems, len(entries)


def repair(root: Path) -> tuple[list[Problem], int]:
    """Drop every entry check() finds a problem with; (what was dropped, entries kept)."""
    if not (root / LAYOUT_FILE).is_file():
        raise InputError(f"{root} is not an OCI image layout (no oci-layout)", hint="pass the directory of a layout")
    with locked(root):
        problems, total = check(root)
        index, _why = _read_index(root)
        if index is None:
            if (root / "index.json").exists():
                os.replace(root / "index.json", root / "index.json.damaged")
            index, total = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}, 0
        elif not problems:
            return [], total
        else:
            dropped = {p.entry for p in problems}
            index = {**index, "manifests": [e for i, e in enumerate(index["manifests"]) if i not in dropped]}
        tmp = root / f".index.json.repair-{os.getpid()}"
        tmp.write_bytes(canonical_json(index))
        os.chmod(tmp, 0o644)
        os.replace(tmp, root / "index.json")
        return problems, len(index["manifests"])
