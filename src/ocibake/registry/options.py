"""RegistryOptions: every setting a registry operation takes from the command line, frozen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ocibake.registry.credentials import Credentials


# --------------------------------------------------------------------------------------------------- options
def _noop(line: str) -> None:
    pass


@dataclass(frozen=True)
class RegistryOptions:
    insecure: bool = False  # allow plain HTTP and unverified TLS for any host
    ca_cert: Path | None = None  # an extra CA bundle (PEM)
    ca_cert_from: str = "--ca-cert"  # where ca_cert came from, for messages: --ca-cert or OCIBAKE_CA_CERT
    credentials: Credentials | None = None  # explicit --username/--password-stdin
    mount_from: tuple[str, ...] = ()  # repositories (same registry) to try a cross-repo mount from
    retries: int = 5  # retries after the first attempt (per request)
    backoff: float = 0.4  # first retry delay; doubles, capped at max_delay
    max_delay: float = 10.0
    max_retry_after: float = 60.0  # a longer Retry-After fails instead of waiting
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    timeout: float = 300.0  # the whole operation (push, pull, login): --timeout
    stall_timeout: float = 15.0  # a request with no progress this long is cut and retried
    chunk_size: int | None = None  # PATCH in chunks of this size (None: one streamed PATCH)
    jobs: int = 4  # blobs uploaded/downloaded in parallel
    monolithic_max: int = 4 << 20  # blobs up to this size go in one body (registry/monolithic.py)
    log: Callable[[str], None] = _noop  # progress lines (stderr)
    trace: Callable[[str], None] | None = None  # -v: one line per request (redacted)
    progress_bar: bool = False  # stderr is a terminal
    label: str = ""  # put before each progress bar (a service's `[name] ` when several share the terminal)
    environ: Mapping[str, str] | None = None  # for tests: the environment to read credentials from
