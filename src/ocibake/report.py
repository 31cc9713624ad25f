"""The build report: a table on stderr for people, the reference on stdout, or everything as JSON."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from typing import TYPE_CHECKING, TextIO

from ocibake.builder.app_binary import NOT_VERIFIED
from ocibake.builder.bake import BuildResult
from ocibake.units import human_size

if TYPE_CHECKING:
    from ocibake.registry.push import PushResult

LAYER_TITLES = {
    "passwd": "passwd/group, /tmp",
    "zoneinfo": "zoneinfo",
    "ca-certificates": "CA bundle",
    "binary": "binary /app",
    "base": "base image layer",
    "delve": "Delve /usr/local/bin/dlv",
}


def command_name() -> str:
    """How to run ocibake again as it was run now: `ocibake` when that is on PATH, else the path that was used
    (.venv/bin/ocibake after `make quickstart`), or `python -m ocibake`."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0.endswith("__main__.py"):
        return f"{shlex.quote(sys.executable)} -m ocibake"
    on_path = shutil.which("ocibake")
    if not argv0 or (on_path and os.path.realpath(on_path) == os.path.realpath(argv0)):
        return "ocibake"
    return shlex.quote(argv0)


def as_json(result: BuildResult) -> dict[str, object]:
    image = result.image
    return {
        "name": result.name,
        "reference": result.reference,
        "digest": image.digest,
        "layout": str(result.layout),
        "tags": list(result.tags),
        "moved": dict(result.moved),
        "platform": str(image.platform),
        "size": image.compressed_size,
        "config": {"digest": image.config.digest, "size": len(image.config.data)},
        "layers": [
            {
                "kind": layer.kind,
                "digest": layer.digest,
                "size": layer.size,
                "uncompressed_size": layer.uncompressed_size,
            }
            for layer in result.layers
        ],
        "binary": binary_json(result),
        "toolchain": result.toolchain,
        "module": {
            "path": result.module.path,
            "go": result.module.go_version,
            "direct_dependencies": len(result.module.direct_deps),
            "main": result.package,
        },
        "build_record": result.record,
        "base": result.record.get("base"),
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
    }


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds is not None else "?"


def binary_json(result: BuildResult) -> dict[str, object]:
    app = result.binary
    upx: dict[str, object] = {"mode": app.upx.mode}
    if app.upx.mode != "off":
        upx.update(
            size_before=app.upx.size_before,
            size_after=app.upx.size_after,
            seconds=round(app.upx.seconds, 3),
            cached=app.upx.cached,
            startup_seconds=app.upx_check.seconds if app.upx_check is not None else None,
        )
    return {
        "size": app.size,
        "check": app.final_check.line,
        "check_remembered": app.final_check.remembered,
        "startup_seconds": app.check.seconds,
        "upx": upx,
    }


def binary_lines(result: BuildResult) -> list[str]:
    """What the binary is and what UPX did to it: bytes saved next to the start-up time they cost."""
    app = result.binary
    lines = [f"binary    {human_size(app.size)}; --version: {app.final_check.display()}"]
    if app.upx.mode != "off":
        saved = app.upx.size_before - app.upx.size_after
        lines.append(
            f"upx       {app.upx.mode}: {human_size(app.upx.size_before)} -> {human_size(app.upx.size_after)} "
            f"({app.upx.ratio:.0%}, {human_size(saved)} saved) in {app.upx.seconds:.1f}s"
        )
        if app.check.ran and app.upx_check is not None and app.upx_check.ran:
            when = ", measured when these bytes were first checked" if app.upx_check.remembered else ""
            lines.append(
                f"start-up  {_ms(app.check.seconds)} plain, {_ms(app.upx_check.seconds)} with UPX "
                f"(`--version`{when}; UPX unpacks the binary in memory at every start; --upx off to skip)"
            )
        elif app.check.line.startswith(NOT_VERIFIED):
            lines.append("start-up  not measured: verification is off")
        else:
            lines.append("start-up  not measured: the binary was not run here")
    return lines


def print_human(result: BuildResult, err: TextIO) -> None:
    """The build's report on stderr; the `next:` block comes later (print_result), after the push it describes."""
    image = result.image
    w = err.write
    w(f"\nimage     {result.name} {image.digest}\n")
    w(f"platform  {image.platform}\n")
    w(f"toolchain {result.record['go']['version']}, {result.toolchain}\n")
    w(f"tags      {', '.join(result.tags)}  in {result.layout}\n")
    if result.base is not None:
        w(f"base      {result.base.name}@{result.base.digest}\n")
    for tag, old in result.moved:
        w(f"          moved {tag} (was {old[:19]})\n")
    w(f"size      {human_size(image.compressed_size)} compressed ({len(result.layers)} layers)\n")
    for line in binary_lines(result):
        w(line + "\n")
    w("\n")
    w(f"  {'layer':<22} {'compressed':>12} {'uncompressed':>13}  digest\n")
    for layer in result.layers:
        w(
            f"  {LAYER_TITLES.get(layer.kind, layer.kind):<22} {human_size(layer.size):>12} "
            f"{human_size(layer.uncompressed_size):>13}  {layer.digest[:19]}\n"
        )
    secs = result.seconds
    upx_part = f", upx {secs['upx']:.2f}s" if result.binary.upx.mode != "off" else ""
    w(f"\ntook {secs['total']:.2f}s (go build {secs['go_build']:.2f}s{upx_part}, layers {secs['layers']:.2f}s)\n")


