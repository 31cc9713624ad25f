"""Fuzzing (hypothesis) of what reads layouts and layers: random damage to index.json, to manifests (stored under
their own, correct digest, so the readers get past the digest check) and to layer tars gives only the documented
errors (InputError, exit 4), never another exception, within a few hundred examples each."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibake.errors import InputError
from ocibake.oci.layout import Layout
from ocibake.oci.layout_repair import check as check_layout
from ocibake.oci.tag_moves import refuse_unsafe_moves
from ocibake.registry.push_plan import plan_push, select_tags
from ocibake.toolchain.rootfs import LayerSource, unpack_layers
from registry_servers import write_layout

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "sha256:" + "a" * 64,
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "org.opencontainers.image.ref.name",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "mediaType",
                    "digest",
                    "size",
                    "annotations",
                    "platform",
                    "manifests",
                    "layers",
                    "config",
                    "os",
                    "architecture",
                    "schemaVersion",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)

_BASE = Path(tempfile.mkdtemp(prefix="ocibake-fuzz-"))
_GOOD = _BASE / "good"
write_layout(_GOOD, tags=("v1", "latest"), layer_sizes=(500,), seed=1)


def fresh() -> Path:
    root = Path(tempfile.mkdtemp(dir=_BASE))
    shutil.copytree(_GOOD, root / "L")
    return root / "L"


def read_everything(root: Path) -> None:
    """Every reader of a layout: open, tags, resolve, reachable, push plan, tag moves, check. Only InputError."""
    try:
        layout = Layout.open(root)
        layout.tags()
        layout.reachable(layout.manifests())
        refuse_unsafe_moves(layout, ["v1", "latest"], None, "app", "v1", False)
        plan_push(layout, select_tags(layout, None))
    except InputError:
        pass
    with contextlib.suppress(InputError):
        check_layout(root)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    return bytes(buf[:cut] if cut is not None else buf)


@SETTINGS
@given(st.one_of(json_values, st.dictionaries(st.just("manifests"), st.lists(json_values, max_size=4))))
def test_random_index_json(value):
    root = fresh()
    (root / "index.json").write_text(json.dumps(value))
    read_everything(root)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6), st.none() | st.integers(0, 400))
def test_damaged_index_bytes(edits, cut):
    root = fresh()
    path = root / "index.json"
    path.write_bytes(mutate(path.read_bytes(), edits, cut))
    read_everything(root)


@SETTINGS
@given(json_values)
def test_random_manifest_under_its_own_digest(value):
    """The tagged manifest replaced by any JSON, stored under its true digest and size (the index updated)."""
    root = fresh()
    data = json.dumps(value).encode()
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    index = json.loads((root / "index.json").read_text())
    for entry in index["manifests"]:
        entry.update(digest="sha256:" + digest, size=len(data))
    (root / "index.json").write_text(json.dumps(index))
    read_everything(root)


def _good_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in (
            ("etc", tarfile.DIRTYPE),
            ("etc/passwd", tarfile.REGTYPE),
            ("bin", tarfile.DIRTYPE),
            ("bin/sh", tarfile.SYMTYPE),
            ("app", tarfile.REGTYPE),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755
            body = b"root:x:0:0::/:/bin/sh\n" if name == "etc/passwd" else b"\x7fELF" * 50
            if kind == tarfile.SYMTYPE:
                info.linkname = "/app"
            if kind == tarfile.REGTYPE:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
            else:
                tar.addfile(info)
    return buf.getvalue()


GOOD_TAR = _good_tar()


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    st.none() | st.integers(0, 6000),
    st.booleans(),
)
def test_damaged_layer_tars(edits, cut, gzipped):
    import gzip

    base = Path(tempfile.mkdtemp(dir=_BASE))
    raw = GOOD_TAR if not gzipped else gzip.compress(GOOD_TAR, mtime=0)
    data = mutate(raw, edits, cut)
    blob = base / "layer"
    blob.write_bytes(data)
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzipped else "")
    source = LayerSource(blob, media, "sha256:" + hashlib.sha256(data).hexdigest(), None)
    with contextlib.suppress(InputError):
        unpack_layers([source], base / "rootfs")
