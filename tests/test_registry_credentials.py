"""Credentials from every source, `ocibake login`, and no secret in any output (every command with -v)."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from registry_servers import PASSWORD, USER, write_layout
from regtools import base_env, ocibake, reg_args, reg_env


def _auth_json(reg) -> dict:
    return {"auths": {reg.host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}


def _push_ok(reg, tmp_path, env, *extra, stdin=None):
    layout = tmp_path / "layout"
    if not layout.exists():
        write_layout(layout, tags=("v1",))
    proc = ocibake("push", str(layout), f"{reg.host}/creds/app", *extra, *reg_args(reg), env=env, stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_docker_config_honours_docker_config_env(mode, request, tmp_path):
    reg = request.getfixturevalue(f"{mode}_registry")
    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps(_auth_json(reg)))
    _push_ok(reg, tmp_path, {**base_env(tmp_path / "home"), "DOCKER_CONFIG": str(cfg)})


def test_podman_auth_files(basic_registry, tmp_path):
    reg = basic_registry
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps(_auth_json(reg)))
    _push_ok(reg, tmp_path, {**base_env(tmp_path / "home"), "REGISTRY_AUTH_FILE": str(auth)})
    run = tmp_path / "run"
    (run / "containers").mkdir(parents=True)
    (run / "containers" / "auth.json").write_text(json.dumps(_auth_json(reg)))
    _push_ok(reg, tmp_path, {**base_env(tmp_path / "home2"), "XDG_RUNTIME_DIR": str(run)})


@pytest.mark.parametrize("key", ["credHelpers", "credsStore"])
def test_credential_helper_programs(key, token_registry, tmp_path):
    reg = token_registry
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-ocibaketest"
    helper.write_text(
        "#!/bin/sh\nread host\n"
        f'[ "$host" = "{reg.host}" ] || exit 1\n'
        f'echo \'{{"ServerURL":"{reg.host}","Username":"{USER}","Secret":"{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    cfg = tmp_path / "dockercfg"
    cfg.mkdir()
    value = {reg.host: "ocibaketest"} if key == "credHelpers" else "ocibaketest"
    (cfg / "config.json").write_text(json.dumps({key: value}))
    env = {**base_env(tmp_path / "home"), "DOCKER_CONFIG": str(cfg), "PATH": f"{bindir}:{os.environ['PATH']}"}
    _push_ok(reg, tmp_path, env)


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_login_stores_into_docker_config_then_push_uses_it(mode, request, tmp_path):
    reg = request.getfixturevalue(f"{mode}_registry")
    env = base_env(tmp_path / "home")
    bad = ocibake("login", reg.host, "-u", USER, "--password-stdin", env=env, stdin="nope\n")
    assert bad.returncode == 5 and "UNAUTHORIZED" in bad.stderr
    assert not (tmp_path / "home" / ".docker" / "config.json").exists()
    proc = ocibake("login", reg.host, "-u", USER, "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "asks for no credentials" not in proc.stderr
    config = tmp_path / "home" / ".docker" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert (
        json.loads(config.read_text())["auths"][reg.host]["auth"]
        == base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    )
    _push_ok(reg, tmp_path, env)


def test_login_to_a_registry_without_auth_says_nothing_was_checked(plain_registry, tmp_path):
    proc = ocibake(
        "login",
        plain_registry.host,
        "-u",
        USER,
        "--password-stdin",
        env=base_env(tmp_path / "home"),
        stdin=PASSWORD + "\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "asks for no credentials" in proc.stderr and PASSWORD not in proc.stderr


def test_username_with_password_stdin(basic_registry, tmp_path):
    _push_ok(
        basic_registry, tmp_path, base_env(tmp_path / "home"), "-u", USER, "--password-stdin", stdin=PASSWORD + "\n"
    )


def test_password_is_never_an_argument(basic_registry, tmp_path):
    proc = ocibake("login", basic_registry.host, "-u", USER, env=base_env(tmp_path / "home"))
    assert proc.returncode == 2


@pytest.mark.parametrize("mode", ["basic", "token"])
def test_no_secret_in_any_output_with_verbose(mode, request, tmp_path):
    reg = request.getfixturevalue(f"{mode}_registry")
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",), platforms=("linux/amd64", "linux/arm64"))
    home = tmp_path / "home"
    env = base_env(home)
    envcreds = {**env, "OCIBAKE_USERNAME": USER, "OCIBAKE_PASSWORD": PASSWORD}
    outputs = []

    def run(*args, env=env, stdin=None):
        proc = ocibake(*args, "-v", *reg_args(reg), env=env, stdin=stdin)
        outputs.append((args, proc.returncode, proc.stdout + proc.stderr))
        return proc

    assert run("login", reg.host, "-u", USER, "--password-stdin", stdin=PASSWORD).returncode == 0
    assert run("push", str(layout), f"{reg.host}/secret/app").returncode == 0  # from the stored config
    assert (
        run("push", str(layout), f"{reg.host}/secret/two", "--mount-from", "secret/app", env=envcreds).returncode == 0
    )
    assert (
        run(
            "push", str(layout), f"{reg.host}/secret/app", "--json", "-u", USER, "--password-stdin", stdin=PASSWORD
        ).returncode
        == 0
    )
    assert run("pull", f"{reg.host}/secret/app:v1", str(tmp_path / "pulled"), env=envcreds).returncode == 0
    assert (
        run(
            "pull", f"{reg.host}/secret/app:v1", str(tmp_path / "pulled2"), "--platform", "linux/arm64", "--json"
        ).returncode
        == 0
    )
    # failures too: wrong password, and a missing tag
    assert (
        run(
            "push", str(layout), f"{reg.host}/secret/app", "-u", USER, "--password-stdin", stdin=PASSWORD + "x"
        ).returncode
        == 5
    )
    assert run("pull", f"{reg.host}/secret/app:nope", str(tmp_path / "p3"), env=envcreds).returncode == 5
    assert run("login", reg.host, "-u", USER, "--password-stdin", stdin=PASSWORD + "x").returncode == 5
    assert any("> PUT" in text for _, _, text in outputs)  # -v really traced the requests
    secrets = reg.secrets
    if mode == "token":
        assert reg.token_server.tokens
    for args, _code, text in outputs:
        for s in secrets:
            assert s not in text, f"secret leaked by {args}"
        assert "Authorization: Basic" not in text and "Bearer ey" not in text


def test_half_of_the_environment_credentials_is_an_error(basic_registry, tmp_path):
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",))
    env = {**reg_env(basic_registry, tmp_path / "home", creds=False), "OCIBAKE_USERNAME": "ci"}
    proc = ocibake("push", str(layout), f"{basic_registry.host}/half/app", env=env)
    assert proc.returncode == 4 and "OCIBAKE_USERNAME is set but OCIBAKE_PASSWORD is not" in proc.stderr
