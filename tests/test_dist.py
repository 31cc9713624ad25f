"""`make dist` builds the release: a wheel and an sdist (PEP 517, `python -m build`) that `twine check --strict`
accepts, one version everywhere (ocibake.__version__, the package metadata, `ocibake --version`, the CI examples'
pin). The wheel, installed into a fresh virtual environment with no network (`pip install --no-index`, the
dependencies from a wheelhouse made of this environment's installed packages) by a non-root user with no network
(`unshare -r -n`), builds the sample service from outside the checkout, to the same digest as the checkout does:
nothing ocibake needs at run time is missing from it, and nothing only the tests need (the SPDX schema) is in it.
`pipx install` of the wheel works as well. Real go, pip, pipx, build and twine."""

from __future__ import annotations

import email.parser
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import ocibake
from conftest import REPO, SAMPLE, require
from rootless import rootless_env, run_rootless
from wheelhouse import wheelhouse

SRC = REPO / "src" / "ocibake"


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_make_dist_builds_a_wheel_that_installs_offline_and_builds_the_sample(rootless_account, tmp_path):
    require("go")
    dist = tmp_path / "dist"
    made = run(["make", "--no-print-directory", "dist", f"DIST={dist}"], cwd=REPO)
    assert made.returncode == 0, made.stdout + made.stderr
    version = ocibake.__version__
    wheel, sdist = dist / f"ocibake-{version}-py3-none-any.whl", dist / f"ocibake-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file(), sorted(p.name for p in dist.iterdir())
    assert made.stdout.count("PASSED") == 2, made.stdout  # twine check --strict, for both

    # every file of the package is in the wheel (modules and any data file), nothing of the tests is
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = email.parser.Parser().parsestr(zf.read(f"ocibake-{version}.dist-info/METADATA").decode())
    package = {
        "ocibake/" + p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert package - names == set()
    assert not any("spdx-schema" in n or n.startswith("tests/") for n in names)
    assert metadata["Version"] == version

    # as a CI job would: a non-root user with no network (unshare -r -n) makes a fresh virtual environment, installs
    # the wheel with no index (its declared dependencies from a wheelhouse), and builds the sample service from a
    # directory outside the checkout; the checkout builds the same copy to the same digest
    requirements = [Requirement(r).name for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    work = Path(tempfile.mkdtemp(prefix="ocibake-dist-"))
    try:
        wheelhouse(requirements, work / "house")
        shutil.copy(wheel, work / wheel.name)
        shutil.copytree(SAMPLE, work / "emergency-service")
        for path in [work, *work.rglob("*")]:
            os.chown(path, rootless_account.uid, rootless_account.gid, follow_symlinks=False)
        script = f"""set -e
{shlex.quote(os.path.realpath(sys.executable))} -m venv venv
venv/bin/pip install -q --no-index --find-links house {wheel.name}
venv/bin/ocibake --version
venv/bin/python -c 'import importlib.metadata as m, ocibake; print(ocibake.__file__, m.version("ocibake"))'
"""
        env = {"PYTHONPATH": "", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        proc = run_rootless(["/bin/sh", "-c", script], account=rootless_account, network=False, env=env, cwd=work)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        shown, where = proc.stdout.splitlines()[-2:]
        assert shown == f"ocibake {version}"
        path, meta_version = where.split()
        assert Path(path).is_relative_to(work / "venv") and meta_version == version, where
        # the build, as that user (outside a user namespace: there every directory above the cache shows as the
        # overflow uid, which the cache's ownership check refuses; the rootless work covers that case)
        ids = [f"--reuid={rootless_account.uid}", f"--regid={rootless_account.gid}", "--init-groups"]
        build = ["venv/bin/ocibake", "build", "emergency-service", "--upx", "off", "--version", "v1.0.0"]
        built = run(
            ["setpriv", *ids, "--", *build, "--output", "o-wheel"],
            cwd=work,
            env=rootless_env(rootless_account.home, env),
        )
        assert built.returncode == 0, built.stderr
        assert "Traceback" not in built.stderr and "sbom      SPDX 2.3" in built.stderr
        args = ["build", "emergency-service", "--upx", "off", "--version", "v1.0.0", "--output", "o-checkout"]
        reference = run([sys.executable, "-m", "ocibake", *args], cwd=work)
        assert reference.returncode == 0, reference.stderr
        assert built.stdout.strip().split("@")[1] == reference.stdout.strip().split("@")[1]
        # pipx installs it too (offline, from the same wheelhouse), as an application of its own
        apps = tmp_path / "pipx"
        pipx_env = {**env, "PIPX_HOME": str(apps / "home"), "PIPX_BIN_DIR": str(apps / "bin")}
        pipx_env |= {"PIP_FIND_LINKS": str(work / "house"), "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        installed = run(
            [require("pipx"), "install", "--python", os.path.realpath(sys.executable), str(wheel)], env=pipx_env
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert run([str(apps / "bin" / "ocibake"), "--version"]).stdout.strip() == f"ocibake {version}"
    finally:
        shutil.rmtree(work)

    # the CI examples pin this version
    for example in (REPO / "examples" / "ci").glob("*.yml"):
        pins = re.findall(r"pip install \"?ocibake==([^\s\"]+)", example.read_text())
        assert pins == [version], (example.name, pins)
