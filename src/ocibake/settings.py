"""ocibake.toml: per-service defaults. Flags on the command line win over the file, the file over built-in defaults."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ocibake.errors import InputError

CONFIG_FILE = "ocibake.toml"

# key in ocibake.toml -> (type, argparse dest)
KEYS = {
    "name": (str, "name"), "version": (str, "image_version"), "tags": (list, "tag"), "target": (str, "target"),
    "platform": (str, "platform"), "compression": (str, "compression"), "main": (str, "main"),
    "output": (str, "output"), "port": (int, "port"), "version_package": (str, "version_package"),
    "ca_bundle": (str, "ca_bundle"), "zoneinfo": (str, "zoneinfo"), "verify": (bool, "verify"),
    "source": (str, "source"), "upx": (str, "upx"), "toolchain": (str, "toolchain"),
    "network": (bool, "network"), "push": (list, "push"),
}


def load_settings(service_dir: Path) -> dict:
    """Return {argparse dest: value} from SERVICE_DIR/ocibake.toml ([build] table or top level), or {}."""
    path = service_dir / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}", hint="fix the file or remove it") from exc
    table = data.get("build", data)
    out = {}
    for key, value in table.items():
        if key == "build" and isinstance(value, dict):
            continue
        if key not in KEYS:
            raise InputError(f"{path}: unknown setting {key!r}", hint=f"known settings: {', '.join(sorted(KEYS))}")
        kind, dest = KEYS[key]
        if kind is list and isinstance(value, str):
            value = [value]
        if key == "upx" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)      # upx = 9 means level 9
        if (not isinstance(value, kind) or (kind is int and isinstance(value, bool))
                or (kind is list and not all(isinstance(v, str) for v in value))):
            raise InputError(f"{path}: {key} must be a {kind.__name__}, not {type(value).__name__}",
                             hint=f"for example {key} = " + ('"value"' if kind is str else '8080' if kind is int else
                                                            'true' if kind is bool else '["v1", "latest"]'))
        out[dest] = value
    return out
