"""One set of size limits for every reader (oci/limits.py): 1 GB and 200 MB manifests and configs, from a registry and
in a layout, are refused in bounded memory (the peak RSS of the ocibake process is measured); a base whose config
label would make the image too large for skopeo is refused, never written; a gzip bomb in a toolchain layer is
refused at the limit with nothing left in the cache."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO
from registry_servers import free_port
from regtools import base_env, ocibake

HELLO = FIXTURES / "hello-root"
GiB = 1 << 30
MiB = 1 << 20
RSS_BOUND_MIB = 160  # ocibake itself is ~50-70 MiB; reading a 200 MB document whole would be over 400 MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
TAR = "application/vnd.oci.image.layer.v1.tar"
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"

# ocibake's peak resident memory, measured by a parent of its own (RUSAGE_CHILDREN of a fresh process)
MEASURE = r"""
import json, resource, subprocess, sys
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": p.returncode, "stderr": p.stderr, "peak_mib": peak / 1024}))
"""


def measured(*args: str, env: dict, cwd: Path = REPO) -> dict:
    """Run ocibake in a process of its own whose children's peak RSS (ocibake's) is reported."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, sys.executable, "-m", "ocibake", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_refused(result: dict, code: int, phrase: str) -> None:
    stderr = result["stderr"]
    errors = [line for line in stderr.splitlines() if line.startswith("ocibake: error:")]
    assert result["code"] == code, stderr
    assert len(errors) == 1 and phrase in errors[0], stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert result["peak_mib"] < RSS_BOUND_MIB, f"peak RSS {result['peak_mib']:.0f} MiB: {stderr}"


# ------------------------------------------------------------------------------------------------- a lying registry
class HugeDocuments:
    """A registry API on 127.0.0.1 that serves a manifest of ``manifest_size`` bytes (announced, or not: then the
    body is close-delimited), and an honest manifest naming a ``config_size`` config. Counts the bytes it sent."""

    def __init__(self, manifest_size: int, config_size: int):
        self.port = free_port()
        self.sent = 0
        server = self
        self.small_manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": "sha256:" + "c" * 64, "size": config_size},
                "layers": [],
            }
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.handle(self, body=True)

            def do_HEAD(self):
                server.handle(self, body=False)

        self.manifest_size = manifest_size
        self.config_size = config_size
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def handle(self, h, body: bool) -> None:
        if h.path == "/v2/":
            self._answer(h, 200, {"Docker-Distribution-API-Version": "registry/2.0"}, b"{}", body)
        elif "/manifests/" in h.path and h.path.startswith("/v2/big/"):
            self._huge(h, announced=not h.path.startswith("/v2/big/unannounced/"), body=body)
        elif "/manifests/" in h.path and h.path.startswith("/v2/bigconfig/"):
            self._answer(h, 200, {"Content-Type": OCI_MANIFEST}, self.small_manifest, body)
        elif "/blobs/" in h.path:
            self._huge(h, announced=True, body=body, size=self.config_size)
        else:
            self._answer(h, 404, {}, b'{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}', body)

    def _answer(self, h, status: int, headers: dict, data: bytes, body: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)

    def _huge(self, h, announced: bool, body: bool, size: int | None = None) -> None:
        size = size or self.manifest_size
        h.send_response(200)
        h.send_header("Content-Type", OCI_MANIFEST)
        h.send_header("Docker-Content-Digest", "sha256:" + "d" * 64)
        if announced:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        if not body:
            return
        chunk = b"{" + b" " * (MiB - 1)
        left = size
        try:
            while left > 0:
                n = min(left, MiB)
                h.wfile.write(chunk[:n])
                self.sent += n
                left -= n
        except OSError:
            pass  # the client stopped reading: the point
        h.close_connection = True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def huge_registry():
    server = HugeDocuments(manifest_size=GiB, config_size=200 * MiB)
    yield server
    server.close()


