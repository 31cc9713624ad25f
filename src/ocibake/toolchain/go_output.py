"""A binary kept between builds, so that go can tell it is up to date and skip the link.

go's build ids are content hashes of everything a build depends on; with them kept in the binary (no `-buildid=`),
`go build -o FILE` leaves FILE alone when it already is what the build would write, and a no-op rebuild then costs
go's check only, not a link (measured on the hello fixture: 0.64 s against 2.08 s). The binary ocibake packs is always
written to a fresh work directory, so the local toolchain builds into one kept file per service, package and platform
under the private cache's gobin/, and copies it out. The ldflags are not part of that file's name: a new commit or
version relinks into the same file, so there is one file per service and platform. A lock (flock) keeps two runs
building the same service from writing that file at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ocibake.errors import OcibakeError
from ocibake.toolchain.base import GoBuild

CACHE_PART = "gobin"


def _slot(go: str, build: GoBuild) -> Path | None:
    from ocibake.toolchain.cache import cache_home, private_cache

    material = {
        "go": go,
        "service": str(Path(build.service_dir).resolve()),
        "package": build.package,
        "env": sorted(build.env.items()),
    }
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    try:
        return private_cache(cache_home()) / CACHE_PART / key
    except (OcibakeError, OSError):  # an unusable cache only costs the link: build into the work directory
        return None


@contextmanager
def kept_output(go: str, build: GoBuild) -> Iterator[Path | None]:
    """The kept file to pass to `go build -o` (locked for the block), or None to build into ``build.output``."""
    slot = _slot(go, build)
    if slot is None:
        yield None
        return
    slot.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(slot / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield slot / "app"
    finally:
        os.close(fd)


def copy_out(kept: Path, dest: Path) -> None:
    """The kept binary to where the build wants it (its own copy: UPX packs it in place)."""
    tmp = dest.with_name(f".{dest.name}.copy")
    shutil.copyfile(kept, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
