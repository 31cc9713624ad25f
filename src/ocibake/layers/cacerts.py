"""The CA bundle at /etc/ssl/certs/ca-certificates.crt, where Go's crypto/x509 looks first on Linux.

Default source: the certifi package, pinned exactly in pyproject.toml, so the layer does not depend on the host.
`host` takes the host's bundle, a path takes any PEM file, `none` leaves the layer out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ocibake.errors import InputError
from ocibake.layers.content import DATA_EPOCH, LayerContent
from ocibake.layers.tar import Entry

CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
HOST_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _host_bundle() -> Path:
    found = next((Path(p) for p in HOST_BUNDLES if Path(p).is_file()), None)
    if found is None:
        raise InputError(
            "--ca-bundle host: no CA bundle found on this host",
            hint=f"looked in {', '.join(HOST_BUNDLES)}; pass a PEM file path or use the default",
        )
    return found


def resolve_ca_source(choice: str) -> tuple[Path, dict[str, str]] | None:
    """Return (bundle path, record) for `certifi` (default), `host`, a path, or None for `none`."""
    if choice == "none":
        return None
    if choice in ("certifi", "default", ""):
        import certifi

        path = Path(certifi.where())
        record = {"source": "certifi", "version": certifi.__version__}
    elif choice == "host":
        path = _host_bundle()
        record = {"source": "host", "path": str(path)}
    else:
        path = Path(choice)
        if not path.is_file():
            raise InputError(
                f"--ca-bundle {choice}: {'not a file' if path.exists() else 'no such file'}",
                hint="pass a PEM bundle file, `host`, `none`, or leave it out for the pinned certifi bundle",
            )
        record = {"source": "file"}
    head = path.read_bytes()[:4096]
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise InputError(
            f"CA bundle {path} holds no PEM certificate", hint="pass a PEM bundle (-----BEGIN CERTIFICATE-----)"
        )
    record["sha256"] = _sha256(path)
    return path, record


def ca_layer(choice: str = "certifi") -> LayerContent | None:
    resolved = resolve_ca_source(choice)
    if resolved is None:
        return None
    path, record = resolved
    label = record["source"] + (f" {record['version']}" if "version" in record else "")
    return LayerContent(
        kind="ca-certificates",
        entries=(Entry.from_path(CA_PATH, path, mode=0o644),),
        created_by=f"ocibake: CA bundle {CA_PATH} ({label})",
        record=record,
        mtime=DATA_EPOCH,
    )
