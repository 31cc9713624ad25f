"""pytest fixtures for the registry tests: import them into a test module (``from conftest_registry import *``).

Session-scoped registries in four modes (started once: each start costs ~0.2 s), function-scoped ones where a test
stops, restarts or counts requests.
"""

from __future__ import annotations

import pytest

from registry_servers import FaultProxy, Registry, start_registry

__all__ = [
    "any_registry",
    "basic_registry",
    "fresh_registry",
    "hostile_realm_registry",
    "plain_registry",
    "proxied_registry",
    "short_token_registry",
    "tls_registry",
    "token_registry",
]


def _started(tmp_path_factory, mode: str, **kw):
    return start_registry(mode, tmp_path_factory.mktemp(f"registry-{mode}"), **kw)


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory):
    reg = _started(tmp_path_factory, "plain")
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory):
    reg = _started(tmp_path_factory, "basic")
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory):
    reg = _started(tmp_path_factory, "tls")
    yield reg
    reg.close()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory):
    reg = _started(tmp_path_factory, "token")
    yield reg
    reg.close()


@pytest.fixture(params=["plain", "basic", "tls", "token"])
def any_registry(request) -> Registry:
    return request.getfixturevalue(f"{request.param}_registry")


@pytest.fixture
def fresh_registry(tmp_path):
    reg = start_registry("plain", tmp_path / "registry")
    yield reg
    reg.close()


@pytest.fixture
def proxied_registry(fresh_registry):
    """(registry, proxy): a plain registry of its own behind a fault-injecting proxy."""
    proxy = FaultProxy(fresh_registry)
    yield fresh_registry, proxy
    proxy.close()


@pytest.fixture
def short_token_registry(tmp_path):
    """A token registry whose tokens expire after 2 seconds."""
    reg = start_registry("token", tmp_path / "registry", token_expiry=2)
    yield reg
    reg.close()


@pytest.fixture
def hostile_realm_registry(tmp_path):
    """A TLS registry whose Bearer realm is a plain-HTTP server on another port that records what it receives."""
    reg = start_registry("hostile-realm", tmp_path / "registry")
    yield reg
    reg.close()
