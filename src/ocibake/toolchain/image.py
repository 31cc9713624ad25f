"""A toolchain taken from an OCI image, pinned by digest, run in a rootless sandbox.

``--toolchain oci:DIR[:TAG]`` (or ``oci:DIR@sha256:...``) names an image in an OCI layout on disk;
``--toolchain REGISTRY/REPO[:TAG][@sha256:...]`` one in a registry (pulled into the cache through
``ocibake.registry.client``). The image is resolved to a manifest digest, its layers are unpacked once into
CACHE/rootfs/<chain id> (see rootfs.py), and `go` and `upx` run inside it (see sandbox.py) with:

  /src    the service directory, read-only (a fixed path: with -trimpath the binary does not depend on it anyway)
  /out    a fresh empty directory, the only writable bind
  /cache  CACHE/toolchains/<manifest digest>/ holding GOCACHE (go-build) and GOMODCACHE (mod), kept between builds

and the environment: the image config's Env (its PATH included), then HOME=/tmp, GOCACHE, GOMODCACHE,
GOTOOLCHAIN=local (the pinned toolchain never downloads another), GOPROXY=off without network (a clear go error
instead of a DNS failure; with --network, GOPROXY and the other module settings from ocibake's environment), and the
build's own settings (CGO_ENABLED, GOOS, GOARCH, the CPU level, GOFLAGS and GOEXPERIMENT, the same as the local
toolchain gets). Nothing else of the host reaches the sandbox.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.errors import InputError, ToolchainError
from ocibake.toolchain import offline
from ocibake.toolchain.base import GoBuild, last_lines
from ocibake.toolchain.cache import cache_home, check_private_entry, private_cache, private_mkdir
from ocibake.toolchain.image_ref import ResolvedImage, parse_toolchain_ref, resolve_layout, resolve_registry
from ocibake.toolchain.rootfs import resolve, unpack_image
from ocibake.toolchain.sandbox import Bind, Sandbox, SandboxRun

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions

# Module download settings passed into the sandbox when it has network (--network), as the local toolchain sees them.
BUNDLE_PROXY = "/bundle/goproxy"  # where an offline bundle's modules appear in the sandbox
NETWORK_GO_ENV = ("GOPROXY", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE")


def source_layout(service_dir: Path, local_modules: Sequence[Path]) -> tuple[list[Bind], str]:
    """Read-only binds of the service and of the local modules its `replace` directives name, under /src at the same
    relative places as on the host (so `../lib` still resolves), and the service's path in the sandbox."""
    dirs = [service_dir.resolve(), *(Path(d).resolve() for d in local_modules)]
    if len(dirs) == 1:
        return [Bind(dirs[0], "/src")], "/src"
    top = Path(os.path.commonpath([str(d) for d in dirs]))
    binds = []
    for d in dirs:
        if any(d != other and other in d.parents for other in dirs):
            continue  # already inside another bind
        rel = d.relative_to(top).as_posix()
        binds.append(Bind(d, "/src" + ("/" + rel if rel != "." else "")))
    rel = dirs[0].relative_to(top).as_posix()
    return binds, "/src" + ("/" + rel if rel != "." else "")


def take_regular_file(produced: Path, dest: Path, what: str) -> None:
    """Move what the sandbox produced into place, if it is a plain file. The toolchain is not trusted: a symlink
    (to /etc/shadow, say) or anything else would otherwise be read on the host and packed into the image."""
    try:
        st = os.lstat(produced)
    except FileNotFoundError:
        raise ToolchainError(f"{what} finished but wrote no binary") from None
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        raise ToolchainError(
            f"{what} left {produced.name} as something other than a plain file (a link?); refused",
            hint="the toolchain image misbehaves; use a trusted image pinned by digest",
        )
    os.replace(produced, dest)


def _env_dict(config: Mapping[str, Any]) -> dict[str, str]:
    env = {}
    for item in (config.get("config") or {}).get("Env") or []:
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


