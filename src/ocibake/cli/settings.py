"""ocibake.toml: per-service defaults. Flags on the command line win over the file, the file over built-in defaults."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path

from ocibake.builder.spec import COMPRESSIONS, TARGETS
from ocibake.builder.upx import upx_args
from ocibake.errors import InputError
from ocibake.oci.platform import Platform

CONFIG_FILE = "ocibake.toml"

# key in ocibake.toml -> (type, the build command's parameter name)
KEYS = {
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
TOML_TYPES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list", dict: "a table"}
EXAMPLES = {str: '"value"', int: "8080", bool: "true", list: '["v1", "latest"]'}


def check_value(key: str, value) -> None:
    """The rule for a value with a fixed set of forms, whether it came from a flag or from the file (where the caller
    adds the file's name to the error)."""
    if key == "upx":
        upx_args(value)
    elif key == "compression" and value not in COMPRESSIONS:
        raise InputError(f"unknown compression {value!r}", hint="use gzip or zstd")
    elif key == "target" and value not in TARGETS:
        raise InputError(f"unknown target {value!r}", hint=f"targets: {', '.join(TARGETS)}")
    elif key == "platform":
        try:
            for part in value.split(","):
                Platform.parse(part)
        except ValueError as exc:
            raise InputError(str(exc), hint='for example platform = "linux/arm64"') from None
    elif key == "port" and not 0 < value < 65536:
        raise InputError(f"port {value} is out of range", hint="use a TCP port between 1 and 65535")


def _key(name: str) -> str:
    """A flag's spelling works too: version-package for version_package, tag for tags."""
    name = name.replace("-", "_")
    return "tags" if name == "tag" else name


def _entries(path: Path, data: dict) -> list[tuple[str, object]]:
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
    seen = set()
    for key, _ in entries:
        if key in seen:
            raise InputError(
                f"{path}: {key} is set twice (at the top and under [build], or as {key} and its flag spelling)",
                hint="keep one of them",
            )
        seen.add(key)
    return entries


def load_settings(service_dir: Path) -> dict:
    """Return {build parameter name: value} from SERVICE_DIR/ocibake.toml (top level and [build] table), or {}."""
    path = service_dir / CONFIG_FILE
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise InputError(f"{path} is not a file", hint=f"{CONFIG_FILE} must be a TOML file (or absent)")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}", hint="fix the file or remove it") from exc
    out = _checked(path, _entries(path, data))
    targets = data.get("target", {})
    if targets:
        out[TARGET_TABLES] = _target_tables(path, targets)
    return out


TARGET_TABLES = "__targets__"


def _target_tables(path: Path, targets) -> dict:
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


def target_settings(settings: dict, flag_target: str | None) -> dict:
    """The file's settings for the target being built: its [target.NAME] table wins over the top level."""
    tables = settings.get(TARGET_TABLES, {})
    plain = {k: v for k, v in settings.items() if k != TARGET_TABLES}
    target = flag_target or plain.get("target") or "production"
    return {**plain, **tables.get(target, {})}


def _checked(path: Path, entries, where: str = "") -> dict:
    out = {}
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
        if (
            not isinstance(value, kind)
            or (kind is int and isinstance(value, bool))
            or (kind is list and not all(isinstance(v, str) for v in value))
        ):
            raise InputError(
                f"{path}: {where}{key} must be {TYPE_NAMES[kind]}, not "
                f"{TOML_TYPES.get(type(value), type(value).__name__)}",
                hint=f"for example {key} = {EXAMPLES[kind]}",
            )
        if key == "tags" and not value:
            raise InputError(
                f"{path}: tags = [] names no tag",
                hint="name at least one tag, or remove the line for the default tags (VERSION and latest)",
            )
        try:
            check_value(key, value)
        except InputError as exc:
            raise InputError(f"{path}: {where}{exc.message}", hint=exc.hint) from None
        out[dest] = value
    return out
