"""Per-registry TLS files the way podman, skopeo, buildah and docker read them: a `certs.d/HOST[:PORT]/` directory.

The first of these that exists for the registry's host is used (as containers/image does):
  $XDG_CONFIG_HOME/containers/certs.d/HOST (else ~/.config/containers/certs.d/HOST), for a rootless user;
  /etc/containers/certs.d/HOST;
  /etc/docker/certs.d/HOST.
In it, every `*.crt` is a CA trusted for that registry (beside the system's), and a `NAME.cert` with its `NAME.key`
is the client certificate presented for mutual TLS. A `.cert` without its `.key` (or the reverse) is refused, as
docker refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ocibake.errors import InputError

SYSTEM_ROOTS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class HostCerts:
    """What certs.d says for one registry host."""

    directory: Path | None = None  # the directory used (None: no certs.d entry for this host)
    cas: tuple[Path, ...] = ()  # *.crt
    client: tuple[Path, Path] | None = None  # (NAME.cert, NAME.key)


def roots(environ: Mapping[str, str]) -> list[Path]:
    """The certs.d roots searched, in order."""
    out = []
    config = environ.get("XDG_CONFIG_HOME", "").strip()
    home = environ.get("HOME", "").strip()
    if config and os.path.isabs(config):
        out.append(Path(config) / "containers" / "certs.d")
    elif home and os.path.isabs(home):
        out.append(Path(home) / ".config" / "containers" / "certs.d")
    return out + list(SYSTEM_ROOTS)


def host_certs(host: str, environ: Mapping[str, str] | None = None) -> HostCerts:
    """The CAs and client certificate certs.d holds for ``host`` (HOST or HOST:PORT, as references name it)."""
    env = os.environ if environ is None else environ
    for root in roots(env):
        directory = root / host
        try:
            names = sorted(p.name for p in directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise InputError(
                f"cannot read the certificates for {host} in {directory}: {exc.strerror}",
                hint="check its permissions (it must be readable by this user), or remove it",
            ) from None
        return HostCerts(
            directory, tuple(directory / n for n in names if n.endswith(".crt")), _client(directory, names)
        )
    return HostCerts()


def _client(directory: Path, names: list[str]) -> tuple[Path, Path] | None:
    certs = [n for n in names if n.endswith(".cert")]
    keys = [n for n in names if n.endswith(".key")]
    for cert in certs:
        if cert.removesuffix(".cert") + ".key" not in keys:
            raise InputError(
                f"client certificate {directory / cert} has no key {cert.removesuffix('.cert')}.key beside it",
                hint="put the key beside it (NAME.cert with NAME.key, as docker and podman expect), or remove it",
            )
    for key in keys:
        if key.removesuffix(".key") + ".cert" not in certs:
            raise InputError(
                f"client key {directory / key} has no certificate {key.removesuffix('.key')}.cert beside it",
                hint="put the certificate beside it (NAME.cert with NAME.key), or remove the key",
            )
    if not certs:
        return None
    cert = certs[0]  # containers/image presents the first pair
    return directory / cert, directory / (cert.removesuffix(".cert") + ".key")
