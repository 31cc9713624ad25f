"""`go env` is asked once: a rebuild with the same go program, environment, go.mod and GOENV file reuses the
answer; changing any of them asks go again. Real go behind a wrapper that logs its runs."""

from __future__ import annotations

import shutil
import stat

from conftest import FIXTURES, build, require


def test_go_env_is_asked_once_per_go_and_inputs(tmp_path):
    real = require("go")
    log = tmp_path / "go-runs.log"
    wrapper = tmp_path / "go-logging"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    args = ("--go", str(wrapper), "--upx", "off")

    def env_runs() -> int:
        return log.read_text().split().count("env")

    first, _ = build(service, tmp_path / "a", *args, env=env)
    assert env_runs() == 1
    second, _ = build(service, tmp_path / "b", *args, env=env)
    assert second == first and env_runs() == 1, "go env ran again for the same go and inputs"

    goenv = tmp_path / "goenv"
    goenv.write_text("GOFLAGS=-tags=timetzdata\n")
    build(service, tmp_path / "c", *args, env={**env, "GOENV": str(goenv)})
    assert env_runs() == 2
    (service / "go.mod").write_text((service / "go.mod").read_text() + "\n// changed\n")
    build(service, tmp_path / "d", *args, env=env)
    assert env_runs() == 3
