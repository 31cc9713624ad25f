"""Outcomes of `app --version` kept by the binary's digest, so a rebuild that produced the same bytes does not run
them again.

Running the binary proves that the version was injected and, after UPX, that the packed binary starts. For the same
bytes, the same platform, the same expected version and the same emulator, the answer cannot change, and with UPX
each run costs a full in-memory unpack (about 0.1 s). Only checks that passed are kept: a failure is an error and is
asked again on the next build. An entry is a small JSON file under the private cache's ``checks/``, written to a
temporary name and renamed; anything that cannot be read is a miss, never an error. ``--verify always`` ignores what
is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocibake.builder.file_cache import file_sha256, make_key
from ocibake.toolchain.json_memo import JsonMemo

CACHE_PART = "checks"
MAX_ENTRIES = 2000
MAX_STARTUP_SECONDS = 15.0  # the check's own timeout
MEMO = JsonMemo(CACHE_PART, MAX_ENTRIES)


@dataclass(frozen=True)
class CheckKey:
    """What a check's outcome depends on."""

    binary_sha256: str
    platform: str
    version: str
    version_package: str
    emulator: str  # "" when the binary runs natively

    @classmethod
    def of(cls, binary: Path, platform: str, version: str, version_package: str, emulator: str) -> CheckKey:
        return cls(file_sha256(binary), platform, version, version_package, emulator)

    def hexkey(self) -> str:
        return make_key(
            kind="version-check",
            binary=self.binary_sha256,
            platform=self.platform,
            version=self.version,
            version_package=self.version_package,
            emulator=self.emulator,
        )


@dataclass(frozen=True)
class RememberedCheck:
    line: str  # the first line the binary printed
    seconds: float | None  # its start-up time then (None under emulation)


def recall(key: CheckKey) -> RememberedCheck | None:
    kept = MEMO.get(key.hexkey())
    if kept is None:
        return None
    line, seconds = kept.get("line"), kept.get("seconds")
    # only an outcome the check itself would give counts: a line naming the version, a plausible start-up time
    if not isinstance(line, str) or key.version not in line or "\n" in line:
        return None
    if seconds is None:
        return RememberedCheck(line, None)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_STARTUP_SECONDS:
        return None
    return RememberedCheck(line, float(seconds))


def remember(key: CheckKey, line: str, seconds: float | None) -> None:
    MEMO.put(key.hexkey(), {"line": line, "seconds": seconds})