@pytest.mark.slow
def test_a_1gb_manifest_from_a_registry_is_refused_in_bounded_memory(huge_registry, tmp_path):
    reg = huge_registry
    env = {**base_env(tmp_path / "home"), "OCIBAKE_REGISTRY_RETRIES": "0", "COSIGN_PASSWORD": "limits-pw"}
    keys = tmp_path / "keys"
    keys.mkdir()
    assert ocibake("generate-key-pair", "--output-dir", str(keys), env=env).returncode == 0
    for repo in ("big/announced", "big/unannounced"):
        ref = f"{reg.host}/{repo}:v1"
        commands = {
            "pull": ["pull", ref, str(tmp_path / "pulled")],
            "inspect": ["inspect", ref],
            "verify": ["verify", ref, "--key", str(keys / "cosign.pub")],
            "sign": ["sign", ref, "--key", str(keys / "cosign.key")],
            "build --base": ["build", str(HELLO), "--base", ref, "--upx", "off", "--output", str(tmp_path / "o")],
        }
        for name, argv in commands.items():
            reg.sent = 0
            result = measured(*argv, env=env)
            assert_refused(result, 5, "is larger than 4 MiB")
            assert reg.sent < 64 * MiB, f"{name}: the server sent {reg.sent >> 20} MiB"
    assert not (tmp_path / "pulled").exists() and not (tmp_path / "o").exists()


def test_a_200mb_config_from_a_registry_is_refused_before_it_is_downloaded(huge_registry, tmp_path):
    reg = huge_registry
    env = {**base_env(tmp_path / "home"), "OCIBAKE_REGISTRY_RETRIES": "0"}
    for argv in (
        ["pull", f"{reg.host}/bigconfig/x:v1", str(tmp_path / "pulled")],
        ["build", str(HELLO), "--base", f"{reg.host}/bigconfig/x:v1", "--upx", "off", "--output", str(tmp_path / "o")],
    ):
        reg.sent = 0
        result = measured(*argv, env=env)
        assert_refused(result, 5, "is larger than 4 MiB (200")
        assert reg.sent < 8 * MiB


# ------------------------------------------------------------------------------------------------------ layouts
def _stream_blob(blobs: Path, prefix: bytes, pad: int, suffix: bytes) -> tuple[str, int]:
    """A blob of prefix + pad spaces (or x's inside a JSON string) + suffix, written and hashed in chunks."""
    h = hashlib.sha256()
    tmp = blobs / "tmp"
    with open(tmp, "wb") as f:
        for part in (prefix, None, suffix):
            if part is None:
                left = pad
                chunk = b"x" * MiB
                while left > 0:
                    piece = chunk[: min(left, MiB)]
                    f.write(piece)
                    h.update(piece)
                    left -= len(piece)
            else:
                f.write(part)
                h.update(part)
    digest = "sha256:" + h.hexdigest()
    tmp.rename(blobs / digest[7:])
    return digest, len(prefix) + pad + len(suffix)


def _put(blobs: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest[7:]).write_bytes(data)
    return digest


