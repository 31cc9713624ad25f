"""`ocibake resolve`: Kubernetes YAML with ocibake://PATH references, built and pushed to the loopback registry, the
YAML written back with REPO@sha256 references and nothing else changed; all or nothing on failure."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from conftest import FIXTURES, run_cli
from ocibake.builder.services import GRACE_SECONDS
from regtools import reg_env, remote_digest

DEPLOY = """\
# the API: comments stay where they are
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello   # named after the fixture
spec:
  template:
    spec:
      containers:
      - name: hello
        image: ocibake://services/hello-root
      - name: sidecar
        image: "ocibake://cmd-main"     # a bare name means services/NAME
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  ports: [{port: 80, targetPort: 8080}]
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      initContainers: [{name: init, image: 'ocibake://services/hello-root'}]
      containers:
        - name: main
          image: ocibake://services/cmd-main
          args: ["--version"]
"""

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  note: "no image here; ocibake: is just text"
"""


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def documents(text: str) -> list:
    return [plain(d) for d in YAML(typ="safe").load_all(text)]


@pytest.fixture
def project(tmp_path):
    """A working directory with two services and a deploy/ directory of three YAML files."""
    work = tmp_path / "work"
    for name in ("hello-root", "cmd-main"):
        shutil.copytree(FIXTURES / name, work / "services" / name)
    deploy = work / "deploy"
    (deploy / "jobs").mkdir(parents=True)
    (deploy / "app.yaml").write_text(DEPLOY)
    (deploy / "jobs" / "job.yml").write_text(JOB)
    (deploy / "config.yaml").write_text(CONFIG)
    return work


def resolve(work, reg, home, *args: str, **kw) -> subprocess.CompletedProcess:
    return run_cli("resolve", *args, "--upx", "off", cwd=work, env={**reg_env(reg, home), **kw.pop("env", {})}, **kw)


