"""Private CAs and client certificates the way podman, skopeo and docker read them: certs.d/HOST:PORT/ with `*.crt`
CAs and `NAME.cert` + `NAME.key` for mutual TLS; OCIBAKE_CA_CERT; `ocibake logout`. No --ca-cert anywhere here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from registry_servers import PASSWORD, USER, Registry, start_registry
from regtools import base_env, ocibake


@pytest.fixture(scope="module")
def tls_basic_registry(tmp_path_factory):
    reg = start_registry("tls-basic", tmp_path_factory.mktemp("registry-tls-basic"))
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def mtls_registry(tmp_path_factory):
    reg = start_registry("mtls", tmp_path_factory.mktemp("registry-mtls"))
    yield reg
    reg.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("svc") / "hello"
    shutil.copytree(FIXTURES / "hello-root", dest)
    return dest


@pytest.fixture(scope="module")
def layout(service, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("layout") / "hello"
    env = {**base_env(tmp_path_factory.mktemp("home")), "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    proc = ocibake("build", str(service), "--output", str(out), "--version", "v1", "--upx", "off", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out


def _env(tmp_path: Path, reg: Registry, files: tuple[str, ...] = ("ca.crt",)) -> dict:
    """HOME, DOCKER_CONFIG and XDG_CONFIG_HOME of the test's own; certs.d for ``reg`` holding ``files``."""
    env = base_env(tmp_path / "home")
    env.update(DOCKER_CONFIG=str(tmp_path / "docker"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    certs = tmp_path / "config" / "containers" / "certs.d" / reg.host
    certs.mkdir(parents=True)
    for name in files:
        shutil.copy(reg.workdir / "tls" / name, certs / name)
    return env


def test_a_ca_only_in_certs_d_serves_login_build_push_pull_and_audit_and_logout_undoes_login(
    tls_basic_registry: Registry, service, tmp_path
):
    reg = tls_basic_registry
    env = _env(tmp_path, reg)
    login = ocibake("login", reg.host, "-u", USER, "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    config = tmp_path / "docker" / "config.json"
    assert reg.host in json.loads(config.read_text())["auths"]

    ref = f"{reg.host}/certs-d/hello"
    args = ("--version", "v1", "--upx", "off")
    built = ocibake(
        "build", str(service), "--output", str(tmp_path / "out"), *args, "--push", ref, env=env, timeout=900
    )
    assert built.returncode == 0, built.stderr
    digest = built.stdout.strip().splitlines()[-1].split("@", 1)[1]
    pulled = ocibake("pull", f"{ref}:v1", str(tmp_path / "pulled"), env=env)
    assert pulled.returncode == 0 and digest in pulled.stdout, pulled.stderr
    audit = ocibake("audit", f"{ref}:v1", "--source", str(service), env=env, timeout=900)
    assert audit.returncode == 0, audit.stderr

    logout = ocibake("logout", reg.host, env=env)
    assert logout.returncode == 0 and f"credentials removed from {config}" in logout.stdout, logout.stderr
    assert reg.host not in json.loads(config.read_text()).get("auths", {})
    again = ocibake("push", str(tmp_path / "out"), f"{ref}-2", env=env)
    assert again.returncode == 5 and "UNAUTHORIZED" in again.stderr
    assert f"ocibake login {reg.host}" in again.stderr
    assert "not logged in" in ocibake("logout", reg.host, env=env).stdout


def test_without_certs_d_the_error_says_where_the_ca_goes_and_ocibake_ca_cert_works(
    tls_basic_registry: Registry, layout, tmp_path
):
    reg = tls_basic_registry
    env = _env(tmp_path, reg, files=())
    env.update(OCIBAKE_USERNAME=USER, OCIBAKE_PASSWORD=PASSWORD)
    ref = f"{reg.host}/env-ca/hello"
    refused = ocibake("push", str(layout), ref, env=env)
    assert refused.returncode == 5 and "TLS certificate not trusted" in refused.stderr
    assert f"{tmp_path / 'config' / 'containers' / 'certs.d' / reg.host}/ca.crt" in refused.stderr
    assert "OCIBAKE_CA_CERT" in refused.stderr
    pushed = ocibake("push", str(layout), ref, env={**env, "OCIBAKE_CA_CERT": str(reg.ca)})
    assert pushed.returncode == 0, pushed.stderr
    missing = ocibake("push", str(layout), ref, env={**env, "OCIBAKE_CA_CERT": str(tmp_path / "none.pem")})
    assert missing.returncode == 4 and f"OCIBAKE_CA_CERT {tmp_path / 'none.pem'} does not exist" in missing.stderr


def test_a_client_certificate_from_certs_d_opens_a_mutual_tls_registry(mtls_registry: Registry, layout, tmp_path):
    reg = mtls_registry
    ref = f"{reg.host}/mtls/hello"
    env = _env(tmp_path / "with", reg, files=("ca.crt", "client.cert", "client.key"))
    pushed = ocibake("push", str(layout), ref, env=env)
    assert pushed.returncode == 0, pushed.stderr
    pulled = ocibake("pull", f"{ref}:v1", str(tmp_path / "pulled"), env=env)
    assert pulled.returncode == 0, pulled.stderr

    no_client = _env(tmp_path / "without", reg)
    refused = ocibake("push", str(layout), ref, env=no_client)
    assert refused.returncode == 5 and "TLS handshake refused (sslv3 alert bad certificate)" in refused.stderr
    assert (
        f"client.cert and client.key in {tmp_path / 'without' / 'config' / 'containers' / 'certs.d' / reg.host}/"
        in (refused.stderr)
    )

    lone = _env(tmp_path / "lone", reg, files=("ca.crt", "client.cert"))
    proc = ocibake("push", str(layout), ref, env=lone)
    assert proc.returncode == 4 and "has no key client.key beside it" in proc.stderr
