"""The `go build` request for a spec: flags, ldflags, environment; and running the result to check it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from ocibake.errors import InputError, ToolchainError
from ocibake.oci.image import rfc3339
from ocibake.oci.platform import Platform, host_architecture
from ocibake.toolchain.base import GoBuild
from ocibake.toolchain.process import run_captured


def ldflags(
    version_package: str, version: str, build_date: str, commit: str, extra: tuple[str, ...] = (), strip: bool = True
) -> str:
    """-s -w (no symbol table, no DWARF) unless ``strip`` is off (the development target keeps them for Delve)."""
    pkg = version_package
    # No -buildid=: go's build ids are content hashes (binaries stay identical across checkout paths, GOROOTs and
    # build caches), and they let go skip the link of an unchanged binary (toolchain/go_output.py).
    return " ".join(
        [
            *(["-s", "-w"] if strip else []),
            f"-X {pkg}.Version={version}",
            f"-X {pkg}.BuildDate={build_date}",
            f"-X {pkg}.GitCommit={commit}",
            *extra,
        ]
    )


# GOARCH values Go builds for Linux, and the platform variants ocibake maps onto Go's settings.
LINUX_ARCHES = (
    "amd64",
    "arm64",
    "arm",
    "386",
    "ppc64le",
    "ppc64",
    "s390x",
    "riscv64",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
)
VARIANTS = {"amd64": ("v1", "v2", "v3", "v4"), "arm": ("v5", "v6", "v7"), "arm64": ("v8",)}
# Each architecture's CPU-level setting and the value go defaults to. ocibake always passes it, so neither the
# environment nor a GOENV file can build for another CPU than the image's platform says (and the record shows it).
CPU_SETTING = {
    "amd64": ("GOAMD64", "v1"),
    "arm": ("GOARM", "7"),
    "arm64": ("GOARM64", "v8.0"),
    "386": ("GO386", "sse2"),
    "ppc64": ("GOPPC64", "power8"),
    "ppc64le": ("GOPPC64", "power8"),
    "mips": ("GOMIPS", "hardfloat"),
    "mipsle": ("GOMIPS", "hardfloat"),
    "mips64": ("GOMIPS64", "hardfloat"),
    "mips64le": ("GOMIPS64", "hardfloat"),
    "riscv64": ("GORISCV64", "rva20u64"),
}


def cpu_level(platform: Platform) -> tuple[str, str] | None:
    """(setting, value) for the platform: its variant (amd64/v3 -> GOAMD64=v3, arm/v6 -> GOARM=6, arm64/v8 ->
    GOARM64=v8.0), else go's default for the architecture."""
    setting = CPU_SETTING.get(platform.architecture)
    if setting is None:
        return None
    key, default = setting
    if not platform.variant:
        return key, default
    if platform.architecture == "arm":
        return key, platform.variant.removeprefix("v")
    if platform.architecture == "arm64":
        return key, f"{platform.variant}.0"
    return key, platform.variant


def check_platform(platform: Platform) -> None:
    """Only what ocibake can build: Linux images (FROM scratch with /etc/passwd) for an architecture Go knows."""
    if platform.os != "linux":
        raise InputError(
            f"--platform {platform}: ocibake builds Linux images only",
            hint="use linux/ARCH, e.g. --platform linux/arm64",
        )
    if platform.architecture not in LINUX_ARCHES:
        raise InputError(
            f"--platform {platform}: Go does not build Linux binaries for {platform.architecture!r}",
            hint=f"architectures: {', '.join(LINUX_ARCHES)}",
        )
    allowed = VARIANTS.get(platform.architecture, ())
    if platform.variant and platform.variant not in allowed:
        raise InputError(
            f"--platform {platform}: unknown variant {platform.variant!r} for {platform.architecture}",
            hint=f"variants: {', '.join(allowed)}" if allowed else f"{platform.architecture} has no variants",
        )


def check_variant_settings(platform: Platform, environ: Mapping[str, str]) -> None:
    """A CPU-level setting in the environment (GOAMD64=v3, GOARM64=v9.0...) that the platform does not say: refuse,
    rather than silently build for another CPU than the user meant."""
    level = cpu_level(platform)
    if level is None or platform.variant:
        return
    key, default = level
    value = environ.get(key, "").strip()
    if value and value.split(",")[0] != default:
        first = value.split(",")[0]
        if key in ("GOAMD64", "GOARM"):
            variant = first if first.startswith("v") else f"v{first}"
            hint = f"say it in the platform (--platform {platform}/{variant}), or unset {key}"
        else:
            hint = f"unset {key}: ocibake builds {platform} for go's default {key}={default}"
        raise InputError(f"{key}={value} in the environment does not match --platform {platform}", hint=hint)


