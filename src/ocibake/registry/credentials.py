"""Registry credentials: where they come from, and `ocibake login` storing them.

Lookup order for a registry host (first hit wins):
  1. explicit (--username with --password-stdin)
  2. OCIBAKE_USERNAME / OCIBAKE_PASSWORD
  3. REGISTRY_AUTH_FILE (podman/skopeo auth.json)
  4. docker's config.json ($DOCKER_CONFIG/config.json, else ~/.docker/config.json): credHelpers[host], then credsStore,
     then auths[host].auth
  5. podman's ${XDG_RUNTIME_DIR}/containers/auth.json, then ~/.config/containers/auth.json

Secrets never appear in messages: errors name the file or helper, never its output.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocibake.errors import InputError

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = "command line"  # where they came from, for messages (never the secret)

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path(env.get("HOME") or Path.home()) / ".docker" / "config.json"


def _host_of(key: str) -> str:
    """'https://reg.example:5000/v1/' -> 'reg.example:5000'."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    return k.split("/", 1)[0].lower()


def _aliases(registry: str) -> set[str]:
    host = registry.lower()
    if host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return {"docker.io", "index.docker.io", "registry-1.docker.io"}
    return {host}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(
            f"cannot read credentials file {path}: {type(exc).__name__}",
            hint="fix or remove the file, or pass --username with --password-stdin",
        ) from None
    return data if isinstance(data, dict) else {}


def _from_auths(cfg: dict[str, Any], registry: str, source: str) -> Credentials | None:
    names = _aliases(registry)
    auths = cfg.get("auths") or {}
    if not isinstance(auths, dict):
        raise InputError(f'{source}: "auths" is not an object', hint=f"fix the file, or run `ocibake login {registry}`")
    for key, entry in auths.items():
        if _host_of(key) not in names or not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError, TypeError):
                raise InputError(
                    f"the auth entry for {registry} in {source} is not base64 user:password",
                    hint=f"run `ocibake login {registry}` again",
                ) from None
            return Credentials(user, password, source)
        named, secret = entry.get("username"), entry.get("password")
        if isinstance(named, str) and isinstance(secret, str) and named and secret:
            return Credentials(named, secret, source)
    return None


