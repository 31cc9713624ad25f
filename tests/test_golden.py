"""Golden digests: these fail whenever the bytes of an image would change. Update them only on purpose, and say
why in the commit (a new certifi or tzdata pin, a change to the layer format, a new ocibake version)."""

from __future__ import annotations

from pathlib import Path

import ocibake
from ocibake.build.bake import Provenance, assemble, upx_setting
from ocibake.oci.image import Platform
from ocibake.build.project import GitInfo, GoModule
from ocibake.oci.layout import LayoutWriter
from ocibake.build.spec import BuildSpec

EPOCH = 1700000000
GOLDEN_OCIBAKE = "0.1.0"

# diff_ids (sha256 of the uncompressed tar) and gzip digests of the layers that do not depend on the binary.
GOLDEN_LAYERS = {
    "passwd": ("sha256:9a971744d387ad0a47478380b691486bb8d8d7c03f317dcb25dc13d82bb4136b",
               "sha256:4e60f73ef13a0fc4d3abb21e62c44b1ffa97e35594d6c9ea2502c16335a3f8a3"),
    "zoneinfo": ("sha256:882d9dffb602d2d0c656969b98c45fd205a22d07f2ccedce9d58a551eb821bac",
                 "sha256:56278bbde87221570d8a0bac3633d40041f9f408c791ad07edeae6f8e310afaa"),
    "ca-certificates": ("sha256:07f4f7d28ed1dbbf7d0a1ca04412e6c38697a8b64055376d015084a5e6b929f0",
                        "sha256:1cece4027d21d07ae0a9c40479b9bddd7338380b41a57de1baf884a03403e095"),
}
GOLDEN_BINARY_DIFF_ID = "sha256:535f2ee406c0801395013a367105aed8e222e8346eb40818e04896651f108688"
GOLDEN_CONFIG = "sha256:7c0128d4d07e2ad5b0ae457a7294002e3d325d2e5c72285ed2bace7628465a46"
GOLDEN_MANIFEST = "sha256:8a6f0e3bbd2b055df64fa7a62bcdb156ed2aab90c91e9a2ac140752b4416b8e8"


def make_fixed_image(tmp_path: Path):
    binary = tmp_path / "app"
    binary.write_bytes(b"\x7fELF not really a binary, but always the same bytes\n" * 1000)
    spec = BuildSpec(service_dir=tmp_path, name="golden", version="v1.0.0", output=tmp_path / "layout")
    prov = Provenance(module=GoModule("example.com/golden", "1.21", (), 0, ()), package="./cmd/golden",
                      git=GitInfo("0123456789abcdef0123456789abcdef01234567", EPOCH, False, "https://example.com/golden.git"),
                      epoch=EPOCH, go_version="go1.21.13", ldflags="-s -w -buildid= -X main.Version=v1.0.0",
                      toolchain={"kind": "local"}, upx=upx_setting("best-lzma", "upx 4.2.2"))
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
