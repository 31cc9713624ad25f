"""`ocibake bundle`: gather on a connected machine everything the given builds need, for `build --offline` on an
air-gapped one (the format is described in toolchain/offline.py).

The bundle is written in a hidden sibling directory and renamed into place when complete; an existing bundle at the
output is replaced only then, so a failed run leaves it as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.builder.delve import DELVE_VERSION, delve_arch, delve_binary
from ocibake.errors import InputError
from ocibake.oci.platform import Platform, host_architecture
from ocibake.toolchain import offline
from ocibake.toolchain.base import Toolchain
from ocibake.toolchain.process import run_tool
from ocibake.workdirs import force_rmtree

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions


@dataclass(frozen=True)
class BundleRequest:
    services: tuple[Path, ...]
    output: Path
    platforms: tuple[Platform, ...] = (Platform("linux", "amd64"),)
    development: bool = False  # Delve for every platform
    bases: tuple[str, ...] = ()  # registry references, pulled for every platform
    toolchains: tuple[str, ...] = ()  # registry references, pulled for this host's platform
    go: str = "go"


@dataclass
class BundleSummary:
    path: Path
    modules: list[str] = field(default_factory=list)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    delve: list[str] = field(default_factory=list)
    files: int = 0


def make_bundle(
    req: BundleRequest,
    toolchain: Toolchain,
    options_factory: Callable[[], RegistryOptions],
    log: Callable[[str], None],
) -> BundleSummary:
    if os.environ.get(offline.ENV, "").strip():
        raise InputError(
            f"{offline.ENV} is set: a bundle is made online", hint=f"unset {offline.ENV} on the connected machine"
        )
    _check_output(req.output)
    req.output.absolute().parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{req.output.name}.bundle-", dir=req.output.absolute().parent))
    try:
        summary = BundleSummary(req.output)
        summary.modules = _modules(req, stage, log)
        if req.development:
            summary.delve = _delve(req, toolchain, stage, log)
        if req.bases or req.toolchains:
            summary.images = _images(req, stage, options_factory(), log)
        _write_manifest(req, summary, stage)
        summary.files = offline.write_sums(stage)
        _replace(stage, req.output)
    except BaseException:
        force_rmtree(stage)
        raise
    return summary


def _check_output(output: Path) -> None:
    unknown = output.exists() and not (output / offline.MANIFEST).is_file()
    if unknown and (not output.is_dir() or any(output.iterdir())):
        raise InputError(
            f"--output {output} exists and is not a bundle",
            hint="give a new directory (or an existing bundle, which is replaced)",
        )


def _modules(req: BundleRequest, stage: Path, log: Callable[[str], None]) -> list[str]:
    """Every service's modules (`go mod download all`) into a module cache of the bundle's own, whose download
    cache is then the bundle's goproxy/ (the module proxy's file layout)."""
    gomod = stage / ".gomod"
    for service in req.services:
        if (service / "vendor" / "modules.txt").is_file():
            log(f"modules of {service}: vendored (go builds from its vendor/ directory)")
            continue
        log(f"modules of {service}: go mod download all")
        env = {**os.environ, "GOMODCACHE": str(gomod), "GOFLAGS": "-mod=mod"}
        run_tool(
            [req.go, "mod", "download", "all"],
            cwd=service,
            env=env,
            what=f"go mod download (for {service})",
            timeout=1800,
            hint="the modules must be reachable from here (GOPROXY, GOPRIVATE, credentials in .netrc)",
        )
    proxy = stage / "goproxy"
    download = gomod / "cache" / "download"
    if download.is_dir():
        shutil.copytree(download, proxy, copy_function=shutil.copyfile, ignore=shutil.ignore_patterns("*.lock"))
    else:
        proxy.mkdir()
    force_rmtree(gomod)
    return sorted(
        f"{zip_path.parent.parent.relative_to(proxy).as_posix()}@{zip_path.stem}"
        for zip_path in proxy.rglob("@v/*.zip")
    )


def _delve(req: BundleRequest, toolchain: Toolchain, stage: Path, log: Callable[[str], None]) -> list[str]:
    done = []
    for platform in req.platforms:
        arch = delve_arch(platform)
        if arch in done:
            continue
        built, _ = delve_binary(None, platform, toolchain, log)
        target = stage / "delve" / DELVE_VERSION / arch / "dlv"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, target)
        target.chmod(0o755)
        done.append(arch)
    return done


def _images(
    req: BundleRequest, stage: Path, options: RegistryOptions, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Bases (for every platform) and toolchains (for this host) pulled into images/, each pinned by digest."""
    from ocibake.registry.pull import pull
    from ocibake.registry.reference import parse_reference
    from ocibake.registry.resolve import resolve_digest

    environ = dict(os.environ)
    environ.setdefault("OCIBAKE_REGISTRY", "docker.io")
    host = Platform("linux", host_architecture())
    wanted = [(ref, req.platforms) for ref in req.bases] + [(ref, (host,)) for ref in req.toolchains]
    images: dict[str, dict[str, Any]] = {}
    for text, platforms in wanted:
        parsed = parse_reference(text, environ)
        name = str(parsed.with_tag(parsed.tag))
        digest = parsed.digest or resolve_digest(parsed, options)
        entry = images.setdefault(name, {"digest": digest, "platforms": []})
        for platform in platforms:
            if str(platform) in entry["platforms"]:
                continue
            log(f"image {name}@{digest} for {platform}")
            pull(f"{parsed.name}@{digest}", stage / "images", str(platform), options)
            entry["platforms"].append(str(platform))
    return images


def _write_manifest(req: BundleRequest, summary: BundleSummary, stage: Path) -> None:
    doc = {
        "format": offline.FORMAT,
        "services": sorted(s.name for s in req.services),
        "platforms": [str(p) for p in req.platforms],
        "modules": summary.modules,
        "images": summary.images,
        "delve": {"version": DELVE_VERSION, "platforms": summary.delve} if summary.delve else None,
    }
    (stage / offline.MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _replace(stage: Path, output: Path) -> None:
    """Rename the finished bundle into place; an old one goes aside first and is removed after."""
    old = None
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.absolute().parent))
        os.rename(output, old / "bundle")
    os.rename(stage, output)
    if old is not None:
        force_rmtree(old)