def _helper_get(helper: str, registry: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    for server in [DOCKER_HUB_KEY] if "docker.io" in _aliases(registry) else [registry, f"https://{registry}"]:
        try:
            proc = subprocess.run(
                [program, "get"],
                check=False,
                input=server.encode(),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
        except FileNotFoundError:
            raise InputError(
                f"credential helper {program} is not installed",
                hint=f'install it, or remove "{helper}" from {docker_config_path()}',
            ) from None
        except subprocess.TimeoutExpired:
            raise InputError(
                f"credential helper {program} did not answer in 30 s", hint="is it waiting for a prompt?"
            ) from None
        if proc.returncode != 0:
            continue  # "credentials not found in native keychain": try the next form, then give up
        try:
            payload = json.loads(proc.stdout)
            user, secret = payload["Username"], payload["Secret"]
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"credential helper {program} answered something that is not its JSON",
                hint="check the helper with `echo HOST | docker-credential-... get`",
            ) from None
        if secret:
            return Credentials(user, secret, f"credential helper {program}")
    return None


def lookup(
    registry: str, explicit: Credentials | None = None, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    if env.get("OCIBAKE_USERNAME") and env.get("OCIBAKE_PASSWORD") is not None:
        return Credentials(env["OCIBAKE_USERNAME"], env["OCIBAKE_PASSWORD"], "OCIBAKE_USERNAME/OCIBAKE_PASSWORD")
    if bool(env.get("OCIBAKE_USERNAME")) != bool(env.get("OCIBAKE_PASSWORD")):
        have, missing = (
            ("OCIBAKE_USERNAME", "OCIBAKE_PASSWORD")
            if env.get("OCIBAKE_USERNAME")
            else ("OCIBAKE_PASSWORD", "OCIBAKE_USERNAME")
        )
        raise InputError(f"{have} is set but {missing} is not", hint=f"set both, or unset {have}")
    if env.get("REGISTRY_AUTH_FILE"):
        path = Path(env["REGISTRY_AUTH_FILE"])
        found = _from_auths(_read_json(path), registry, str(path))
        if found:
            return found
    path = docker_config_path(env)
    cfg = _read_json(path)
    helper = None
    for key, name in (cfg.get("credHelpers") or {}).items():
        if _host_of(key) in _aliases(registry):
            helper = name
    if helper:
        found = _helper_get(helper, registry)
        if found:
            return found
    elif cfg.get("credsStore"):
        found = _helper_get(cfg["credsStore"], registry)
        if found:
            return found
    found = _from_auths(cfg, registry, str(path))
    if found:
        return found
    home = Path(env.get("HOME") or Path.home())
    podman = [Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"] if env.get("XDG_RUNTIME_DIR") else []
    podman.append(home / ".config" / "containers" / "auth.json")
    for path in podman:
        found = _from_auths(_read_json(path), registry, str(path))
        if found:
            return found
    return None


def store(registry: str, creds: Credentials, environ: Mapping[str, str] | None = None) -> str:
    """Save credentials like `docker login`: into the credential helper docker uses for this host, else inline in
    config.json (mode 0600, written atomically). Returns where they went."""
    path = docker_config_path(environ)
    cfg = _read_json(path)
    key = DOCKER_HUB_KEY if "docker.io" in _aliases(registry) else registry
    helper = next(
        (name for k, name in (cfg.get("credHelpers") or {}).items() if _host_of(k) in _aliases(registry)), None
    ) or cfg.get("credsStore")
    if helper:
        program = f"docker-credential-{helper}"
        payload = json.dumps({"ServerURL": key, "Username": creds.username, "Secret": creds.password}).encode()
        try:
            proc = subprocess.run(
                [program, "store"],
                check=False,
                input=payload,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            raise InputError(
                f"credential helper {program} is not usable", hint=f'install it, or remove "{helper}" from {path}'
            ) from None
        if proc.returncode != 0:
            raise InputError(
                f"credential helper {program} could not store the credentials (exit {proc.returncode})",
                hint="run it by hand to see why",
            ) from None
        cfg.setdefault("auths", {}).setdefault(key, {})
        cfg["auths"][key].pop("auth", None)
        where = f"credential helper {program}"
    else:
        auths = cfg.setdefault("auths", {})
        for k in [k for k in auths if _host_of(k) in _aliases(registry) and k != key]:
            del auths[k]
        auths[key] = {"auth": creds.basic()}
        where = str(path)
    _write_private_json(path, cfg)
    return where


def erase(registry: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """Undo `login` (as `docker logout` does): the credential helper's entry for this host and its entries in
    config.json. Returns where credentials were removed from (empty: none were stored)."""
    path = docker_config_path(environ)
    cfg = _read_json(path)
    names = _aliases(registry)
    key = DOCKER_HUB_KEY if "docker.io" in names else registry
    helper = next(
        (name for k, name in (cfg.get("credHelpers") or {}).items() if _host_of(k) in names), None
    ) or cfg.get("credsStore")
    removed = []
    if helper:
        program = f"docker-credential-{helper}"
        try:
            proc = subprocess.run(
                [program, "erase"],
                check=False,
                input=key.encode(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=30,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            raise InputError(
                f"credential helper {program} is not usable", hint=f'install it, or remove "{helper}" from {path}'
            ) from None
        if proc.returncode == 0:
            removed.append(f"credential helper {program}")
    auths = cfg.get("auths") or {}
    stale = [k for k in auths if _host_of(k) in names]
    if stale:
        for k in stale:
            del auths[k]
        _write_private_json(path, cfg)
        removed.append(str(path))
    return removed


def _write_private_json(path: Path, data: dict[str, Any]) -> None:
    path = Path(os.path.realpath(path))  # a symlinked config.json is written through, as docker does
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
