"""examples/: the Kubernetes Deployment agrees with the image ocibake builds (user, port, read-only root, /health)
and resolves against the loopback registry; the GitHub Actions workflow and the GitLab CI job run their shell steps
in order, as a non-root user with no Docker socket, against the loopback registry (htpasswd), so the examples can
never drift from the tool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

from ruamel.yaml import YAML

from conftest import REPO, SAMPLE, free_port, manifest_and_config, require, run_cli, unpack
from registry_servers import PASSWORD, USER
from regtools import go_caches, reg_env, remote_digest, skopeo_digest

EXAMPLES = REPO / "examples"
DEPLOYMENT = EXAMPLES / "kubernetes" / "emergency-service.yaml"
GITHUB = EXAMPLES / "ci" / "github-actions.yml"
GITLAB = EXAMPLES / "ci" / "gitlab-ci.yml"
KNOWN_ACTIONS = {"actions/checkout@v4", "actions/setup-go@v5", "actions/setup-python@v5"}


def load_all(path: Path) -> list:
    return list(YAML(typ="safe").load_all(path.read_text()))


def deployment_container() -> dict:
    deployment = next(d for d in load_all(DEPLOYMENT) if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]["containers"][0]


def test_every_example_parses():
    files = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert {p.name for p in files} == {"emergency-service.yaml", "github-actions.yml", "gitlab-ci.yml"}
    for path in files:
        assert all(isinstance(d, dict) for d in load_all(path)), path


def test_the_deployment_agrees_with_the_image(sample_image):
    layout, digest = sample_image
    _, config = manifest_and_config(layout, digest)
    pod, container = deployment_container()
    user, group = (int(x) for x in config["config"]["User"].split(":"))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (user, group) == (1001, 1001)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"] and "add" not in security["capabilities"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [f"{p}/tcp" for p in ports.values()] == list(config["config"]["ExposedPorts"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
        assert ports[container[probe]["httpGet"]["port"]] == 8080
    assert container["image"] == "ocibake://services/emergency-service"


def test_the_image_answers_health_as_the_deployment_runs_it(sample_image, tmp_path):
    """uid/gid 1001 from the Deployment, a read-only root, no capabilities, nothing of the host: GET /health."""
    layout, _ = sample_image
    pod, _container = deployment_container()
    rootfs = unpack(layout, "v1.0.0", tmp_path / "bundle")
    port = free_port()
    argv = [
        require("bwrap"),
        "--unshare-user",
        "--uid",
        str(pod["securityContext"]["runAsUser"]),
        "--gid",
        str(pod["securityContext"]["runAsGroup"]),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--bind",
        str(rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--remount-ro",
        "/",
        "--clearenv",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--setenv",
        "PORT",
        str(port),
        "/app",
    ]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, proc.stderr.read()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                        health = json.loads(resp.read())
                        break
                except OSError:
                    assert time.monotonic() < deadline, "no answer from /health"
                    time.sleep(0.05)
        finally:
            proc.kill()
    assert health["status"] == "ok" and health["uid"] == 1001


def test_resolve_pins_the_example_deployment(plain_registry, tmp_path):
    reg = plain_registry
    work = tmp_path / "work"
    shutil.copytree(SAMPLE, work / "services" / "emergency-service")
    proc = run_cli(
        "resolve",
        "-f",
        str(DEPLOYMENT.parent),
        "--push",
        f"{reg.host}/sos",
        "--version",
        "v1.0.0",
        "--upx",
        "off",
        cwd=work,
        env=reg_env(reg, tmp_path / "home"),
    )
    assert proc.returncode == 0, proc.stderr
    digest = remote_digest(reg, "sos/emergency-service:v1.0.0")
    expected = DEPLOYMENT.read_text().replace(
        "ocibake://services/emergency-service", f"{reg.host}/sos/emergency-service@{digest}"
    )
    assert proc.stdout == expected


# ---- the CI examples, run ----


def runner_bin(tmp_path: Path) -> Path:
    """A fresh Python for the 'runner': its pip finds ocibake (this checkout) and its dependencies already
    installed, so `pip install ocibake` runs for real without the network; `ocibake` is on its PATH as pip would
    put it there."""
    runner = tmp_path / "runner"
    subprocess.run([sys.executable, "-m", "venv", str(runner)], check=True, stdout=subprocess.DEVNULL)
    site = Path(sysconfig.get_paths(vars={"base": str(runner), "platbase": str(runner)})["purelib"])
    (site / "ocibake-checkout.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    (runner / "bin" / "ocibake").symlink_to(Path(sys.executable).with_name("ocibake"))
    return runner / "bin"


def run_as_ci(script: str, env: dict, workspace: Path) -> subprocess.CompletedProcess:
    """``script`` under bash -eo pipefail as uid 1001 in a user namespace, with /run (and so any Docker socket)
    replaced by an empty tmpfs, and no DOCKER_* variables."""
    guard = (
        'test "$(id -u)" != 0 || { echo "running as root" >&2; exit 99; }\n'
        '! command -v docker >/dev/null && ! test -e /var/run/docker.sock || { echo "docker here" >&2; exit 98; }\n'
    )
    argv = [
        require("bwrap"),
        "--unshare-user",
        "--uid",
        "1001",
        "--gid",
        "1001",
        "--bind",
        "/",
        "/",
        "--tmpfs",
        "/run",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--die-with-parent",
        "--chdir",
        str(workspace),
        "--clearenv",
        *[a for k, v in env.items() for a in ("--setenv", k, v)],
        "/bin/bash",
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "-c",
        guard + script,
    ]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600)


def ci_env(tmp_path: Path, reg, bin_dir: Path) -> dict:
    go = Path(require("go")).resolve().parent
    return {
        "HOME": str(tmp_path / "home"),
        "PATH": f"{bin_dir}:{go}:/usr/bin:/bin",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "LANG": "C.UTF-8",
        "OCIBAKE_REGISTRY_RETRIES": "1",
        **go_caches(),
    }


def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "checkout"
    shutil.copytree(SAMPLE, ws / "services" / "emergency-service")
    (tmp_path / "home").mkdir()
    return ws


def check_pushed(proc, reg, ws: Path, tag: str) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    lines = (ws / "pushed.txt").read_text().split()
    repo = f"{reg.host}/sos/emergency-service"
    assert [line.split("@")[0] for line in lines] == [f"{repo}:{tag}", f"{repo}:latest"]
    for line in lines:
        assert skopeo_digest(reg, line.split("/", 1)[1].split("@")[0]) == line.split("@")[1]


def github_expression(match: re.Match, context: dict) -> str:
    key = match.group(1).strip()
    assert key in context, f"the workflow uses ${{{{ {key} }}}}, which this test does not provide"
    return context[key]


def test_the_github_workflow_runs_without_docker_or_root(basic_registry, tmp_path):
    reg = basic_registry
    workflow = load_all(GITHUB)[0]
    context = {
        "vars.REGISTRY": f"{reg.host}/sos",
        "github.ref_name": "v1.0.0",
        "secrets.REGISTRY_USER": USER,
        "secrets.REGISTRY_PASSWORD": PASSWORD,
    }
    job = workflow["jobs"]["image"]
    expand = lambda text: re.sub(r"\$\{\{(.*?)\}\}", lambda m: github_expression(m, context), str(text))  # noqa: E731
    ws = workspace(tmp_path)
    env = {**ci_env(tmp_path, reg, runner_bin(tmp_path)), **{k: expand(v) for k, v in job["env"].items()}}
    skipped, scripts = [], []
    for step in job["steps"]:
        if "uses" in step:
            skipped.append(step["uses"])  # the test provides the checkout, go and python
            continue
        step_env = " ".join(f"{k}={json.dumps(expand(v))}" for k, v in step.get("env", {}).items())
        scripts.append(f"( {'export ' + step_env + ';' if step_env else ''}\n{step['run']}\n)")
    assert set(skipped) == KNOWN_ACTIONS
    print(f"skipped {', '.join(skipped)}: the test gives the steps a checkout, go and python")
    proc = run_as_ci("\n".join(scripts), env, ws)
    check_pushed(proc, reg, ws, "v1.0.0")
    assert "Requirement already satisfied: ocibake" in proc.stdout


def test_the_gitlab_job_runs_without_docker_or_root(basic_registry, tmp_path):
    reg = basic_registry
    job = load_all(GITLAB)[0]["build-image"]
    predefined = {
        "CI_REGISTRY_IMAGE": f"{reg.host}/sos",
        "CI_REGISTRY_USER": USER,
        "CI_REGISTRY_PASSWORD": PASSWORD,
        "CI_COMMIT_REF_SLUG": "main",
    }
    variables = {k: re.sub(r"\$\{?(\w+)\}?", lambda m: predefined[m.group(1)], v) for k, v in job["variables"].items()}
    ws = workspace(tmp_path)
    env = {**ci_env(tmp_path, reg, runner_bin(tmp_path)), **predefined, **variables}
    # GitLab runs before_script and script in one shell, line by line, stopping at the first failure
    proc = run_as_ci("\n".join(job["before_script"] + job["script"]), env, ws)
    check_pushed(proc, reg, ws, "main")
    assert not (tmp_path / "home" / "go").exists(), "go was on PATH, so nothing was downloaded"
    config = json.loads((tmp_path / "home" / ".docker" / "config.json").read_text())
    assert reg.host in config["auths"]
