"""production-alpine: the production binary on a base image that brings a shell and curl or wget (alpine, busybox).

The app user is appended to the base's own /etc/passwd and /etc/group; the CA bundle and zoneinfo layers are left
out where the base has them (unless asked for with --ca-bundle/--zoneinfo); the config carries a health check:
`curl -f http://localhost:PORT/health`, or wget when the base has no curl, or --healthcheck CMD, or none with
--no-healthcheck.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ocibake.builder.base_files import BaseFiles
from ocibake.builder.base_image import BaseImage
from ocibake.builder.spec import BuildSpec
from ocibake.builder.targets.common import Recipe, inherit
from ocibake.errors import InputError
from ocibake.oci.image import ImageConfig

SECOND = 1_000_000_000
TIMINGS = {"Interval": 30 * SECOND, "Timeout": 3 * SECOND, "StartPeriod": 5 * SECOND, "Retries": 3}


def health_command(spec: BuildSpec, files: BaseFiles) -> str:
    url = f"http://localhost:{spec.port}/health"
    if files.program("curl"):
        return f"curl -f {url} || exit 1"
    if files.program("wget"):
        return f"wget -q -O /dev/null {url} || exit 1"
    raise InputError(
        "the base has neither curl nor wget for the health check",
        hint="give one with --healthcheck 'CMD', drop it with --no-healthcheck, or use a base with curl "
        "or wget (alpine, busybox)",
    )


def healthcheck(spec: BuildSpec, base: BaseImage, files: BaseFiles) -> dict[str, list[str] | int] | None:
    """Docker's Healthcheck object for the config (Test and the timings), or None for none."""
    if spec.no_healthcheck:
        # an inherited health check is switched off explicitly, as `HEALTHCHECK NONE` does
        return {"Test": ["NONE"]} if base.runtime.get("Healthcheck") else None
    command = spec.healthcheck or health_command(spec, files)
    if not files.program("sh"):
        raise InputError(
            "the base has no /bin/sh to run the health check in", hint="use a base with a shell, or --no-healthcheck"
        )
    return {"Test": ["CMD-SHELL", command], **TIMINGS}


class ProductionAlpine(Recipe):
    name = "production-alpine"
    base = "required"

    def check(self, spec: BuildSpec) -> None:
        if spec.healthcheck is not None and spec.no_healthcheck:
            raise InputError("--healthcheck and --no-healthcheck contradict each other", hint="give one of them")
        if spec.healthcheck is not None and not spec.healthcheck.strip():
            raise InputError("--healthcheck is empty", hint="give a shell command, or --no-healthcheck")

    def runtime(
        self, spec: BuildSpec, config: ImageConfig, base: BaseImage | None, files: BaseFiles | None
    ) -> tuple[ImageConfig, dict[str, Any]]:
        assert base is not None and files is not None
        check = healthcheck(spec, base, files)
        config = replace(inherit(config, base), healthcheck=check)
        return config, {"healthcheck": check["Test"] if check else None}


PRODUCTION_ALPINE = ProductionAlpine()
