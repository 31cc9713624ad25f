"""Command line: parse flags and ocibake.toml into a frozen BuildSpec, run, and map errors to exit codes.

Exit codes: 0 ok, 1 bug, 2 usage, 3 toolchain, 4 bad input, 5 registry, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Sequence

import ocibake
from ocibake.errors import InputError, OcibakeError, UsageError
from ocibake.image import Platform
from ocibake.settings import check_value, load_settings
from ocibake.oci_names import NAME_RE, TAG_RE
from ocibake.spec import COMPRESSIONS, TARGETS, BuildSpec
from ocibake.upx import UPX_HELP, upx_args


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line error with a hint (exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, hint=f"see `{self.prog} --help`")


def _log(quiet: bool):
    def log(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)
    return log


COMMON_FLAGS = ("verbose", "quiet", "json")


def add_common(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """-v, -q and --json; on the top-level parser (prefix "top_") too, so `ocibake -v push ...` works as well."""
    p.add_argument("-v", "--verbose", dest=prefix + "verbose", action="store_true",
                   help="show more detail, and a traceback on internal errors")
    p.add_argument("-q", "--quiet", dest=prefix + "quiet", action="store_true",
                   help="print only results (stdout) and errors")
    p.add_argument("--json", dest=prefix + "json", action="store_true", help="print the result as JSON on stdout")


def build_parser() -> Parser:
    parser = Parser(prog="ocibake", description="Build reproducible OCI images of Go services without a daemon.")
    parser.add_argument("--version", action="version", version=f"ocibake {ocibake.__version__}")
    add_common(parser, prefix="top_")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    b = sub.add_parser("build", help="build a Go service into an OCI image layout",
                       description="Build SERVICE_DIR (a path, or a bare name meaning services/NAME) into an OCI image "
                                   "layout. Settings may also come from SERVICE_DIR/ocibake.toml; flags win.")
    b.add_argument("service", metavar="SERVICE_DIR")
    b.add_argument("--target", metavar="|".join(TARGETS), help="image recipe (default: production, FROM scratch)")
    b.add_argument("--version", dest="image_version", metavar="VERSION",
                   help="version injected as main.Version and used as a tag (default: dev)")
    b.add_argument("--name", help="image name (default: the directory name)")
    b.add_argument("--tag", action="append", metavar="TAG", help="tag to write (repeatable; default: VERSION and latest)")
    b.add_argument("--platform", help="os/arch[/variant] (default: linux/amd64)")
    b.add_argument("--compression", metavar="|".join(COMPRESSIONS),
                   help="layer compression: gzip (default, every runtime reads it) or zstd (smaller, slower to build)")
    b.add_argument("--main", help="main package, when it is not cmd/main.go, cmd/NAME/main.go or main.go")
    b.add_argument("--output", metavar="DIR", help="OCI layout directory (default: dist/oci/NAME)")
    b.add_argument("--port", type=int, help="port the service listens on, for ExposedPorts (default: 8080)")
    b.add_argument("--version-package", metavar="PKG",
                   help="package holding Version, BuildDate and GitCommit for -X (default: main)")
    b.add_argument("--ca-bundle", metavar="SRC", help="certifi (default, pinned), host, a PEM file, or none")
    b.add_argument("--zoneinfo", metavar="SRC", help="tzdata (default, pinned), host, a zoneinfo directory, or none")
    b.add_argument("--source", metavar="URL", help="org.opencontainers.image.source (default: git origin)")
    b.add_argument("--no-verify", dest="verify", action="store_false", default=None,
                   help="do not run the built binary with --version")
    b.add_argument("--upx", metavar="MODE", help=UPX_HELP)
    b.add_argument("--toolchain", metavar="REF",
                   help="where go and upx run: local (default: programs on PATH), oci:DIR[:TAG] (an OCI layout) or a "
                        "registry reference, ideally pinned @sha256:...; an image runs in a rootless sandbox")
    b.add_argument("--network", action="store_true", default=None,
                   help="let go in the toolchain image reach the network (default: no network in the sandbox)")
    b.add_argument("--go", metavar="PATH", help="the go program to use with --toolchain local (default: go on PATH)")
    b.add_argument("--upx-bin", metavar="PATH", help="the upx program to use with --toolchain local (default: upx on PATH)")
    b.add_argument("--push", action="append", nargs="?", const="", metavar="REPO",
                   help="after the build, push every tag to REPO (REGISTRY/NAME, or a bare NAME under $OCIBAKE_REGISTRY; "
                        "without a value: $OCIBAKE_REGISTRY/IMAGE-NAME). Repeatable")
    b.add_argument("--insecure", action="store_true",
                   help="registries: allow plain HTTP and unverified TLS (plain HTTP is always allowed for localhost)")
    b.add_argument("--ca-cert", metavar="PATH", help="registries: trust this CA (PEM) for TLS")
    add_common(b)
    b.set_defaults(handler=cmd_build)
    from ocibake.cli_registry import add_commands  # push, pull, login
    add_commands(sub)

    c = sub.add_parser("cache", help="show or empty the toolchain cache",
                       description="The cache ($XDG_CACHE_HOME/ocibake, else ~/.cache/ocibake) holds unpacked toolchain "
                                   "images, their Go build and module caches, and toolchain images pulled from "
                                   "registries. `info` shows what it holds; `clean` empties it.")
    c.add_argument("action", choices=("info", "clean"))
    add_common(c)
    c.set_defaults(handler=cmd_cache)
    return parser


def cmd_cache(args: argparse.Namespace) -> int:
    import json
    from ocibake import cache
    from ocibake.rootfs import cache_home
    from ocibake.units import human_size
    where = cache_home()
    if args.action == "clean":
        freed = cache.clean(where)
        if args.json:
            print(json.dumps({"cache": str(where), "freed": freed}))
        elif not args.quiet:
            print(f"emptied {where}: {human_size(freed)} freed", file=sys.stderr)
        return 0
    parts = cache.usage(where)
    if args.json:
        print(json.dumps({"cache": str(where), "parts": [vars(p) for p in parts]}, indent=2))
        return 0
    print(f"{where}")
    for part in parts:
        print(f"  {part.name + '/':<12} {part.entries:>4} {'entry  ' if part.entries == 1 else 'entries'} {human_size(part.size):>12}  {part.what}")
    print(f"  {'total':<12} {'':>12} {human_size(sum(p.size for p in parts)):>12}")
    return 0


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


def _validate_tag(value: str, what: str) -> str:
    if not TAG_RE.match(value):
        raise InputError(f"{what} {value!r} is not a valid OCI tag",
                         hint="tags are 1-128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'")
    return value


def _validate_version(value: str) -> str:
    if not value or len(value) > 128 or any(c.isspace() or c in "'\"\\" for c in value) or not value.isprintable():
        raise InputError(f"version {value!r} cannot be injected with -X",
                         hint="use up to 128 printable characters without spaces or quotes, e.g. v1.2.3+build.5")
    return value


def spec_from_args(args: argparse.Namespace, service_dir: Path, settings: dict) -> BuildSpec:

    def pick(dest: str, default):
        value = getattr(args, dest, None)
        if value is None:
            value = settings.get(dest)
        return default if value is None else value

    name = pick("name", service_dir.name.lower())
    if not NAME_RE.match(name) or len(name) > 255:
        raise InputError(f"image name {name!r} is not a valid repository name",
                         hint="use lowercase letters, digits and separators (. _ -), path components joined by /, "
                              "e.g. --name emergency-service or --name sos-app/emergency-service")
    # Tags are written in the order given, each once.
    tags = tuple(dict.fromkeys(_validate_tag(t, "tag") for t in pick("tag", [])))
    version = pick("image_version", "dev")
    if tags:
        _validate_version(version)          # not a tag: only needs to be safe inside -ldflags
    else:
        try:
            _validate_tag(version, "version")
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
                     source_date_epoch=int(epoch_text) if epoch_text else None, upx=_upx_mode(pick("upx", None)))


def _upx_mode(value) -> str | None:
    """--upx or `upx = ...` in ocibake.toml (a string, or an integer level), checked now; None: the target's."""
    if value is None:
        return None
    text = str(value).strip().lower()
    upx_args(text)      # InputError with the list of modes
    return text


