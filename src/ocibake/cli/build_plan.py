"""One service's build, planned before anything runs: its spec and platforms, the toolchain, the --push targets, the
archive --output and the signing key, all checked from the flags and ocibake.toml. Then, once the build is done, the
push of what it made (the images, the SBOM referrer, the signatures).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ocibake.builder.elapsed import LiveLog, is_terminal
from ocibake.builder.spec import BuildSpec
from ocibake.cli.attachments import push_attachments, signing_key
from ocibake.cli.build_spec import (
    Choices,
    make_toolchain,
    parse_platforms,
    push_targets,
    resolve_service_dir,
    spec_from_choices,
    toolchain_reference,
)
from ocibake.cli.common import Output
from ocibake.cli.export import archive_output
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import Flags, load_settings, target_settings, text
from ocibake.errors import OcibakeError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.archive.target import ArchiveTarget
    from ocibake.builder.bake import BuildResult
    from ocibake.builder.multi import MultiResult
    from ocibake.cli.attachments import Attached
    from ocibake.oci.platform import Platform
    from ocibake.registry.options import RegistryOptions
    from ocibake.registry.push import PushResult
    from ocibake.toolchain.base import Toolchain


@dataclass(frozen=True)
class BuildPlan:
    """Everything one service's build needs, checked: a wrong flag fails here, before go runs."""

    spec: BuildSpec
    platforms: tuple[Platform, ...]  # one: a single image; several: one image each, joined by an index
    toolchain: Toolchain
    toolchain_ref: str | None
    targets: tuple[str, ...]  # the repositories --push names
    archive: ArchiveTarget | None  # --output docker-archive:FILE or oci-archive:FILE
    key: EllipticCurvePrivateKey | None  # --sign-key, decrypted
    registry: RegistryFlags
    out: Output
    log: Callable[[str], None]  # the build's log lines, live on a terminal

    def registry_options(self) -> RegistryOptions:
        """Made only when a registry is asked (a base or toolchain image, the push)."""
        return make_options(self.registry)


def plan_build(service: str, flags: Flags, registry: RegistryFlags, out: Output, sign_key: str | None) -> BuildPlan:
    """Read SERVICE/ocibake.toml and the flags into a checked plan (the flags win)."""
    service_dir = resolve_service_dir(service)
    archive, flags, settings = archive_output(flags, load_settings(service_dir))
    choices = Choices(flags, target_settings(settings, text(flags, "target")))
    spec = spec_from_choices(choices, service_dir)
    if not out.quiet and choices.flags.get("tag") is None:
        warn_tags_without_version(spec)
    platforms = parse_platforms(choices.text("platform", "linux/amd64"))
    targets = push_targets(choices, spec.name)
    toolchain = make_toolchain(choices, service_dir, registry, log_warnings=not out.quiet)
    if sign_key and not targets:
        raise UsageError(
            "--sign-key signs what --push pushes", hint="add --push REPO, or sign later with `ocibake sign`"
        )
    return BuildPlan(
        spec=spec,
        platforms=platforms,
        toolchain=toolchain,
        toolchain_ref=toolchain_reference(choices, service_dir),
        targets=tuple(targets),
        archive=archive,
        key=signing_key(sign_key),
        registry=registry,
        out=out,
        log=LiveLog(out.log, live=not out.quiet and is_terminal(sys.stderr)),
    )


def warn_tags_without_version(spec: BuildSpec) -> None:
    """Tags from ocibake.toml that leave out the version being built are most likely stale."""
    if spec.tags and spec.version not in spec.tags:
        print(
            f"ocibake: warning: the tags in {spec.service_dir / 'ocibake.toml'} ({', '.join(spec.tags)}) do not "
            f"include the version {spec.version}",
            file=sys.stderr,
        )


def push_built(plan: BuildPlan, result: BuildResult | MultiResult, attached: Attached | None) -> PushResult | None:
    """Push what the build made to every --push target, with its SBOM and provenance referrers and signatures; None
    without --push.
    A failed push names the built image, and how to push it again."""
    if not plan.targets:
        return None
    from ocibake.registry.push import push_layout
    from ocibake.report import command_name

    layout = plan.spec.output
    try:
        pushed = push_layout(layout, plan.targets, list(result.tags), make_options(plan.registry))
        push_attachments(attached, pushed, plan.key, make_options(plan.registry), plan.out.log)
    except OcibakeError as exc:  # built, not pushed: in the JSON report; stdout lists only what was pushed
        exc.built = (result.reference, *exc.built)
        tags = " ".join(f"-t {t}" for t in result.tags)
        exc.hint = (
            f"{exc.hint + '; ' if exc.hint else ''}the image is built in {layout}: push it again "
            f"with `{command_name()} push {layout} {' '.join(plan.targets)} {tags}`"
            + (
                f", then sign it with `{command_name()} sign REPO@{result.reference.split('@', 1)[1]} --key KEY`"
                if plan.key is not None
                else ""
            )
        )
        raise
    return pushed
