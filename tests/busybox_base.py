"""A tiny base image for the production-alpine and development tests, offline: Debian's busybox-static (/bin/busybox)
with the applet links a shell user needs (sh, wget, id, cat, ls...), /etc/passwd, /etc/group and /etc/hosts of its own,
written with ocibake's own layer and layout code. Optionally as an index (the platforms named), or with Docker media
types (as images from Docker Hub have), to check that ocibake converts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from ocibake.layers.tar import Entry, write_layer  # noqa: E402
from ocibake.oci.image import Blob, Descriptor, ImageConfig, LayerRecord, canonical_json, make_image, make_index  # noqa: E402
from ocibake.oci.layout import LayoutWriter  # noqa: E402
from ocibake.oci.media_types import DOCKER_MANIFEST, OCI_MANIFEST  # noqa: E402
from ocibake.oci.platform import Platform  # noqa: E402

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ash", "wget", "id", "cat", "ls", "echo", "env", "ps", "sleep", "whoami", "true", "test")
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
LABELS = {"org.example.base": "busybox", "org.opencontainers.image.title": "busybox-base"}
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BASE_GREETING=from-base")
WORKDIR = "/srv"


def rootfs_entries() -> list[Entry]:
    entries = [Entry.from_path("/bin/busybox", BUSYBOX, mode=0o755)]
    entries += [Entry.symlink(f"/bin/{a}", "busybox") for a in APPLETS]
    entries += [
        Entry.file("/etc/passwd", PASSWD),
        Entry.file("/etc/group", GROUP),
        Entry.file("/etc/hosts", b"127.0.0.1 localhost\n::1 localhost\n"),
        Entry.dir("/tmp", mode=0o1777),
        Entry.dir("/root", mode=0o700),
        Entry.dir(WORKDIR),
    ]
    return entries


def build_busybox_base(
    dest: Path,
    tag: str = "latest",
    *,
    index_platforms: tuple[str, ...] = (),
    docker_types: bool = False,
    extra: tuple[Entry, ...] = (),
) -> str:
    """Write the base into the layout ``dest`` under ``tag``; return the digest the tag names (manifest or index)."""
    plat = Platform("linux", "amd64")
    with LayoutWriter(dest) as writer:
        blob = write_layer([*rootfs_entries(), *extra], writer.scratch_file("layer-"), mtime=0, compression="gzip")
        writer.add_blob_file(blob.path, blob.digest)
        media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker_types else blob.media_type
        record = LayerRecord(
            Descriptor(media_type, blob.digest, blob.size),
            blob.diff_id,
            blob.uncompressed_size,
            "busybox-static rootfs",
            "rootfs",
        )
        image = make_image(
            platform=plat,
            layers=[record],
            created=0,
            runtime=ImageConfig(
                user="", entrypoint=(), cmd=("/bin/sh",), env=ENV, exposed_ports=(), working_dir=WORKDIR, labels=LABELS
            ),
            annotations={},
        )
        config, manifest = image.config, image.manifest
        if docker_types:
            import json

            config = Blob("application/vnd.docker.container.image.v1+json", config.data)
            doc = json.loads(manifest.data)
            doc["mediaType"] = DOCKER_MANIFEST
            doc["config"]["mediaType"] = config.media_type
            del doc["annotations"]
            manifest = Blob(DOCKER_MANIFEST, canonical_json(doc))
        writer.add_blob(config)
        writer.add_blob(manifest)
        top = Descriptor(manifest.media_type, manifest.digest, len(manifest.data), platform=plat)
        if index_platforms:
            children = [top]
            for other in index_platforms:
                p = Platform.parse(other)
                if p != plat:
                    # another platform's entry pointing at an image of its own (same layer, its own config)
                    img = make_image(
                        platform=p,
                        layers=[record],
                        created=0,
                        runtime=ImageConfig(user="", entrypoint=(), env=ENV, exposed_ports=()),
                        annotations={},
                    )
                    writer.add_blob(img.config)
                    writer.add_blob(img.manifest)
                    children.append(Descriptor(OCI_MANIFEST, img.digest, len(img.manifest.data), platform=p))
            index = make_index([c for c in children if str(c.platform) in index_platforms])
            writer.add_blob(index)
            top = Descriptor(index.media_type, index.digest, len(index.data))
        writer.commit([(tag, top)])
    return top.digest


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(build_busybox_base(Path(sys.argv[1])))