def test_a_directory_resolves_to_pushed_digests_and_nothing_else_changes(project, plain_registry, tmp_path):
    reg = plain_registry
    proc = resolve(project, reg, tmp_path / "home", "-f", "deploy", "--push", f"{reg.host}/sos", "--version", "v1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    digests = {name: remote_digest(reg, f"sos/{name}:v1") for name in ("hello-root", "cmd-main")}
    hello, cmd = (f"{reg.host}/sos/{n}@{digests[n]}" for n in ("hello-root", "cmd-main"))
    # files in sorted order (app.yaml, config.yaml, jobs/job.yml), every byte but the references kept
    expected = (
        DEPLOY.replace("ocibake://services/hello-root", hello).replace("ocibake://cmd-main", cmd)
        + "---\n"
        + CONFIG
        + "---\n"
        + JOB.replace("ocibake://services/hello-root", hello).replace("ocibake://services/cmd-main", cmd)
    )
    assert out == expected
    assert "# the API: comments stay where they are" in out and "# a bare name means services/NAME" in out
    docs = documents(out)
    assert len(docs) == 4 and docs[2] == documents(CONFIG)[0]
    images = [
        docs[0]["spec"]["template"]["spec"]["containers"][0]["image"],
        docs[3]["spec"]["template"]["spec"]["initContainers"][0]["image"],
    ]
    assert images == [hello, hello]
    # each service was built once, though named twice
    assert proc.stderr.count("[hello-root] built ") == 1 and proc.stderr.count("[cmd-main] built ") == 1
    assert "3 file(s), 4 ocibake:// reference(s), 2 service(s)" in proc.stderr
    # the registry serves every digest
    for name, digest in digests.items():
        assert remote_digest(reg, f"sos/{name}@{digest}") == digest


def test_a_file_without_references_comes_back_unchanged_and_needs_no_registry(project, tmp_path):
    proc = run_cli("resolve", "-f", "deploy/config.yaml", "--push", "127.0.0.1:1/none", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == CONFIG


@pytest.mark.parametrize(
    "case",
    [
        "unknown-path",
        "syntax-error",
        "build-fails",
        "push-fails",
        "no-push",
        "missing-file",
        "empty-path",
        "folded-scalar",
        "anchor",
    ],
)
def test_bad_input_exits_non_zero_with_nothing_on_stdout(case, project, plain_registry, tmp_path):
    reg = plain_registry
    deploy = project / "deploy"
    push = ["--push", f"{reg.host}/bad"]
    code = 4
    if case == "unknown-path":
        (deploy / "more.yaml").write_text("kind: Pod\nspec:\n  containers:\n  - image: ocibake://services/nope\n")
        words = "more.yaml:4: ocibake://services/nope: service directory not found"
    elif case == "syntax-error":
        (deploy / "broken.yaml").write_text("kind: Pod\nspec: [unclosed\n")
        words = "broken.yaml:3:1: not valid YAML"
    elif case == "build-fails":
        main = project / "services" / "cmd-main" / "cmd" / "main.go"
        main.write_text(main.read_text() + "\nthis is not Go\n")
        words, code = "ocibake://cmd-main: go build", 3
    elif case == "push-fails":
        push = ["--push", "127.0.0.1:1/nowhere"]
        words, code = "127.0.0.1:1", 5
    elif case == "no-push":
        push, code = [], 2
        words = "give --push REPO_PREFIX or set OCIBAKE_REGISTRY"
    elif case == "missing-file":
        push = [*push, "-f", "nothere.yaml"]
        words = "-f nothere.yaml: no such file or directory"
    elif case == "folded-scalar":
        (deploy / "more.yaml").write_text("image: >-\n  ocibake://services/hello-root\n")
        words = "is not written as one plain or quoted scalar"
    elif case == "anchor":
        (deploy / "more.yaml").write_text("a: &img ocibake://services/hello-root\nb: *img\n")
        words = "is not written as one plain or quoted scalar"
    else:
        (deploy / "more.yaml").write_text("image: ocibake://\n")
        words = "names no service"
    proc = resolve(
        project,
        reg,
        tmp_path / "home",
        "-f",
        "deploy",
        *push,
        env={"OCIBAKE_REGISTRY_RETRIES": "0"} if case == "push-fails" else {},
    )
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("ocibake: error:") == 1
    if case in ("unknown-path", "syntax-error", "no-push", "missing-file", "empty-path", "folded-scalar", "anchor"):
        assert "] go build" not in proc.stderr, "input checks come before any build"


def test_help_names_the_scheme():
    proc = run_cli("resolve", "--help")
    assert proc.returncode == 0 and "ocibake://PATH" in proc.stdout and "--push REPO_PREFIX" in proc.stdout


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_stops_before_any_push_and_prints_nothing(project, plain_registry, tmp_path, sigint):
    """Also when ocibake starts with SIGINT ignored (a background job of a script): go must not inherit that, or
    the SIGINT that stops it does nothing and only the SIGKILL after the 10 s grace ends the build."""
    import signal
    import sys

    from regtools import tag_exists

    reg = plain_registry
    # go's cache and ocibake's of its own: both services compile the standard library from nothing for seconds, so
    # the signal comes while neither can have been pushed (a step of a fraction of a second, such as UPX on these
    # small binaries, ended with a push before a loaded machine delivered the signal)
    env = {**reg_env(reg, tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env["GOCACHE"] = str(tmp_path / "cold-gocache")
    argv = [sys.executable, "-m", "ocibake", "resolve", "-f", "deploy", "--push", f"{reg.host}/term", "--upx", "off"]
    if sigint == "ignored":
        argv = ["/bin/sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    proc = subprocess.Popen(
        argv,
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in proc.stderr:  # wait until the first go build is under way
        seen.append(line)
        if "] go build" in line:
            # go must not inherit an ignored SIGINT: ocibake stops it with SIGINT (go cleans up on it)
            assert not _ignores_sigint(_child_named(proc.pid, "go")), "go was started with SIGINT ignored"
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, "".join(seen) + err
    # stopped, not waited for: SIGINT, and SIGKILL to go's whole process group after the grace; a cold build of
    # both services takes far longer
    assert time.monotonic() - signalled < GRACE_SECONDS + 20
    assert out == "" and "ocibake: terminated" in err
    assert "pushed" not in "".join(seen) + err
    for name in ("hello-root", "cmd-main"):
        assert not tag_exists(reg, f"term/{name}:dev")
        # the running go builds were stopped, not waited for: no layout was committed after the signal
        assert not (project / "dist" / "oci" / name / "index.json").exists()


def _status(pid: int | str) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _child_named(parent: int, name: str, timeout: float = 30) -> int:
    """The pid of ``parent``'s child process called ``name`` (waiting for it to start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                fields = _status(entry.name) if entry.name.isdigit() else {}
            except OSError:
                continue
            if fields.get("Name") == name and fields.get("PPid", "").strip() == str(parent):
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no {name} process under {parent}")


def _ignores_sigint(pid: int) -> bool:
    return bool(int(_status(pid)["SigIgn"], 16) & (1 << (2 - 1)))  # bit N-1 for signal N (SIGINT is 2)
