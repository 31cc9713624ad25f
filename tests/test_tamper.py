"""Audits that cannot be fooled: an image whose bytes were tampered with, in a layout or in a registry, is refused by
every command that reports on it (diff, audit, inspect, inspect --no-files, verify, export), naming the blob; none
exits 0. One case each: a layer swapped for another layer of the same size, one of another size, one flipped bit in
the config, the CA layer and the binary layer, a manifest edited in place, a config whose diff_ids no longer match."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import tarfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import FIXTURES, build, run_cli
from regtools import ocibake, reg_env

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
SERVICE = FIXTURES / "hello-root"
CASES = [
    "same-size-layer",
    "other-size-layer",
    "config-bit",
    "ca-layer-bit",
    "binary-layer-bit",
    "manifest",
    "diff-ids",
]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(layout, manifest digest, cosign.pub): hello-root built once, signed keys made once."""
    base = tmp_path_factory.mktemp("good")
    digest, _ = build(SERVICE, base / "oci", "--version", "v1", "--upx", "off", env=EPOCH)
    made = run_cli("generate-key-pair", "--output-dir", str(base), env={"COSIGN_PASSWORD": ""})
    assert made.returncode == 0, made.stderr
    return base / "oci", digest, base / "cosign.pub"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def forged_layer(size: int) -> bytes:
    """A well-formed gzip tar layer holding another /app, exactly ``size`` bytes long (a gzip comment pads it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("app")
        body = b"#!/bin/sh\necho another service\n"
        info.size, info.mode = len(body), 0o555
        tar.addfile(info, io.BytesIO(body))
    raw = buf.getvalue()
    deflated = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflated.compress(raw) + deflated.flush()
    trailer = struct.pack("<II", zlib.crc32(raw), len(raw))
    fixed = 10 + 1 + len(body) + len(trailer)  # header, the comment's NUL, deflate, trailer
    assert size > fixed, size
    header = b"\x1f\x8b\x08\x10" + b"\0\0\0\0" + b"\x00\xff"  # FCOMMENT
    forged = header + b"x" * (size - fixed) + b"\0" + body + trailer
    assert len(forged) == size and gzip.decompress(forged) == raw
    return forged


class Store:
    """Blobs by digest, wherever they are: a layout's blobs/sha256, or a registry's storage directory."""

    def __init__(self, path_of: Callable[[str], Path]):
        self.path_of = path_of

    def read(self, digest: str) -> bytes:
        return self.path_of(digest).read_bytes()

    def write(self, digest: str, data: bytes) -> None:
        self.path_of(digest).write_bytes(data)


def tamper(case: str, store: Store, manifest_digest: str, replace_image: Callable[[bytes, bytes], None]) -> str:
    """Damage the image as ``case`` says -> the digest the error must name. ``replace_image(config, manifest)``
    stores a new config and manifest and points the tag at the manifest (the case where everything is re-hashed)."""
    manifest = json.loads(store.read(manifest_digest))
    config_digest = manifest["config"]["digest"]
    ca, binary = manifest["layers"][2]["digest"], manifest["layers"][3]["digest"]
    if case == "same-size-layer":
        store.write(binary, forged_layer(manifest["layers"][3]["size"]))
        return binary
    if case == "other-size-layer":
        store.write(binary, store.read(ca))
        return binary
    if case in ("config-bit", "ca-layer-bit", "binary-layer-bit"):
        digest = {"config-bit": config_digest, "ca-layer-bit": ca, "binary-layer-bit": binary}[case]
        data = store.read(digest)
        store.write(digest, flip(data, len(data) // 2))
        return digest
    if case == "manifest":  # the layer list edited (the binary layer dropped), written where the tag points
        manifest["layers"] = manifest["layers"][:3]
        store.write(manifest_digest, json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())
        return manifest_digest
    assert case == "diff-ids"  # config and manifest re-hashed, so every digest agrees; only the diff_ids lie
    config = json.loads(store.read(config_digest))
    config["rootfs"]["diff_ids"][3] = sha(b"another binary")
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    manifest["config"].update(digest=sha(config_bytes), size=len(config_bytes))
    replace_image(config_bytes, json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode())
    return binary


def refused(proc, named: str, what: str) -> None:
    assert proc.returncode == 4, f"{what}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert named in proc.stderr and "Traceback" not in proc.stderr, f"{what}:\n{proc.stderr}"
    assert "damaged" in proc.stderr or "should" in proc.stderr or "expected" in proc.stderr, proc.stderr
    assert "identical" not in proc.stdout and "reproduced" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_layout_is_refused_by_every_command(good, case, tmp_path):
    layout, digest, pub = good
    copy = tmp_path / "tampered"
    shutil.copytree(layout, copy)
    store = Store(lambda d: copy / "blobs" / "sha256" / d.split(":", 1)[1])

    def replace_image(config: bytes, manifest: bytes) -> None:
        store.write(sha(config), config)
        store.write(sha(manifest), manifest)
        index = json.loads((copy / "index.json").read_text())
        for entry in index["manifests"]:
            if entry["digest"] == digest:
                entry.update(digest=sha(manifest), size=len(manifest))
        (copy / "index.json").write_text(json.dumps(index))

    named = tamper(case, store, digest, replace_image)
    ref = f"oci:{copy}:v1"
    refused(run_cli("diff", f"oci:{layout}:v1", ref), named, "diff")
    refused(run_cli("audit", ref, "--source", str(SERVICE)), named, "audit")
    refused(run_cli("inspect", ref), named, "inspect")
    refused(run_cli("inspect", ref, "--no-files"), named, "inspect --no-files")
    refused(run_cli("verify", ref, "--key", str(pub)), named, "verify")
    refused(run_cli("export", f"{copy}:v1", f"docker-archive:{tmp_path / 'out.tar'}"), named, "export")
    assert not (tmp_path / "out.tar").exists()


def _registry_store(reg) -> Store:
    root = reg.workdir / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return Store(lambda d: root / d[7:9] / d[7:] / "data")


def _put(url: str, data: bytes, content_type: str) -> None:
    req = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status in (201, 202), resp.status


def _post_blob(reg, repo: str, data: bytes) -> None:
    req = urllib.request.Request(f"{reg.url}/v2/{repo}/blobs/uploads/", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        location = resp.headers["Location"]
    if location.startswith("/"):
        location = reg.url + location
    sep = "&" if "?" in location else "?"
    _put(f"{location}{sep}digest={sha(data)}", data, "application/octet-stream")


@pytest.mark.parametrize("case", CASES)
def test_a_tampered_registry_image_is_refused_by_every_command(good, case, fresh_registry, tmp_path):
    layout, digest, pub = good
    reg = fresh_registry
    env = reg_env(reg, tmp_path / "home")
    repo = f"{reg.host}/tamper/hello"
    assert ocibake("push", str(layout), repo, "-t", "v1", env=env).returncode == 0

    def replace_image(config: bytes, manifest: bytes) -> None:
        _post_blob(reg, "tamper/hello", config)
        _put(f"{reg.url}/v2/tamper/hello/manifests/v1", manifest, json.loads(manifest)["mediaType"])

    named = tamper(case, _registry_store(reg), digest, replace_image)
    ref = f"{repo}:v1"
    refused(ocibake("diff", f"oci:{layout}:v1", ref, env=env), named, "diff")
    refused(ocibake("audit", ref, "--source", str(SERVICE), env=env), named, "audit")
    refused(ocibake("inspect", ref, env=env), named, "inspect")
    refused(ocibake("inspect", ref, "--no-files", env=env), named, "inspect --no-files")
    refused(ocibake("verify", ref, "--key", str(pub), env=env), named, "verify")
