"""Real registries for the tests: Debian's docker-registry on 127.0.0.1 in plain, htpasswd, TLS and token modes, a
small token server (RS256 JWTs the registry verifies by `kid`), and a fault-injecting HTTP proxy.

Everything listens on 127.0.0.1 only; storage lives in tmp dirs; processes are killed at teardown. A missing tool
fails the test (never a skip).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import random
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "ci"
REGISTRY_LEEWAY = 60  # seconds docker-registry 2.8 tolerates past a token's exp
PASSWORD = "s3cret-Pa55-" + secrets.token_hex(6)  # unique, so a leak is easy to find in any output


def require(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(
            f"{tool} is not installed: run `bash scripts/install-debian-deps.sh` (tests never skip a missing tool)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> bytes:
    proc = subprocess.run([require("openssl"), *args], check=False, cwd=cwd, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def make_ca(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost, plus an RSA token-signing key with a self-signed cert."""
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=ocibake test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=directory,
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        cwd=directory,
    )
    return {"ca": directory / "ca.crt", "cert": directory / "server.crt", "key": directory / "server.key"}


def make_client_cert(directory: Path) -> None:
    """client.cert and client.key, signed by make_ca's CA in ``directory`` (for a registry with tls.clientcas)."""
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        "-subj",
        "/CN=ci",
        cwd=directory,
    )
    (directory / "client-ext.cnf").write_text("extendedKeyUsage=clientAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.cert",
        "-days",
        "2",
        "-extfile",
        "client-ext.cnf",
        cwd=directory,
    )


def wait_ready(
    url: str, timeout: float = 15, context: ssl.SSLContext | None = None, proc: subprocess.Popen | None = None
) -> None:
    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        try:
            conn = (
                http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=2)
                if parts.scheme == "https"
                else http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
            )
            conn.request("GET", "/v2/")
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status in (200, 401):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


# --------------------------------------------------------------------------------------------------------- tokens
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(der_public_key: bytes) -> str:
    """The key id docker/distribution gives a root certificate's key: base32 of sha256(DER)[:30], in groups of 4."""
    s = base64.b32encode(hashlib.sha256(der_public_key).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i : i + 4] for i in range(0, len(s), 4))


class TokenServer:
    """GET /token?service=..&scope=.. with Basic auth -> {"token": JWT}. Counts what it issued."""

    def __init__(
        self, workdir: Path, service: str = "ocibake-test", issuer: str = "ocibake-test-issuer", expires_in: int = 300
    ):
        self.workdir = workdir
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.issued: list[dict] = []  # claims of every token issued
        self.tokens: list[str] = []  # the tokens themselves (to look for leaks)
        self.denied = 0
        self.received: list[tuple[str, str]] = []  # (path, Authorization header) of every request
        workdir.mkdir(parents=True, exist_ok=True)
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "2",
            "-subj",
            "/CN=ocibake token issuer",
            cwd=workdir,
        )
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        der = openssl("x509", "-in", "token.crt", "-pubkey", "-noout", cwd=workdir)
        (workdir / "token.pub").write_bytes(der)
        self.kid = libtrust_kid(openssl("pkey", "-pubin", "-in", "token.pub", "-outform", "DER", cwd=workdir))
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(
            [require("openssl"), "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            stdout=subprocess.PIPE,
            check=True,
        ).stdout
        return f"{signing_input}.{b64url(sig)}"

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        auth = h.headers.get("Authorization", "")
        self.received.append((h.path, auth))
        account = ""
        if auth.startswith("Basic "):
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, pw) != (USER, PASSWORD):
                self.denied += 1
                h.send_response(401)
                h.send_header("Content-Type", "application/json")
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}'
                h.send_header("Content-Length", str(len(body)))
                h.end_headers()
                h.wfile.write(body)
                return
            account = user
        access = []
        for scope in query.get("scope", []):
            for one in scope.split(" "):
                typ, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                allowed = (
                    [a for a in actions.split(",") if a in ("pull", "push", "*")]
                    if account
                    else [a for a in actions.split(",") if a == "pull"]
                )
                access.append({"type": typ, "name": name, "actions": allowed})
        now = int(time.time())
        # docker-registry accepts a token up to 60 s past its exp: subtract that, so expires_in is what it enforces
        claims = {
            "iss": self.issuer,
            "sub": account,
            "aud": query.get("service", [""])[0],
            "exp": now + self.expires_in - REGISTRY_LEEWAY,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        token = self.sign(claims)
        self.issued.append(claims)
        self.tokens.append(token)
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.expires_in}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------------------------------------- registry
@dataclass
class Registry:
    """A running docker-registry. `host` is what references use (127.0.0.1:PORT)."""

    mode: str
    workdir: Path
    port: int = 0
    ca: Path | None = None
    token_server: TokenServer | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    extra_env: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def tls(self) -> bool:
        """tls, hostile-realm: server TLS; tls-basic: and htpasswd; mtls: and a client certificate signed by the
        test CA."""
        return self.mode in ("tls", "hostile-realm", "tls-basic", "mtls")

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def secrets(self) -> list[str]:
        """Every secret a client could leak: the password, its base64 forms, and every token issued."""
        out = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
        if self.token_server:
            out += self.token_server.tokens
            out += [t.split(".")[2] for t in self.token_server.tokens]
        return out

    def write_config(self) -> Path:
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
        ]
        # a fixed http secret, so upload state survives a restart
        lines[-1] = "  secret: ocibake-tests-fixed-secret"
        if self.tls:
            lines += [
                "  tls:",
                f"    certificate: {self.workdir / 'tls' / 'server.crt'}",
                f"    key: {self.workdir / 'tls' / 'server.key'}",
            ]
        if self.mode == "mtls":
            lines += ["    clientcas:", f"      - {self.workdir / 'tls' / 'ca.crt'}"]
        if self.mode in ("basic", "tls-basic"):
            lines += ["auth:", "  htpasswd:", "    realm: ocibake-test", f"    path: {self.workdir / 'htpasswd'}"]
        if self.token_server is not None:
            ts = self.token_server
            lines += [
                "auth:",
                "  token:",
                f"    realm: {ts.realm}",
                f"    service: {ts.service}",
                f"    issuer: {ts.issuer}",
                f"    rootcertbundle: {ts.cert}",
            ]
        config = self.workdir / "config.yml"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self) -> Registry:
        binary = require("docker-registry")
        if not self.port:
            self.port = free_port()
        config = self.write_config()
        self.log = self.workdir / "registry.log"
        env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", **self.extra_env}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        context = ssl.create_default_context(cafile=str(self.ca)) if self.ca else None
        if context is not None and self.mode == "mtls":
            context.load_cert_chain(self.workdir / "tls" / "client.cert", self.workdir / "tls" / "client.key")
        try:
            wait_ready(self.url, context=context, proc=self.proc)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; log:\n{self.log.read_text()[-3000:]}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.token_server:
            self.token_server.close()

    # skopeo flags for reading this registry back
    def skopeo_flags(self, creds: bool = True, prefix: str = "") -> list[str]:
        """Flags for `skopeo inspect` (prefix "src-" or "dest-" for `skopeo copy`)."""
        flags = []
        if self.tls:
            flags += [f"--{prefix}cert-dir", str(self.workdir / "skopeo-certs")]
        else:
            flags += [f"--{prefix}tls-verify=false"]
        if creds and self.mode in ("basic", "tls-basic", "token", "hostile-realm"):
            flags += [f"--{prefix}creds", f"{USER}:{PASSWORD}"]
        return flags


