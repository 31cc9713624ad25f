"""A wheelhouse made without the network: each dependency ocibake declares (and theirs, markers evaluated) repacked
as a wheel from its installed files in this environment, so `pip install --no-index --find-links WHEELHOUSE` can
resolve a built ocibake wheel's requirements offline, as an installer would on a real index."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SKIPPED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def requirements_of(dist: md.Distribution, extras: tuple[str, ...] = ()) -> list[str]:
    names = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
            names.append(req.name)
    return names


def closure(names: list[str]) -> list[md.Distribution]:
    seen: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = md.distribution(name)
        seen[name] = dist
        todo += requirements_of(dist)
    return list(seen.values())


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def repack(dist: md.Distribution, dest: Path) -> Path:
    """One installed distribution as a wheel in ``dest`` (its tag from its own WHEEL file)."""
    wheel_file = (dist.read_text("WHEEL") or "").splitlines()
    tags = [line.split(":", 1)[1].strip().split("-") for line in wheel_file if line.startswith("Tag:")]
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))  # e.g. py2.py3-none-any
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    wheel = dest / f"{name}-{dist.version}-{tag}.whl"
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in str(f)]
    info = next(str(f).split("/")[0] for f in files if str(f).split("/")[0].endswith(".dist-info"))
    record = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            arcname = str(f)
            if arcname.startswith(info + "/") and arcname.split("/", 1)[1] in SKIPPED:
                continue
            data = Path(dist.locate_file(f)).read_bytes()
            zf.writestr(arcname, data)
            record.append(_record_line(arcname, data))
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return wheel


def wheelhouse(requirements: list[str], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for dist in closure(requirements):
        repack(dist, dest)
    return dest
