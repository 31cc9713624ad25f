"""SIGKILL at random moments: a build killed while go runs leaves no process behind (go, its compile and link, all in
go's process group, die with ocibake), the next build removes what the killed one staged at once, and an image
already in the layout stays intact; a push killed midway leaves the registry's earlier push intact and the next push
succeeds."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import FIXTURES, REPO, build, layout_index, require
from registry_servers import write_layout
from regtools import base_env, ocibake, skopeo_digest

BUILD_KILLS = 15
PUSH_KILLS = 10


def processes() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (ppid, pgid, state, comm) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = (int(fields[1]), int(fields[2]), fields[0], comm)
    return out


def descendants(root: int, procs: dict) -> set[int]:
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, *_) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def living(pids: set[int], pgids: set[int]) -> list[str]:
    return [
        f"{pid} {comm}"
        for pid, (_, pgid, state, comm) in processes().items()
        if (pid in pids or pgid in pgids) and state != "Z"
    ]


def kill_build_at_random(layout: Path, rnd: random.Random, wait_for_go: bool, env: dict) -> tuple[bool, list[str]]:
    """Start a build, SIGKILL it at a random moment (after go started, or after the stage appeared); return (whether
    go was running, processes of the build still alive 3 s later)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocibake",
            "build",
            str(FIXTURES / "hello-root"),
            "--output",
            str(layout),
            "--version",
            "v2",
            "--upx",
            "off",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    go_seen = False
    while time.monotonic() < deadline and proc.poll() is None:
        procs = processes()
        kids = descendants(proc.pid, procs)
        if any(procs[p][3] == "go" for p in kids if p in procs):
            go_seen = True
            break
        if not wait_for_go and any(p.name.startswith(".ocibake-staging") for p in layout.iterdir()):
            break
        time.sleep(0.005)
    time.sleep(rnd.uniform(0, 0.4))
    procs = processes()
    kids = descendants(proc.pid, procs)
    pgids = {procs[p][1] for p in kids if p in procs} - {os.getpgid(0)}
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    end = time.monotonic() + 3
    while time.monotonic() < end and living(kids, pgids):
        time.sleep(0.05)
    return go_seen, living(kids, pgids)


def test_sigkilled_builds_leave_no_process_and_no_stage(tmp_path):
    require("go"), require("skopeo")
    layout = tmp_path / "layout"
    good, _ = build(FIXTURES / "hello-root", layout, "--version", "v1", "--upx", "off")
    env = {**os.environ}
    rnd = random.Random(15)
    go_runs = 0
    for i in range(BUILD_KILLS):
        # every fourth with a cold Go cache: go is compiling the standard library, its children busy for long
        cold = {"GOCACHE": str(tmp_path / f"cold-{i}")} if i % 4 == 0 else {}
        go_seen, alive = kill_build_at_random(layout, rnd, wait_for_go=i % 3 != 2, env={**env, **cold})
        go_runs += go_seen
        assert not alive, f"kill {i}: still running: {alive}"
        # at most the stage of the build just killed is there: the killed build before it was cleaned up at once
        stages = {p.name.split("-")[2] for p in layout.iterdir() if p.name.startswith(".ocibake-staging")}
        assert len(stages) <= 1, stages
    assert go_runs >= BUILD_KILLS // 2, "go was never caught running"
    new, _ = build(FIXTURES / "hello-root", layout, "--version", "v2", "--upx", "off")
    assert [p.name for p in layout.iterdir() if p.name.startswith(".")] == []
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in layout_index(layout)["manifests"]
        if "annotations" in m
    }
    assert tags["v1"] == good and tags["v2"] == new
    inspect = subprocess.run(
        ["skopeo", "inspect", "--format", "{{.Digest}}", f"oci:{layout}:v1"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert inspect.stdout.strip() == good, inspect.stderr


def test_sigkilled_pushes_leave_the_earlier_push_intact(plain_registry, tmp_path):
    env = base_env(tmp_path / "home")
    old, new = tmp_path / "old", tmp_path / "new"
    write_layout(old, tags=("v1",), layer_sizes=(50_000,), seed=21)
    write_layout(new, tags=("v1", "v2"), layer_sizes=(4_000_000, 3_000_000), seed=22)
    repo = f"{plain_registry.host}/kills/app"
    assert ocibake("push", str(old), repo, env=env).returncode == 0
    earlier = skopeo_digest(plain_registry, "kills/app:v1")
    rnd = random.Random(10)
    for _ in range(PUSH_KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocibake", "push", str(new), repo, "--tag", "v2"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rnd.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert skopeo_digest(plain_registry, "kills/app:v1") == earlier
    done = ocibake("push", str(new), repo, "--tag", "v2", env=env)
    assert done.returncode == 0, done.stderr
    index = json.loads((new / "index.json").read_text())
    assert skopeo_digest(plain_registry, "kills/app:v2") == index["manifests"][0]["digest"]
    assert skopeo_digest(plain_registry, "kills/app:v1") == earlier


HANGING_MAIN = """package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

var Version = "dev"

func main() {
	// ignores --version (and SIGTERM, SIGINT): the check waits for it
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	_ = os.Args
	time.Sleep(120 * time.Second)
}
"""


def test_a_sigkilled_build_takes_the_hanging_version_check_with_it(tmp_path):
    """The built binary's `--version` runs in a guarded process group as go does: ocibake SIGKILLed while the binary
    hangs (ignoring --version and SIGTERM) leaves no process, and none parented to pid 1."""
    service = tmp_path / "hang"
    service.mkdir()
    (service / "go.mod").write_text("module example.com/hang\n\ngo 1.21\n")
    (service / "main.go").write_text(HANGING_MAIN)
    out = tmp_path / "out"
    env = base_env(tmp_path / "home")
    argv = [sys.executable, "-m", "ocibake", "build", str(service), "--upx", "off", "--output", str(out)]
    with subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        deadline = time.monotonic() + 120
        checking: set[int] = set()
        while not checking and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            procs = processes()
            checking = {pid for pid in descendants(proc.pid, procs) if procs[pid][3] == "app"}
        assert checking, "the --version check never started"
        procs = processes()
        pgids = {procs[pid][1] for pid in checking} - {os.getpgid(0)}  # its own group, not the test's
        proc.kill()
        proc.communicate()
    deadline = time.monotonic() + 30  # the guard sees its pipe close and kills the group (slower on a loaded machine)
    while (left := living(checking, pgids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in checking:  # on failure, do not leave it running for two minutes
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == []
    assert pgids, "the --version check ran in ocibake's own process group, unguarded"
