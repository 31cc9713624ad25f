"""What ocibake learns from a service directory before building: go.mod, the main package, git facts."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ocibake.errors import InputError

MAIN_CANDIDATES = ("cmd/main.go", "cmd/{name}/main.go", "main.go")


@dataclass(frozen=True)
class GoModule:
    path: str
    go_version: str
    direct_deps: tuple[str, ...]
    indirect_deps: int
    replaces: tuple[str, ...]
    toolchain: str = ""


@dataclass(frozen=True)
class GitInfo:
    commit: str  # full hash, or "" when not in git
    commit_time: int  # HEAD commit time (seconds), or 0
    dirty: bool
    remote: str  # origin URL with any credentials removed, or ""

    @property
    def short(self) -> str:
        return self.commit[:7] if self.commit else "unknown"


def _strip_comment(line: str) -> tuple[str, str]:
    code, _sep, comment = line.partition("//")
    return code.strip(), comment.strip()


def parse_go_mod(text: str) -> GoModule:
    """A small go.mod reader: module, go, toolchain, require and replace (single lines and blocks)."""
    module = go = toolchain = ""
    direct: list[str] = []
    indirect = 0
    replaces: list[str] = []
    block = ""
    for raw in text.splitlines():
        code, comment = _strip_comment(raw)
        if not code:
            continue
        if block:
            if code == ")":
                block = ""
                continue
            words = [block, *code.split()]
        else:
            words = code.split()
            if len(words) == 2 and words[1] == "(":
                block = words[0]
                continue
        verb, args = words[0], words[1:]
        if verb == "module" and args:
            module = args[0].strip('"')
        elif verb == "go" and args:
            go = args[0]
        elif verb == "toolchain" and args:
            toolchain = args[0]
        elif verb == "require" and args:
            if comment.startswith("indirect"):
                indirect += 1
            else:
                direct.append(args[0])
        elif verb == "replace" and args:
            replaces.append(" ".join(args))
    return GoModule(module, go, tuple(direct), indirect, tuple(replaces), toolchain)


def local_replace_dirs(service_dir: Path, module: GoModule) -> tuple[Path, ...]:
    """The module directories that `replace X => ./path` (or ../path, /path) directives point at, resolved: a build
    that sees only the service directory (a toolchain sandbox) must see these too.

    Only real module directories count (they hold a go.mod, as go requires of a replacement), never the filesystem
    root: a go.mod cannot make the sandbox show the host. One that is missing is left out, as go itself does not
    need it in vendor mode; when go does need it, go says so."""
    found = []
    for replace in module.replaces:
        _, arrow, target = replace.partition("=>")
        words = target.split()
        if not arrow or not words:
            continue
        path = words[0].strip('"')
        if path.startswith(("./", "../", "/")) or path in (".", ".."):
            resolved = (service_dir / path).resolve()
            if resolved == Path(resolved.anchor) or not (resolved / "go.mod").is_file():
                continue
            if resolved not in found:
                found.append(resolved)
    return tuple(found)


def read_go_mod(service_dir: Path) -> GoModule:
    gomod = service_dir / "go.mod"
    if not gomod.is_file():
        raise InputError(
            f"{service_dir} has no go.mod",
            hint="ocibake builds Go modules: run `go mod init MODULE` there, "
            "or point at the directory that holds go.mod",
        )
    mod = parse_go_mod(gomod.read_text(errors="replace"))
    if not mod.path:
        raise InputError(f"{gomod} has no module line", hint="add `module example.com/NAME` at the top of go.mod")
    return mod


_PACKAGE_MAIN = re.compile(r"^\s*package\s+main\b", re.MULTILINE)


def _is_main(path: Path) -> bool:
    try:
        return bool(_PACKAGE_MAIN.search(path.read_text(errors="replace")))
    except OSError:
        return False


def find_main_package(service_dir: Path, name: str, explicit: str | None) -> str:
    """The main package as a ./relative Go package path."""
    if explicit:
        rel = explicit.removeprefix("./").rstrip("/") or "."
        target = service_dir / rel
        if target.is_file() and target.suffix == ".go":
            target = target.parent
        if not target.is_dir() or not any(_is_main(p) for p in target.glob("*.go")):
            raise InputError(
                f"--main {explicit}: no `package main` in {target}",
                hint="give the directory of the main package relative to the service, e.g. ./cmd/server",
            )
        return "./" + target.relative_to(service_dir).as_posix() if target != service_dir else "."
    tried = []
    for pattern in MAIN_CANDIDATES:
        candidate = service_dir / pattern.format(name=name)
        tried.append(pattern.format(name=name))
        if candidate.is_file() and _is_main(candidate):
            rel = candidate.parent.relative_to(service_dir).as_posix()
            return "./" + rel if rel != "." else "."
    cmd = service_dir / "cmd"
    if cmd.is_dir():
        mains = sorted(d for d in cmd.iterdir() if d.is_dir() and any(_is_main(p) for p in d.glob("*.go")))
        if len(mains) == 1:
            return "./cmd/" + mains[0].name
        if len(mains) > 1:
            raise InputError(
                f"{service_dir} has several main packages: {', '.join('cmd/' + m.name for m in mains)}",
                hint="pick one with --main ./cmd/NAME",
            )
    raise InputError(
        f"no main package found in {service_dir} (looked in {', '.join(tried)})",
        hint="pass --main ./path/to/main/package",
    )


def _git(service_dir: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", str(service_dir), *args],
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def public_source_url(url: str) -> str:
    """The origin URL fit for an image label: credentials removed, and "" for local paths and file:// URLs, which
    would leak the builder's directory layout and make the digest depend on where the repository was cloned from."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ssh", "git", "git+ssh") or not parts.hostname:
            return ""
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        user = (
            f"{parts.username}@" if parts.scheme in ("ssh", "git+ssh") and parts.username and not parts.password else ""
        )
        return urlunsplit((parts.scheme, user + host, parts.path, "", ""))
    # scp-like syntax: [user@]host:path (no password can be given in this form)
    match = re.match(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)[^\s]+$", url)
    return url if match and not url.startswith("/") else ""


def without_credentials(url: str) -> str:
    """A ``--source`` URL with any user:password@ (or token@) removed, so no credential is written into the image:
    GitLab's CI_REPOSITORY_URL carries its job token as the URL's user and password. Only an ssh user name without
    a password is kept (it names an account, not a secret). The query and fragment go too: a repository URL needs
    neither, and a query is where tokens travel otherwise (a private_token parameter). Text that is no URL is kept
    as it is."""
    if "://" not in url:
        return url
    parts = urlsplit(url.strip())
    if parts.username is None and parts.password is None and not parts.query and not parts.fragment:
        return url
    host = parts.netloc.rpartition("@")[2]
    keep_user = parts.scheme in ("ssh", "git+ssh") and parts.username and parts.password is None
    user = f"{parts.username}@" if keep_user else ""
    return urlunsplit((parts.scheme, user + host, parts.path, "", ""))


def git_info(service_dir: Path) -> GitInfo:
    commit = _git(service_dir, "rev-parse", "HEAD")
    if not commit:
        return GitInfo("", 0, False, "")
    ctime = _git(service_dir, "log", "-1", "--format=%ct", "HEAD")
    status = _git(service_dir, "status", "--porcelain", "--untracked-files=no", "--", ".")
    remote = _git(service_dir, "config", "--get", "remote.origin.url") or ""
    return GitInfo(commit, int(ctime) if ctime and ctime.isdigit() else 0, bool(status), public_source_url(remote))
