"""Pulls ride through the faults pushes ride through: a proxy in front of a real registry cuts responses (before the
answer, and in the middle of its body), answers 500, 502 and 429, and stalls, in 20 seeded rounds plus the two cases
the hostile probe found (a manifest GET cut mid-body; 500 then two 429s on /v2/). Every first pull completes with
the right digest, and a pull into an existing layout leaves it intact (`ocibake layout check`) whatever happens."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from registry_servers import write_layout
from regtools import base_env, ocibake

ROUNDS = 20
KINDS = (
    ("status", 500, {}),
    ("status", 502, {}),
    ("status", 429, {"Retry-After": "0"}),
    ("cut", 0),
    ("cut-response", 100),
    ("delay", 1.0),
)
MAX_FAULTS_PER_REQUEST = 3  # within the retry budget (OCIBAKE_REGISTRY_RETRIES=5 in base_env)


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def seeded_faults(seed: int):
    """A fault() for the proxy: each request of this round is faulted with probability 0.35, at most
    MAX_FAULTS_PER_REQUEST times for one method and path; a cut response only where there is a body to cut."""
    rnd = random.Random(seed)
    counts: dict[tuple[str, str], int] = {}

    def fault(method: str, path: str):
        key = (method, path)
        if counts.get(key, 0) >= MAX_FAULTS_PER_REQUEST or rnd.random() > 0.35:
            return None
        kind = rnd.choice(KINDS)
        if kind[0] == "cut-response" and (method != "GET" or path == "/v2/"):
            kind = ("status", 502, {})
        counts[key] = counts.get(key, 0) + 1
        return kind

    return fault


def scripted_faults(script: dict[tuple[str, str], list]):
    """A fault() answering the listed faults, in order, to the requests whose path contains the given part."""
    left = {k: list(v) for k, v in script.items()}

    def fault(method: str, path: str):
        for (m, part), actions in left.items():
            if m == method and part in path and actions:
                return actions.pop(0)
        return None

    return fault


@pytest.fixture
def pushed(proxied_registry, tmp_path):
    reg, proxy = proxied_registry
    src = tmp_path / "src"
    info = write_layout(src, tags=("v1", "v2"), layer_sizes=(200_000, 30_000), seed=8)
    env = base_env(tmp_path / "home")
    proc = ocibake("push", str(src), f"{reg.host}/faults/app", env=env)
    assert proc.returncode == 0, proc.stderr
    other = tmp_path / "other"
    write_layout(other, tags=("old",), layer_sizes=(20_000,), seed=9)
    assert ocibake("push", str(other), f"{reg.host}/faults/app", env=env).returncode == 0
    return proxy, info, env


def pull(proxy, tag: str, dest: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ocibake", "pull", f"{proxy.host}/faults/app:{tag}", str(dest)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tagged(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    return next(m["digest"] for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag)


def test_the_probes_two_cases_are_retried(pushed, tmp_path):
    proxy, info, env = pushed
    proxy.fault = scripted_faults(
        {
            ("GET", "/v2/"): [("status", 500, {}), ("status", 429, {"Retry-After": "0"}), ("status", 429, {})],
            ("GET", "/manifests/v1"): [("cut-response", 40)],
            ("GET", "/blobs/"): [("cut-response", 1000)],
        }
    )
    proc = pull(proxy, "v1", tmp_path / "pulled", env)
    assert proc.returncode == 0, proc.stderr
    assert tagged(tmp_path / "pulled", "v1") == info["manifest"]
    assert "response cut short" in proc.stderr or "connection error" in proc.stderr, proc.stderr
    gets = [s.path for s in proxy.seen if s.method == "GET"]
    assert gets.count("/v2/") >= 4 and sum("/manifests/v1" in p for p in gets) >= 2, gets


@pytest.mark.slow
def test_seeded_fault_rounds_every_first_pull_completes_and_no_layout_is_damaged(pushed, tmp_path):
    proxy, info, env = pushed
    existing = tmp_path / "existing"
    proxy.fault = lambda m, p: None
    assert pull(proxy, "old", existing, env).returncode == 0
    for seed in range(ROUNDS):
        proxy.fault = seeded_faults(seed)
        fresh = tmp_path / f"fresh-{seed}"
        proc = pull(proxy, "v1", fresh, env)
        assert proc.returncode == 0, f"round {seed}: {proc.stderr}"
        assert tagged(fresh, "v1") == info["manifest"], f"round {seed}"
        before = snapshot(existing)
        proc = pull(proxy, "v2" if seed % 2 else "v1", existing, env)
        if proc.returncode != 0:
            assert snapshot(existing) == before, f"round {seed}: a failed pull changed the layout"
        check = ocibake("layout", "check", str(existing), env=env)
        assert check.returncode == 0, f"round {seed}: {check.stdout}{check.stderr}"
