"""Helpers for the registry tests: run ocibake against a test registry, read images back with skopeo."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from registry_servers import PASSWORD, USER, Registry, skopeo

REPO_ROOT = Path(__file__).resolve().parent.parent


def base_env(home: Path) -> dict:
    """A clean environment: its own HOME (no real docker config), no inherited registry settings, fast retries."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OCIBAKE_", "DOCKER_", "REGISTRY_AUTH")) and k != "XDG_RUNTIME_DIR"
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), OCIBAKE_REGISTRY_BACKOFF="0.1", OCIBAKE_REGISTRY_RETRIES="5", **go_caches())
    return env


@functools.cache
def go_caches() -> dict:
    """The user's Go build and module caches, kept when HOME changes (a cold cache costs ~20 s per build)."""
    go = shutil.which("go")
    if not go:
        return {}
    out = subprocess.run(
        [go, "env", "GOCACHE", "GOMODCACHE"], check=False, stdout=subprocess.PIPE, text=True
    ).stdout.split()
    return dict(zip(("GOCACHE", "GOMODCACHE"), out, strict=True)) if len(out) == 2 else {}


def ocibake(*args: str, env: dict, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ocibake", *args],
        check=False,
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def reg_args(reg: Registry) -> list[str]:
    return ["--ca-cert", str(reg.ca)] if reg.ca else []


def reg_env(reg: Registry, home: Path, creds: bool = True) -> dict:
    env = base_env(home)
    if creds and reg.mode in ("basic", "token", "hostile-realm"):
        env.update(OCIBAKE_USERNAME=USER, OCIBAKE_PASSWORD=PASSWORD)
    return env


def remote_digest(reg: Registry, ref: str, host: str | None = None) -> str:
    proc = skopeo("inspect", "--raw", *reg.skopeo_flags(), f"docker://{host or reg.host}/{ref}")
    assert proc.returncode == 0, proc.stderr
    import hashlib

    return "sha256:" + hashlib.sha256(proc.stdout.encode()).hexdigest()


def skopeo_digest(reg: Registry, ref: str, host: str | None = None) -> str:
    proc = skopeo("inspect", "--format", "{{.Digest}}", *reg.skopeo_flags(), f"docker://{host or reg.host}/{ref}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def skopeo_copy_back(reg: Registry, ref: str, dest: Path, tag: str, host: str | None = None) -> str:
    """skopeo copy docker://REF oci:DEST:TAG (all platforms); returns the digest skopeo wrote for the tag."""
    proc = skopeo(
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        *reg.skopeo_flags(prefix="src-"),
        f"docker://{host or reg.host}/{ref}",
        f"oci:{dest}:{tag}",
    )
    assert proc.returncode == 0, proc.stderr
    index = json.loads((dest / "index.json").read_text())
    return next(
        m["digest"]
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )


def tag_exists(reg: Registry, ref: str) -> bool:
    return skopeo("inspect", "--raw", *reg.skopeo_flags(), f"docker://{reg.host}/{ref}").returncode == 0
