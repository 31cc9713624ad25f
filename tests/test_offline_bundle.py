"""The air-gapped round trip: `ocibake bundle` on a connected machine (modules from a GOPROXY=file:// directory the
test makes, since tests have no internet; Delve for two platforms), then `ocibake build --offline` as a non-root user
in a user namespace with no network and empty go and ocibake caches: the same digests as the connected builds.
A changed file fails `bundle --check`; a module that is missing is named, with how to get it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, build, run_cli
from regtools import go_caches
from rootless import Account, ocibake_rootless, open_path_to

GREET = "example.com/greet"
GREET_VERSION = "v1.0.0"
GREET_GO = 'package greet\n\n// Hello is what the service says.\nfunc Hello() string { return "hello from greet" }\n'
DEP_GO = f'package main\n\nimport "{GREET}"\n\nvar fromGreet = greet.Hello()\n'
SERVICES = ("plain", "withdep")
DEV = ("--target", "development", "--platform", "linux/amd64,linux/arm64")


def make_file_proxy(root: Path) -> Path:
    """A module proxy in GOPROXY=file:// form holding example.com/greet v1.0.0."""
    versions = root / GREET / "@v"
    versions.mkdir(parents=True)
    (versions / "list").write_text(f"{GREET_VERSION}\n")
    (versions / f"{GREET_VERSION}.info").write_text(
        json.dumps({"Version": GREET_VERSION, "Time": "2026-01-01T00:00:00Z"})
    )
    mod = f"module {GREET}\n\ngo 1.21\n"
    (versions / f"{GREET_VERSION}.mod").write_text(mod)
    with zipfile.ZipFile(versions / f"{GREET_VERSION}.zip", "w") as z:
        z.writestr(f"{GREET}@{GREET_VERSION}/go.mod", mod)
        z.writestr(f"{GREET}@{GREET_VERSION}/greet.go", GREET_GO)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory, rootless_account: Account) -> dict:
    """The two services (one needing example.com/greet, not vendored, go.sum complete), the proxy, and the
    connected machine's environment: the proxy first, then the suite's module cache (Delve's module is there)."""
    root = tmp_path_factory.mktemp("airgap")
    root.chmod(0o755)
    open_path_to(root / "x", rootless_account.uid)
    proxy = make_file_proxy(root / "proxy")
    shutil.copytree(FIXTURES / "hello-root", root / "plain")
    shutil.copytree(FIXTURES / "hello-root", root / "withdep")
    (root / "withdep" / "dep.go").write_text(DEP_GO)
    caches = go_caches()
    goproxy = f"file://{proxy}"
    if "GOMODCACHE" in caches:
        goproxy += f",file://{caches['GOMODCACHE']}/cache/download"
    env = {"GOPROXY": goproxy, "GONOSUMDB": GREET, "GOFLAGS": "-mod=mod", "XDG_CACHE_HOME": str(root / "cache")}
    env.update(caches)
    tidy = subprocess.run(
        ["go", "mod", "tidy"],
        check=False,
        cwd=root / "withdep",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert tidy.returncode == 0, tidy.stderr
    assert GREET in (root / "withdep" / "go.sum").read_text()
    env.pop("GOFLAGS")
    for p in (root, *root.rglob("*")):
        p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
    return {"root": root, "env": env}


@pytest.fixture(scope="module")
def connected(world) -> dict[str, str]:
    root, env = world["root"], world["env"]
    out = root / "connected"
    digests = {name: build(root / name, out / name, "--version", "v1", env=env, timeout=900)[0] for name in SERVICES}
    digests["dev"] = build(root / "plain", out / "dev", "--version", "v1", *DEV, env=env, timeout=1800)[0]
    return digests


@pytest.fixture(scope="module")
def bundle(world, connected) -> Path:
    root, env = world["root"], world["env"]
    dest = root / "bundle"
    args = ("bundle", str(root / "plain"), str(root / "withdep"), "--output", str(dest), *DEV)
    proc = run_cli(*args, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(dest)
    for p in (dest, *dest.rglob("*")):
        p.chmod(p.stat().st_mode | (0o555 if p.is_dir() else 0o444))
    return dest


def test_the_bundle_holds_the_modules_and_delve_and_checks_intact(bundle):
    doc = json.loads((bundle / "bundle.json").read_text())
    assert f"{GREET}@{GREET_VERSION}" in doc["modules"]
    assert doc["delve"]["platforms"] == ["amd64", "arm64"]
    assert (bundle / "goproxy" / GREET / "@v" / f"{GREET_VERSION}.zip").is_file()
    check = run_cli("bundle", "--check", str(bundle))
    assert check.returncode == 0 and "files intact" in check.stdout, check.stderr


def test_offline_builds_as_a_non_root_user_with_no_network_give_the_connected_digests(
    world, connected, bundle, rootless_account: Account, tmp_path
):
    open_path_to(tmp_path / "x", rootless_account.uid)
    home = tmp_path / "home"
    out = tmp_path / "out"
    for d in (home, out):
        d.mkdir()
        os.chown(d, rootless_account.uid, rootless_account.gid)
    root = world["root"]
    digests = {}
    runs = [(name, root / name, ("--version", "v1")) for name in SERVICES]
    runs.append(("dev", root / "plain", ("--version", "v1", *DEV)))
    for name, service, args in runs:
        proc = ocibake_rootless(
            "build",
            str(service),
            "--output",
            str(out / name),
            "--offline",
            str(bundle),
            *args,
            account=rootless_account,
            network=False,
            env={"HOME": str(home)},  # empty go and ocibake caches
            timeout=1800,
        )
        assert proc.returncode == 0, proc.stderr
        digests[name] = proc.stdout.strip().splitlines()[-1].split("@", 1)[1]
    assert digests == connected
    assert not (home / ".cache" / "ocibake" / "delve").exists()  # Delve came from the bundle


def test_a_changed_file_fails_the_check_and_is_named(bundle, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    victim = copy / "goproxy" / GREET / "@v" / f"{GREET_VERSION}.mod"
    victim.chmod(0o644)
    victim.write_text(victim.read_text() + "// changed\n")
    proc = run_cli("bundle", "--check", str(copy))
    assert proc.returncode == 4
    assert f"goproxy/{GREET}/@v/{GREET_VERSION}.mod has changed" in proc.stderr


def test_a_missing_module_is_named_with_the_ways_to_get_it(world, bundle, tmp_path):
    root = world["root"]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "GOMODCACHE": str(tmp_path / "mod"), "GOPROXY": "off"}
    env["GOCACHE"] = go_caches().get("GOCACHE", str(tmp_path / "gocache"))
    proc = run_cli("build", str(root / "withdep"), "--output", str(tmp_path / "o"), "--upx", "off", env=env)
    assert proc.returncode == 3
    assert f"module {GREET} {GREET_VERSION} is missing" in proc.stderr, proc.stderr
    assert "go mod vendor" in proc.stderr and "ocibake bundle" in proc.stderr

    partial = tmp_path / "partial"
    made = run_cli("bundle", str(root / "plain"), "--output", str(partial), env={**world["env"]})
    assert made.returncode == 0, made.stderr
    offline = run_cli(
        "build", str(root / "withdep"), "--output", str(tmp_path / "o2"), "--offline", str(partial), env=env
    )
    assert offline.returncode == 3 and f"module {GREET} {GREET_VERSION} is missing" in offline.stderr
    assert f"the bundle {partial} does not hold it" in offline.stderr


@pytest.mark.parametrize(
    ("output", "what"),
    [
        (
            "go: downloading example.com/a v1.2.3\nmain.go:2:8: module lookup disabled by GOPROXY=off\n",
            "module example.com/a v1.2.3",
        ),
        ("go: example.com/b@v0.1.0: module lookup disabled by GOPROXY=off\n", "module example.com/b v0.1.0"),
        (
            (
                "go: example.com/c@v2.0.0: reading file:///b/goproxy/example.com/c/@v/v2.0.0.mod: "
                "no such file or directory\n"
            ),
            "module example.com/c v2.0.0",
        ),
        (
            (
                "main.go:3:2: cannot find module providing package example.com/d/x: "
                "import lookup disabled by -mod=vendor\n"
            ),
            "package example.com/d/x",
        ),
        ("./main.go:5:1: syntax error: unexpected }\n", None),
    ],
)
def test_go_output_that_means_a_missing_module_is_recognised(output, what):
    from ocibake.builder.go_missing import missing_module

    found = missing_module(output)
    assert (found[0] if found else None) == what


def test_a_toolchain_image_takes_the_modules_from_the_bundle_in_its_sandbox(
    world, bundle, toolchain, toolchain_cache_env, tmp_path
):
    """No --network: the sandbox has GOPROXY=off, except for the bundle's goproxy/ bound read-only into it."""
    ref, _ = toolchain
    service = world["root"] / "withdep"
    args = ("build", str(service), "--toolchain", ref, "--upx", "off", "--version", "v1")
    without = run_cli(*args, "--output", str(tmp_path / "a"), env={**toolchain_cache_env}, timeout=1800)
    assert without.returncode == 3 and f"module {GREET} {GREET_VERSION} is missing" in without.stderr
    offline = run_cli(
        *args, "--output", str(tmp_path / "b"), "--offline", str(bundle), env=toolchain_cache_env, timeout=1800
    )
    assert offline.returncode == 0, offline.stderr
    assert "--version: " in offline.stderr and "v1" in offline.stderr


def test_a_registry_base_comes_from_the_bundle_by_the_digest_it_pinned(world, plain_registry, tmp_path):
    from busybox_base import build_busybox_base

    root, env = world["root"], world["env"]
    build_busybox_base(tmp_path / "busybox")
    base = f"{plain_registry.host}/bases/busybox:latest"
    pushed = run_cli("push", str(tmp_path / "busybox"), base.rsplit(":", 1)[0], env=env)
    assert pushed.returncode == 0, pushed.stderr
    alpine = ("--version", "v1", "--target", "production-alpine", "--base", base)
    connected, _ = build(root / "plain", tmp_path / "connected", *alpine, env=env, timeout=900)
    dest = tmp_path / "bundle"
    made = run_cli("bundle", str(root / "plain"), "--base", base, "--output", str(dest), "--json", env=env)
    assert made.returncode == 0, made.stderr
    assert list(json.loads(made.stdout)["images"]) == [base]

    plain_registry.stop()  # offline means the registry is never asked
    try:
        offline, _ = build(root / "plain", tmp_path / "offline", *alpine, "--offline", str(dest), env=env)
        assert offline == connected
        other = run_cli(
            "build",
            str(root / "plain"),
            "--output",
            str(tmp_path / "arm"),
            *alpine,
            "--platform",
            "linux/arm64",
            "--offline",
            str(dest),
            env=env,
        )
        assert other.returncode == 4 and f"holds no base image {base}" in other.stderr
        assert f"--base {base} --platform linux/arm64" in other.stderr
    finally:
        plain_registry.start()
