"""The size limits every reader of images applies, layouts and registries alike, in one place.

Manifests, indexes and configs are JSON documents a reader holds in memory whole: they are refused above the limit
the distribution spec suggests and skopeo enforces (4 MiB), before they are read whole, so a hostile 1 GB manifest
costs a bounded read, never the memory it claims. An image ocibake writes must stay within the same limits, or the
readers it is written for would refuse it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ocibake.errors import InputError

MANIFEST_MAX_BYTES = 4 << 20
"""Image manifests, image indexes and artifact manifests (OCI distribution spec: 4 MiB is the size registries and
clients are expected to accept; skopeo refuses larger)."""

CONFIG_MAX_BYTES = 4 << 20
"""Image configs (skopeo: "exceeded maximum allowed size of 4194304 bytes")."""

ARTIFACT_BLOB_MAX_BYTES = 64 << 20
"""A blob of an artifact ocibake reads whole (an SBOM, a signature payload): larger than a manifest may be, bounded
still."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n % (1 << 20) == 0 else f"{n / (1 << 20):.1f} MiB"


def too_large(what: str, size: int | None, limit: int) -> str:
    """The message for a document over its limit: what, how large (when known), and the limit."""
    got = f" ({_mib(size)})" if size is not None else ""
    return f"{what} is larger than {_mib(limit)}{got}, the most a reader accepts"


def check_written(what: str, data: bytes, limit: int) -> None:
    """An image ocibake writes stays within what readers accept (skopeo refuses a config or manifest over 4 MiB)."""
    if len(data) > limit:
        raise InputError(
            f"the image's {too_large(what, len(data), limit)}: skopeo, containerd and registries would refuse it",
            hint="a base image's labels or history (or a very long --healthcheck, --source...) make it too large; "
            "use a base image whose config is smaller",
        )


UNPACK_MAX_MIB_DEFAULT = 16 << 10
"""The most one image's layers may unpack to (a toolchain or a base): 16 GiB; `$OCIBAKE_UNPACK_MAX_MIB` raises it."""

UNPACK_MAX_RATIO_DEFAULT = 100
"""The most a layer may grow when decompressed: tar.gz of real files grows 2-10x, a gzip bomb 1000x;
`$OCIBAKE_UNPACK_MAX_RATIO` raises it."""

UNPACK_RATIO_FLOOR = 64 << 20
"""The ratio is checked only past this many uncompressed bytes: a small layer of zeros is no bomb."""


@dataclass(frozen=True)
class UnpackLimits:
    """How far the layers of an image (a toolchain, a base) may unpack: in total, and per layer against its size."""

    total: int = UNPACK_MAX_MIB_DEFAULT << 20
    ratio: int = UNPACK_MAX_RATIO_DEFAULT

    @staticmethod
    def from_env(environ: Mapping[str, str]) -> UnpackLimits:
        return UnpackLimits(
            _env_int(environ, "OCIBAKE_UNPACK_MAX_MIB", UNPACK_MAX_MIB_DEFAULT) << 20,
            _env_int(environ, "OCIBAKE_UNPACK_MAX_RATIO", UNPACK_MAX_RATIO_DEFAULT),
        )

    def check(self, what: str, compressed: int, uncompressed: int, before: int = 0) -> None:
        """InputError once ``uncompressed`` bytes read from ``compressed`` ones (``before``: earlier layers' bytes)
        exceed either limit; called as the bytes stream, so a bomb is stopped at the limit, not at its end."""
        if before + uncompressed > self.total:
            raise InputError(
                f"{what} unpacks to more than {_mib(self.total)} in all; refused at the limit",
                hint="a decompression bomb, or a very large image: if you trust it, raise OCIBAKE_UNPACK_MAX_MIB",
            )
        if uncompressed > UNPACK_RATIO_FLOOR and uncompressed > self.ratio * max(compressed, 1):
            raise InputError(
                f"{what} grows more than {self.ratio}x when decompressed ({_mib(compressed)} -> over "
                f"{_mib(uncompressed)}); refused at the limit",
                hint="a decompression bomb: use a trusted image pinned by digest, or, if you trust this one, raise "
                "OCIBAKE_UNPACK_MAX_RATIO",
            )


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError(f"{name}={text!r} is not a positive whole number", hint=f"e.g. {name}={default}, or unset it")
    return int(text)
