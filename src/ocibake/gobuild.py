"""The `go build` request for a spec: flags, ldflags, environment; and running the result to check it."""

from __future__ import annotations

import platform as host_platform
import subprocess
from pathlib import Path

from ocibake.errors import ToolchainError
from ocibake.image import Platform, rfc3339
from ocibake.toolchain import GoBuild

HOST_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i686": "386",
             "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def ldflags(version_package: str, version: str, build_date: str, commit: str, extra: tuple[str, ...] = ()) -> str:
    pkg = version_package
    return " ".join(["-s", "-w", "-buildid=", f"-X {pkg}.Version={version}", f"-X {pkg}.BuildDate={build_date}",
                     f"-X {pkg}.GitCommit={commit}", *extra])


def go_env(platform: Platform) -> dict[str, str]:
    env = {"CGO_ENABLED": "0", "GOOS": platform.os, "GOARCH": platform.architecture}
    if platform.variant:
        if platform.architecture == "arm":
            env["GOARM"] = platform.variant.removeprefix("v")
        elif platform.architecture == "amd64":
            env["GOAMD64"] = platform.variant
    return env


def go_build_request(*, service_dir: Path, package: str, output: Path, platform: Platform, ld: str,
                     local_modules: tuple[Path, ...] = ()) -> GoBuild:
    return GoBuild(service_dir=service_dir, package=package, output=output, env=go_env(platform),
                   flags=("-trimpath", "-buildvcs=false", "-ldflags", ld), local_modules=local_modules)


def runs_here(platform: Platform) -> bool:
    return platform.os == "linux" and HOST_ARCH.get(host_platform.machine().lower()) == platform.architecture


def verify_binary(binary: Path, version: str, timeout: float = 15.0) -> str:
    """Run `binary --version`; the output must name the version. Returns the output's first line."""
    argv = [str(binary), "--version"]
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout, cwd=binary.parent, env={"PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"the built binary did not answer `--version` within {timeout:.0f}s",
                             hint="make the service print its version and exit on --version, or pass --no-verify") from exc
    except OSError as exc:
        raise ToolchainError(f"the built binary cannot run here: {exc.strerror}", hint="pass --no-verify") from exc
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0 or version not in out:
        raise ToolchainError(
            f"`app --version` {'exited ' + str(proc.returncode) if proc.returncode else 'did not print'}"
            f"{'' if proc.returncode else ' the version ' + repr(version)}",
            hint="the service must print its version (main.Version) on --version; pass --version-package if the "
                 "variables live elsewhere, or --no-verify to skip this check",
            detail=out[-2000:])
    return out.splitlines()[0] if out else ""


def build_date(epoch: int) -> str:
    return rfc3339(epoch)
