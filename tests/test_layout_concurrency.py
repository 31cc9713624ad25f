"""Several processes writing one OCI layout at once (three real `ocibake build`s and an `ocibake pull`, ten rounds,
the first into a directory that does not exist yet) never lose each other's tags or blobs: afterwards every tag is
there, skopeo and umoci read each one, every blob hashes to its name, and no blob or stage is left over."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES, REPO, require
from registry_servers import write_layout
from regtools import base_env, ocibake

REF = "org.opencontainers.image.ref.name"
ROUNDS = 10


def start(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ocibake", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reachable(layout: Path) -> set[str]:
    seen: set[str] = set()
    stack = list(json.loads((layout / "index.json").read_text())["manifests"])
    while stack:
        d = stack.pop()
        if d["digest"] in seen:
            continue
        seen.add(d["digest"])
        if d["mediaType"].endswith(("manifest.v1+json", "index.v1+json")):
            doc = json.loads((layout / "blobs" / "sha256" / d["digest"][7:]).read_bytes())
            stack += doc.get("manifests", []) + doc.get("layers", []) + ([doc["config"]] if "config" in doc else [])
    return seen


def test_concurrent_builds_and_a_pull_keep_every_tag_and_blob(plain_registry, tmp_path):
    require("skopeo"), require("umoci"), require("go")
    env = base_env(tmp_path / "home")
    for k in range(ROUNDS):  # one small image per round to pull, each with its own blobs
        src = tmp_path / f"src{k}"
        write_layout(src, tags=(f"p{k}",), layer_sizes=(20_000,), seed=k)
        pushed = ocibake("push", str(src), f"{plain_registry.host}/conc/pulled", env=env)
        assert pushed.returncode == 0, pushed.stderr
    layout = tmp_path / "out" / "layout"  # round 0: neither the layout nor its parent exists yet
    expected: dict[str, str] = {}
    for k in range(ROUNDS):
        common = ["--output", str(layout), "--upx", "off"]
        procs = {
            # "a" and "b" move every round (the old image's blobs become garbage); "cK" and "pK" accumulate
            "a": start(["build", str(FIXTURES / "hello-root"), *common, "--version", f"v{k}", "--tag", "a"], env),
            "b": start(["build", str(FIXTURES / "cmd-main"), *common, "--version", f"v{k}", "--tag", "b"], env),
            f"c{k}": start(
                ["build", str(FIXTURES / "hello-root"), *common, "--version", f"v{k}-c", "--tag", f"c{k}"], env
            ),
            f"p{k}": start(["pull", f"{plain_registry.host}/conc/pulled:p{k}", str(layout)], env),
        }
        for tag, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"round {k}, {tag}: {err}"
            expected[tag] = out.strip().splitlines()[-1].split("@", 1)[1]
        index = json.loads((layout / "index.json").read_text())
        tags = {m["annotations"][REF]: m["digest"] for m in index["manifests"] if "annotations" in m}
        assert tags == expected, f"round {k}"
    for tag, digest in expected.items():
        inspect = subprocess.run(
            ["skopeo", "inspect", "--format", "{{.Digest}}", f"oci:{layout}:{tag}"],
            check=False,
            capture_output=True,
            text=True,
        )
        assert inspect.returncode == 0 and inspect.stdout.strip() == digest, inspect.stderr
        stat = subprocess.run(
            ["umoci", "stat", "--image", f"{layout}:{tag}"],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert stat.returncode == 0, stat.stdout
    blobs = {}
    for p in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
        blobs["sha256:" + p.name] = p
    assert set(blobs) == reachable(layout), "orphaned or missing blobs"
    assert [p.name for p in layout.iterdir()] and not [p for p in layout.iterdir() if p.name.startswith(".")]
    assert [p.name for p in layout.parent.iterdir()] == ["layout"]
