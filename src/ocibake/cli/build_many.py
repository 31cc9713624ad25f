"""`ocibake build SERVICE_DIR SERVICE_DIR... [--jobs N]`: several services in one run.

Each service is built with its own ocibake.toml (the flags apply to all), in parallel (builder/services.py), with one
shared Go build cache (go's own, or the toolchain image's). stdout: one `NAME@sha256:...` line per built image (after
--push, its `REPO:TAG@sha256:...` lines) in the order given, or with --json one list; stderr: each service's log lines
prefixed with its name, then one summary table that names each failure with its one-line error. The exit code is the
worst of the services'. `--push REGISTRY/PREFIX/` pushes each service to PREFIX/NAME, one after another, mounting the
blobs the services share from the repositories pushed before.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ocibake.builder.services import Outcome, Task, run_all, worst_exit_code
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
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import Flags, load_settings, target_settings, text, texts
from ocibake.errors import InputError, OcibakeError, UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ocibake.builder.bake import BuildResult
    from ocibake.builder.spec import BuildSpec
    from ocibake.cli.attachments import AttachChoices, Attached
    from ocibake.registry.push import PushResult

ONE_SERVICE_FLAGS = {"output": "--output", "name": "--name"}

Log = Callable[[str], None]


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_flags(flags: Flags) -> None:
    """Flags that name one image cannot apply to several."""
    for key, flag in ONE_SERVICE_FLAGS.items():
        if flags.get(key) is not None:
            raise UsageError(
                f"{flag} names one image: it cannot apply to several services",
                hint=f"build them one at a time with {flag}, or leave it out (each service gets "
                "dist/oci/NAME and its directory's name)",
            )
    for value in texts(flags, "push") or ():
        if value.strip() and not value.strip().endswith("/"):
            raise UsageError(
                f"--push {value}: with several services, give a repository prefix ending in /",
                hint="--push REGISTRY/PREFIX/ pushes each service to REGISTRY/PREFIX/NAME",
            )


@dataclass(frozen=True)
class Built:
    """What one service's task returns: the image it built, and where it was pushed (None without --push)."""

    result: BuildResult
    pushed: PushResult | None


@dataclass(frozen=True)
class Planned:
    """One service, checked and ready to build."""

    service: str  # as given on the command line
    service_dir: Path
    choices: Choices
    spec: BuildSpec
    targets: list[str]  # the repositories --push names for it


class _Pusher:
    """Pushes one service at a time; each push mounts blobs from the repositories pushed before it."""

    def __init__(self, registry: RegistryFlags, key: EllipticCurvePrivateKey | None = None):
        self.registry = registry
        self.key = key
        self.lock = threading.Lock()
        self.done: list[str] = []

    def push(
        self,
        layout: Path,
        targets: list[str],
        tags: list[str],
        attached: Attached | None = None,
        log: Log = lambda s: None,
        prefix: str = "",
    ) -> PushResult:
        from ocibake.cli.attachments import push_attachments
        from ocibake.registry.push import push_layout

        with self.lock:
            options = make_options(self.registry, mount_from=tuple(self.done), prefix=prefix)
            pushed = push_layout(layout, targets, tags, options)
            self.done.extend(t for t in targets if t not in self.done)
            if (attached is not None and attached.referrers) or self.key is not None:
                push_attachments(attached, pushed, self.key, options, log)
            return pushed


