"""The build command's flags and ocibake.toml, turned into a frozen BuildSpec, a toolchain and the --push targets.

Flags win over ocibake.toml, ocibake.toml over the built-in defaults. Everything is checked here, before anything is
built or written: names, tags, the version, the platform, compression, target, port, UPX mode, SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ocibake.builder.project import without_credentials
from ocibake.builder.spec import BuildSpec
from ocibake.builder.upx import upx_args
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import Flags, Value, check_value, text, texts
from ocibake.errors import InputError, UsageError
from ocibake.oci.names import NAME_RE, TAG_RE
from ocibake.oci.platform import Platform

if TYPE_CHECKING:
    from ocibake.toolchain.base import Toolchain

T = TypeVar("T")
MAX_EPOCH = 253402300799  # 9999-12-31T23:59:59Z, the last second RFC 3339 (and Python's datetime) can write


def _source_url(given: str | None) -> str | None:
    """--source as written into the image: credentials in the URL removed (a CI clone URL carries a job token)."""
    return None if given is None else without_credentials(given)


def resolve_service_dir(arg: str) -> Path:
    if not arg.strip():
        raise InputError("the service directory is empty", hint="pass the service's directory, e.g. services/NAME or .")
    path = Path(arg)
    if path.is_dir():
        return path.resolve()
    if "/" not in arg and Path("services", arg).is_dir():
        return Path("services", arg).resolve()
    if path.exists():
        raise InputError(f"{arg} is not a directory", hint="pass the service's directory (the one holding go.mod)")
    looked = f"{arg}" + (f" or services/{arg}" if "/" not in arg else "")
    raise InputError(
        f"service directory not found: {looked}",
        hint="pass the path of a Go service (the directory holding go.mod), or a name under services/",
    )


def validate_tag(value: str, what: str) -> str:
    if not TAG_RE.match(value):
        raise InputError(
            f"{what} {value!r} is not a valid OCI tag",
            hint="tags are 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'",
        )
    return value


def validate_version(value: str) -> str:
    if not value or len(value) > 128 or any(c.isspace() or c in "'\"\\" for c in value) or not value.isprintable():
        raise InputError(
            f"version {value!r} cannot be injected with -X",
            hint="use up to 128 printable characters without spaces or quotes, e.g. v1.2.3+build.5",
        )
    return value


def verify_mode(choices: Choices) -> str:
    """auto, always or never, from --verify MODE / --no-verify, else ocibake.toml's verify (a mode, or true/false).
    --no-verify with --verify auto|always contradicts itself and is refused."""
    flag_mode, flag_off = choices.flags.get("verify_mode"), choices.flags.get("verify") is False
    if flag_off and flag_mode not in (None, "never"):
        raise UsageError(
            f"--no-verify and --verify {flag_mode} contradict each other",
            hint="give one of them (--no-verify is --verify never)",
        )
    if flag_off:
        return "never"
    if isinstance(flag_mode, str):
        return flag_mode
    kept = choices.settings.get("verify_mode")
    if isinstance(kept, str):
        return kept
    return "never" if choices.settings.get("verify") is False else "auto"


class Choices:
    """The build's settings: a flag if given, else ocibake.toml, else the default."""

    def __init__(self, flags: Flags, settings: Mapping[str, Value]):
        self.flags = flags
        self.settings = settings

    def value(self, key: str) -> Value | None:
        """The flag if given, else the file's setting; None when neither says."""
        value = self.flags.get(key)
        return self.settings.get(key) if value is None else value

    def text(self, key: str, default: str) -> str:
        value = self.optional_text(key)
        return default if value is None else value

    def optional_text(self, key: str) -> str | None:
        return None if self.value(key) is None else self._typed(key, str)

    def number(self, key: str, default: int) -> int:
        return default if self.value(key) is None else self._typed(key, int)

    def switch(self, key: str, default: bool) -> bool:
        return default if self.value(key) is None else self._typed(key, bool)

    def texts(self, key: str) -> list[str]:
        """A list setting (tags, push targets); empty when neither a flag nor the file gives one."""
        value = texts(self.flags, key)
        if value is None:
            value = texts(self.settings, key)
        return [] if value is None else value

    def _typed(self, key: str, kind: type[T]) -> T:
        """The value, which click and the file's checks gave the setting's type."""
        value = self.value(key)
        if not isinstance(value, kind):
            raise TypeError(f"{key} is {value!r}, not {kind.__name__}")
        return value


