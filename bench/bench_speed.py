"""`make bench` for speed where users wait, side by side with ko, crane and skopeo in one run (median of ROUNDS,
default 5; set BENCH_ROUNDS to change it). A "goal" is one the project set for itself (issue 25's table); an "aim"
is this bench's own mark for a row the goals do not cover:

- no-op rebuild of the sample service, default settings (UPX) / `--upx off`            goal <= 1.10
- no-op rebuild, ocibake `--upx off` / `ko build` (same -s -w, --sbom=none, same base)   goal <= 0.45
- rebuild after a one-line source change, ocibake `--upx off` / ko                     aim <= 1.0 (go build
  alone takes about 0.8 of ko's whole run)
- three services in one `ocibake build` run / three single runs one after the other     aim <= 0.6
- a cold-cache build (empty GOCACHE, GOMODCACHE and ocibake cache, as on a fresh CI runner) / ko cold  aim <= 1.0
- through a proxy adding 25 ms (goals), then 100 ms (aims), to every request, a 30 MB three-layer image:
  first push / `crane push`, / `skopeo copy`                                           <= 0.8 each
  repeated push / crane's, / skopeo's                                                  <= 1.0, <= 0.5
- a repeated `build --push --sign-key` (SBOM, provenance, signature checked) / a repeated `skopeo copy` of the
  image alone, at 25 ms per request (crane cannot push one image of a layout holding several)   aim <= 2.0
- peak memory (MiB) of a build from an empty ocibake cache, and of a push of a 512 MB layer (bench/measure.py)
- `ocibake push`: the modules it imports and the wall time of `ocibake push --help`.

The two-platform build with UPX / two single-platform builds (goal <= 0.65) is in bench_platforms.py.

ko and crane are `go install`ed into bench/.tools (gitignored) on first use, which needs the Go module proxy once.
ko's base image holds the same passwd, zoneinfo and CA layers as ocibake's images, served by a docker-registry on
127.0.0.1 started here, so both images hold the same bytes apart from the binary.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "services" / "emergency-service"
TOOLS = REPO / "bench" / ".tools"
sys.path.insert(0, str(REPO / "tests"))
from registry_servers import FaultProxy, start_registry, write_layout  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GO_TOOLS = {"ko": "github.com/google/ko@v0.19.1", "crane": "github.com/google/go-containerregistry/cmd/crane@latest"}


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        print(f"installing {GO_TOOLS[name]} into {TOOLS}", file=sys.stderr)
        subprocess.run(["go", "install", GO_TOOLS[name]], env={**os.environ, "GOBIN": str(TOOLS)}, check=True)
    return str(path)


def run(argv: list[str], *, cwd: Path | None = None, env: dict | None = None) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(argv, check=False, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def ocibake(*args: str, cwd: Path, env: dict | None = None) -> float:
    return run([sys.executable, "-m", "ocibake", *args], cwd=cwd, env=env)


def median(f, rounds: int = ROUNDS) -> float:
    return statistics.median(f(i) for i in range(rounds))


def base_image(work: Path, registry_host: str) -> str:
    """ocibake's passwd, zoneinfo and CA layers as an image (ko's base), pushed to the loopback registry."""
    code = f"""
import sys
from pathlib import Path
from ocibake.builder.assembly import base_layer_contents, write_layers
from ocibake.builder.spec import BuildSpec
from ocibake.layers.passwd import APP_GID, APP_UID
from ocibake.oci.image import Descriptor, ImageConfig, make_image
from ocibake.oci.layout import LayoutWriter
spec = BuildSpec(service_dir=Path("."), name="base")
with LayoutWriter(Path({str(work / "base")!r})) as w:
    records = write_layers(base_layer_contents(spec), w, 0, "gzip")
    image = make_image(platform=spec.platform, layers=records, created=0,
                       runtime=ImageConfig(user=f"{{APP_UID}}:{{APP_GID}}", exposed_ports=(), labels={{}}),
                       annotations={{}})
    w.add_blob(image.config)
    w.add_blob(image.manifest)
    w.commit([("v1", Descriptor(image.manifest.media_type, image.digest, len(image.manifest.data),
                                platform=spec.platform))])