@dataclass(frozen=True)
class _Builder:
    """Builds one planned service (its SBOM too) and pushes it: the work of one service's task."""

    registry: RegistryFlags
    out: Output
    attach: AttachChoices
    pusher: _Pusher

    def task(self, planned: Planned) -> Task:
        return Task(planned.service, planned.spec.name, partial(self.build, planned))

    def build(self, planned: Planned) -> Built:
        from ocibake.builder.bake import bake
        from ocibake.cli.attachments import make_attachments

        spec = planned.spec
        log = _prefixed(self.out, spec.name)
        prefix = f"[{spec.name}] "
        toolchain = make_toolchain(
            planned.choices, planned.service_dir, self.registry, log_warnings=not self.out.quiet, prefix=prefix
        )
        result = bake(
            spec,
            toolchain,
            log=log,
            registry_options=lambda: make_options(self.registry, prefix=prefix),
            toolchain_ref=toolchain_reference(planned.choices, planned.service_dir),
        )
        ref = toolchain_reference(planned.choices, planned.service_dir)
        attached = make_attachments(self.attach, spec, result, toolchain, ref, log)
        pushed = None
        if planned.targets:
            try:
                pushed = self.pusher.push(spec.output, planned.targets, list(result.tags), attached, log, prefix=prefix)
            except OcibakeError as exc:  # built, not pushed: the JSON says so, stdout lists only what was pushed
                exc.built = (result.reference, *exc.built)
                raise
        log(f"built {result.reference}" + (f", pushed to {', '.join(planned.targets)}" if pushed else ""))
        return Built(result, pushed)


def _prefixed(out: Output, name: str) -> Log:
    """A service's log: its lines on stderr, each after the service's image name."""

    def log(line: str) -> None:
        out.log(f"[{name}] {line}")

    return log


def build_many(
    services: tuple[str, ...],
    flags: Flags,
    registry: RegistryFlags,
    out: Output,
    jobs: int | None,
    attach: AttachChoices | None = None,
    sign_key: str | None = None,
) -> int:
    """Build every service (at most ``jobs`` at a time), report each, and return the worst exit code."""
    from ocibake.cli.attachments import AttachChoices, signing_key

    check_flags(flags)
    if sign_key and not flags.get("push"):
        raise UsageError(
            "--sign-key signs what --push pushes", hint="add --push REGISTRY/PREFIX/, or sign later with `ocibake sign`"
        )
    builder = _Builder(registry, out, attach or AttachChoices(), _Pusher(registry, signing_key(sign_key)))
    early, planned = plan_services(services, flags)
    tasks = [builder.task(p) for p in planned]
    limit = jobs or default_jobs()
    if not out.quiet:
        print(
            f"ocibake: building {len(tasks)} service{'s' if len(tasks) != 1 else ''}, {limit} job"
            f"{'s' if limit != 1 else ''} at a time",
            file=sys.stderr,
            flush=True,
        )
    ran, interrupt = run_all(tasks, limit)
    outcomes = _in_order(len(services), early, ran)
    print_outcomes(outcomes, out)
    if interrupt is not None:
        raise interrupt
    return worst_exit_code(outcomes)


def plan_services(services: tuple[str, ...], flags: Flags) -> tuple[dict[int, Outcome], list[Planned]]:
    """Check every service before any is built: the ones that fail (by their place on the command line) become
    outcomes at once, the others are planned."""
    early: dict[int, Outcome] = {}
    planned: list[Planned] = []
    names: dict[str, str] = {}
    for i, service in enumerate(services):
        try:
            planned.append(plan_service(service, flags, names))
        except OcibakeError as exc:
            early[i] = Outcome(service, Path(service).name or service, error=exc)
    return early, planned


def plan_service(service: str, flags: Flags, names: dict[str, str]) -> Planned:
    """One service's spec and push targets, from its ocibake.toml and the flags. ``names``: image name -> service,
    of the services planned so far; this one's name is added once it is known to be unique."""
    service_dir = resolve_service_dir(service)
    choices = Choices(flags, target_settings(load_settings(service_dir), text(flags, "target")))
    spec = spec_from_choices(choices, service_dir)
    if len(parse_platforms(choices.text("platform", "linux/amd64"))) > 1:
        raise UsageError(
            "a list of platforms is built one service at a time",
            hint="build each service with --platform A,B in its own run",
        )
    if spec.name in names:
        raise InputError(
            f"{service} and {names[spec.name]} are both named {spec.name!r}",
            hint="give one of them another name in its ocibake.toml (name = ...)",
        )
    names[spec.name] = service
    return Planned(service, service_dir, choices, spec, push_targets(choices, spec.name))


