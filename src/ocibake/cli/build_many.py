"""`ocibake build SERVICE_DIR SERVICE_DIR... [--jobs N]`: several services in one run.

Each service is built with its own ocibake.toml (the flags apply to all), in parallel (build/services.py), with one
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
from pathlib import Path

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
from ocibake.cli.settings import load_settings, target_settings
from ocibake.errors import InputError, OcibakeError, UsageError

ONE_SERVICE_FLAGS = {"output": "--output", "name": "--name"}


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def check_flags(flags: dict) -> None:
    """Flags that name one image cannot apply to several."""
    for key, flag in ONE_SERVICE_FLAGS.items():
        if flags.get(key) is not None:
            raise UsageError(
                f"{flag} names one image: it cannot apply to several services",
                hint=f"build them one at a time with {flag}, or leave it out (each service gets "
                "dist/oci/NAME and its directory's name)",
            )
    for value in flags.get("push") or ():
        if value.strip() and not value.strip().endswith("/"):
            raise UsageError(
                f"--push {value}: with several services, give a repository prefix ending in /",
                hint="--push REGISTRY/PREFIX/ pushes each service to REGISTRY/PREFIX/NAME",
            )


class _Pusher:
    """Pushes one service at a time; each push mounts blobs from the repositories pushed before it."""

    def __init__(self, registry: RegistryFlags, key=None):
        self.registry = registry
        self.key = key
        self.lock = threading.Lock()
        self.done: list[str] = []

    def push(self, layout: Path, targets: list[str], tags: list[str], sbom_artifact=None, log=lambda s: None):
        from ocibake.cli.attachments import push_attachments
        from ocibake.registry.push import push_layout

        with self.lock:
            options = make_options(self.registry, mount_from=tuple(self.done))
            pushed = push_layout(layout, targets, tags, options)
            self.done.extend(t for t in targets if t not in self.done)
            if sbom_artifact is not None or self.key is not None:
                push_attachments(sbom_artifact, pushed, self.key, options, log)
            return pushed


def build_many(
    services: tuple[str, ...],
    flags: dict,
    registry: RegistryFlags,
    out: Output,
    jobs: int | None,
    sbom: str = "spdx",
    sign_key: str | None = None,
) -> int:
    from ocibake.builder.bake import bake
    from ocibake.cli.attachments import make_sbom, signing_key

    check_flags(flags)
    if sign_key and not flags.get("push"):
        raise UsageError(
            "--sign-key signs what --push pushes", hint="add --push REGISTRY/PREFIX/, or sign later with `ocibake sign`"
        )
    key = signing_key(sign_key)
    pusher = _Pusher(registry, key)
    tasks: list[Task] = []
    early: dict[int, Outcome] = {}
    names: dict[str, str] = {}
    for i, service in enumerate(services):
        label = Path(service).name or service
        try:
            service_dir = resolve_service_dir(service)
            choices = Choices(flags, target_settings(load_settings(service_dir), flags.get("target")))
            spec = spec_from_choices(choices, service_dir)
            if len(parse_platforms(choices.pick("platform", "linux/amd64"))) > 1:
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
            targets = push_targets(choices, spec.name)
        except OcibakeError as exc:
            early[i] = Outcome(service, label, error=exc)
            continue

        def log(line: str, name=spec.name) -> None:
            out.log(f"[{name}] {line}")

        def run(spec=spec, choices=choices, service_dir=service_dir, targets=targets, log=log):
            toolchain = make_toolchain(choices, service_dir, registry, log_warnings=not out.quiet)
            result = bake(
                spec,
                toolchain,
                log=log,
                registry_options=lambda: make_options(registry),
                toolchain_ref=toolchain_reference(choices, service_dir),
            )
            sbom_artifact = make_sbom(sbom, spec.output, result.image.digest, spec.name, toolchain, log)
            pushed = None
            if targets:
                try:
                    pushed = pusher.push(spec.output, targets, list(result.tags), sbom_artifact, log)
                except OcibakeError as exc:
                    exc.results = (result.reference, *exc.results)
                    raise
            log(f"built {result.reference}" + (f", pushed to {', '.join(targets)}" if pushed else ""))
            return result, pushed

        tasks.append(Task(service, spec.name, run))
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


def _in_order(n: int, early: dict[int, Outcome], ran: list[Outcome]) -> list[Outcome]:
    it = iter(ran)
    return [early[i] if i in early else next(it) for i in range(n)]


def print_outcomes(outcomes: list[Outcome], out: Output) -> None:
    from ocibake.report import as_json

    if out.json:
        docs = []
        for o in outcomes:
            if o.ok:
                result, pushed = o.value
                doc = {"service": o.service, **as_json(result)}
                if pushed is not None:
                    doc["push"] = pushed.as_json()
            else:
                doc = {
                    "service": o.service,
                    "name": o.name,
                    "references": list(getattr(o.error, "results", ())),
                    "error": {
                        "message": o.error_line,
                        "hint": getattr(o.error, "hint", None),
                        "exit_code": o.exit_code,
                    },
                }
            docs.append(doc)
        print(json.dumps(docs, indent=2, sort_keys=True))
    else:
        for o in outcomes:
            if o.ok:
                result, pushed = o.value
                print("\n".join(pushed.lines() if pushed is not None else [result.reference]), flush=True)
            else:
                for line in getattr(o.error, "results", ()):
                    print(line, flush=True)
    from ocibake.cli import print_error

    for o in outcomes:
        if isinstance(o.error, OcibakeError):
            print(f"\n[{o.name}]", file=sys.stderr)
            print_error(o.error, out.verbose)
    if not out.quiet or any(not o.ok for o in outcomes):
        sys.stderr.write(summary_table(outcomes))
        sys.stderr.flush()


def summary_table(outcomes: list[Outcome]) -> str:
    from ocibake.registry.redact import redact

    width = max([len(o.name) for o in outcomes] + [7])
    lines = ["", f"{'service':<{width}}  {'result':<8} {'seconds':>7}  image or error"]
    for o in outcomes:
        if o.ok:
            result, _ = o.value
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
    lines.append(f"{len(outcomes) - len(failed)} built, {len(failed)} failed")
    return "\n".join(lines) + "\n"
