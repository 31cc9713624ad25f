"""`ocibake run IMAGE`: one image started in the sandbox, its signals forwarded, its health checked, its exit code
returned. The pieces: image.py (find, check, unpack), command.py (what runs, as whom), sandbox.py (bubblewrap's
arguments), process.py (the running app, signals), health.py (the Healthcheck).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ocibake.run.command import Command, command
from ocibake.run.health import Healthcheck, Monitor, healthcheck
from ocibake.run.image import RunImage, open_run_image
from ocibake.run.process import App, forwarding
from ocibake.run.sandbox import bwrap_program, run_argv

if TYPE_CHECKING:
    from ocibake.registry.options import RegistryOptions


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of `ocibake run`, beyond the image."""

    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    network: str = "host"
    shell: bool = False
    platform: str | None = None
    health: bool = True
    health_interval: float | None = None
    entrypoint: str | None = None

    def healthcheck(self, runtime: Mapping[str, Any]) -> Healthcheck | None:
        """The image's Healthcheck as these options run it: none with --no-healthcheck or --shell."""
        return healthcheck(runtime, self.health_interval) if self.health and not self.shell else None


class AppHolder:
    """The app that signals go to; one that arrives before the app has started is delivered when it has."""

    def __init__(self) -> None:
        self.app: App | None = None
        self.pending: list[int] = []

    def signal(self, signum: int) -> None:
        if self.app is None:
            self.pending.append(signum)
        else:
            self.app.signal(signum)

    def set(self, app: App | None) -> None:
        self.app = app
        if app is not None:
            for signum in self.pending:
                app.signal(signum)
        self.pending.clear()


def describe(image: RunImage, cmd: Command, network: str) -> str:
    """The line printed before the app starts: what runs, as whom, and where its ports are."""
    ports = sorted(image.runtime.get("ExposedPorts") or {})
    if network == "none":
        where = "network: none (a loopback of its own)"
    elif ports:
        numbers = [p.split("/")[0] for p in ports]
        flags = " ".join(f"-p {n}:{n}" for n in numbers)
        where = f"network: the host's; ports {', '.join(ports)} on every interface, as `{flags}` would give"
    else:
        where = "network: the host's"
    emulated = f" under {image.emulator.rsplit('/', 1)[-1]}" if image.emulator else ""
    return (
        f"run       {image.name} {image.digest[:19]} ({image.platform}{emulated}) as {cmd.uid}:{cmd.gid}: "
        f"{' '.join(cmd.argv)}\n          {where}"
    )


def start(image: RunImage, cmd: Command, network: str) -> App:
    """The app started in its sandbox (the caller closes it)."""
    bwrap = bwrap_program()
    # Delve hands its terminal to the program it launches (tcsetpgrp), which fails in bubblewrap's new session
    # ("inappropriate ioctl for device"): a debugger image reads no terminal, its client talks over :2345
    debugger = cmd.argv[0].rsplit("/", 1)[-1] == "dlv"
    return App(lambda fd: run_argv(bwrap, image.rootfs, cmd, network, fd, image.emulator), cmd.env, no_stdin=debugger)


def probe_sandbox(image: RunImage, cmd: Command, network: str) -> Callable[[Sequence[str]], list[str]] | None:
    """How a health probe runs in a sandbox of its own (health.py: for a non-root user, who cannot enter the app's
    namespaces): the same image, user, environment and working directory, on the host's network; None with
    `--network none`, where such a probe could not reach the app."""
    if network != "host":
        return None
    bwrap = bwrap_program()
    return lambda argv: run_argv(bwrap, image.rootfs, replace(cmd, argv=tuple(argv)), "host", None, image.emulator)


def prepare(
    reference: str, options: RunOptions, registry_options: Callable[[], RegistryOptions] | None = None
) -> tuple[RunImage, Command]:
    image = open_run_image(reference, options.platform, registry_options)
    return image, command(image.rootfs, image.runtime, options.args, options.env, options.shell, options.entrypoint)


def supervise(app: App, image: RunImage, cmd: Command, options: RunOptions, log: Callable[[str], None]) -> int:
    """Wait for the app (its health checked meanwhile) and return its exit code."""
    check = options.healthcheck(image.runtime)
    monitor = None
    if check is not None:
        sandboxed = probe_sandbox(image, cmd, options.network)
        monitor = Monitor(check, cmd, app.app_pid, options.network == "none", log, sandboxed)
    if monitor is not None:
        monitor.start()
    try:
        return app.wait()
    finally:
        if monitor is not None:
            monitor.stop()
            monitor.join()


def run_image(
    reference: str,
    options: RunOptions,
    log: Callable[[str], None],
    registry_options: Callable[[], RegistryOptions] | None = None,
) -> int:
    """Run ``reference``'s image until it exits; its exit code."""
    image, cmd = prepare(reference, options, registry_options)
    log(describe(image, cmd, options.network))
    holder = AppHolder()
    with forwarding(holder.signal), start(image, cmd, options.network) as app:
        holder.set(app)
        return supervise(app, image, cmd, options, log)