def _in_order(n: int, early: dict[int, Outcome], ran: list[Outcome]) -> list[Outcome]:
    it = iter(ran)
    return [early[i] if i in early else next(it) for i in range(n)]


def built(outcome: Outcome) -> Built:
    """What a service's task returned: a Built, as every task of build_many returns one (Outcome holds any value)."""
    if not isinstance(outcome.value, Built):
        raise TypeError(f"{outcome.service}: the build returned {outcome.value!r}, not a Built")
    return outcome.value


def _results(error: BaseException | None) -> tuple[str, ...]:
    """References completed before the failure (an image built but not pushed, say)."""
    return error.results if isinstance(error, OcibakeError) else ()


def outcome_json(outcome: Outcome) -> dict[str, object]:
    from ocibake.report import as_json

    if outcome.ok:
        done = built(outcome)
        doc: dict[str, object] = {"service": outcome.service, **as_json(done.result)}
        if done.pushed is not None:
            doc["push"] = done.pushed.as_json()
        return doc
    return {
        "service": outcome.service,
        "name": outcome.name,
        "references": list(_results(outcome.error)),
        "built": list(outcome.error.built if isinstance(outcome.error, OcibakeError) else ()),
        "error": {
            "message": outcome.error_line,
            "hint": outcome.error.hint if isinstance(outcome.error, OcibakeError) else None,
            "exit_code": outcome.exit_code,
        },
    }


def outcome_lines(outcome: Outcome) -> list[str]:
    """stdout: the image's reference, or one REPO:TAG@DIGEST line per pushed tag; what was done before a failure."""
    if not outcome.ok:
        return list(_results(outcome.error))
    done = built(outcome)
    return done.pushed.lines() if done.pushed is not None else [done.result.reference]


def print_outcomes(outcomes: list[Outcome], out: Output) -> None:
    if out.json:
        print(json.dumps([outcome_json(o) for o in outcomes], indent=2, sort_keys=True))
    else:
        for o in outcomes:
            for line in outcome_lines(o):
                print(line, flush=True)
    from ocibake.cli import print_error

    for o in outcomes:
        if isinstance(o.error, OcibakeError):
            print(file=sys.stderr)
            print_error(o.error, out.verbose, prefix=f"[{o.name}] ")
    if not out.quiet or any(not o.ok for o in outcomes):
        sys.stderr.write(summary_table(outcomes))
        sys.stderr.flush()


def summary_table(outcomes: list[Outcome]) -> str:
    from ocibake.registry.redact import redact

    width = max([len(o.name) for o in outcomes] + [7])
    lines = ["", f"{'service':<{width}}  {'result':<8} {'seconds':>7}  image or error"]
    for o in outcomes:
        if o.ok:
            result = built(o).result
            what = (
                f"{result.image.digest[:19]}  {len(result.layers)} layers, "
                f"upx {'cached' if result.binary.upx.cached else result.binary.upx.mode}"
            )
            lines.append(f"{o.name:<{width}}  {'ok':<8} {o.seconds:>7.2f}  {what}")
        else:
            lines.append(
                f"{o.name:<{width}}  {'exit ' + str(o.exit_code):<8} {o.seconds:>7.2f}  {redact(o.error_line)}"
            )
    failed = [o for o in outcomes if not o.ok]
    built_only = [o for o in failed if isinstance(o.error, OcibakeError) and o.error.built]  # built, push failed
    counts = f"{len(outcomes) - len(failed) + len(built_only)} built"
    if any(o.ok and built(o).pushed is not None for o in outcomes) or built_only:
        counts += f", {sum(1 for o in outcomes if o.ok and built(o).pushed is not None)} pushed"
    lines.append(f"{counts}, {len(failed)} failed")
    return "\n".join(lines) + "\n"
