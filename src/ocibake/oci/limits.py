"""The size limits every reader of images applies, layouts and registries alike, in one place.

Manifests, indexes and configs are JSON documents a reader holds in memory whole: they are refused above the limit
the distribution spec suggests and skopeo enforces (4 MiB), before they are read whole, so a hostile 1 GB manifest
costs a bounded read, never the memory it claims. An image ocibake writes must stay within the same limits, or the
readers it is written for would refuse it.
"""

from __future__ import annotations

MANIFEST_MAX_BYTES = 4 << 20
"""Image manifests, image indexes and artifact manifests (OCI distribution spec: 4 MiB is the size registries and
clients are expected to accept; skopeo refuses larger)."""

CONFIG_MAX_BYTES = 4 << 20
"""Image configs (skopeo: "exceeded maximum allowed size of 4194304 bytes")."""