def start_registry(mode: str, workdir: Path, token_expiry: int = 300) -> Registry:
    workdir.mkdir(parents=True, exist_ok=True)
    reg = Registry(mode=mode, workdir=workdir)
    if mode not in ("plain", "basic", "tls", "tls-basic", "mtls", "token", "hostile-realm"):
        raise ValueError(mode)
    if mode in ("basic", "tls-basic"):
        proc = subprocess.run([require("htpasswd"), "-Bbn", USER, PASSWORD], stdout=subprocess.PIPE, check=True)
        (workdir / "htpasswd").write_bytes(proc.stdout)
    if reg.tls:
        files = make_ca(workdir / "tls")
        reg.ca = files["ca"]
        certs = workdir / "skopeo-certs"
        certs.mkdir()
        shutil.copy(files["ca"], certs / "ca.crt")
    if mode == "mtls":
        make_client_cert(workdir / "tls")
        for name in ("client.cert", "client.key"):
            shutil.copy(workdir / "tls" / name, certs / name)
    if mode in ("token", "hostile-realm"):
        # hostile-realm: a TLS registry whose Bearer realm is a plain-HTTP token server on another port, which
        # records every request (a compromised registry, or a man in the middle of its 401, harvesting passwords)
        reg.token_server = TokenServer(workdir / "token", expires_in=token_expiry)
    return reg.start()


# ---------------------------------------------------------------------------------------------------------- proxy
HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Seen:
    method: str
    path: str
    status: int | None


