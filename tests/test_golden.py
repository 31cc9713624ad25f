"""Golden digests: these fail whenever the bytes of an image would change. Update them only on purpose, and say
why in the commit (a new certifi or tzdata pin, a change to the layer format, a new ocibake version)."""

from __future__ import annotations

from pathlib import Path

import ocibake
from ocibake.builder.bake import Provenance, assemble, upx_setting
from ocibake.builder.project import GitInfo, GoModule
from ocibake.builder.spec import BuildSpec
from ocibake.oci.image import Platform
from ocibake.oci.layout import LayoutWriter

EPOCH = 1700000000
GOLDEN_OCIBAKE = "0.1.0"

# diff_ids (sha256 of the uncompressed tar) and gzip digests of the layers that do not depend on the binary. Their
# files carry the fixed DATA_EPOCH (2026-01-01), not EPOCH, so these do not depend on the commit either.
GOLDEN_LAYERS = {
    "passwd": (
        "sha256:ae869f66a7599db7cd86ab0572dd426df072e4f07b61fde6bf351b118d268d82",
        "sha256:4b2761a4908cb85faf2f50f251dd69966cdab19b1b0816f9ee1ad2f9a5e47680",
    ),
    "zoneinfo": (
        "sha256:cf383b249eafa29085baed498ea843ac63e2e16ceb47c028524d0d111d613ccc",
        "sha256:cb3188b8e6b1bcb2d32c740aafd62f6f1592a56e62df23823cabcf4b104c8ada",
    ),
    "ca-certificates": (
        "sha256:f82611b4f13cfecdc3602c40474b9795d3a06df62bd2031ab17c77380197b118",
        "sha256:379c703a36e14eeffaf4f0d9fd7614908d5e85fffd00c1334657a307073f6a9f",
    ),
}
GOLDEN_BINARY_DIFF_ID = "sha256:535f2ee406c0801395013a367105aed8e222e8346eb40818e04896651f108688"
GOLDEN_CONFIG = "sha256:15052c972334dc6b14151da41197d1ee22410040e71964a79d83106c12d8468e"
GOLDEN_MANIFEST = "sha256:af4b95bbccb90997cbf884cdd60ee18cc2dee25930b0a848d2f617cc10bb5ce4"


def make_fixed_image(tmp_path: Path):
    binary = tmp_path / "app"
    binary.write_bytes(b"\x7fELF not really a binary, but always the same bytes\n" * 1000)
    spec = BuildSpec(service_dir=tmp_path, name="golden", version="v1.0.0", output=tmp_path / "layout")
    prov = Provenance(
        module=GoModule("example.com/golden", "1.21", (), 0, ()),
        package="./cmd/golden",
        git=GitInfo("0123456789abcdef0123456789abcdef01234567", EPOCH, False, "https://example.com/golden.git"),
        epoch=EPOCH,
        go_version="go1.21.13",
        ldflags="-s -w -buildid= -X main.Version=v1.0.0",
        toolchain={"kind": "local"},
        upx=upx_setting("best-lzma", "upx 4.2.2"),
    )
    with LayoutWriter(spec.output) as writer:
        image, _ = assemble(spec, binary, prov, writer)
    return image


def test_golden_digests(tmp_path):
    assert ocibake.__version__ == GOLDEN_OCIBAKE, "a new version changes the build record: update the golden digests"
    image = make_fixed_image(tmp_path)
    got = {layer.kind: (layer.diff_id, layer.descriptor.digest) for layer in image.layers}
    assert image.platform == Platform("linux", "amd64")
    for kind, expected in GOLDEN_LAYERS.items():
        assert got[kind] == expected, f"{kind} layer changed: {got[kind]}"
    assert got["binary"][0] == GOLDEN_BINARY_DIFF_ID
    # The gzip digests above also pin zlib's output; the diff_ids and the config do not depend on zlib.
    assert image.config.digest == GOLDEN_CONFIG
    assert image.digest == GOLDEN_MANIFEST


def test_same_inputs_same_bytes_twice(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = make_fixed_image(tmp_path / "a"), make_fixed_image(tmp_path / "b")
    assert a.manifest.data == b.manifest.data and a.config.data == b.config.data
