"""`ocibake index --push REPO:TAG REPO@sha256:A REPO@sha256:B ...`: join images already in a registry (pushed by
digest from one CI runner per platform) into one index, pushed as the exact bytes a multi-platform build writes.

Every child must be in the same repository as the index (a registry resolves an index's children there), exist, be a
single image and name a platform; no platform twice. Nothing is written before all of that is checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ocibake.errors import InputError
from ocibake.oci.image import Blob, Descriptor
from ocibake.oci.index import platform_index
from ocibake.oci.media_types import MANIFEST_TYPES
from ocibake.oci.platform import Platform
from ocibake.registry.client import Client, Clients
from ocibake.registry.manifests import get_config, get_manifest
from ocibake.registry.options import RegistryOptions
from ocibake.registry.push import PushedTag, _put_manifest
from ocibake.registry.reference import parse_reference


def _config(client: Client, repo: str, digest: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(get_config(client, repo, digest))
    return config


def push_index(
    target: str, children: Sequence[str], options: RegistryOptions | None = None
) -> tuple[Blob, list[PushedTag]]:
    opts = options or RegistryOptions()
    ref = parse_reference(target, opts.environ)
    if not ref.tag or ref.digest:
        raise InputError(f"--push {target}: name the index's tag (REPO:TAG)", hint="e.g. --push registry/sos/app:v1")
    clients = Clients(opts)
    try:
        client = clients.get(ref.registry)
        descs: list[Descriptor] = []
        for text in children:
            child = parse_reference(text, opts.environ)
            if not child.digest:
                raise InputError(
                    f"{text}: give each image by digest (REPO@sha256:...)",
                    hint="push each platform's image by digest first (its `ocibake build --push` line)",
                )
            if (child.registry, child.repository) != (ref.registry, ref.repository):
                raise InputError(
                    f"{text} is not in {ref.name}",
                    hint="an index's images must be in its repository; push them there first",
                )
            data, mt, digest = get_manifest(client, ref.repository, child.digest, child.digest)
            if mt not in MANIFEST_TYPES:
                raise InputError(f"{text} is a {mt}, not a single image", hint="an index joins single-platform images")
            config = _config(client, ref.repository, json.loads(data)["config"]["digest"])
            platform = Platform(
                str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant") or "")
            )
            descs.append(Descriptor(mt, digest, len(data), platform=platform))
        index = platform_index(descs)
        got = _put_manifest(client, ref.repository, ref.tag, index.descriptor(), index.data)
        return index, [PushedTag(ref.name, ref.tag, got)]
    finally:
        clients.close()