class FaultProxy:
    """An HTTP reverse proxy on 127.0.0.1 in front of a plain registry, with scriptable faults.

    `fault(method, path, count)` is called for every request (count = how many requests matched before, per rule) and
    returns None (forward), ("status", code, headers) to answer instead of the registry, ("cut", nbytes) to drop the
    connection after reading nbytes of the request body, ("slow", bytes_per_second) to read the body at that rate, or
    ("delay", seconds), or ("cut-response", nbytes) to forward the request and relay the answer's headers (its full
    Content-Length) but only nbytes of its body before dropping the connection. `after(method, path, status)` runs
    once a forwarded response was relayed (to stop/restart the registry between blobs).
    """

    def __init__(self, upstream: Registry):
        self.upstream = upstream
        self.port = free_port()
        self.seen: list[Seen] = []
        self.fault: Callable[[str, str], tuple | None] = lambda m, p: None
        self.after: Callable[[str, str, int], None] = lambda m, p, s: None
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_ANY(self):
                proxy._handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_ANY  # noqa: N815 http.server's names

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _read_body(self, h, limit: int | None = None) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(h.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    h.rfile.readline()
                    break
                out += h.rfile.read(size)
                h.rfile.readline()
                if limit is not None and len(out) >= limit:
                    break
            return bytes(out)
        if limit is not None:
            length = min(length, limit)
        return h.rfile.read(length) if length else b""

    def _read_slowly(self, h, bytes_per_second: int) -> bytes:
        """Read a Content-Length body at a limited rate (a slow link)."""
        left = int(h.headers.get("Content-Length") or 0)
        out = bytearray()
        while left > 0:
            chunk = h.rfile.read(min(left, 65536))
            if not chunk:
                break
            out += chunk
            left -= len(chunk)
            time.sleep(len(chunk) / bytes_per_second)
        return bytes(out)

    def _answer(self, h, status: int, headers: dict, body: bytes = b"") -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h) -> None:
        with self.lock:
            action = self.fault(h.command, h.path)
        if action and action[0] == "cut":
            self._read_body(h, limit=action[1])
            self.seen.append(Seen(h.command, h.path, None))
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        body = self._read_slowly(h, action[1]) if action and action[0] == "slow" else self._read_body(h)
        if action and action[0] == "status":
            self.seen.append(Seen(h.command, h.path, action[1]))
            err = json.dumps({"errors": [{"code": "UNKNOWN", "message": "injected fault"}]}).encode()
            self._answer(h, action[1], {"Content-Type": "application/json", **action[2]}, err)
            return
        if action and action[0] == "delay":
            time.sleep(action[1])
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP}
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=30)
        try:
            conn.request(
                h.command, h.path, body=body if body or h.command in ("PUT", "POST", "PATCH") else None, headers=headers
            )
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            # the registry is down: the client sees its connection dropped
            self.seen.append(Seen(h.command, h.path, None))
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        finally:
            conn.close()  # every path: an upstream socket left open is a ResourceWarning (an error in the suite)
        self.seen.append(Seen(h.command, h.path, resp.status))
        out_headers = {k: v for k, v in resp.getheaders() if k.lower() not in HOP and k.lower() != "content-length"}
        h.send_response(resp.status)
        for k, v in out_headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if action and action[0] == "cut-response" and h.command != "HEAD":
            with contextlib.suppress(OSError):
                h.wfile.write(data[: min(action[1], max(len(data) - 1, 0))])
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
            h.close_connection = True
            return
        if h.command != "HEAD":
            h.wfile.write(data)
        self.after(h.command, h.path, resp.status)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------------------------------- layouts
def write_layout(
    root: Path,
    tags: tuple[str, ...] = ("v1", "latest"),
    layer_sizes: tuple[int, ...] = (300_000, 40_000),
    seed: int | None = None,
    platforms: tuple[str, ...] | None = None,
) -> dict:
    """A small OCI image layout of random layers (not gzipped: registries do not care).

    Returns {"manifest": digest, "blobs": [digests], "tags": tags}. With `platforms`, the tags point at an image
    index of one manifest per platform.
    """
    rnd = random.Random(seed if seed is not None else secrets.randbits(64))
    blobs_dir = root / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        (blobs_dir / digest[7:]).write_bytes(data)
        return digest

    def cj(v) -> bytes:
        return json.dumps(v, sort_keys=True, separators=(",", ":")).encode()

    all_blobs: list[str] = []

    def image(os_: str, arch: str) -> dict:
        layers = []
        for size in layer_sizes:
            # in pieces: one randbytes() call stops at 256 MiB
            data = b"".join(rnd.randbytes(min(64 << 20, size - at)) for at in range(0, size, 64 << 20))
            d = put(data)
            all_blobs.append(d)
            layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": size})
        config = cj(
            {
                "architecture": arch,
                "os": os_,
                "created": "1970-01-01T00:00:00Z",
                "config": {"Entrypoint": ["/app"]},
                "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "test"} for _ in layers],
            }
        )
        cd = put(config)
        all_blobs.append(cd)
        manifest = cj(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
                "layers": layers,
            }
        )
        md = put(manifest)
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": len(manifest),
            "platform": {"os": os_, "architecture": arch},
        }

    if platforms:
        children = [image(*p.split("/")) for p in platforms]
        index = cj({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children})
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": put(index), "size": len(index)}
    else:
        top = image("linux", "amd64")
        top.pop("platform")
    entries = [{**top, "annotations": {"org.opencontainers.image.ref.name": t}} for t in tags]
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_bytes(
        cj({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})
    )
    return {"manifest": top["digest"], "blobs": all_blobs, "tags": tags}


def skopeo(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([require("skopeo"), *args], check=False, capture_output=True, text=True, timeout=timeout)