class ImageToolchain:
    """go and upx from a toolchain image (implements the Toolchain protocol of toolchain.py)."""

    def __init__(
        self,
        reference: str,
        *,
        network: bool = False,
        cache: Path | None = None,
        sandbox: Sandbox | None = None,
        registry_options: Callable[[], RegistryOptions] | None = None,
    ):
        self.ref = parse_toolchain_ref(reference)
        if self.ref.kind == "local":
            raise InputError("ImageToolchain needs an image reference, not 'local'", hint="use LocalToolchain")
        self.network = network
        self.cache = cache or cache_home()
        self.sandbox = sandbox or Sandbox(cache=self.cache)
        self._registry_options = registry_options  # made only when a registry is asked (it may read stdin)
        self._unpacked: tuple[ResolvedImage, Path] | None = None  # the image and its rootfs, once prepared
        self._versions: dict[str, str] = {}

    # -- preparation -------------------------------------------------------------------------------------------
    def prepare(self) -> Path:
        """Resolve, unpack (once, cached) and check the sandbox; return the rootfs. Called by every other method."""
        return self._prepared()[1]

    def _prepared(self) -> tuple[ResolvedImage, Path]:
        if self._unpacked is None:
            self.sandbox.backend()  # fail early, before unpacking, when no sandbox can be made
            private_cache(self.cache)
            if self.ref.kind == "oci":
                image = resolve_layout(self.ref)
            else:
                options = self._registry_options() if self._registry_options else None
                image = resolve_registry(self.ref, self.cache, options)
            self._unpacked = (image, unpack_image(image.layers, self.cache))
        return self._unpacked

    @property
    def image(self) -> ResolvedImage:
        """The resolved toolchain image (prepared first)."""
        return self._prepared()[0]

    @property
    def digest(self) -> str:
        return self.image.digest

    def _env(self) -> dict[str, str]:
        env = _env_dict(self.image.config)
        env.update({"HOME": "/tmp", "GOCACHE": "/cache/go-build", "GOMODCACHE": "/cache/mod", "GOTOOLCHAIN": "local"})
        if not self.network:
            env["GOPROXY"] = "off"
            if offline.offline_dir() is not None:  # the bundle's modules, bound read-only (_bundle_binds)
                env.update({"GOPROXY": f"file://{BUNDLE_PROXY}", "GOSUMDB": "off"})
        else:
            env.update({k: os.environ[k] for k in NETWORK_GO_ENV if os.environ.get(k)})
        return env

    def _bundle_binds(self) -> list[Bind]:
        """Offline: the bundle's module proxy, read-only in the sandbox (toolchain/offline.py)."""
        bundle = offline.offline_dir()
        return [Bind(bundle / "goproxy", BUNDLE_PROXY)] if bundle is not None and not self.network else []

    def _cache_dir(self) -> Path:
        d = self.cache / "toolchains" / self.digest.split(":", 1)[1]
        if d.exists():
            check_private_entry(d, f"the cache of toolchain {d.name[:12]}")
        for sub in ("go-build", "mod"):
            private_mkdir(d / sub)
        return d

    def find_program(self, name: str) -> str | None:
        """The program's path inside the image, looked up on the image's PATH (symlinks resolved inside the root)."""
        root = self.prepare()
        for directory in self._env()["PATH"].split(":"):
            if not directory.startswith("/"):
                continue
            parts = [p for p in f"{directory}/{name}".split("/") if p]
            try:
                host = resolve(root, parts, follow_last=True, name=f"{directory}/{name}")
            except InputError:
                continue
            if host.is_file() and os.access(host, os.X_OK):
                return f"{directory.rstrip('/')}/{name}"
        return None

    def _require(self, name: str, hint: str) -> str:
        found = self.find_program(name)
        if not found:
            raise ToolchainError(
                f"toolchain image {self.ref.text} ({self.digest[:19]}) has no `{name}` on its PATH "
                f"({self._env()['PATH']})",
                hint=hint,
            )
        return found

    def _go(self) -> str:
        return self._require(
            "go",
            "use an image with Go installed and on the config's PATH (e.g. golang:1.21-alpine), or --toolchain local",
        )

    def _run(
        self,
        argv: Sequence[str],
        *,
        binds: Sequence[Bind],
        cwd: str,
        env: dict[str, str],
        what: str,
        timeout: float | None = None,
        shown_env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        run = SandboxRun(
            rootfs=self.prepare(), argv=list(argv), env=env, binds=tuple(binds), cwd=cwd, network=self.network
        )
        return self.sandbox.run(run, what=what, timeout=timeout, shown_env=shown_env)

    # -- the Toolchain protocol --------------------------------------------------------------------------------
    def describe(self) -> dict[str, str | bool]:
        """For the build record: no local paths, so the record is the same on every machine."""
        # Only what decides the bytes: how the image was named (a tag, a mirror's host name, an index digest) is in
        # the report, so the same toolchain gives the same record whatever it is called on this machine.
        d: dict[str, str | bool] = {"kind": "image", "digest": self.digest, "network": self.network}
        if self._versions.get("go"):
            d["go_version"] = self._versions["go"]
        if self._versions.get("upx"):
            d["upx_version"] = self._versions["upx"]
        return d

    def summary(self) -> str:
        """For the report (not the record: the sandbox backend does not change the bytes)."""
        backend = self.sandbox.backend()
        return (
            f"{self.ref.text} = {self.digest}, in {'an' if backend[0] in 'aeiou' else 'a'} {backend} sandbox, "
            f"{'with' if self.network else 'no'} network"
        )

    def go_env(self, service_dir: Path, build_env: Mapping[str, str], keys: Sequence[str]) -> list[str]:
        go = self._go()
        proc = self._run(
            [go, "env", *keys],
            binds=[Bind(Path(service_dir), "/src"), Bind(self._cache_dir(), "/cache"), *self._bundle_binds()],
            cwd="/src",
            env={**self._env(), **build_env},
            what="go env",
            timeout=120,
        )
        values = last_lines(proc.stdout, len(keys))
        if "GOVERSION" in keys:
            self._versions["go"] = values[list(keys).index("GOVERSION")] or "unknown"
        return values

    def go_version(self, service_dir: Path, build_env: Mapping[str, str] | None = None) -> str:
        return self.go_env(service_dir, build_env or {}, ("GOVERSION",))[0] or "unknown"

    def go_build(self, build: GoBuild) -> None:
        go = self._go()
        env = self._env()
        env.update(build.env)
        output = Path(build.output)
        out_dir = Path(tempfile.mkdtemp(prefix=".ocibake-out-", dir=output.parent))
        try:
            source_binds, cwd = source_layout(Path(build.service_dir), build.local_modules)
            self._run(
                build.argv(go, f"/out/{output.name}"),
                binds=[
                    *source_binds,
                    Bind(out_dir, "/out", writable=True),
                    Bind(self._cache_dir(), "/cache", writable=True),
                    *self._bundle_binds(),
                ],
                cwd=cwd,
                env=env,
                what="go build",
                shown_env=build.env,
            )
            take_regular_file(out_dir / output.name, output, f"go build in {self.ref.text}")
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    def upx(self, binary: Path, args: Sequence[str]) -> None:
        upx = self._require("upx", "use a toolchain image with upx installed, or --upx off")
        binary = Path(binary)
        work = Path(tempfile.mkdtemp(prefix=".ocibake-upx-", dir=binary.parent))
        try:
            shutil.copy2(binary, work / "app")
            self._run(
                [upx, *args, "/out/app"],
                binds=[Bind(work, "/out", writable=True)],
                cwd="/out",
                env=_env_dict(self.image.config),
                what="upx",
                timeout=900,
            )
            take_regular_file(work / "app", binary, f"upx in {self.ref.text}")
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def upx_version(self) -> str:
        upx = self._require("upx", "use a toolchain image with upx installed, or --upx off")
        with tempfile.TemporaryDirectory(prefix="ocibake-upx-") as work:
            proc = self._run(
                [upx, "--version"],
                binds=[Bind(Path(work), "/out", writable=True)],
                cwd="/out",
                env=_env_dict(self.image.config),
                what="upx --version",
                timeout=60,
            )
        lines = proc.stdout.strip().splitlines()
        self._versions["upx"] = lines[0] if lines else "unknown"
        return self._versions["upx"]
