"""`ocibake audit`: rebuild an image from its source with the settings and toolchain its build record names, and
compare digests. The source must be at the recorded commit (a dirty tree is rebuilt as it is, with a warning); the
toolchain image is the recorded one (by digest) or, for a local build, the local go (with a warning when its version
differs). On a mismatch the two images are diffed and the probable causes are named (see causes.py)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocibake.audit.causes import probable_causes
from ocibake.audit.diff import ImageDiff, diff_images
from ocibake.audit.image_source import OpenedImage, open_layout_image
from ocibake.audit.source_dir import service_dir
from ocibake.builder.bake import bake
from ocibake.builder.project import GitInfo, git_info
from ocibake.builder.spec import BuildSpec
from ocibake.errors import InputError
from ocibake.oci.platform import Platform

if TYPE_CHECKING:
    from ocibake.toolchain.base import Toolchain

Log = Callable[[str], None]


@dataclass(frozen=True)
class AuditResult:
    reference: str
    digest: str
    rebuilt: str
    warnings: tuple[str, ...]
    causes: tuple[str, ...] = ()
    diff: ImageDiff | None = None
    unchecked: tuple[str, ...] = field(default_factory=tuple)
    checked: tuple[str, ...] = ()  # what the verdict rests on, in the order it was checked

    @property
    def reproduced(self) -> bool:
        return self.digest == self.rebuilt

    def verdict(self) -> str:
        checked = f"; checked: {'; '.join(self.checked)}" if self.checked else ""
        if self.reproduced:
            return f"reproduced: the rebuild from source is {self.rebuilt}, the same image{checked}"
        return f"NOT reproduced: the image is {self.digest}, the rebuild {self.rebuilt}{checked}"

    def as_json(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "rebuilt": self.rebuilt,
            "reproduced": self.reproduced,
            "verdict": self.verdict(),
            "checked": list(self.checked),
            "warnings": list(self.warnings),
            "probable_causes": list(self.causes),
            "diff": self.diff.as_json() if self.diff else None,
        }


def require_record(image: OpenedImage) -> dict[str, Any]:
    record = image.build_record
    if record is None:
        raise InputError(
            f"{image.reference} has no ocibake build record (label dev.ocibake.build-record), so its "
            "source revision, Go release, settings and toolchain cannot be checked",
            hint="audit works on images built by ocibake; `ocibake inspect` shows what the image holds",
        )
    return record


def recorded_git(record: dict[str, Any]) -> GitInfo:
    """The git facts the image records, for rebuilding a source that is not a git checkout (an archive)."""
    return GitInfo(str(record.get("commit")), int(record.get("source_date_epoch") or 0), bool(record.get("dirty")), "")


def check_source(record: dict[str, Any], source: Path) -> tuple[list[str], list[str]]:
    """(warnings, changed files) for the source tree; InputError when it is at another revision."""
    if not (source / "go.mod").is_file():
        raise InputError(f"{source} holds no go.mod", hint="pass the service's directory (the one holding go.mod)")
    warnings: list[str] = []
    git = git_info(source)
    wanted = str(record.get("commit") or "unknown")
    if wanted == "unknown":
        warnings.append("the image records no git commit: the source revision cannot be checked")
    elif not git.commit:
        warnings.append(
            f"{source} is not a git checkout: cannot check that it is at commit {wanted[:12]}; it is "
            "rebuilt as that commit (the recorded commit and git facts are used)"
        )
    elif git.commit != wanted:
        raise InputError(
            f"{source} is at commit {git.commit[:12]}, but the image was built from {wanted[:12]}",
            hint=f"check out the recorded revision first: git -C {source} checkout {wanted}",
        )
    changed: list[str] = []
    if git.dirty:
        changed = changed_files(source)
        warnings.append(f"{source} has uncommitted changes ({', '.join(changed)}); they are rebuilt as they are")
    if record.get("dirty"):
        warnings.append("the image itself was built from a tree with uncommitted changes: its exact source is unknown")
    return warnings, changed


def changed_files(source: Path) -> list[str]:
    """Files with uncommitted changes under ``source``, relative to it."""
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(source), "diff", "HEAD", "--name-only", "--relative", "--", "."],
        check=False,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        timeout=30,
    )
    return sorted(line for line in proc.stdout.splitlines() if line) if proc.returncode == 0 else []


def _source_choice(kind: str, layer: dict[str, Any] | None, default: str, warnings: list[str]) -> str:
    if not layer:
        return "none"
    source = layer.get("source")
    if source in (default, "host"):
        return str(source)
    warnings.append(f"the {kind} came from a {source} that is not recorded; the rebuild uses the pinned {default}")
    return default


def spec_from_record(
    image: OpenedImage, record: dict[str, Any], source: Path, output: Path, warnings: list[str]
) -> BuildSpec:
    annotations = image.manifest.get("annotations") or {}
    runtime = image.config.get("config") or {}
    ldflags = str((record.get("go") or {}).get("ldflags", ""))
    m = re.search(r"-X (\S+)\.Version=\S+ -X \S+\.BuildDate=\S+ -X \S+\.GitCommit=\S+", ldflags)
    version_package = m.group(1) if m else "main"
    extra = tuple(ldflags[m.end() :].split()) if m else ()
    ports = sorted(runtime.get("ExposedPorts") or {})
    port = int(ports[0].split("/")[0]) if ports else 8080
    layers = record.get("layers") or {}
    upx = (record.get("upx") or {}).get("mode", "off")
    try:
        platform = Platform.parse(str(record.get("platform", "linux/amd64")))
    except ValueError as exc:
        raise InputError(f"the build record names an unknown platform: {exc}", hint="the record is damaged") from None
    return BuildSpec(
        service_dir=source.resolve(),
        name=annotations.get("org.opencontainers.image.title") or source.name,
        version=annotations.get("org.opencontainers.image.version", "dev"),
        tags=("audit",),
        target=str(record.get("target", "production")),
        platform=platform,
        compression="zstd" if str(record.get("compression", "")).startswith("zstd") else "gzip",
        main=record.get("package"),
        output=output,
        port=port,
        version_package=version_package,
        ca_bundle=_source_choice("CA bundle", layers.get("ca-certificates"), "certifi", warnings),
        zoneinfo=_source_choice("zoneinfo", layers.get("zoneinfo"), "tzdata", warnings),
        verify_binary=False,
        source_date_epoch=int(record.get("source_date_epoch") or 0),
        source_url=annotations.get("org.opencontainers.image.source"),
        extra_ldflags=extra,
        upx=upx,
    )


def check_toolchain(record: dict[str, Any], toolchain: Toolchain, source: Path, warnings: list[str]) -> None:
    recorded = record.get("toolchain") or {}
    wanted_go = str((record.get("go") or {}).get("version", ""))
    if recorded.get("kind") == "image":
        got = toolchain.describe()
        if got.get("kind") != "image":
            raise InputError(
                f"the image was built in the toolchain image {recorded.get('digest')}",
                hint=f"pass it: --toolchain REGISTRY/REPO@{recorded.get('digest')} (or oci:DIR@...)",
            )
        return
    local = toolchain.go_version(source)
    if wanted_go and local != wanted_go:
        warnings.append(f"the local go is {local}, the image was built with {wanted_go}: the rebuild will differ")


def what_was_checked(image: OpenedImage, record: dict[str, Any], signature: str | None) -> tuple[str, ...]:
    """The checks an audit's verdict rests on, in plain words (the rebuild itself is the last)."""
    go = (record.get("go") or {}).get("version")
    return (
        (
            f"every blob of the image against its digest and size ({image.blobs_checked} blobs), every layer against "
            "its diff_id"
        ),
        signature or "no signature (no --key given)",
        (
            f"the build record (commit {str(record.get('commit'))[:12]}, {go}, target {record.get('target')}, "
            f"{record.get('platform')})"
        ),
        "the rebuild from source with the recorded settings, compared by digest",
    )


