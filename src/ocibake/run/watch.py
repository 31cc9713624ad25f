"""`ocibake run SERVICE_DIR --watch`: build, run, and on every saved change rebuild and restart.

The build is `ocibake build` itself (every flag, ocibake.toml and cache as usual: an unchanged input takes the no-op
path, a one-line change costs about a `go build`), run with `--sbom none` and, unless asked otherwise, `--upx off`.
While it builds the previous version keeps running; a failed build leaves it running and go's error is printed. A
new image stops the old app (SIGTERM, then SIGKILL after 10 s, as `docker stop`) and starts the new one.

What is watched is what the build reads: the source files `go list -deps` names for the module's own packages (and
its replaced and vendored ones), new .go files beside them, and go.mod, go.sum and ocibake.toml (watchfiles, which
uses inotify and coalesces a burst of saves into one change).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ocibake.errors import InputError, OcibakeError
from ocibake.run.command import command
from ocibake.run.health import Monitor
from ocibake.run.image import open_run_image
from ocibake.run.process import forwarding
from ocibake.run.runner import AppHolder, RunOptions, describe, probe_sandbox, start
from ocibake.workdirs import force_rmtree

MODULE_FILES = ("go.mod", "go.sum", "ocibake.toml")
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Watched:
    """The directories to watch and the files in them whose change means a rebuild."""

    dirs: frozenset[str]
    files: frozenset[str]

    def matters(self, path: str) -> bool:
        name = os.path.basename(path)
        if path in self.files:
            return True
        return os.path.dirname(path) in self.dirs and name.endswith(".go") and not name.endswith("_test.go")


def service_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir() and "/" not in text and Path("services", text).is_dir():
        path = Path("services", text)
    if not (path / "go.mod").is_file():
        raise InputError(f"{text} is not a Go service (no go.mod)", hint="--watch takes a SERVICE_DIR, not an image")
    return path.resolve()


def go_packages(service: Path) -> list[dict[str, object]] | None:
    """`go list -e -deps -json ./...` of the module (for linux, CGO off, as ocibake builds); None without go."""
    go = shutil.which("go")
    if go is None:
        return None
    env = {**os.environ, "GOOS": "linux", "CGO_ENABLED": "0"}
    fields = "Dir,GoFiles,CgoFiles,EmbedFiles,Standard"
    argv = [go, "list", "-e", "-deps", f"-json={fields}", "./..."]
    proc = subprocess.run(argv, cwd=service, env=env, capture_output=True, text=True, check=False)
    decoder, text, pos, packages = json.JSONDecoder(), proc.stdout, 0, []
    try:
        while pos < len(text.rstrip()):
            package, pos = decoder.raw_decode(text, pos)
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            packages.append(package)
    except ValueError:
        return None
    return packages


def watched_files(service: Path) -> Watched:
    """What `go list -deps` says the build reads, outside GOROOT and the module cache, plus the module's files;
    without a local go (a toolchain image builds), every directory of .go files under the service."""
    dirs, files = {str(service)}, {str(service / name) for name in MODULE_FILES}
    packages = go_packages(service)
    if packages is None:
        for where, _, entries in os.walk(service):
            if any(n.endswith(".go") for n in entries):
                dirs.add(where)
        return Watched(frozenset(dirs), frozenset(files))
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], cwd=service, capture_output=True, text=True, check=False)
    skip = modcache.stdout.strip() or "/nonexistent"
    for package in packages:
        where = str(package.get("Dir") or "")
        if package.get("Standard") or not where or where.startswith(skip + os.sep):
            continue
        dirs.add(where)
        for key in ("GoFiles", "CgoFiles", "EmbedFiles"):
            listed = package.get(key)
            if isinstance(listed, list):
                files.update(os.path.join(where, str(name)) for name in listed)
    return Watched(frozenset(dirs), frozenset(files))


def build_argv(service: Path, build: Mapping[str, str]) -> list[str]:
    flags = {"upx": "off", **build}
    argv = [sys.executable, "-m", "ocibake", "build", str(service), "--json", "-q", "--sbom", "none"]
    for key, value in flags.items():
        argv += [f"--{key}", value]
    return argv


def rebuild(argv: list[str], log: Callable[[str], None]) -> str | None:
    """`oci:LAYOUT@DIGEST` of the built image, or None when the build failed (its error is printed)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        result = {}
    if proc.returncode != 0 or "digest" not in result:
        log(f"watch     the build failed (exit {proc.returncode}); the running version stays")
        return None
    return f"oci:{result['layout']}@{result['digest']}"