def spec_from_choices(choices: Choices, service_dir: Path) -> BuildSpec:
    """The frozen spec of one service's build; every setting is checked before anything is built."""
    name = image_name(choices, service_dir)
    tags, version = tags_and_version(choices, service_dir)
    platform = parse_platforms(choices.text("platform", "linux/amd64"))[0]
    compression, target = choices.text("compression", "gzip"), choices.text("target", "production")
    port = choices.number("port", 8080)
    for key, value in (("compression", compression), ("target", target), ("port", port)):
        check_value(key, value)
    output = output_dir(choices, service_dir, name)
    epoch = source_date_epoch()
    check_target_flags(target, choices)
    healthcheck = choices.optional_text("healthcheck")
    return BuildSpec(
        service_dir=service_dir,
        name=name,
        version=version,
        tags=tags,
        target=target,
        platform=platform,
        compression=compression,
        main=choices.optional_text("main"),
        output=output.absolute(),
        port=port,
        version_package=choices.text("version_package", "main"),
        ca_bundle=choices.text("ca_bundle", "certifi"),
        zoneinfo=choices.text("zoneinfo", "tzdata"),
        verify_binary=verify_mode(choices) != "never",
        verify_always=verify_mode(choices) == "always",
        source_url=_source_url(choices.optional_text("source")),
        source_date_epoch=epoch,
        upx=upx_mode(choices.optional_text("upx")),
        base=base_choice(choices, service_dir),
        healthcheck=None if healthcheck == "none" else healthcheck,
        no_healthcheck=not choices.switch("healthcheck_on", True) or healthcheck == "none",
        delve=choices.optional_text("delve"),
        asked_layers=frozenset(
            kind
            for kind, key in (("ca-certificates", "ca_bundle"), ("zoneinfo", "zoneinfo"))
            if choices.flags.get(key) is not None or choices.settings.get(key)
        ),
        force_tags=choices.switch("force_tags", False),
    )


def image_name(choices: Choices, service_dir: Path) -> str:
    """--name, or `name` in ocibake.toml, or the directory's name in lower case; a valid repository name."""
    name = choices.text("name", service_dir.name.lower())
    if not name and not (service_dir / "go.mod").is_file():  # `ocibake build /`: no name, and no Go service
        raise InputError(
            f"{service_dir} has no go.mod",
            hint="ocibake builds Go modules: point at the directory that holds go.mod",
        )
    if not name:
        raise InputError(
            f"{service_dir} has no directory name to name the image after",
            hint="name it with --name, e.g. --name emergency-service (or name = in ocibake.toml)",
        )
    if not NAME_RE.match(name) or len(name) > 255:
        raise InputError(
            f"image name {name!r} is not a valid repository name",
            hint="use lowercase letters, digits and separators (. _ -), path components joined by /, "
            "e.g. --name emergency-service or --name sos-app/emergency-service",
        )
    return name


