"""ocibake as rootless CI runners run it: a non-root account inside `unshare -r -n` (a user namespace with no
network), where every file of an unmapped user (root's /, /home, /tmp) shows as the overflow uid, and a uid with no
passwd entry and no HOME. The images are those root builds from the same source, digest for digest, and the cache's
safety check still refuses what others could write to, with a hint that works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from busybox_base import build_busybox_base
from conftest import FIXTURES, build, require, run_cli
from rootless import NO_PASSWD_UID, Account, ocibake_rootless, open_path_to, rootless_env, run_rootless

BUILDS = {
    "production": ("--version", "v1"),
    "production-alpine": ("--version", "v1", "--target", "production-alpine"),
    "two-platforms": ("--version", "v1", "--platform", "linux/amd64,linux/arm64", "--upx", "off"),
}


def _open_tree(path: Path) -> None:
    for p in (path, *path.rglob("*")):
        p.chmod(p.stat().st_mode | 0o555 if p.is_dir() else p.stat().st_mode | 0o444)


@pytest.fixture(scope="module")
def shared(tmp_path_factory, rootless_account: Account) -> Path:
    """A world-readable place (not a git checkout, so both sides see the same SOURCE_DATE_EPOCH) with the service
    and a base image layout; each side writes its own output directory."""
    root = tmp_path_factory.mktemp("rootless")
    root.chmod(0o755)
    for uid in (rootless_account.uid, NO_PASSWD_UID):
        open_path_to(root, uid)
    shutil.copytree(FIXTURES / "hello-root", root / "hello")
    build_busybox_base(root / "bases" / "busybox")
    _open_tree(root)
    return root


def _args(shared: Path, name: str) -> list[str]:
    args = list(BUILDS[name])
    if name == "production-alpine":
        args += ["--base", f"oci:{shared / 'bases' / 'busybox'}:latest"]
    return args


@pytest.fixture(scope="module")
def root_digests(shared, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("as-root")
    env = {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("root-cache"))}
    return {name: build(shared / "hello", out / name, *_args(shared, name), env=env, timeout=900)[0] for name in BUILDS}


def _writable_by(uid: int, path: Path) -> Path:
    """A directory of ``uid``'s, which it can reach (an ACL entry on the test's directories above it)."""
    open_path_to(path, uid)
    path.mkdir(mode=0o700)
    os.chown(path, uid, uid)
    return path


def _digest(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1].split("@", 1)[1]


@pytest.fixture(scope="module")
def account_dirs(rootless_account: Account, tmp_path_factory) -> tuple[Path, Path]:
    """The account's HOME (its go and ocibake caches start empty) and output directory, kept for the module."""
    base = tmp_path_factory.mktemp("account")
    return _writable_by(rootless_account.uid, base / "home"), _writable_by(rootless_account.uid, base / "out")


def test_the_account_builds_every_image_in_a_namespace_without_network_as_root_does(
    rootless_account: Account, shared, root_digests, account_dirs
):
    """The cache under the account's own home, below /home (the overflow uid in the namespace): the issue's case."""
    home, out = account_dirs
    digests = {}
    for name in BUILDS:
        proc = ocibake_rootless(
            "build",
            str(shared / "hello"),
            "--output",
            str(out / name),
            *_args(shared, name),
            account=rootless_account,
            network=False,
            env={"HOME": str(home)},
            timeout=900,
        )
        assert "not private" not in proc.stderr
        digests[name] = _digest(proc)
    assert digests == root_digests
    assert (home / ".cache" / "ocibake").stat().st_mode & 0o777 == 0o700


