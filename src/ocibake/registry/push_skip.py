"""A repeated push stops at the first question: does every tag already name the exact manifest being pushed?

Before any blob is looked at, each tag's manifest is asked for with a HEAD; when the registry answers each with the
digest being pushed, the repository already holds that image whole (a registry stores a manifest only once its blobs
and children are there), so nothing is uploaded and no manifest is PUT again. One HEAD per tag (the first alone,
the others then in parallel); when a tag differs, the push goes on as usual.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ocibake.oci.image import Descriptor
from ocibake.registry.client import Client
from ocibake.registry.push_plan import _media_type, _PushPlan


def tags_in_place(client: Client, repository: str, plan: _PushPlan) -> list[tuple[str, str]] | None:
    """[(tag, digest)] when every tag of ``plan`` already names its manifest in ``repository``; else None."""
    if not plan.tops:
        return None
    scopes = (f"repository:{repository}:pull,push",)  # the token serves the upload too, if one follows

    def in_place(top: tuple[str, Descriptor, bytes]) -> bool:
        tag, desc, data = top
        resp = client.request(
            "HEAD",
            f"/v2/{repository}/manifests/{tag}",
            scopes=scopes,
            what=f"HEAD manifest {tag}",
            headers={"Accept": _media_type(desc, data)},
            repository=repository,
        )
        resp.close()
        return resp.status_code == 200 and resp.headers.get("Docker-Content-Digest") == desc.digest

    if not in_place(plan.tops[0]):  # the first answer also fetches the token the others share
        return None
    rest = plan.tops[1:]
    if rest:
        with ThreadPoolExecutor(max_workers=min(len(rest), 8), thread_name_prefix="ocibake-head") as pool:
            if not all(pool.map(in_place, rest)):
                return None
    return [(tag, desc.digest) for tag, desc, _ in plan.tops]