def pushed_commands(pushed: PushResult, tls_flags: tuple[str, ...] = ()) -> list[str]:
    """How to look at what was pushed: `ocibake inspect` with the same TLS flags the push took, and skopeo, with
    --tls-verify=false only where the push spoke plain HTTP (skopeo cannot take a CA file, so not after --ca-cert)."""
    q = shlex.quote
    first = pushed.tags[0]
    ref = f"{first.repository}:{first.tag}"
    lines = [f"  {command_name()} inspect {q(ref)}{''.join(' ' + q(f) for f in tls_flags)} --no-files"]
    if "--ca-cert" not in tls_flags:
        plain = first.repository.split("/", 1)[0] in pushed.plain_http or "--insecure" in tls_flags
        lines.append(f"  skopeo inspect {'--tls-verify=false ' if plain else ''}{q('docker://' + ref)}")
    return lines


def audit_commands(result: BuildResult, push_repos: tuple[str, ...] = (), signed: bool = False) -> list[str]:
    """How to scan what was just built for known vulnerabilities, and verify its signature and provenance."""
    q = shlex.quote
    tag = result.tags[0]
    lines = [
        f"  {command_name()} scan {q('oci:' + str(result.layout) + ':' + tag)}   # known vulnerabilities (govulncheck)"
    ]
    if push_repos and signed:
        remote = q(push_repos[0] + ":" + tag)
        lines.append(f"  {command_name()} verify {remote} --key cosign.pub --attestation slsaprovenance1")
        lines.append(
            f"  cosign verify-attestation --key cosign.pub --type slsaprovenance1 --insecure-ignore-tlog=true {remote}"
        )
    return lines


def next_commands(result: BuildResult, pushed: PushResult | None = None, tls_flags: tuple[str, ...] = ()) -> list[str]:
    """What to run next, quoted so it can be pasted: inspect the layout, inspect what was pushed (or push the tags
    just built), load into docker. ``tls_flags``: the registry flags the push took (--ca-cert PATH, --insecure)."""
    q = shlex.quote
    tag = result.tags[0]
    ref = f"{result.layout}:{tag}"
    tags = " ".join(f"-t {q(t)}" for t in result.tags)
    lines = ["next:", f"  skopeo inspect {q('oci:' + ref)}"]
    if pushed is not None and pushed.tags:
        lines += pushed_commands(pushed, tls_flags)
    else:
        lines.append(f"  {command_name()} push {q(str(result.layout))} REGISTRY/REPO {tags}")
    if ":" in str(result.layout):
        lines.append("  (skopeo and umoci cannot read a layout whose path holds ':'; copy or move it first)")
    if result.record.get("compression", "").startswith("zstd"):
        lines.append(
            "  (zstd layers: Docker before 23 and umoci 0.4 cannot read them; a docker-archive from "
            "`ocibake export` holds them uncompressed)"
        )
    archive = f"{result.name.replace('/', '-')}.tar"
    lines.append(
        f"  {command_name()} export {q(ref)} {q('docker-archive:' + archive)}   # then: docker load < {q(archive)}"
    )
    return lines


def print_result(
    result: BuildResult,
    *,
    out: TextIO,
    err: TextIO,
    json_output: bool,
    quiet: bool,
    pushed: PushResult | None = None,
    archive: dict[str, object] | None = None,
    tls_flags: tuple[str, ...] = (),
    signed: bool = False,
) -> None:
    """stdout: the reference (or, after --push, one REPO:TAG@DIGEST line per pushed tag), or all of it as JSON. The
    human report went to stderr already (print_human), before any push, so a failed push still leaves it; the push
    summary and the `next:` block come here, after everything they describe."""
    if json_output:
        doc = as_json(result)
        if pushed is not None:
            doc["push"] = pushed.as_json()
        if archive is not None:
            doc["archive"] = archive
        out.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return
    if pushed is not None and not quiet:
        err.write(pushed.summary() + "\n")
    if not quiet:
        repos = tuple(dict.fromkeys(t.repository for t in pushed.tags)) if pushed is not None else ()
        lines = next_commands(result, pushed, tls_flags) + audit_commands(result, repos, signed)
        err.write("".join(line + "\n" for line in lines))
    out.write("\n".join(pushed.lines() if pushed is not None else [result.reference]) + "\n")
