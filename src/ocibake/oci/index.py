"""The image index of a multi-platform build: one descriptor per platform image, each naming its platform.

The bytes depend only on the children (media type, digest, size, platform) and their order, so the index a single
multi-platform run writes is the one any other tool joining the same images in the same order writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from ocibake.errors import InputError
from ocibake.oci.image import Blob, Descriptor, make_index
from ocibake.oci.media_types import MANIFEST_TYPES


def platform_index(children: Sequence[Descriptor]) -> Blob:
    """An OCI index over image manifests; every child has a platform, no platform twice."""
    if not children:
        raise InputError("an image index needs at least one image", hint="build or name at least one platform")
    seen: dict[str, str] = {}
    for child in children:
        if child.media_type not in MANIFEST_TYPES:
            raise InputError(
                f"{child.digest} is a {child.media_type}, not an image manifest",
                hint="an index joins single-platform images",
            )
        if child.platform is None:
            raise InputError(f"image {child.digest} names no platform", hint="every image in an index needs one")
        key = str(child.platform)
        if key in seen:
            raise InputError(
                f"two images for {key}: {seen[key][:19]} and {child.digest[:19]}", hint="give each platform once"
            )
        seen[key] = child.digest
    plain = [Descriptor(c.media_type, c.digest, c.size, platform=c.platform) for c in children]
    return make_index(plain)