def tags_and_version(choices: Choices, service_dir: Path) -> tuple[tuple[str, ...], str]:
    """The tags (in the order given, each once) and the version. Without tags the version is a tag too; with them
    it need only be safe in -ldflags."""
    tags = tuple(
        dict.fromkeys(
            _from_file(choices, "tag", service_dir, lambda: [validate_tag(t, "tag") for t in choices.texts("tag")])
        )
    )
    version = choices.text("image_version", "dev")
    if tags:
        _from_file(choices, "image_version", service_dir, lambda: validate_version(version))
        return tags, version
    try:
        _from_file(choices, "image_version", service_dir, lambda: validate_tag(version, "version"))
    except InputError as exc:
        raise InputError(
            exc.message,
            hint=f"{exc.hint}; or name the tags with --tag, and the version may then "
            "hold other characters (e.g. v1.0.0+build.5)",
        ) from None
    return tags, version


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH from the environment; None when unset (the build then takes the commit time)."""
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch_text and not (epoch_text.isascii() and epoch_text.isdigit()):
        raise InputError(
            f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds",
            hint="set it to a Unix time such as $(git log -1 --format=%ct), or unset it",
        )
    if epoch_text and int(epoch_text) > MAX_EPOCH:
        raise InputError(
            f"SOURCE_DATE_EPOCH={epoch_text} is after the year 9999, which an image's RFC 3339 times cannot say",
            hint=f"set it to a Unix time up to {MAX_EPOCH}, such as $(git log -1 --format=%ct), or unset it",
        )
    return int(epoch_text) if epoch_text else None


# setting -> (the target it belongs to, its flag)
TARGET_ONLY = {
    "healthcheck": ("production-alpine", "--healthcheck"),
    "healthcheck_on": ("production-alpine", "--no-healthcheck"),
    "delve": ("development", "--delve"),
}


def check_target_flags(target: str, choices: Choices) -> None:
    """A setting of another target is refused, not ignored: `--target production --healthcheck ...` would otherwise
    build an image without the health check its author asked for."""
    for key, (owner, flag) in TARGET_ONLY.items():
        if owner != target and choices.value(key) is not None:
            raise InputError(
                f"{flag} applies to --target {owner}, not {target}",
                hint=f"add --target {owner}, or leave {flag} out (in ocibake.toml, put it under [target.{owner}])",
            )


def parse_platforms(text: str) -> tuple[Platform, ...]:
    """--platform os/arch[/variant][,os/arch...]: each once, in the order given."""
    out: list[Platform] = []
    for part in str(text).split(","):
        try:
            platform = Platform.parse(part)
        except ValueError as exc:
            raise InputError(
                str(exc), hint="for example --platform linux/arm64, linux/arm/v7, or a list: linux/amd64,linux/arm64"
            ) from None
        if platform in out:
            raise InputError(f"--platform names {platform} twice", hint="name each platform once")
        out.append(platform)
    return tuple(out)


def base_choice(choices: Choices, service_dir: Path) -> str | None:
    """--base, or `base` in ocibake.toml (an oci: path there is relative to the service, like the toolchain's)."""
    return _reference_choice(choices, "base", service_dir)


def _reference_choice(choices: Choices, key: str, service_dir: Path) -> str | None:
    """An image reference from a flag as given, or from ocibake.toml, where an oci: path is relative to the service
    (like every path in that file)."""
    reference = text(choices.flags, key)
    if reference is None and choices.settings.get(key):
        reference = str(choices.settings[key])
        if reference.startswith("oci:") and not Path(reference[4:]).is_absolute():
            reference = f"oci:{service_dir / reference[4:]}"
    return reference


def _from_file(choices: Choices, key: str, service_dir: Path, check: Callable[[], T]) -> T:
    """Run ``check``; when the value came from ocibake.toml (no flag), its error names the file."""
    try:
        return check()
    except InputError as exc:
        if choices.flags.get(key) is None and choices.settings.get(key) is not None:
            raise InputError(f"{service_dir / 'ocibake.toml'}: {exc.message}", hint=exc.hint) from None
        raise


def output_dir(choices: Choices, service_dir: Path, name: str) -> Path:
    """--output as given (relative to the current directory), or ocibake.toml's `output` (relative to the service,
    like every path in that file), or dist/oci/NAME; a `scheme:` that is not a known output is refused."""
    from ocibake.cli.output_scheme import refuse_unknown_scheme

    flag = text(choices.flags, "output")
    if flag is not None:
        refuse_unknown_scheme(flag, "--output")
        return Path(flag)
    setting = text(choices.settings, "output")
    if setting is not None:
        refuse_unknown_scheme(str(setting), f"{service_dir / 'ocibake.toml'}: output")
        return service_dir / setting  # an absolute path stays as it is
    return Path(f"dist/oci/{name}")


def upx_mode(value: str | None) -> str | None:
    """--upx or `upx = ...` in ocibake.toml (a string, or an integer level), checked now; None: the target's."""
    if value is None:
        return None
    text = str(value).strip().lower()
    upx_args(text)  # InputError with the list of modes
    return text


def make_toolchain(
    choices: Choices, service_dir: Path, registry: RegistryFlags, log_warnings: bool, prefix: str = ""
) -> Toolchain:
    from ocibake.toolchain.choose import make_toolchain as make
    from ocibake.toolchain.local import LocalToolchain

    network = choices.switch("network", False)
    reference = toolchain_reference(choices, service_dir)
    toolchain: Toolchain = make(
        reference,
        go=text(choices.flags, "go"),
        upx=text(choices.flags, "upx_bin"),
        network=network,
        registry_options=lambda: make_options(registry, prefix=prefix),
    )
    if network and isinstance(toolchain, LocalToolchain) and log_warnings:
        print(
            f"{prefix}ocibake: warning: --network applies to toolchain images; the local toolchain uses this host's "
            "network as it is",
            file=sys.stderr,
        )
    return toolchain


def toolchain_reference(choices: Choices, service_dir: Path) -> str | None:
    """--toolchain, or `toolchain` in ocibake.toml; None: the local toolchain."""
    return _reference_choice(choices, "toolchain", service_dir)


def push_targets(choices: Choices, name: str) -> list[str]:
    """The repositories --push names (checked now, before the build); an empty --push means the image name, and a
    prefix ending in / means PREFIX/NAME."""
    given = choices.texts("push")
    targets = [value.strip() + name if value.strip().endswith("/") else value.strip() or name for value in given]
    if not targets:
        return []
    from ocibake.registry.reference import parse_reference

    for target in targets:
        ref = parse_reference(target)
        if ref.digest or ref.tag:
            raise InputError(
                f"--push {target}: give a repository, not a tag or digest",
                hint="the build's tags (--version, --tag) are pushed; e.g. --push registry.example.com/team/app",
            )
    return targets