def audit(
    image: OpenedImage, source: Path, toolchain: Toolchain, log: Log = lambda s: None, signature: str | None = None
) -> AuditResult:
    """Rebuild ``image`` from ``source`` and compare; ``signature`` says how its signature was checked (None: not)."""
    record = require_record(image)
    checked = what_was_checked(image, record, signature)
    found = service_dir(source, record)
    if found != source:
        log(f"{source} holds no go.mod: using {found}, whose go.mod declares {record.get('module')}")
        source = found
    warnings, changed = check_source(record, source)
    check_toolchain(record, toolchain, source, warnings)
    env_epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if env_epoch and env_epoch != str(record.get("source_date_epoch")):
        warnings.append(
            f"SOURCE_DATE_EPOCH={env_epoch} in the environment is ignored: the rebuild uses the recorded "
            f"{record.get('source_date_epoch')}"
        )
    tmp = Path(tempfile.mkdtemp(prefix="ocibake-audit-"))
    try:
        spec = spec_from_record(image, record, source, tmp / "rebuilt", warnings)
        if str(record.get("commit") or "unknown") != "unknown" and not git_info(source).commit:
            spec = dataclasses.replace(spec, recorded_git=recorded_git(record))
        for w in warnings:
            log(f"warning: {w}")
        log(
            f"rebuilding {spec.name} {spec.version} from {source} ({record.get('commit', 'unknown')[:12]}) "
            f"with the recorded settings"
        )
        result = bake(spec, toolchain, log=log)
        if result.image.digest == image.digest:
            return AuditResult(image.reference, image.digest, result.image.digest, tuple(warnings), checked=checked)
        rebuilt = open_layout_image(f"oci:{tmp / 'rebuilt'}@{result.image.digest}")
        d = diff_images(image, rebuilt)
        causes = probable_causes(d, image, rebuilt, changed, toolchain)
        return AuditResult(
            image.reference, image.digest, result.image.digest, tuple(warnings), tuple(causes), d, checked=checked
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
