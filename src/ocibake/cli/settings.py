"""ocibake.toml: per-service defaults. Flags on the command line win over the file, the file over built-in defaults."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ocibake.builder.spec import COMPRESSIONS, TARGETS
from ocibake.builder.upx import upx_args
from ocibake.errors import InputError
from ocibake.oci.platform import Platform

CONFIG_FILE = "ocibake.toml"

Value = str | int | bool | list[str]  # one setting, as ocibake.toml or a flag of the build command gives it
Settings = dict[str, Value]  # the build command's parameter name -> value
Flags = Mapping[str, Value | None]  # the build command's flags; None: not given


@dataclass(frozen=True)
class ServiceSettings:
    """SERVICE_DIR/ocibake.toml: its settings (top level and [build]), and its [target.NAME] tables."""

    common: Settings = field(default_factory=dict)
    targets: dict[str, Settings] = field(default_factory=dict)


def text(values: Mapping[str, Value | None], key: str) -> str | None:
    """A setting or flag that is a string (click and the file's checks make it one), or None when not given."""
    value = values.get(key)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{key} is {value!r}, not a string")


def texts(values: Mapping[str, Value | None], key: str) -> list[str] | None:
    """A setting or flag that is a list of strings (--tag, --push), or None when not given."""
    value = values.get(key)
    if value is None or isinstance(value, list):
        return value
    raise TypeError(f"{key} is {value!r}, not a list")


# key in ocibake.toml -> (type, the build command's parameter name)
KEYS: dict[str, tuple[type, str]] = {
    "name": (str, "name"),
    "version": (str, "image_version"),
    "tags": (list, "tag"),
    "target": (str, "target"),
    "platform": (str, "platform"),
    "compression": (str, "compression"),
    "main": (str, "main"),
    "output": (str, "output"),
    "port": (int, "port"),
    "version_package": (str, "version_package"),
    "ca_bundle": (str, "ca_bundle"),
    "zoneinfo": (str, "zoneinfo"),
    "verify": (bool, "verify"),
    "source": (str, "source"),
    "upx": (str, "upx"),
    "toolchain": (str, "toolchain"),
    "network": (bool, "network"),
    "push": (list, "push"),
    "base": (str, "base"),
    "healthcheck": (str, "healthcheck"),
    "delve": (str, "delve"),
    "force_tags": (bool, "force_tags"),
}

TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings"}
VERIFY_TYPE = '"auto", "always", "never", true or false'
TOML_TYPES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "a table"}
EXAMPLES = {str: '"value"', int: "8080", bool: "true", list: '["v1", "latest"]'}


def check_value(key: str, value: Value) -> None:
    """The rule for a value with a fixed set of forms, whether it came from a flag or from the file (where the caller
    adds the file's name to the error). The value already has the setting's type."""
    if key == "upx":
        upx_args(str(value))
    elif key == "compression" and value not in COMPRESSIONS:
        raise InputError(f"unknown compression {value!r}", hint="use gzip or zstd")
    elif key == "target" and value not in TARGETS:
        raise InputError(f"unknown target {value!r}", hint=f"targets: {', '.join(TARGETS)}")
    elif key == "platform" and isinstance(value, str):
        try:
            for part in value.split(","):
                Platform.parse(part)
        except ValueError as exc:
            raise InputError(str(exc), hint='for example platform = "linux/arm64"') from None
    elif key == "port" and isinstance(value, int) and not 0 < value < 65536:
        raise InputError(f"port {value} is out of range", hint="use a TCP port between 1 and 65535")


def _key(name: str) -> str:
    """A flag's spelling works too: version-package for version_package, tag for tags."""
    name = name.replace("-", "_")
    return "tags" if name == "tag" else name


