"""The redactor hides secrets, not text that only looks like one: every string ocibake can print (each literal and
f-string of the package, its placeholders filled in) comes out of redact() unchanged, while a password in a URL, an
Authorization header, a bearer token and the auth fields of a docker config.json are still replaced; and a real
failed login does not show the password anywhere. Real docker-registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ocibake.registry.redact import add_secret, redact
from registry_servers import PASSWORD, USER
from regtools import base_env, ocibake

SRC = Path(__file__).resolve().parent.parent / "src" / "ocibake"
FILLERS = ("value", "sha256:" + "0" * 64, "127.0.0.1:5000/team/app")


def printable_strings() -> list[tuple[str, str]]:
    """(where, text) for every string literal and f-string in the package, each placeholder filled in by each of
    FILLERS: messages, hints, help texts, log lines and report lines are all among them."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((f"{path.name}:{node.lineno}", node.value))
            elif isinstance(node, ast.JoinedStr):
                for filler in FILLERS:
                    text = "".join(v.value if isinstance(v, ast.Constant) else filler for v in node.values)
                    found.append((f"{path.name}:{node.lineno}", text))
    return found


def test_every_string_ocibake_can_print_survives_the_redactor():
    strings = printable_strings()
    assert len(strings) > 5000  # the walk really saw the package
    changed = [(where, text, redact(text)) for where, text in strings if redact(text) != text]
    # the three that must change: the Authorization header values themselves (`f"Basic {b64}"`, `f"Bearer {token}"`)
    assert {text.split()[0] for _, text, _ in changed} <= {"Basic", "Bearer"}, changed
    assert len(changed) <= 3, changed
    # the ones the redactor used to rewrite
    for hint in (
        "pass it: --toolchain REGISTRY/REPO@sha256:... (or oci:DIR@...)",
        "one REPO:TAG@DIGEST line per pushed tag",
        "registry.example.com: bearer challenge without a realm",
        "a layout, oci:DIR[:TAG|@DIGEST]",
        "git@github.com:team/app.git",
    ):
        assert redact(hint) == hint


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET https://ci:s3cr3t-Pass@registry.example.com/v2/ failed", "s3cr3t-Pass"),
        ("origin ci:s3cr3t-Pass@registry.example.com/team/app", "s3cr3t-Pass"),
        ("pushing to ci:s3cr3t-Pass@localhost:5000/app", "s3cr3t-Pass"),
        ("pushing to ci:s3cr3t-Pass@127.0.0.1:5000/app", "s3cr3t-Pass"),
        ("pushing to ci:s3cr3t-Pass@myregistry:5000/app", "s3cr3t-Pass"),
        ("Authorization: Basic Y2k6czNjcjN0LVBhc3M=", "Y2k6czNjcjN0LVBhc3M="),
        ("headers {'Authorization': 'Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln'}", "eyJhbGciOiJFUzI1NiJ9"),
        ("WWW-Authenticate answered: bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln", "eyJzdWIiOiJjaSJ9"),
        ('{"auths": {"registry.example.com": {"auth": "Y2k6czNjcjN0LVBhc3M="}}}', "Y2k6czNjcjN0LVBhc3M="),
        ('{"auths": {"r.example.com": {"identitytoken": "tok-ABC-123"}}}', "tok-ABC-123"),
        ('{"username": "ci", "password": "s3cr3t-Pass"}', "s3cr3t-Pass"),
        ("GET /token?scope=x&access_token=s3cr3t-Pass&service=y", "s3cr3t-Pass"),
    ],
)
def test_secrets_in_urls_headers_and_config_files_are_still_hidden(text, secret):
    assert secret not in redact(text)
    assert "***" in redact(text)


def test_a_registered_secret_is_hidden_wherever_it_appears():
    add_secret("plain-words-password")
    assert redact("the value plain-words-password was refused") == "the value *** was refused"


def test_a_failed_login_shows_its_hint_whole_and_never_the_password(basic_registry, tmp_path):
    env = base_env(tmp_path / "home")
    proc = ocibake(
        "login", basic_registry.host, "-u", USER, "--password-stdin", env=env, stdin="not-" + PASSWORD + "\n"
    )
    assert proc.returncode == 5, proc.stderr
    assert PASSWORD not in proc.stderr + proc.stdout
    assert "***" not in proc.stderr  # nothing in the message or hint looked like a secret
    assert "hint: " in proc.stderr and "--password-stdin" in proc.stderr
