"""Which certificate authorities TLS verification trusts: the system's store, plus --ca-cert (or OCIBAKE_CA_CERT)
and the registry's certs.d CAs (certs_d.py).

requests on its own trusts only the certifi bundle inside the Python environment, so a corporate CA installed with
update-ca-certificates would not count, and a single --ca-cert would replace every other CA (breaking a registry that
redirects blobs or tokens to a host with a public certificate). ocibake instead hands requests one bundle: the file
named by REQUESTS_CA_BUNDLE or SSL_CERT_FILE if set, else the system's (as OpenSSL finds it), else certifi's; and with
--ca-cert, that bundle and the given certificate together, in a private temporary file removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ocibake.errors import InputError

SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)
_combined: dict[tuple[str, tuple[str, ...]], str] = {}
_tmpdir: str | None = None


def system_bundle(environ: Mapping[str, str]) -> str:
    for key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = environ.get(key, "").strip()
        if value and os.path.isfile(value):
            return value
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *SYSTEM_BUNDLES):
        if candidate and os.path.isfile(candidate):
            return candidate
    import certifi

    return certifi.where()


def read_ca_cert(path: Path, what: str | None = None) -> bytes:
    """The PEM certificate(s) of --ca-cert (or ``what``: OCIBAKE_CA_CERT, a certs.d file), checked: a file OpenSSL
    loads as CA certificates."""
    name = what or f"--ca-cert {path}"
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"{name} does not exist", hint="give the path of the registry's CA certificate (PEM)"
        ) from None
    except OSError as exc:
        raise InputError(f"{name} cannot be read: {exc.strerror}", hint="check the path and its permissions") from None
    try:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise ssl.SSLError("no PEM certificate")
        ssl.create_default_context(cadata=data.decode("ascii", errors="strict"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError):
        raise InputError(
            f"{name} is not a PEM CA certificate",
            hint="give the CA's certificate in PEM form (-----BEGIN CERTIFICATE-----), e.g. ca.crt",
        ) from None
    return data


def trust_store(
    ca_cert: Path | None,
    environ: Mapping[str, str] | None = None,
    extra: tuple[Path, ...] = (),
    ca_cert_what: str | None = None,
) -> str:
    """A CA bundle path for requests' ``verify``: the system's, plus ``ca_cert`` and the ``extra`` CA files (a
    registry's certs.d *.crt)."""
    base = system_bundle(os.environ if environ is None else environ)
    added = [(Path(ca_cert), ca_cert_what)] if ca_cert is not None else []
    added += [(p, f"CA certificate {p} (certs.d)") for p in extra]
    if not added:
        return base
    key = (base, tuple(str(p.resolve()) for p, _ in added))
    if key not in _combined:
        data = Path(base).read_bytes().rstrip(b"\n") + b"\n"
        data += b"".join(read_ca_cert(p, what).rstrip(b"\n") + b"\n" for p, what in added)
        path = os.path.join(_private_dir(), f"ca-bundle-{len(_combined)}.pem")
        with open(path, "wb") as f:
            f.write(data)
        _combined[key] = path
    return _combined[key]


def _private_dir() -> str:
    global _tmpdir  # noqa: PLW0603 one per process, on purpose
    if _tmpdir is None:
        _tmpdir = tempfile.mkdtemp(prefix="ocibake-trust-")
        atexit.register(shutil.rmtree, _tmpdir, True)
    return _tmpdir
