"""go's own caches for a user with no usable home directory.

go puts its build cache in $XDG_CACHE_HOME/go-build or $HOME/.cache/go-build and its module cache in $GOPATH/pkg/mod
($HOME/go by default). A uid with no HOME (`docker run --user 12345`, OpenShift) or a home it may not write (HOME=/)
makes go fail with "GOCACHE is not defined" or a mkdir error. Then, and only for what the environment does not say
itself, the local toolchain points go at the `go/` part of ocibake's cache. Where go keeps its caches never changes
the binary (-trimpath).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ocibake.toolchain.cache import cache_home, home_can_hold, private_cache, private_mkdir


def go_cache_env(env: Mapping[str, str]) -> dict[str, str]:
    """GOCACHE and GOMODCACHE to add to ``env`` for go, when go's defaults would land in no usable directory."""
    if env.get("GOENV"):  # the user's own go configuration says where; leave it to go
        return {}
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    home = env.get("HOME", "").strip()
    home_path = Path(home) if home and os.path.isabs(home) else None
    missing = []
    if not env.get("GOCACHE") and not os.path.isabs(xdg) and not _usable(home_path, ".cache/go-build"):
        missing.append(("GOCACHE", "build"))
    if not env.get("GOMODCACHE") and not env.get("GOPATH") and not _usable(home_path, "go/pkg/mod"):
        missing.append(("GOMODCACHE", "mod"))
    if not missing:
        return {}
    root = private_cache(cache_home()) / "go"
    out = {}
    for key, part in missing:
        out[key] = str(private_mkdir(root / part))
    return out


def _usable(home: Path | None, below: str) -> bool:
    return home is not None and home_can_hold(home / below, home)
