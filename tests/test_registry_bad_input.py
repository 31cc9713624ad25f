"""Bad input and refusals: one line naming the registry, the status and the OCI code, with a hint; the right exit
code."""

from __future__ import annotations

import http.server
import threading

import pytest

from registry_servers import PASSWORD, USER, free_port, write_layout
from regtools import base_env, ocibake


def _error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("ocibake: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_wrong_password(mode, request, tmp_path):
    reg = request.getfixturevalue(f"{mode}_registry")
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    env = {**base_env(tmp_path / "home"), "OCIBAKE_USERNAME": USER, "OCIBAKE_PASSWORD": "wrong-" + PASSWORD}
    proc = ocibake("push", str(layout), f"{reg.host}/bad/app", env=env)
    assert proc.returncode == 5
    line = _error_line(proc.stderr)
    assert f"registry {reg.host}" in line and "401" in line and "UNAUTHORIZED" in line
    assert "hint:" in proc.stderr and "OCIBAKE_USERNAME" in proc.stderr
    assert "wrong-" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_no_credentials(mode, request, tmp_path):
    reg = request.getfixturevalue(f"{mode}_registry")
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), f"{reg.host}/bad/app", env=base_env(tmp_path / "home"))
    assert proc.returncode == 5
    line = _error_line(proc.stderr)
    assert "401" in line and "UNAUTHORIZED" in line and "ocibake login" in proc.stderr


def test_unknown_host(tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), "no-such-registry.invalid/x/app", env=base_env(tmp_path / "home"), timeout=60)
    assert proc.returncode == 5
    assert "no-such-registry.invalid" in _error_line(proc.stderr)


def test_connection_refused(tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), f"127.0.0.1:{free_port()}/x/app", env=base_env(tmp_path / "home"))
    assert proc.returncode == 5 and "cannot connect" in _error_line(proc.stderr)
    # a closed port is closed for HTTPS too: plain HTTP (asked first on loopback) is retried, HTTPS not tried as well
    assert proc.stderr.count("retry ") == 2 and "GET https://" not in proc.stderr
    assert "retry 2/2 " in proc.stderr  # the count it stops at, not the answers' retry budget


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("127.0.0.1:5000/Upper/app", "repository 'Upper/app' is not a valid name"),
        ("127.0.0.1:5000/x/app:-bad", "tag '-bad' is not valid"),
        ("127.0.0.1:5000/x/app:a:b", "tag 'a:b' is not valid"),
        ("127.0.0.1:5000/x//app", "not a valid"),
        ("127.0.0.1:5000/x/app@sha256:abc", "digest 'sha256:abc' is not valid"),
        ("http://127.0.0.1:5000/x/app", "not a URL"),
        ("app-without-registry", "names no registry"),
    ],
)
def test_invalid_reference(ref, words, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), ref, env=base_env(tmp_path / "home"))
    assert proc.returncode == 4, proc.stderr
    assert words in _error_line(proc.stderr)
    pull = ocibake("pull", ref, str(tmp_path / "out"), env=base_env(tmp_path / "home"))
    assert pull.returncode == 4 and not (tmp_path / "out").exists()