def make_toolchain(args: argparse.Namespace, settings: dict, service_dir: Path):
    from ocibake.toolchain_image import make_toolchain as make
    network = args.network if args.network is not None else settings.get("network", False)
    reference = args.toolchain
    if reference is None and settings.get("toolchain"):
        reference = settings["toolchain"]
        # an oci: path in ocibake.toml is relative to the service, like everything else in that file
        if reference.startswith("oci:") and not Path(reference[4:]).is_absolute():
            reference = f"oci:{service_dir / reference[4:]}"
    toolchain = make(reference, go=args.go, upx=args.upx_bin, network=bool(network),
                     registry_options=lambda: registry_options(args))
    from ocibake.toolchain import LocalToolchain
    if network and isinstance(toolchain, LocalToolchain) and not args.quiet:
        print("ocibake: warning: --network applies to toolchain images; the local toolchain uses this host's "
              "network as it is", file=sys.stderr)
    return toolchain


def registry_options(args: argparse.Namespace):
    from ocibake.cli_registry import options_from_args
    return options_from_args(args)


def push_targets(args: argparse.Namespace, settings: dict, name: str) -> list[str]:
    """The repositories --push names (checked now, before the build); an empty --push means the image name."""
    given = args.push if args.push is not None else settings.get("push", [])
    targets = [value.strip() or name for value in given]
    if not targets:
        return []
    from ocibake.publish.registry import parse_reference
    for target in targets:
        ref = parse_reference(target)
        if ref.digest or ref.tag:
            raise InputError(f"--push {target}: give a repository, not a tag or digest",
                             hint="the build's tags (--version, --tag) are pushed; e.g. --push registry.example.com/team/app")
    return targets


