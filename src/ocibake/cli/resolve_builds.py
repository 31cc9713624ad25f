"""The builds behind `ocibake resolve`: each service named by an ocibake:// reference, built once (in parallel) with
its ocibake.toml and the command's flags, then pushed; the result is the `REPO@sha256:...` that replaces it.

Every check that needs no compiler (service directories, names, push targets, two services writing one layout) runs
for all services before the first build starts. The first failure stops the builds not yet started and is raised
once the running ones end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ocibake.builder.spec import BuildSpec
from ocibake.cli.build_spec import Choices, make_toolchain, resolve_service_dir, spec_from_choices
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import Flags
from ocibake.errors import InputError, OcibakeError
from ocibake.resolve.documents import Reference


@dataclass(frozen=True)
class Service:
    directory: Path
    spec: BuildSpec
    repository: str  # where it is pushed (REGISTRY/REPO, or a bare name under $OCIBAKE_REGISTRY)
    references: tuple[Reference, ...]
    choices: Choices


def plan_services(references: Sequence[Reference], push_prefix: str | None, flags: Flags) -> list[Service]:
    """One Service per distinct directory, checked; an unknown path names the file and line that gave it."""
    from ocibake.cli.settings import load_settings
    from ocibake.registry.reference import parse_reference

    by_dir: dict[Path, list[Reference]] = {}
    for ref in references:
        try:
            directory = resolve_service_dir(ref.path)
        except InputError as exc:
            raise InputError(f"{ref.where()}: {ref.value}: {exc.message}", hint=exc.hint) from None
        if not (directory / "go.mod").is_file():
            raise InputError(
                f"{ref.where()}: {ref.value}: {directory} holds no go.mod",
                hint="ocibake://PATH names a Go service's directory (the one holding go.mod)",
            )
        by_dir.setdefault(directory, []).append(ref)
    services: list[Service] = []
    outputs: dict[Path, str] = {}
    for directory, refs in by_dir.items():
        choices = Choices(flags, load_settings(directory).common)
        try:
            spec = spec_from_choices(choices, directory)
        except OcibakeError as exc:
            exc.message = f"{refs[0].where()}: {refs[0].value}: {exc.message}"
            raise
        repository = f"{push_prefix.rstrip('/')}/{spec.name}" if push_prefix else spec.name
        parse_reference(repository)
        if spec.output in outputs:
            raise InputError(
                f"{refs[0].value} and {outputs[spec.output]} would both build into {spec.output}",
                hint="give the services different names (--name in ocibake.toml) or outputs",
            )
        outputs[spec.output] = refs[0].value
        services.append(Service(directory, spec, repository, tuple(refs), choices))
    return services


def build_and_push(
    services: Sequence[Service],
    flags: Flags,
    registry: RegistryFlags,
    log: Callable[[str], None],
    jobs: int,
) -> dict[str, str]:
    """Build and push every service; returns ocibake://PATH (as written) -> REPO@sha256:DIGEST."""
    from ocibake.builder.bake import bake
    from ocibake.registry.push import push_layout

    lock = threading.Lock()
    stop = threading.Event()

    def one(service: Service) -> tuple[Service, str]:
        if stop.is_set():
            raise _Skipped()
        prefix = f"[{service.spec.name}] "

        def say(line: str) -> None:
            with lock:
                log(prefix + line)

        try:
            toolchain = make_toolchain(service.choices, service.directory, registry, log_warnings=False)
            result = bake(service.spec, toolchain, log=say)
            say(f"built {result.reference} in {service.spec.output}")
            if stop.is_set():
                raise _Skipped()
            pushed = push_layout(service.spec.output, service.repository, list(result.tags), make_options(registry))
        except OcibakeError as exc:
            exc.message = f"{service.references[0].value}: {exc.message}"
            exc.results = ()  # nothing on stdout: the YAML is all or nothing
            raise
        say(pushed.summary())
        return service, f"{pushed.tags[0].repository}@{result.image.digest}"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, s) for s in services]
        return _resolved(futures, stop)


def _resolved(futures: Sequence[Future[tuple[Service, str]]], stop: threading.Event) -> dict[str, str]:
    """Wait for every build; the first failure cancels the builds not started and is raised once the others end."""
    from ocibake.builder.services import stop_everything
    from ocibake.toolchain import jobs as jobs_module

    try:
        # in short waits: a signal the kernel gives another thread is only handled when the main thread runs
        done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
        while pending and not any(f.done() and f.exception() is not None for f in done):
            done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
    except BaseException:  # Ctrl-C, SIGTERM: stop every go and upx, commit nothing, push nothing more
        stop.set()
        stop_everything(futures)
        jobs_module.reset()
        raise
    failed = [e for f in done if (e := f.exception()) is not None and not isinstance(e, _Skipped)]
    if failed:
        stop.set()
        for f in pending:
            f.cancel()
        wait(futures)
        raise failed[0]
    resolved: dict[str, str] = {}
    for f in futures:
        service, reference = f.result()
        for ref in service.references:
            resolved[ref.value] = reference
    return resolved


class _Skipped(Exception):
    """A build not started because another one failed."""