def test_invalid_tag_option(plain_registry, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake(
        "push", str(layout), f"{plain_registry.host}/x/app", "--tag", "bad tag", env=base_env(tmp_path / "h")
    )
    assert proc.returncode == 4 and "bad tag" in _error_line(proc.stderr)


def test_missing_layout(plain_registry, tmp_path):
    proc = ocibake("push", str(tmp_path / "nope"), f"{plain_registry.host}/x/app", env=base_env(tmp_path / "h"))
    assert proc.returncode == 4 and "nope" in _error_line(proc.stderr)


def test_blob_with_wrong_digest_is_refused_before_any_upload(proxied_registry, tmp_path):
    _reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    victim = layout / "blobs" / "sha256" / info["blobs"][1][7:]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    proc = ocibake("push", str(layout), f"{proxy.host}/x/app", env=base_env(tmp_path / "h"))
    assert proc.returncode == 4
    assert info["blobs"][1] in _error_line(proc.stderr) and "nothing was pushed" in proc.stderr
    assert proxy.seen == []


def test_manifest_with_wrong_digest_is_refused(proxied_registry, tmp_path):
    _reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    path = layout / "blobs" / "sha256" / info["manifest"][7:]
    path.write_bytes(path.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    proc = ocibake("push", str(layout), f"{proxy.host}/x/app", env=base_env(tmp_path / "h"))
    assert proc.returncode == 4 and proxy.seen == []


def test_unknown_tag_on_pull(plain_registry, tmp_path):
    proc = ocibake(
        "pull", f"{plain_registry.host}/never/pushed:v9", str(tmp_path / "out"), env=base_env(tmp_path / "h")
    )
    assert proc.returncode == 5
    line = _error_line(proc.stderr)
    assert "404" in line and ("MANIFEST_UNKNOWN" in line or "NAME_UNKNOWN" in line)
    assert not (tmp_path / "out").exists()


def test_tls_without_ca_is_refused_with_a_hint(tls_registry, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), f"{tls_registry.host}/x/app", env=base_env(tmp_path / "h"))
    assert proc.returncode == 5
    assert "TLS" in _error_line(proc.stderr) and "--ca-cert" in proc.stderr


def test_ca_cert_adds_to_the_system_trust_and_never_falls_back_to_http(tls_registry, tmp_path):
    """--ca-cert adds a CA to what the system trusts (here the system store is SSL_CERT_FILE, holding the registry's
    CA) instead of replacing it; a CA file that is not a certificate is bad input; a wrong CA is a TLS error, never a
    quiet retry over plain HTTP."""
    from registry_servers import make_ca

    reg = tls_registry
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    other = make_ca(tmp_path / "other-ca")["ca"]
    env = {**base_env(tmp_path / "h"), "SSL_CERT_FILE": str(reg.ca), "REQUESTS_CA_BUNDLE": str(reg.ca)}
    proc = ocibake("push", str(layout), f"{reg.host}/trust/app", "--ca-cert", str(other), "-q", env=env)
    assert proc.returncode == 0, proc.stderr

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    proc = ocibake(
        "push", str(layout), f"{reg.host}/trust/app2", "--ca-cert", str(garbage), "-v", env=base_env(tmp_path / "h")
    )
    assert proc.returncode == 4 and "is not a PEM CA certificate" in _error_line(proc.stderr)
    assert "http://" not in proc.stderr

    proc = ocibake(
        "push", str(layout), f"{reg.host}/trust/app3", "--ca-cert", str(other), "-v", env=base_env(tmp_path / "h")
    )
    assert proc.returncode == 5 and "TLS certificate not trusted" in _error_line(proc.stderr)
    assert "http://" not in proc.stderr and "signed neither by" in proc.stderr

    # no CA named for it: a loopback registry is asked over plain HTTP first, refuses (400), and is used over HTTPS
    proc = ocibake("push", str(layout), f"{reg.host}/trust/app4", "-v", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"< 400 GET http://{reg.host}/v2/" in proc.stderr and f"< 201 PUT https://{reg.host}/" in proc.stderr
    assert f"PUT http://{reg.host}" not in proc.stderr


@pytest.mark.parametrize(
    "reference",
    [
        "ci:hunter2secret@127.0.0.1:5000/x",
        "https://ci:hunter2secret@127.0.0.1:5000/x",
        "docker://ci:hunter2secret@reg.example.com/x",
        "ci:hun/ter2secret@127.0.0.1:5000/x",
    ],
)
def test_credentials_in_a_reference_are_refused_without_echoing_them(reference, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), reference, env=base_env(tmp_path / "h"))
    assert proc.returncode == 4 and "secret" not in proc.stderr + proc.stdout
    assert "credentials" in _error_line(proc.stderr)


def test_credentials_in_ocibake_registry_are_refused_without_echoing_them(tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    env = {**base_env(tmp_path / "h"), "OCIBAKE_REGISTRY": "ci:hunter2secret@127.0.0.1:5000/sos"}
    proc = ocibake("push", str(layout), "emergency", env=env)
    assert proc.returncode == 4 and "hunter2secret" not in proc.stderr
    assert "OCIBAKE_REGISTRY holds credentials" in _error_line(proc.stderr)


def test_plain_http_only_for_loopback(tmp_path):
    """A non-loopback host is never tried over plain HTTP without --insecure (localhost.localdomain-like names too)."""
    from ocibake.registry.reference import is_loopback

    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("localhost")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com") and not is_loopback("127.0.0.1.nip.io:5000")


class _NotARegistry(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        body = b"<html>hello</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_GET  # noqa: N815 http.server's names


def test_a_server_that_speaks_no_registry_api(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotARegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        layout = tmp_path / "layout"
        write_layout(layout, tags=("v1",))
        host = f"127.0.0.1:{server.server_address[1]}"
        proc = ocibake("push", str(layout), f"{host}/x/app", env=base_env(tmp_path / "h"))
        assert proc.returncode == 5
        line = _error_line(proc.stderr)
        assert host in line and "404" in line and "not the OCI distribution API" in line
        proc = ocibake("pull", f"{host}/x/app:v1", str(tmp_path / "out"), env=base_env(tmp_path / "h"))
        assert proc.returncode == 5 and not (tmp_path / "out").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_pull_refuses_a_blob_with_the_wrong_digest(proxied_registry, tmp_path):
    """A proxy that alters a blob in transit: pull fails with exit 5 and writes nothing."""
    _reg, proxy = proxied_registry
    layout = tmp_path / "layout"
    info = write_layout(layout, tags=("v1",))
    env = base_env(tmp_path / "h")
    assert ocibake("push", str(layout), f"{proxy.host}/x/app", env=env).returncode == 0
    config = info["blobs"][-1]
    proxy.fault = lambda m, p: (
        ("status", 200, {"Docker-Content-Digest": config}) if m == "GET" and config in p else None
    )
    proc = ocibake("pull", f"{proxy.host}/x/app:v1", str(tmp_path / "out"), env=env)
    assert proc.returncode == 5 and "arrived as" in _error_line(proc.stderr), proc.stderr
    assert not (tmp_path / "out").exists()


def test_login_and_toolchain_references_never_echo_credentials(tmp_path):
    from conftest import FIXTURES

    env = base_env(tmp_path / "h")
    for argv, stdin in (
        (["login", "u:hunter2secret@127.0.0.1:1/x", "-u", "u", "--password-stdin"], "pw\n"),
        (["login", "https://u:hunter2secret@127.0.0.1:1", "-u", "u", "--password-stdin"], "pw\n"),
        (["build", str(FIXTURES / "hello-root"), "--toolchain", "u:hunter2secret@127.0.0.1:1"], None),
        (["build", str(FIXTURES / "hello-root"), "--toolchain", "//u:hunter2secret@127.0.0.1:1/x"], None),
    ):
        proc = ocibake(*argv, "-v", env=env, stdin=stdin)
        assert proc.returncode == 4, (argv, proc.stderr)
        assert "hunter2secret" not in proc.stdout + proc.stderr and "credentials" in proc.stderr


def test_json_output_stays_json_when_the_first_repository_fails(plain_registry, tmp_path):
    import json

    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake(
        "push",
        str(layout),
        f"127.0.0.1:{free_port()}/y",
        f"{plain_registry.host}/ok/c",
        "--json",
        env=base_env(tmp_path / "h"),
    )
    assert proc.returncode == 5
    doc = json.loads(proc.stdout)
    assert doc["references"] == [] and "cannot connect" in doc["error"]["message"]


def test_a_ca_named_for_a_plain_http_loopback_registry_is_never_dropped_for_plain_http(plain_registry, tmp_path):
    """Naming a CA says the registry speaks TLS: a plain-HTTP one on loopback is refused, not used over HTTP."""
    from registry_servers import make_ca

    ca = make_ca(tmp_path / "ca")["ca"]
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    proc = ocibake(
        "push",
        str(layout),
        f"{plain_registry.host}/named/app",
        "--ca-cert",
        str(ca),
        "-v",
        env=base_env(tmp_path / "h"),
    )
    line = _error_line(proc.stderr)
    assert proc.returncode == 5 and "does not seem to speak TLS" in line and "drop --ca-cert" in proc.stderr
    assert "GET http://" not in proc.stderr


def test_a_port_that_speaks_neither_http_nor_tls(tmp_path):
    """Something else on the port (an SSH banner): said in words, not as TLS's "wrong version number"."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))

    def banner() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    threading.Thread(target=banner, daemon=True).start()
    try:
        layout = tmp_path / "layout"
        write_layout(layout, tags=("v1",))
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        proc = ocibake("push", str(layout), f"{host}/x/app", env=base_env(tmp_path / "h"))
        line = _error_line(proc.stderr)
        assert proc.returncode == 5 and "cannot connect" in line and "wrong version number" not in line, line
    finally:
        listener.close()