"""
    run([sys.executable, "-c", code], cwd=REPO)
    ref = f"{registry_host}/bench/base:v1"
    ocibake("push", str(work / "base"), ref, "-q", cwd=REPO)
    return ref


def service_copy(dest: Path, name: str) -> Path:
    shutil.copytree(SAMPLE, dest / name)
    (dest / name / ".ko.yaml").write_text(
        "builds:\n- id: app\n  main: ./cmd/" + SAMPLE.name + '\n  ldflags: ["-s", "-w"]\n'
    )
    return dest / name


def flip(service: Path, i: int) -> None:
    """A one-line source change that changes the binary (alternating, so each round changes something)."""
    target = service / "internal" / "dispatch" / "dispatch.go"
    text = target.read_text().splitlines()
    marker = "// bench-change"
    text = [line for line in text if marker not in line]
    text.append(f'var benchChange{i % 2} = "{i}" {marker}')
    target.write_text("\n".join(text) + "\n")


def cold_rows(work: Path, ko: str, ko_env: dict) -> list[tuple[str, float, float, str]]:
    """A build with every cache empty (GOCACHE, GOMODCACHE, ocibake's), as on a fresh CI runner, against ko's."""
    svc = service_copy(work / "cold", "emergency-service")

    def fresh(i: int, who: str) -> dict:
        root = work / "cold" / f"{who}-{i}-{time.monotonic_ns()}"
        return {"GOCACHE": str(root / "gocache"), "GOMODCACHE": str(root / "gomod"), "XDG_CACHE_HOME": str(root)}

    def ours(i: int) -> float:
        out = str(work / "cold" / f"out-{i}")
        return ocibake("build", str(svc), "--output", out, "--upx", "off", "-q", cwd=work, env=fresh(i, "o"))

    def theirs(i: int) -> float:
        argv = [ko, "build", "--oci-layout-path", str(work / "cold" / f"ko-{i}"), "--push=false", "--sbom=none"]
        argv += ["--bare", "--platform", "linux/amd64", f"./cmd/{SAMPLE.name}"]
        return run(argv, cwd=svc, env={**ko_env, **fresh(i, "k")})

    return [("cold-cache build, ocibake --upx off / ko", median(ours, 3), median(theirs, 3), "aim <= 1.0")]


def push_rows(proxy, layout: Path, crane: str, work: Path, delay: float) -> list[tuple[str, float, float, str]]:
    """First and repeated pushes of ``layout`` through ``proxy`` (``delay`` seconds added per request): ocibake
    against crane and skopeo."""
    ms = f"{delay * 1000:.0f} ms"
    mark = "goal" if delay == 0.025 else "aim"

    def argv(cmd: str, repo: str) -> list[str]:
        if cmd == "ocibake":
            return [sys.executable, "-m", "ocibake", "push", str(layout), repo, "-q"]
        if cmd == "crane":
            return [crane, "push", "--insecure", str(layout), f"{repo}:v1"]
        copy = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]
        return [*copy, f"oci:{layout}:v1", f"docker://{repo}:v1"]

    def first(cmd: str) -> float:
        return median(lambda i: run(argv(cmd, f"{proxy.host}/bench/{cmd}-{time.monotonic_ns()}"), cwd=work))

    def again(cmd: str) -> float:
        repo = f"{proxy.host}/bench/again-{cmd}-{time.monotonic_ns()}"
        run(argv(cmd, repo), cwd=work)
        return median(lambda i: run(argv(cmd, repo), cwd=work))

    p = {cmd: first(cmd) for cmd in ("ocibake", "crane", "skopeo")}
    r = {cmd: again(cmd) for cmd in ("ocibake", "crane", "skopeo")}
    return [
        (f"first push 30 MB at {ms}, ocibake / crane push", p["ocibake"], p["crane"], f"{mark} <= 0.8"),
        (f"first push 30 MB at {ms}, ocibake / skopeo copy", p["ocibake"], p["skopeo"], "aim <= 0.8"),
        (f"repeated push at {ms}, ocibake / crane", r["ocibake"], r["crane"], f"{mark} <= 1.0"),
        (f"repeated push at {ms}, ocibake / skopeo", r["ocibake"], r["skopeo"], "aim <= 0.5"),
    ]


def signed_push_row(proxy, svc: Path, work: Path, env: dict) -> tuple[str, float, float, str]:
    """A repeated `build --push --sign-key` of the sample (its SBOM, provenance, signature and signed provenance
    are checked, nothing sent) against a repeated `skopeo copy` of the same image alone, at 25 ms per request."""
    (work / "keys").mkdir(exist_ok=True)
    ocibake("generate-key-pair", "--output-dir", str(work / "keys"), cwd=work, env={**env, "COSIGN_PASSWORD": ""})
    out, repo = str(work / "signed-layout"), f"{proxy.host}/bench/signed"
    argv = ["build", str(svc), "--output", out, "--upx", "off", "--version", "v1", "--push", repo, "-q"]
    argv += ["--sign-key", str(work / "keys" / "cosign.key")]
    keyed = {**env, "COSIGN_PASSWORD": ""}
    ocibake(*argv, cwd=work, env=keyed)
    ours = median(lambda i: ocibake(*argv, cwd=work, env=keyed))
    copy = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]
    image = [*copy, f"oci:{out}:v1", f"docker://{proxy.host}/bench/signed-skopeo:v1"]
    run(image, cwd=work)
    theirs = median(lambda i: run(image, cwd=work))
    return ("repeated build --push --sign-key / skopeo re-copy", ours, theirs, "aim <= 2.0")


def peak_mib(args: list[str], work: Path, env: dict) -> float:
    """Peak RSS of the ocibake process itself (bench/measure.py), in MiB."""
    out = work / f"measure-{time.monotonic_ns()}.json"
    run([sys.executable, str(REPO / "bench" / "measure.py"), str(out), "--", *args], cwd=work, env=env)
    peak: float = json.loads(out.read_text())["peak_rss_mb"]
    return peak


def memory_rows(work: Path, registry, env: dict) -> list[tuple[str, float]]:
    big = work / "big-layout"
    write_layout(big, tags=("v1",), layer_sizes=(512 << 20,), seed=3)
    cold = {**env, "XDG_CACHE_HOME": str(work / "mem-xdg")}  # UPX packs and every layer is compressed
    build = peak_mib(["build", str(SAMPLE), "--output", str(work / "mem-build"), "-q"], work, cold)
    push = peak_mib(["push", str(big), f"{registry.host}/bench/big", "-q"], work, env)
    return [("a build of the sample service", build), ("a push of one 512 MB layer", push)]


class Rows(list[tuple[str, float, float, str]]):
    """The table's rows (what, ours, theirs, target), each also printed as soon as it is measured, so a bench that
    fails later still shows what it measured."""

    def append(self, row: tuple[str, float, float, str]) -> None:
        what, ours, theirs, target = row
        print(f"measured: {what}: {ours:.2f}s / {theirs:.2f}s = {ours / theirs:.2f} ({target})", flush=True)
        super().append(row)

    def __iadd__(self, rows):  # type: ignore[no-untyped-def,override]
        for row in rows:
            self.append(row)
        return self


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set, so ocibake runs without cached bytecode (slower start-up than "
              "users have); `make bench` clears it", file=sys.stderr)  # fmt: skip
    results = Rows()
    registry = start_registry("plain", work / "registry")
    try:
        ko, crane = tool("ko"), tool("crane")
        env = {"XDG_CACHE_HOME": str(work / "xdg")}
        svc = service_copy(work, "emergency-service")
        base = base_image(work, registry.host)

        # no-op rebuilds: default (UPX from the cache) against --upx off
        out_default, out_off = str(work / "out-default"), str(work / "out-off")
        ocibake("build", str(svc), "--output", out_default, "-q", cwd=work, env=env)
        ocibake("build", str(svc), "--output", out_off, "--upx", "off", "-q", cwd=work, env=env)
        d = median(lambda i: ocibake("build", str(svc), "--output", out_default, "-q", cwd=work, env=env))
        o = median(lambda i: ocibake("build", str(svc), "--output", out_off, "--upx", "off", "-q", cwd=work, env=env))
        results.append(("no-op rebuild, default (UPX) / --upx off", d, o, "goal <= 1.10"))

        ko_env = {"KO_DEFAULTBASEIMAGE": base, "KO_DOCKER_REPO": f"{registry.host}/bench/ko", "GOFLAGS": ""}

        def ko_build(i: int) -> float:
            return run(
                [
                    ko,
                    "build",
                    "--oci-layout-path",
                    str(work / "ko-layout"),
                    "--push=false",
                    "--sbom=none",
                    "--bare",
                    "--platform",
                    "linux/amd64",
                    f"./cmd/{SAMPLE.name}",
                ],
                cwd=svc,
                env=ko_env,
            )

        ko_build(0)
        k = median(ko_build)
        results.append(("no-op rebuild, ocibake --upx off / ko build", o, k, "goal <= 0.45"))

        def changed_ocibake(i: int) -> float:
            flip(svc, i)
            return ocibake("build", str(svc), "--output", out_off, "--upx", "off", "-q", cwd=work, env=env)

        def changed_ko(i: int) -> float:
            flip(svc, i + 1)
            return ko_build(i)

        c_ours = median(changed_ocibake)
        c_ko = median(changed_ko)
        results.append(("one-line change rebuild, ocibake --upx off / ko", c_ours, c_ko, "aim <= 1.0"))

        # three services: one run against three runs
        three = [service_copy(work / "three", f"svc-{n}") for n in "abc"]
        ocibake("build", *map(str, three), "--upx", "off", "-q", cwd=work / "three", env=env)
        together = median(
            lambda i: ocibake("build", *map(str, three), "--upx", "off", "-q", cwd=work / "three", env=env)
        )
        apart = median(
            lambda i: sum(ocibake("build", str(s), "--upx", "off", "-q", cwd=work / "three", env=env) for s in three)
        )
        results.append(("three services: one run / three runs", together, apart, "aim <= 0.6"))

        results += cold_rows(work, ko, ko_env)
        layout = work / "push-layout"
        write_layout(layout, tags=("v1",), layer_sizes=(20 << 20, 8 << 20, 2 << 20), seed=1)
        proxy = FaultProxy(registry)
        for delay in (0.025, 0.1):
            proxy.fault = lambda m, p, d=delay: ("delay", d)
            results += push_rows(proxy, layout, crane, work, delay)
        proxy.fault = lambda m, p: ("delay", 0.025)
        results.append(signed_push_row(proxy, svc, work, env))
        proxy.close()
        memory = memory_rows(work, registry, env)

        help_s = median(lambda i: ocibake("push", "--help", cwd=work))
        mods = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import sys; from ocibake.cli import main; "
                    "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
                    "    main(['push', '--help'])\nimport ocibake.cli.registry, ocibake.registry.push\n"
                    "print(len(sys.modules), ' '.join(sorted(m for m in sys.modules "
                    "if m.split('.')[0] in ('oras', 'requests', 'urllib3'))))"
                ),
            ],
            check=False,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        ).stdout.split(" ", 1)
    finally:
        registry.close()
    print(f"\nspeed, median of {ROUNDS} (2 cores shared; seconds)")
    print(f"{'':<48} {'ocibake':>8} {'other':>8} {'ratio':>6}  target")
    for what, ours, theirs, target in results:
        ratio = ours / theirs if theirs else float("inf")
        ok = "ok" if ratio <= float(target.split()[-1]) else "MISSED"
        print(f"{what:<48} {ours:>8.2f} {theirs:>8.2f} {ratio:>6.2f}  {target} {ok}")
    print("peak memory of the ocibake process (MiB):")
    for what, mib in memory:
        print(f"  {what:<46} {mib:>8.0f}")
    http = mods[1].split() if len(mods) > 1 else []
    print(
        f"`ocibake push --help`: {help_s * 1000:.0f} ms wall; modules loaded by the push command: {mods[0]}, of "
        f"them {len(http)} from oras/requests/urllib3"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
