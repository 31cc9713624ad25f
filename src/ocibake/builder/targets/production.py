"""production: FROM scratch. passwd/group, zoneinfo and the CA bundle under the binary, UPX --best --lzma, stripped."""

from __future__ import annotations

from ocibake.builder.targets.common import Recipe


class Production(Recipe):
    name = "production"
    base = "optional"  # on scratch unless --base names an image


PRODUCTION = Production()