def base_layout(root: Path, label_pad: int = 0, manifest_pad: int = 0) -> Path:
    """A base image layout (tag v1): one tar layer with /etc/passwd; a config whose label holds ``label_pad`` bytes
    and a manifest whose annotation holds ``manifest_pad`` bytes, both written in chunks."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    layer_digest = _put(blobs, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"org.example.big": ""}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z"}],
    }
    head, _, tail = json.dumps(config, sort_keys=True).encode().partition(b'"org.example.big": ""')
    config_digest, config_size = _stream_blob(blobs, head + b'"org.example.big": "', label_pad, b'"' + tail)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": TAR, "digest": layer_digest, "size": len(layer)}],
        "annotations": {"org.example.pad": ""},
    }
    head, _, tail = json.dumps(manifest, sort_keys=True).encode().partition(b'"org.example.pad": ""')
    manifest_digest, manifest_size = _stream_blob(blobs, head + b'"org.example.pad": "', manifest_pad, b'"' + tail)
    entry = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size}
    index = {"schemaVersion": 2, "manifests": [{**entry, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    ("what", "pads"), [("manifest", {"manifest_pad": 200 * MiB}), ("config", {"label_pad": 200 * MiB})]
)
def test_a_200mb_document_in_a_layout_is_refused_in_bounded_memory(what, pads, tmp_path):
    layout = base_layout(tmp_path / "base", **pads)
    env = base_env(tmp_path / "home")
    commands = {
        "build --base": [
            "build",
            str(HELLO),
            "--base",
            f"oci:{layout}:v1",
            "--upx",
            "off",
            "--output",
            str(tmp_path / "o"),
        ],
        "inspect": ["inspect", f"oci:{layout}:v1"],
        "export": ["export", f"{layout}:v1", f"docker-archive:{tmp_path / 'x.tar'}"],
    }
    for argv in commands.values():
        assert_refused(measured(*argv, env=env), 4, "is larger than 4 MiB (200")
    assert not (tmp_path / "o").exists() and not (tmp_path / "x.tar").exists()


def test_a_base_label_that_would_make_the_config_too_large_is_refused_not_written(tmp_path):
    """A base config of 3.9 MiB is readable; with ocibake's own labels and build record the image's config would be
    over 4 MiB, which skopeo refuses: the build refuses it first and writes nothing."""
    layout = base_layout(tmp_path / "base", label_pad=4 * MiB - 1500)
    env = base_env(tmp_path / "home")
    out = tmp_path / "o"
    result = measured("build", str(HELLO), "--base", f"oci:{layout}:v1", "--upx", "off", "--output", str(out), env=env)
    assert_refused(result, 4, "the image's config is larger than 4 MiB")
    assert not out.exists()


# ------------------------------------------------------------------------------------------------- a gzip bomb
def gzip_bomb(size: int) -> bytes:
    """A tar.gz of one file of ``size`` zero bytes, in gzip members of 64 MiB each compressed once: ~1000x."""
    info = tarfile.TarInfo("bomb")
    info.size = size
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    zeros = gzip.compress(b"\0" * (64 * MiB), compresslevel=9, mtime=0)
    members = [gzip.compress(header, mtime=0)] + [zeros] * (size // (64 * MiB))
    members.append(gzip.compress(b"\0" * (size % (64 * MiB) + 1024), mtime=0))
    return b"".join(members)


def toolchain_layout(root: Path, layer: bytes) -> Path:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer_digest = _put(blobs, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/go/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},  # never reached: refused before
        "history": [{"created": "1970-01-01T00:00:00Z"}],
    }
    config_digest = _put(blobs, json.dumps(config).encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(json.dumps(config))},
            "layers": [{"mediaType": GZ, "digest": layer_digest, "size": len(layer)}],
        }
    ).encode()
    entry = {"mediaType": OCI_MANIFEST, "digest": _put(blobs, manifest), "size": len(manifest)}
    index = {"schemaVersion": 2, "manifests": [{**entry, "annotations": {"org.opencontainers.image.ref.name": "go"}}]}
    (root / "index.json").write_text(json.dumps(index))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return root


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*")) if path.exists() else 0


@pytest.mark.slow
def test_a_gzip_bomb_in_a_toolchain_layer_is_refused_at_the_limit(tmp_path):
    bomb = gzip_bomb(5 * GiB)
    assert len(bomb) < 6 * MiB
    layout = toolchain_layout(tmp_path / "toolchain", bomb)
    env = base_env(tmp_path / "home")
    result = measured(
        "build", str(HELLO), "--toolchain", f"oci:{layout}:go", "--upx", "off", "--output", str(tmp_path / "o"), env=env
    )
    assert_refused(result, 4, "grows more than 100x when decompressed")
    assert "OCIBAKE_UNPACK_MAX_RATIO" in result["stderr"]
    cache = tmp_path / "home" / ".cache" / "ocibake" / "rootfs"
    assert du(cache) < MiB, f"{du(cache) >> 20} MiB left in the cache"
    assert not (tmp_path / "o").exists()


def test_the_unpack_limits_are_one_setting_each(tmp_path):
    """The total and the ratio, checked as the layer streams; raised by the environment."""
    from ocibake.errors import InputError
    from ocibake.oci.limits import UnpackLimits
    from ocibake.toolchain.layer_stream import LayerSource
    from ocibake.toolchain.rootfs import unpack_layers

    bomb = gzip_bomb(100 * MiB)
    path = tmp_path / "layer"
    path.write_bytes(bomb)
    layer = LayerSource(path, GZ, "sha256:" + hashlib.sha256(bomb).hexdigest(), None)
    with pytest.raises(InputError, match="grows more than 100x"):
        unpack_layers([layer], _empty(tmp_path / "a"), UnpackLimits())
    with pytest.raises(InputError, match="unpacks to more than 10 MiB in all"):
        unpack_layers([layer], _empty(tmp_path / "b"), UnpackLimits(total=10 * MiB, ratio=100_000))
    unpack_layers([layer], _empty(tmp_path / "c"), UnpackLimits.from_env({"OCIBAKE_UNPACK_MAX_RATIO": "100000"}))
    assert (tmp_path / "c" / "bomb").stat().st_size == 100 * MiB
    with pytest.raises(InputError, match="OCIBAKE_UNPACK_MAX_MIB='lots' is not a positive whole number"):
        UnpackLimits.from_env({"OCIBAKE_UNPACK_MAX_MIB": "lots"})


def _empty(path: Path) -> Path:
    path.mkdir()
    return path