class Session:
    """The app of the latest good build, replaced when a build gives a new image."""

    def __init__(self, options: RunOptions, log: Callable[[str], None]):
        self.options, self.log = options, log
        self.holder = AppHolder()
        self.reference = ""
        self.rootfs: Path | None = None
        self.new_rootfs: set[Path] = set()  # unpacked by this session: removed once their app has stopped
        self.exit_code: int | None = None
        self.monitor: Monitor | None = None

    def switch(self, reference: str) -> None:
        """Run ``reference``'s image in place of the current one (which stops first: they share ports)."""
        if reference == self.reference and self.holder.app is not None and self.holder.app.running():
            self.log("watch     the image did not change")
            return
        from ocibake.toolchain.cache import cache_home

        existed = {p.name for p in (cache_home() / "rootfs").glob("*")} if (cache_home() / "rootfs").is_dir() else set()
        image = open_run_image(reference, self.options.platform)
        if image.rootfs.name not in existed:
            self.new_rootfs.add(image.rootfs)
        cmd = command(
            image.rootfs,
            image.runtime,
            self.options.args,
            self.options.env,
            self.options.shell,
            self.options.entrypoint,
        )
        self.stop()
        self.forget(keep=image.rootfs)
        self.log(describe(image, cmd, self.options.network))
        app = start(image, cmd, self.options.network)
        self.holder.set(app)
        self.reference, self.rootfs = reference, image.rootfs
        check = self.options.healthcheck(image.runtime)
        if check is not None:
            sandboxed = probe_sandbox(image, cmd, self.options.network)
            self.monitor = Monitor(check, cmd, app.app_pid, self.options.network == "none", self.log, sandboxed)
            self.monitor.start()

    def forget(self, keep: Path | None) -> None:
        """Remove the roots this session unpacked, but ``keep`` (an image no longer running needs none)."""
        for old in self.new_rootfs - {keep}:
            force_rmtree(old)
        self.new_rootfs &= {keep}

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor.join()
            self.monitor = None
        app = self.holder.app
        if app is None:
            return
        if app.running():
            app.signal(signal.SIGTERM)
            try:
                self.exit_code = app.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                app.proc.kill()
        app.close()
        self.exit_code = app.wait()
        self.holder.set(None)

    def finish(self) -> int:
        """Wait for the app (signalled already) and return its exit code."""
        app = self.holder.app
        if self.monitor is not None:
            self.monitor.stop()
        if app is not None:
            self.exit_code = app.wait()
            app.close()
            self.holder.set(None)
        return self.exit_code if self.exit_code is not None else 130


class Watcher:
    """The files a build reads, listed again after every build; watchfiles asks it which changes matter."""

    def __init__(self, service: Path):
        self.service = service
        self.watched = watched_files(service)

    def filter(self, change: object, path: str) -> bool:
        return self.watched.matters(path)

    def refresh(self) -> bool:
        """List the files again; True when the directories to watch changed."""
        before = self.watched.dirs
        self.watched = watched_files(self.service)
        return self.watched.dirs != before


def watch_loop(watcher: Watcher, build: Callable[[], None], stop: threading.Event, log: Callable[[str], None]) -> None:
    """Build once the watcher is live (so no change is missed), then again on every change, until ``stop``."""
    import watchfiles

    pending = True
    while not stop.is_set():
        dirs = watcher.watched.dirs
        log(f"watch     {len(watcher.watched.files)} files in {len(dirs)} directories; Ctrl-C stops")
        for changes in watchfiles.watch(
            *sorted(dirs),
            watch_filter=watcher.filter,
            stop_event=stop,
            recursive=False,
            raise_interrupt=False,
            yield_on_timeout=True,  # an empty set every rust_timeout: the first says the watcher is live
            rust_timeout=500,
        ):
            if not changes and not pending:
                continue
            pending = False
            build()
            if watcher.refresh():
                pending = True  # a change in a directory not yet watched would be missed: build once more
                break


def watch_service(text: str, build: Mapping[str, str], options: RunOptions, log: Callable[[str], None]) -> int:
    """Build, run and rebuild ``text`` until Ctrl-C or SIGTERM; the exit code of the last app."""
    service = service_dir(text)
    argv = build_argv(service, build)
    session = Session(options, log)
    stop = threading.Event()

    def deliver(signum: int) -> None:
        session.holder.signal(signum)
        stop.set()

    def build_and_switch() -> None:
        reference = rebuild(argv, log)
        if reference is None or stop.is_set():
            return
        try:
            session.switch(reference)
        except OcibakeError as exc:  # an image that cannot start: say why, keep watching for the fix
            log(f"watch     cannot run the new image: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))

    with forwarding(deliver):
        watch_loop(Watcher(service), build_and_switch, stop, log)
        return session.finish()