def push_repo_names(targets: list[str]) -> list[str]:
    if not targets:
        return []
    from ocibake.publish.registry import parse_reference
    return [parse_reference(t).name for t in targets]


def cmd_build(args: argparse.Namespace) -> int:
    from ocibake.bake import bake
    from ocibake.report import print_human, print_result
    service_dir = resolve_service_dir(args.service)
    settings = load_settings(service_dir)
    spec = spec_from_args(args, service_dir, settings)
    targets = push_targets(args, settings, spec.name)
    toolchain = make_toolchain(args, settings, service_dir)
    result = bake(spec, toolchain, log=_log(args.quiet))
    if not args.json and not args.quiet:
        print_human(result, sys.stderr, tuple(push_repo_names(targets)))
    pushed = None
    if targets:
        from ocibake.publish.push import push_layout
        from ocibake.report import command_name
        try:
            pushed = push_layout(spec.output, targets, list(result.tags), registry_options(args))
        except OcibakeError as exc:
            exc.results = (result.reference, *exc.results)
            tags = " ".join(f"-t {t}" for t in result.tags)
            exc.hint = (f"{exc.hint + '; ' if exc.hint else ''}the image is built in {spec.output}: push it again "
                        f"with `{command_name()} push {spec.output} {' '.join(targets)} {tags}`")
            raise
    print_result(result, out=sys.stdout, err=sys.stderr, json_output=args.json, quiet=args.quiet, pushed=pushed)
    return 0


def print_error(exc: OcibakeError, verbose: bool) -> None:
    from ocibake.publish.redact import redact       # the last line of defence: no secret in any error
    print(f"ocibake: error: {redact(exc.message)}", file=sys.stderr)
    if exc.detail:
        detail = exc.detail if verbose or len(exc.detail) < 8000 else "...\n" + exc.detail[-8000:]
        print(redact(detail), file=sys.stderr)
    if exc.hint:
        print(f"  hint: {redact(exc.hint)}", file=sys.stderr)
    if verbose and exc.__cause__ is not None:
        traceback.print_exception(exc.__cause__, file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM (a CI job cancelled, `timeout`): unwinds like Ctrl-C, so temporary files and staged blobs go away."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        for flag in COMMON_FLAGS:
            setattr(args, flag, getattr(args, flag, False) or getattr(args, "top_" + flag))
        if not getattr(args, "command", None):
            parser.print_help(sys.stderr)
            return 2
        return args.handler(args)
    except OcibakeError as exc:
        if "--json" in argv:           # stdout stays one JSON document, failure or not
            import json
            from ocibake.publish.redact import redact
            print(json.dumps({"references": list(exc.results), "error": {
                "message": redact(exc.message), "hint": redact(exc.hint) if exc.hint else None,
                "exit_code": exc.exit_code,
                "status": getattr(exc, "status", None), "code": getattr(exc, "code", None)}}, indent=2))
        else:
            for line in exc.results:
                print(line)
        print_error(exc, verbose)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ocibake: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("ocibake: terminated", file=sys.stderr)
        return 143
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: say so briefly, the traceback only with -v
        if verbose:
            traceback.print_exc()
        print(f"ocibake: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: run again with -v for a traceback, and report it", file=sys.stderr)
        return 1
