"""`go env` answers kept between runs, so a rebuild does not start go once more just to ask the same questions.

What `go env GOVERSION GOEXPERIMENT GOFIPS140` prints depends on the go program (its path, size and mtime stand for
it), the environment (every GO* variable, and what ocibake adds for the build), the service's go.mod and go.work
(a `toolchain` or `go` line can switch to another Go) and go's per-user GOENV file. All of that makes the key; the
answer is a small JSON file under the private cache's goenv/, written to a temporary name and renamed. Anything that
cannot be read makes a miss, never an error: go is then asked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ocibake.toolchain.json_memo import JsonMemo

CACHE_PART = "goenv"
MEMO = JsonMemo(CACHE_PART, 500)  # a few hundred bytes each


def _file_id(path: Path) -> list[str | int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns]


def _content(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _goenv_file(environ: Mapping[str, str]) -> Path:
    if environ.get("GOENV"):
        return Path(environ["GOENV"])
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
    return Path(config) / "go" / "env"


def cache_key(go: str, service_dir: Path, env: Mapping[str, str], keys: Sequence[str]) -> str:
    material = {
        "go": _file_id(Path(go)),
        "keys": list(keys),
        "env": sorted((k, v) for k, v in env.items() if k.startswith("GO") or k in ("CGO_ENABLED", "PATH", "HOME")),
        "go.mod": _content(service_dir / "go.mod"),
        "go.work": _content(service_dir / "go.work"),
        "goenv": _content(_goenv_file(env)),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def lookup(key: str, n: int) -> list[str] | None:
    kept = MEMO.get(key)
    values = (kept or {}).get("values")
    if not isinstance(values, list) or len(values) != n or not all(isinstance(v, str) for v in values):
        return None
    return values


def store(key: str, values: list[str]) -> None:
    MEMO.put(key, {"values": values})