def _entries(path: Path, data: dict[str, object]) -> list[tuple[str, object]]:
    """The settings of the file: top-level keys and those of its [build] table (the only table allowed)."""
    entries = [(_key(k), v) for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if not isinstance(table, dict) or name == "target":
            continue
        if name != "build":
            close = difflib.get_close_matches(name, ["build"], n=1)
            guess = " (did you mean [build]?)" if close else ""
            raise InputError(
                f"{path}: unknown section [{name}]{guess}",
                hint="settings go at the top of the file, under [build], or under [target.NAME] for one target",
            )
        entries += [(_key(k), v) for k, v in table.items()]
    seen: set[str] = set()
    for key, _ in entries:
        if key in seen:
            raise InputError(
                f"{path}: {key} is set twice (at the top and under [build], or as {key} and its flag spelling)",
                hint="keep one of them",
            )
        seen.add(key)
    return entries


def load_settings(service_dir: Path) -> ServiceSettings:
    """The settings of SERVICE_DIR/ocibake.toml (top level, [build] table and [target.NAME] tables), as build
    parameter names; none when there is no such file."""
    path = service_dir / CONFIG_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} is not a file", hint=f"{CONFIG_FILE} must be a TOML file (or absent)")
        return ServiceSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark (Windows editors) is no error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}", hint="fix the file or remove it") from exc
    except RecursionError:
        raise InputError(f"{path}: nested too deep to read", hint="fix the file or remove it") from None
    common = _checked(path, _entries(path, data))
    targets = data.get("target", {})
    return ServiceSettings(common, _target_tables(path, targets) if targets else {})


def _target_tables(path: Path, targets: object) -> dict[str, Settings]:
    """[target.NAME] tables: settings that apply only when building that target."""
    if not isinstance(targets, dict) or not all(isinstance(t, dict) for t in targets.values()):
        raise InputError(
            f"{path}: target must be a string or [target.NAME] tables",
            hint='e.g. target = "production", or [target.production-alpine] with base = "alpine:3.20"',
        )
    out = {}
    for name, table in targets.items():
        if name not in TARGETS:
            raise InputError(f"{path}: unknown target [target.{name}]", hint=f"targets: {', '.join(TARGETS)}")
        entries = [(_key(k), v) for k, v in table.items()]
        if any(k == "target" for k, _ in entries):
            raise InputError(f"{path}: [target.{name}] cannot set target", hint="set target at the top or in [build]")
        out[name] = _checked(path, entries, f"[target.{name}] ")
    return out


def target_settings(settings: ServiceSettings, flag_target: str | None) -> Settings:
    """The file's settings for the target being built: its [target.NAME] table wins over the top level."""
    target = flag_target or text(settings.common, "target") or "production"
    return {**settings.common, **settings.targets.get(target, {})}


VERIFY_MODES = ("auto", "always", "never")


def _verify_mode(path: Path, where: str, value: str) -> str:
    """``verify`` in the file takes --verify's modes as well as true/false (--no-verify is verify = false)."""
    if value not in VERIFY_MODES:
        raise InputError(
            f"{path}: {where}verify = {value!r} is not a verify mode",
            hint='use verify = "auto", "always" or "never" (or true / false)',
        )
    return value


def _typed(kind: type, value: object) -> Value | None:
    """``value`` when it has the setting's type (``kind``; a list holds only strings), else None."""
    if kind is str and isinstance(value, str):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is bool and isinstance(value, bool):
        return value
    if kind is list and isinstance(value, list):
        strings = [v for v in value if isinstance(v, str)]
        return strings if len(strings) == len(value) else None
    return None


def _checked(path: Path, entries: Iterable[tuple[str, object]], where: str = "") -> Settings:
    out: Settings = {}
    for key, given in entries:
        value = given
        if isinstance(value, dict):
            raise InputError(f"{path}: {where}{key} is a table, not a setting", hint="settings are key = value")
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            raise InputError(
                f"{path}: {where}unknown setting {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"known settings: {', '.join(sorted(KEYS))}",
            )
        kind, dest = KEYS[key]
        if kind is list and isinstance(value, str):
            value = [value]
        if key == "upx" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # upx = 9 means level 9
        if key == "verify" and isinstance(value, str):
            out["verify_mode"] = _verify_mode(path, where, value)
            continue
        typed = _typed(kind, value)
        if typed is None:
            wanted, example = (VERIFY_TYPE, '"always"') if key == "verify" else (TYPE_NAMES[kind], EXAMPLES[kind])
            raise InputError(
                f"{path}: {where}{key} must be {wanted}, not {TOML_TYPES.get(type(value), type(value).__name__)}",
                hint=f"for example {key} = {example}",
            )
        if key == "tags" and not typed:
            raise InputError(
                f"{path}: tags = [] names no tag",
                hint="name at least one tag, or remove the line for the default tags (VERSION and latest)",
            )
        try:
            check_value(key, typed)
        except InputError as exc:
            raise InputError(f"{path}: {where}{exc.message}", hint=exc.hint) from None
        out[dest] = typed
    return out
