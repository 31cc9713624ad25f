"""The token exchange never downgrades: a TLS registry whose Bearer realm is a plain-HTTP server on another port
(a compromised registry, or a man in the middle of its 401) receives no request, and so no password, from any
command; each refuses with exit 5, naming the realm."""

from __future__ import annotations

import pytest

from conftest import FIXTURES
from registry_servers import PASSWORD, skopeo, write_layout
from regtools import ocibake, reg_args, reg_env

HELLO = FIXTURES / "hello-root"
KEY_PASSWORD = "realm-key-pa55"


def _commands(reg, tmp_path) -> dict[str, list[str]]:
    ref = f"{reg.host}/trap/app:v1"
    keys = tmp_path / "keys"
    return {
        "login": ["login", reg.host, "-u", "ci", "--password-stdin"],
        "pull": ["pull", ref, str(tmp_path / "pulled")],
        "push": ["push", str(tmp_path / "layout"), f"{reg.host}/trap/pushed"],
        "build --base": ["build", str(HELLO), "--base", ref, "--upx", "off", "--output", str(tmp_path / "built")],
        "inspect": ["inspect", ref],
        "audit": ["audit", ref, "--source", str(HELLO)],
        "verify": ["verify", ref, "--key", str(keys / "cosign.pub")],
        "sign": ["sign", ref, "--key", str(keys / "cosign.key")],
    }


@pytest.mark.slow
def test_no_command_sends_credentials_to_a_plain_http_realm(hostile_realm_registry, tmp_path):
    reg = hostile_realm_registry
    realm = reg.token_server
    env = {**reg_env(reg, tmp_path / "home"), "COSIGN_PASSWORD": KEY_PASSWORD}
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",), layer_sizes=(2000,), seed=21)
    # the trap works: skopeo (1.9) sends the password in cleartext to the realm, as the probe found
    copied = skopeo("copy", *reg.skopeo_flags(prefix="dest-"), f"oci:{layout}:v1", f"docker://{reg.host}/trap/app:v1")
    assert copied.returncode == 0, copied.stderr
    assert any(auth.startswith("Basic ") for _, auth in realm.received)
    keys = tmp_path / "keys"
    keys.mkdir()
    assert ocibake("generate-key-pair", "--output-dir", str(keys), env=env).returncode == 0
    realm.received.clear()
    for name, argv in _commands(reg, tmp_path).items():
        proc = ocibake(*argv, *reg_args(reg), env=env, stdin=PASSWORD + "\n", timeout=180)
        assert proc.returncode == 5, f"{name}: {proc.stderr}"
        assert f"refusing the token server {realm.realm}" in proc.stderr, f"{name}: {proc.stderr}"
        assert "Traceback" not in proc.stderr and PASSWORD not in proc.stdout + proc.stderr
        assert realm.received == [], f"{name} sent {len(realm.received)} request(s) to the plain-HTTP realm"
    assert not (tmp_path / "home" / ".docker" / "config.json").exists(), "login stored a password it never proved"


def test_a_plain_http_realm_is_fine_for_a_plain_http_registry(token_registry, tmp_path):
    """Loopback registry reached over plain HTTP: its plain-HTTP realm is the user's own choice and still works."""
    reg = token_registry
    layout = tmp_path / "layout"
    write_layout(layout, tags=("v1",), layer_sizes=(2000,), seed=22)
    proc = ocibake("push", str(layout), f"{reg.host}/realm/ok", env=reg_env(reg, tmp_path / "home"))
    assert proc.returncode == 0, proc.stderr
