"""The vulnerability database a scan reads: vuln.go.dev by default, `--db URL`, or `--db DIR` for air-gapped
sites: either a database in vuln.go.dev's layout (`index/db.json`, `index/modules.json`, `ID/<id>.json`: the
published vulndb.zip, unzipped) or a directory of OSV files (the golang.org/x/vulndb module's `data/osv`), which is
indexed into that layout in a temporary directory. Damaged input is refused before govulncheck runs."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ocibake.errors import InputError

DEFAULT_DB = "https://vuln.go.dev"
MAX_ENTRY = 8 << 20  # one OSV file


def _damaged(where: Path, why: str) -> InputError:
    return InputError(
        f"the vulnerability database {where} is damaged: {why}",
        hint="make it again (unzip vulndb.zip, or the golang.org/x/vulndb module's data/osv directory)",
    )


def _load(path: Path, root: Path) -> Any:
    try:
        if path.stat().st_size > MAX_ENTRY:
            raise _damaged(root, f"{path.relative_to(root)} is too large")
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise _damaged(root, f"{path.relative_to(root)}: {exc.strerror}") from None
    except ValueError:
        raise _damaged(root, f"{path.relative_to(root)} is not JSON") from None


def _check_indexed(root: Path) -> None:
    db = _load(root / "index" / "db.json", root)
    if not isinstance(db, dict) or "modified" not in db:
        raise _damaged(root, "index/db.json has no 'modified' time")
    modules = _load(root / "index" / "modules.json", root)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "path" in m for m in modules):
        raise _damaged(root, "index/modules.json is not a list of modules")
    for module in modules:
        for vuln in module.get("vulns") or []:
            if not (root / "ID" / f"{vuln.get('id', '')}.json").is_file():
                raise _damaged(root, f"ID/{vuln.get('id', '?')}.json is missing")


def _fixed(affected: dict[str, Any]) -> str:
    fixed = ""
    for rng in affected.get("ranges") or []:
        for event in rng.get("events") or []:
            if isinstance(event, dict) and event.get("fixed"):
                fixed = str(event["fixed"])
    return fixed


def _index_osv(files: list[Path], root: Path, dest: Path) -> None:
    """Write vuln.go.dev's layout for the OSV ``files`` into ``dest``."""
    (dest / "ID").mkdir(parents=True)
    (dest / "index").mkdir()
    modules: dict[str, list[dict[str, str]]] = {}
    vulns, newest = [], ""
    for path in files:
        doc = _load(path, root)
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str) or not isinstance(doc.get("affected"), list):
            raise _damaged(root, f"{path.relative_to(root)} is not an OSV entry")
        modified = str(doc.get("modified", ""))
        newest = max(newest, modified)
        (dest / "ID" / f"{doc['id']}.json").symlink_to(path)  # checked above; govulncheck reads it again
        vulns.append({"id": doc["id"], "modified": modified, "aliases": doc.get("aliases") or []})
        for affected in doc["affected"]:
            name = str(((affected or {}).get("package") or {}).get("name", ""))
            entry = {"id": doc["id"], "modified": modified}
            if _fixed(affected):
                entry["fixed"] = _fixed(affected)
            modules.setdefault(name, []).append(entry)
    (dest / "index" / "db.json").write_text(json.dumps({"modified": newest or "0001-01-01T00:00:00Z"}))
    index = [{"path": name, "vulns": entries} for name, entries in sorted(modules.items())]
    (dest / "index" / "modules.json").write_text(json.dumps(index))
    (dest / "index" / "vulns.json").write_text(json.dumps(vulns))


def _osv_files(root: Path) -> list[Path]:
    for where in (root, root / "data" / "osv"):
        found = sorted(p for p in where.glob("*.json") if p.is_file())
        if found:
            return found
    return []


@contextmanager
def database_url(db: str | None) -> Iterator[str]:
    """The URL govulncheck reads for ``--db`` (checked; an OSV directory indexed for the block's duration)."""
    if not db:
        yield DEFAULT_DB
        return
    if db.startswith(("https://", "http://", "file://")):
        yield db
        return
    root = Path(db)
    if not root.is_dir():
        raise InputError(
            f"--db {db}: no such directory", hint="give a vulnerability database directory or an https:// URL"
        )
    root = root.resolve()
    if (root / "index").exists():
        _check_indexed(root)
        yield root.as_uri()
        return
    files = _osv_files(root)
    if not files:
        raise InputError(
            f"--db {db} holds no vulnerability database (no index/db.json) and no OSV files",
            hint="unzip vuln.go.dev's vulndb.zip there, or point at the golang.org/x/vulndb module's data/osv",
        )
    tmp = Path(tempfile.mkdtemp(prefix="ocibake-vulndb-"))
    try:
        _index_osv(files, root, tmp / "db")
        yield (tmp / "db").as_uri()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