def go_env(platform: Platform) -> dict[str, str]:
    """What the platform means for go: GOOS, GOARCH and the CPU level, always explicit."""
    env = {"CGO_ENABLED": "0", "GOOS": platform.os, "GOARCH": platform.architecture}
    level = cpu_level(platform)
    if level is not None:
        env[level[0]] = level[1]
    return env


def build_env(platform: Platform, environ: Mapping[str, str]) -> dict[str, str]:
    """go_env plus GOFLAGS: `-buildvcs=false` (which the build passes anyway) and then ocibake's own GOFLAGS, if any.
    Never empty, so a GOENV file's GOFLAGS cannot apply behind the build record's back (go reads the file for a
    setting the environment leaves empty). Air-gapped users set GOFLAGS=-mod=vendor. GOEXPERIMENT passes through
    when set; its effective value, from wherever, is recorded."""
    env = {**go_env(platform), "GOFLAGS": " ".join(["-buildvcs=false", *environ.get("GOFLAGS", "").split()])}
    if environ.get("GOEXPERIMENT", "").strip():
        env["GOEXPERIMENT"] = environ["GOEXPERIMENT"].strip()
    return env


def go_build_request(
    *,
    service_dir: Path,
    package: str,
    output: Path,
    platform: Platform,
    ld: str,
    local_modules: tuple[Path, ...] = (),
    environ: Mapping[str, str] | None = None,
    extra_flags: tuple[str, ...] = (),
) -> GoBuild:
    env = build_env(platform, os.environ if environ is None else environ)
    return GoBuild(
        service_dir=service_dir,
        package=package,
        output=output,
        env=env,
        flags=("-trimpath", "-buildvcs=false", *extra_flags, "-ldflags", ld),
        local_modules=local_modules,
    )


def runs_here(platform: Platform) -> bool:
    return platform.os == "linux" and host_architecture() == platform.architecture


def version_package_path(given: str, module_path: str) -> str:
    """The import path for -X: `main`, a full import path, or one relative to the module (./internal/buildinfo)."""
    given = given.strip()
    if given.startswith("./") or given == ".":
        rel = given[2:].strip("/") if given != "." else ""
        return f"{module_path}/{rel}" if rel else module_path
    return given


def check_version_package(given: str, module_path: str, module_dir: Path) -> None:
    """A --version-package inside the module must be a directory of Go files: otherwise -X sets nothing and the
    mistake would only show after the build, as a binary that does not print its version."""
    path = version_package_path(given, module_path)
    if path == "main" or not (path == module_path or path.startswith(module_path + "/")):
        return  # main, or a package of another module: go resolves it
    rel = path[len(module_path) :].strip("/")
    directory = module_dir / rel
    if not directory.is_dir() or not any(directory.glob("*.go")):
        raise InputError(
            f"--version-package {given}: no Go package at {directory}",
            hint="name the package that declares `var Version string`: ./path relative to the module "
            "(e.g. ./internal/buildinfo), its full import path, or main",
        )


def verify_binary(
    binary: Path, version: str, timeout: float = 15.0, version_package: str = "main", prefix: tuple[str, ...] = ()
) -> str:
    """Run `binary --version` (under ``prefix``, an emulator); the output must name the version. Returns the output's
    first line."""
    argv = [*prefix, str(binary), "--version"]
    try:
        # as go and upx: a process group of its own, guarded, so that the binary (and a qemu running it) dies with
        # ocibake even when ocibake is SIGKILLed, and is killed with everything it started at the timeout
        proc = run_captured(argv, cwd=binary.parent, env={"PATH": "/usr/bin:/bin"}, timeout=timeout, job_slot=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(
            f"the built binary did not answer `--version` within {timeout:.0f}s",
            hint="make the service print its version and exit on --version, or pass --no-verify",
        ) from exc
    except OSError as exc:
        raise ToolchainError(f"the built binary cannot run here: {exc.strerror}", hint="pass --no-verify") from exc
    out = proc.stdout.strip()
    if proc.returncode != 0 or version not in out:
        if version_package == "main":
            hint = (
                "the service must print its version (main.Version) on --version; pass --version-package if the "
                "variables live elsewhere, or --no-verify to skip this check"
            )
        else:
            hint = (
                f"-X set {version_package}.Version: that must be the full import path of the package declaring "
                "`var Version string` (or ./path relative to the module), and the service must print it on "
                "--version; --no-verify skips this check"
            )
        raise ToolchainError(
            f"`app --version` {'exited ' + str(proc.returncode) if proc.returncode else 'did not print'}"
            f"{'' if proc.returncode else ' the version ' + repr(version)}",
            hint=hint,
            detail="\n".join(f"  app: {line}" for line in out[-2000:].splitlines()) or "  app: (no output)",
        )
    return out.splitlines()[0] if out else ""


def build_date(epoch: int) -> str:
    return rfc3339(epoch)
