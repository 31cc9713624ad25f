"""The build command's flags and ocibake.toml, turned into a frozen BuildSpec, a toolchain and the --push targets.

Flags win over ocibake.toml, ocibake.toml over the built-in defaults. Everything is checked here, before anything is
built or written: names, tags, the version, the platform, compression, target, port, UPX mode, SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from ocibake.build.spec import BuildSpec
from ocibake.build.upx import upx_args
from ocibake.cli.registry_options import RegistryFlags, make_options
from ocibake.cli.settings import check_value
from ocibake.errors import InputError
from ocibake.oci.names import NAME_RE, TAG_RE
from ocibake.oci.platform import Platform


def resolve_service_dir(arg: str) -> Path:
    path = Path(arg)
    if path.is_dir():
        return path.resolve()
    if "/" not in arg and Path("services", arg).is_dir():
        return Path("services", arg).resolve()
    if path.exists():
        raise InputError(f"{arg} is not a directory", hint="pass the service's directory (the one holding go.mod)")
    looked = f"{arg}" + (f" or services/{arg}" if "/" not in arg else "")
    raise InputError(f"service directory not found: {looked}",
                     hint="pass the path of a Go service (the directory holding go.mod), or a name under services/")


def validate_tag(value: str, what: str) -> str:
    if not TAG_RE.match(value):
        raise InputError(f"{what} {value!r} is not a valid OCI tag",
                         hint="tags are 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    return value


def validate_version(value: str) -> str:
    if not value or len(value) > 128 or any(c.isspace() or c in "'\"\\" for c in value) or not value.isprintable():
        raise InputError(f"version {value!r} cannot be injected with -X",
                         hint="use up to 128 printable characters without spaces or quotes, e.g. v1.2.3+build.5")
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
        raise InputError(f"image name {name!r} is not a valid repository name",
                         hint="use lowercase letters, digits and separators (. _ -), path components joined by /, "
                              "e.g. --name emergency-service or --name sos-app/emergency-service")
    # Tags are written in the order given, each once.
    tags = tuple(dict.fromkeys(validate_tag(t, "tag") for t in pick("tag", [])))
    version = pick("image_version", "dev")
    if tags:
        validate_version(version)          # not a tag: only needs to be safe inside -ldflags
    else:
        try:
            validate_tag(version, "version")
        except InputError as exc:
            raise InputError(exc.message, hint=f"{exc.hint}; or name the tags with --tag, and the version may then "
                                               "hold other characters (e.g. v1.0.0+build.5)") from None
    try:
        platform = Platform.parse(pick("platform", "linux/amd64"))
    except ValueError as exc:
        raise InputError(str(exc), hint="for example --platform linux/arm64 or linux/arm/v7") from None
    if "," in str(platform):
        raise InputError("one platform at a time for now", hint="run ocibake build once per platform")
    compression, target, port = pick("compression", "gzip"), pick("target", "production"), pick("port", 8080)
    for key, value in (("compression", compression), ("target", target), ("port", port)):
        check_value(key, value)
    output = Path(pick("output", f"dist/oci/{name}"))
    epoch_text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch_text and not epoch_text.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH={epoch_text!r} is not a number of seconds",
                         hint="set it to a Unix time such as $(git log -1 --format=%ct), or unset it")
    return BuildSpec(service_dir=service_dir, name=name, version=version, tags=tags, target=target,
                     platform=platform, compression=compression, main=pick("main", None), output=output.absolute(),
                     port=port, version_package=pick("version_package", "main"),
                     ca_bundle=pick("ca_bundle", "certifi"), zoneinfo=pick("zoneinfo", "tzdata"),
                     verify_binary=pick("verify", True), source_url=pick("source", None),
                     source_date_epoch=int(epoch_text) if epoch_text else None, upx=upx_mode(pick("upx", None)))


def upx_mode(value) -> str | None:
    """--upx or `upx = ...` in ocibake.toml (a string, or an integer level), checked now; None: the target's."""
    if value is None:
        return None
    text = str(value).strip().lower()
    upx_args(text)      # InputError with the list of modes
    return text


def make_toolchain(choices: Choices, service_dir: Path, registry: RegistryFlags, log_warnings: bool):
    from ocibake.toolchain.choose import make_toolchain as make
    from ocibake.toolchain.local import LocalToolchain
    network = choices.pick("network", False)
    reference = choices.flags.get("toolchain")
    if reference is None and choices.settings.get("toolchain"):
        reference = str(choices.settings["toolchain"])
        # an oci: path in ocibake.toml is relative to the service, like everything else in that file
        if reference.startswith("oci:") and not Path(reference[4:]).is_absolute():
            reference = f"oci:{service_dir / reference[4:]}"
    toolchain = make(reference, go=choices.flags.get("go"), upx=choices.flags.get("upx_bin"), network=bool(network),
                     registry_options=lambda: make_options(registry))
    if network and isinstance(toolchain, LocalToolchain) and log_warnings:
        print("ocibake: warning: --network applies to toolchain images; the local toolchain uses this host's "
              "network as it is", file=sys.stderr)
    return toolchain


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
            raise InputError(f"--push {target}: give a repository, not a tag or digest",
                             hint="the build's tags (--version, --tag) are pushed; e.g. --push registry.example.com/team/app")
    return targets


def push_repo_names(targets: list[str]) -> list[str]:
    if not targets:
        return []
    from ocibake.registry.reference import parse_reference
    return [parse_reference(t).name for t in targets]
