"""What a CI log shows of `ocibake build --push`: in a pipe every line of a several-service run carries its service's
`[name]`, each "pushing N blob(s)" is followed by exactly N blob lines, stdout lists only what was pushed (nothing
for a failed push, the JSON keeps what was built), the summary names a registry failure's cause in words, and the
`next:` block comes after the push and suggests commands that work. Real go, docker-registry and skopeo."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES
from regtools import base_env, ocibake, reg_env

SERVICES = [str(FIXTURES / name) for name in ("hello-root", "cmd-main", "vendored-service")]
NAMES = ["hello-root", "cmd-main", "vendored-service"]
BLOB_LINE = re.compile(r"^  sha256:[0-9a-f]{12} +[0-9.]+ [KMG]?i?B  ")


def build_three(reg, env, out: Path, *more: str) -> subprocess.CompletedProcess:
    """The three services built and pushed in one run from OUT, so each into OUT/dist/oci/NAME (this test's own
    layouts: tests running at the same time must not share the checkout's dist/oci)."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "ocibake",
        "build",
        *SERVICES,
        "--upx",
        "off",
        "--version",
        "v1.0.0",
        "-j",
        "3",
        "--push",
        f"{reg.host}/ci/",
        *more,
    ]
    return subprocess.run(argv, check=False, cwd=out, env=env, capture_output=True, text=True, timeout=600)


def service_lines(stderr: str) -> list[str]:
    """The lines of a several-service run before the summary table (and its header line)."""
    lines = stderr.split("\nservice ")[0].splitlines()
    return [line for line in lines[1:] if line.strip()]


def check_counts(lines: list[str], name: str) -> int:
    """Every `pushing N blob(s)` line of ``name`` is followed by N blob lines of ``name``; returns how many."""
    own = [line.removeprefix(f"[{name}] ") for line in lines if line.startswith(f"[{name}] ")]
    announced = 0
    for i, line in enumerate(own):
        m = re.match(r"pushing (\d+) blob\(s\)", line)
        if m:
            n = int(m.group(1))
            following = own[i + 1 : i + 1 + n]
            assert all(BLOB_LINE.match(b) for b in following), (line, following)
            assert i + 1 + n == len(own) or not BLOB_LINE.match(own[i + 1 + n]), own[i : i + n + 3]
            announced += n
    assert announced == sum(1 for line in own if BLOB_LINE.match(line)), own
    return announced


def test_three_services_pushed_in_a_pipe_prefix_every_line_and_count_their_blobs(basic_registry, tmp_path):
    proc = build_three(basic_registry, reg_env(basic_registry, tmp_path / "home"), tmp_path / "oci")
    assert proc.returncode == 0, proc.stderr
    lines = service_lines(proc.stderr)
    unprefixed = [line for line in lines if not re.match(r"^\[(hello-root|cmd-main|vendored-service)\] ", line)]
    assert unprefixed == [], proc.stderr
    for name in NAMES:
        assert (
            check_counts(lines, name) == 9
        )  # 4 layers and the config, the SBOM's config and document, the provenance's
    assert "\x1b[" not in proc.stderr + proc.stdout  # a pipe gets no escape codes
    assert len(proc.stdout.splitlines()) == 6 and all(":v1.0.0@" in x or ":latest@" in x for x in proc.stdout.split())


def test_a_failed_push_prints_no_reference_and_the_summary_says_why(basic_registry, tmp_path):
    env = reg_env(basic_registry, tmp_path / "home", creds=False)
    proc = build_three(basic_registry, env, tmp_path / "oci")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == ""  # built, but nothing was pushed: nothing for the file of pushed references
    table = proc.stderr[proc.stderr.index("\nservice ") :]
    for name in NAMES:
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert "exit 5" in row and "HTTP 401 UNAUTHORIZED (not logged in" in row, row
        assert f"registry {basic_registry.host}" in row, row
    assert "3 built, 0 pushed, 3 failed" in table
    assert [line for line in service_lines(proc.stderr) if not line.startswith("[")] == [], proc.stderr

    # the JSON keeps both: what was built, and (nothing) pushed
    proc = build_three(basic_registry, env, tmp_path / "oci", "--json")
    assert proc.returncode == 5
    docs = json.loads(proc.stdout)
    assert [d["references"] for d in docs] == [[], [], []]
    assert [d["built"][0].split("@")[0] for d in docs] == NAMES

    # one service: the same rule, and the JSON's `built`
    one = ocibake("build", SERVICES[0], "--upx", "off", "--push", f"{basic_registry.host}/ci/one", env=env)
    assert one.returncode == 5 and one.stdout == "", one.stderr
    assert "next:" not in one.stderr  # nothing was pushed that a command could look at
    one = ocibake("build", SERVICES[0], "--upx", "off", "--push", f"{basic_registry.host}/ci/one", "--json", env=env)
    doc = json.loads(one.stdout)
    assert doc["references"] == [] and doc["built"][0].startswith("hello-root@sha256:")
    assert doc["error"]["status"] == 401 and doc["error"]["code"] == "UNAUTHORIZED"


def test_next_comes_after_the_push_and_its_commands_work(plain_registry, tmp_path):
    env = base_env(tmp_path / "home")
    repo = f"{plain_registry.host}/ci/next"
    proc = ocibake("build", SERVICES[0], "--upx", "off", "--version", "v2.0.0", "--push", repo, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert err.index("pushed 2 tag(s)") < err.index("next:")
    assert err.index("sbom      pushed to") < err.index("next:")
    block = err[err.index("next:") :].splitlines()[1:]
    inspect = next(line for line in block if " inspect " in line and repo in line and "skopeo" not in line)
    skopeo = next(line for line in block if line.strip().startswith("skopeo inspect") and "docker://" in line)
    assert "--tls-verify=false" in skopeo  # the push spoke plain HTTP to 127.0.0.1
    digest = proc.stdout.split("@")[1].split()[0]
    shown = subprocess.run(shlex.split(inspect), check=False, capture_output=True, text=True, env=env, timeout=120)
    assert shown.returncode == 0 and digest in shown.stdout + shown.stderr, shown.stderr
    seen = subprocess.run(shlex.split(skopeo), check=False, capture_output=True, text=True, env=env, timeout=120)
    assert seen.returncode == 0 and json.loads(seen.stdout)["Digest"] == digest, seen.stderr
