"""Running ocibake as a non-root user, the way rootless CI runners do: a real unprivileged account of the test
suite's own, inside a user namespace (``unshare -r``) with or without network (``-n``), or as a uid that has no
passwd entry and no HOME (the ``docker run --user 54321`` / OpenShift case).

The suite runs as root. The `rootless_account` fixture creates the account (`ocibake-tester`) once per machine and
lets that one uid traverse the directories that lead to the suite's interpreter and checkout when others may not
(an ACL entry, e.g. for a pyenv Python under /root). Inside the namespace, files of users it does not map (root among
them) show as the overflow uid, exactly as they do for real rootless runners. Coverage is not collected from these
processes: their environment is built from scratch, as a CI job's would be.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

TEST_USER = "ocibake-tester"
NO_PASSWD_UID = 54321
REPO = Path(__file__).resolve().parent.parent
GO_BIN = Path(os.path.realpath(shutil.which("go") or "/usr/local/go/bin/go")).parent


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


def _ensure_account() -> Account:
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        if os.geteuid() != 0:
            pytest.fail(f"user {TEST_USER} is missing and the suite is not root: `useradd --create-home {TEST_USER}`")
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER], check=True)
        entry = pwd.getpwnam(TEST_USER)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def open_path_to(target: Path, uid: int) -> None:
    """Let ``uid`` traverse every directory above ``target`` that others may not traverse, with an ACL entry for
    that uid alone (nothing is opened to anyone else)."""
    for parent in reversed(target.parents):
        if parent.stat().st_mode & stat.S_IXOTH:
            continue
        setfacl = shutil.which("setfacl")
        if setfacl is None:
            pytest.fail("setfacl is not installed: run `bash scripts/install-debian-deps.sh` (Debian package acl)")
        subprocess.run([setfacl, "-m", f"u:{uid}:x", str(parent)], check=True)


@pytest.fixture(scope="session")
def rootless_account() -> Account:
    """The suite's unprivileged account, able (as is the uid without a passwd entry) to run the suite's interpreter,
    go and the checkout's code."""
    account = _ensure_account()
    for uid in (account.uid, NO_PASSWD_UID):
        for target in (Path(os.path.realpath(sys.executable)), REPO / "src" / "ocibake", GO_BIN / "go"):
            open_path_to(target, uid)
    return account


def rootless_env(home: Path | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A CI job's environment: PATH with the interpreter, go and the system tools; HOME only when given."""
    path = os.pathsep.join([str(Path(sys.executable).parent), str(GO_BIN), "/usr/local/bin", "/usr/bin", "/bin"])
    env = {"PATH": path, "LANG": "C.UTF-8", "PYTHONPATH": str(REPO / "src")}
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra or {})
    return env


def run_rootless(
    argv: Sequence[str],
    *,
    account: Account | None,
    network: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``account`` (or, when None, as uid NO_PASSWD_UID with no passwd entry and no HOME) inside a
    new user namespace where it is root (``unshare -r``), with no network unless ``network``."""
    if account is None:
        ids = [f"--reuid={NO_PASSWD_UID}", f"--regid={NO_PASSWD_UID}", "--clear-groups"]
        home = None
    else:
        ids = [f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups"]
        home = account.home
    namespace = ["unshare", "--user", "--map-root-user", *([] if network else ["--net"])]
    full_env = rootless_env(home, env)
    return subprocess.run(
        ["setpriv", *ids, "--", *namespace, "--", *argv],
        check=False,
        cwd=cwd or "/",
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ocibake_rootless(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    """`python -m ocibake ARGS` through run_rootless (same keyword arguments)."""
    return run_rootless([sys.executable, "-m", "ocibake", *args], **kw)  # type: ignore[arg-type]