def test_in_bubblewrap_and_with_network_the_account_builds_pushes_and_audits(
    rootless_account: Account, shared, root_digests, account_dirs, plain_registry
):
    """bubblewrap's own user namespace (the account keeps its uid; root's files show as the overflow uid), then a
    push to the loopback registry and an audit of what was pushed, from `unshare -r` with network."""
    home, out = account_dirs
    env = rootless_env(home)
    argv = [sys.executable, "-m", "ocibake", "build", str(shared / "hello"), "--output", str(out / "bwrap")]
    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={rootless_account.uid}",
            f"--regid={rootless_account.gid}",
            "--init-groups",
            "--",
            require("bwrap"),
            "--unshare-user",
            "--unshare-net",
            "--dev-bind",
            "/",
            "/",
            "--proc",
            "/proc",
            "--",
            *argv,
            *_args(shared, "production"),
        ],
        check=False,
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert _digest(proc) == root_digests["production"]
    ref = f"{plain_registry.host}/rootless/hello"
    kw = {"account": rootless_account, "network": True, "env": {"HOME": str(home)}, "timeout": 900}
    pushed = ocibake_rootless("push", str(out / "bwrap"), ref, **kw)
    assert pushed.returncode == 0, pushed.stderr
    audit = ocibake_rootless("audit", f"{ref}:v1", "--source", str(shared / "hello"), **kw)
    assert audit.returncode == 0, audit.stderr


def test_a_uid_without_passwd_entry_or_home_builds_with_a_temporary_cache_said_once(shared, root_digests, tmp_path):
    out = _writable_by(NO_PASSWD_UID, tmp_path / "out")
    tmp = tmp_path / "tmp"
    open_path_to(tmp, NO_PASSWD_UID)
    tmp.mkdir(mode=0o1777)
    tmp.chmod(0o1777)
    proc = ocibake_rootless(
        "build",
        str(shared / "hello"),
        "--output",
        str(out / "production"),
        *_args(shared, "production"),
        account=None,
        network=False,
        env={"TMPDIR": str(tmp)},
        timeout=900,
    )
    assert _digest(proc) == root_digests["production"]
    cache = tmp / f"ocibake-cache-{NO_PASSWD_UID}"
    assert proc.stderr.count(f"using the temporary cache {cache}") == 1, proc.stderr
    assert "HOME is not set" in proc.stderr
    assert cache.stat().st_uid == NO_PASSWD_UID and cache.stat().st_mode & 0o777 == 0o700
    assert (cache / "go" / "build").is_dir()  # go's own cache, which HOME would have held


def test_an_unsafe_cache_is_refused_with_a_hint_that_works(rootless_account: Account, tmp_path):
    """Inside the namespace: a directory of the account's that others may write is refused with `chmod go-w`, which
    then works; outside: a cache below another user's directory is refused, and the XDG_CACHE_HOME the hint names
    works."""
    home = _writable_by(rootless_account.uid, tmp_path / "home")
    shared_dir = _writable_by(rootless_account.uid, tmp_path / "shared")
    shared_dir.chmod(0o777)
    info = ("cache", "info")
    env = {"HOME": str(home), "XDG_CACHE_HOME": str(shared_dir / "c")}
    refused = ocibake_rootless(*info, account=rootless_account, network=False, env=env)
    assert refused.returncode == 4 and "may be written by others" in refused.stderr
    assert f"`chmod go-w {shared_dir}`" in refused.stderr, refused.stderr
    shared_dir.chmod(0o755)  # what the hint says
    assert ocibake_rootless(*info, account=rootless_account, network=False, env=env).returncode == 0

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NO_PASSWD_UID, NO_PASSWD_UID)
    own_home = tmp_path / "root-home"
    own_home.mkdir()
    env = {"HOME": str(own_home), "XDG_CACHE_HOME": str(theirs)}
    proc = run_cli(*info, env=env)
    assert proc.returncode == 4 and f"belongs to another user (uid {NO_PASSWD_UID})" in proc.stderr
    assert "chmod" not in proc.stderr and f"`export XDG_CACHE_HOME={own_home / '.cache'}`" in proc.stderr
    assert run_cli(*info, env={**env, "XDG_CACHE_HOME": str(own_home / ".cache")}).returncode == 0


def test_the_overflow_uid_counts_as_an_outside_owner_only_inside_a_user_namespace(rootless_account: Account):
    code = (
        "from ocibake.toolchain import userns; "
        "print(userns.in_user_namespace(), userns.unmapped_owner(userns.overflow_uid()), userns.host_uid())"
    )
    proc = run_rootless([sys.executable, "-c", code], account=rootless_account, network=False)
    assert proc.stdout.split() == ["True", "True", str(rootless_account.uid)], proc.stderr
    host = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert host.stdout.split() == ["False", "False", str(os.geteuid())]
