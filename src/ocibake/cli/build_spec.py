"""The build command's flags and ocibake.toml, turned into a frozen BuildSpec, a toolchain and the --push targets.

Flags win over ocibake.toml, ocibake.toml over the built-in defaults. Everything is checked here, before anything is
built or written: names, tags, the version, the platform, compression, target, port, UPX mode, SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ocibake.builder.spec import BuildSpec
from ocibake.builder.upx import upx_args
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import check_value
from ocibake.errors import InputError
from ocibake.oci.names import NAME_RE, TAG_RE
from ocibake.oci.platform import Platform


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


class Choices:
    """The build's settings: a flag if given, else ocibake.toml, else the default."""

    def __init__(self, flags: Mapping[str, object], settings: Mapping[str, object]):
        self.flags = flags
        self.settings = settings

    def pick(self, key: str, default):
        value = self.flags.get(key)
        if value is None:
            value = self.settings.get(key)
        return default if value is None else value


def spec_from_choices(choices: Choices, service_dir: Path) -> BuildSpec:
    pick = choices.pick
    name = pick("name", service_dir.name.lower())
    if not NAME_RE.match(name) or len(name) > 255:
        raise InputError(
            f"image name {name!r} is not a valid repository name",
            hint="use lowercase letters, digits and separators (. _ -), path components joined by /, "
            "e.g. --name emergency-service or --name sos-app/emergency-service",
        )
    # Tags are written in the order given, each once.
    tags = tuple(
        dict.fromkeys(
            _from_file(choices, "tag", service_dir, lambda: [validate_tag(t, "tag") for t in pick("tag", [])])
        )
    )
    version = pick("image_version", "dev")
    if tags:
        _from_file(choices, "image_version", service_dir, lambda: validate_version(version))  # only safe in -ldflags
    else:
        try:
            _from_file(choices, "image_version", service_dir, lambda: validate_tag(version, "version"))
        except InputError as exc:
            raise InputError(
                exc.message,
                hint=f"{exc.hint}; or name the tags with --tag, and the version may then "
                "hold other characters (e.g. v1.0.0+build.5)",
            ) from None
    platform = parse_platforms(pick("platform", "linux/amd64"))[0]
    compression, target, port = pick("compression", "gzip"), pick("target", "production"), pick("port", 8080)
    for key, value in (("compression", compression), ("target", target), ("port", port)):
        check_value(key, value)
    output = output_dir(choices, service_dir, name)
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch_text and not epoch_text.isdigit():
        raise InputError(
            f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds",
            hint="set it to a Unix time such as $(git log -1 --format=%ct), or unset it",
        )
    check_target_flags(target, pick)
    return BuildSpec(
        service_dir=service_dir,
        name=name,
        version=version,
        tags=tags,
        target=target,
        platform=platform,
        compression=compression,
        main=pick("main", None),
        output=output.absolute(),
        port=port,
        version_package=pick("version_package", "main"),
        ca_bundle=pick("ca_bundle", "certifi"),
        zoneinfo=pick("zoneinfo", "tzdata"),
        verify_binary=pick("verify", True),
        source_url=pick("source", None),
        source_date_epoch=int(epoch_text) if epoch_text else None,
        upx=upx_mode(pick("upx", None)),
        base=base_choice(choices, service_dir),
        healthcheck=None if pick("healthcheck", None) == "none" else pick("healthcheck", None),
        no_healthcheck=not pick("healthcheck_on", True) or pick("healthcheck", None) == "none",
        delve=pick("delve", None),
        asked_layers=frozenset(
            kind
            for kind, key in (("ca-certificates", "ca_bundle"), ("zoneinfo", "zoneinfo"))
            if choices.flags.get(key) is not None or choices.settings.get(key)
        ),
        force_tags=bool(pick("force_tags", False)),
    )


# setting -> (the target it belongs to, its flag)
TARGET_ONLY = {
    "healthcheck": ("production-alpine", "--healthcheck"),
    "healthcheck_on": ("production-alpine", "--no-healthcheck"),
    "delve": ("development", "--delve"),
}


def check_target_flags(target: str, pick) -> None:
    """A setting of another target is refused, not ignored: `--target production --healthcheck ...` would otherwise
    build an image without the health check its author asked for."""
    for key, (owner, flag) in TARGET_ONLY.items():
        if owner != target and pick(key, None) is not None:
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
    reference = choices.flags.get("base")
    if reference is None and choices.settings.get("base"):
        reference = str(choices.settings["base"])
        if reference.startswith("oci:") and not Path(reference[4:]).is_absolute():
            reference = f"oci:{service_dir / reference[4:]}"
    return reference


def _from_file(choices: Choices, key: str, service_dir: Path, check):
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

    flag = choices.flags.get("output")
    if flag is not None:
        refuse_unknown_scheme(str(flag), "--output")
        return Path(flag)
    setting = choices.settings.get("output")
    if setting is not None:
        refuse_unknown_scheme(str(setting), f"{service_dir / 'ocibake.toml'}: output")
        return service_dir / setting  # an absolute path stays as it is
    return Path(f"dist/oci/{name}")


def upx_mode(value) -> str | None:
    """--upx or `upx = ...` in ocibake.toml (a string, or an integer level), checked now; None: the target's."""
    if value is None:
        return None
    text = str(value).strip().lower()
    upx_args(text)  # InputError with the list of modes
    return text


def make_toolchain(choices: Choices, service_dir: Path, registry: RegistryFlags, log_warnings: bool):
    from ocibake.toolchain.choose import make_toolchain as make
    from ocibake.toolchain.local import LocalToolchain

    network = choices.pick("network", False)
    reference = toolchain_reference(choices, service_dir)
    toolchain = make(
        reference,
        go=choices.flags.get("go"),
        upx=choices.flags.get("upx_bin"),
        network=bool(network),
        registry_options=lambda: make_options(registry),
    )
    if network and isinstance(toolchain, LocalToolchain) and log_warnings:
        print(
            "ocibake: warning: --network applies to toolchain images; the local toolchain uses this host's "
            "network as it is",
            file=sys.stderr,
        )
    return toolchain


def toolchain_reference(choices: Choices, service_dir: Path) -> str | None:
    reference = choices.flags.get("toolchain")
    if reference is None and choices.settings.get("toolchain"):
        reference = str(choices.settings["toolchain"])
        # an oci: path in ocibake.toml is relative to the service, like everything else in that file
        if reference.startswith("oci:") and not Path(reference[4:]).is_absolute():
            reference = f"oci:{service_dir / reference[4:]}"
    return reference


def push_targets(choices: Choices, name: str) -> list[str]:
    """The repositories --push names (checked now, before the build); an empty --push means the image name, and a
    prefix ending in / means PREFIX/NAME."""
    given = choices.flags.get("push")
    if given is None:
        given = choices.settings.get("push", [])
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


def push_repo_names(targets: list[str]) -> list[str]:
    if not targets:
        return []
    from ocibake.registry.reference import parse_reference

    return [parse_reference(t).name for t in targets]
