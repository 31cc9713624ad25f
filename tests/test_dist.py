"""`make dist` builds the release: a wheel and an sdist (PEP 517, `python -m build`) that `twine check --strict`
accepts, one version everywhere (ocibake.__version__, the package metadata, `ocibake --version`, the CI examples'
pin). The wheel, installed into a fresh virtual environment with no network (`pip install --no-index`, the
dependencies from a wheelhouse made of this environment's installed packages), builds the sample service from
outside the checkout, to the same digest as the checkout does: nothing ocibake needs at run time is missing from it,
and nothing only the tests need (the SPDX schema) is in it. Real go, pip, build and twine."""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import ocibake
from conftest import REPO, SAMPLE, require
from wheelhouse import wheelhouse

SRC = REPO / "src" / "ocibake"


def run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_make_dist_builds_a_wheel_that_installs_offline_and_builds_the_sample(tmp_path):
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

    # a fresh environment, no index: the wheel and its declared dependencies only
    requirements = [Requirement(r).name for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    house = wheelhouse(requirements, tmp_path / "wheelhouse")
    fresh = tmp_path / "fresh"
    assert run([sys.executable, "-m", "venv", str(fresh)]).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=str(tmp_path / "home"))
    installed = run(
        [str(fresh / "bin" / "pip"), "install", "--no-index", "--find-links", str(house), str(wheel)], env=env
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    shown = run([str(fresh / "bin" / "ocibake"), "--version"], env=env, cwd=tmp_path)
    assert shown.stdout.strip() == f"ocibake {version}", shown.stderr
    where = run(
        [
            str(fresh / "bin" / "python"),
            "-c",
            "import importlib.metadata as m, ocibake; print(ocibake.__file__, m.version('ocibake'))",
        ],
        env=env,
        cwd=tmp_path,
    )
    path, meta_version = where.stdout.split()
    assert Path(path).is_relative_to(fresh) and meta_version == version, where.stdout

    # the sample service, copied out of the checkout, built by the installed wheel and by the checkout: same image
    service = tmp_path / "work" / "emergency-service"
    shutil.copytree(SAMPLE, service)
    args = ["build", str(service), "--upx", "off", "--version", "v1.0.0", "--sbom", "spdx"]
    built = run(
        [str(fresh / "bin" / "ocibake"), *args, "--output", str(tmp_path / "o-wheel")], env=env, cwd=service.parent
    )
    assert built.returncode == 0, built.stderr
    assert "Traceback" not in built.stderr and "sbom      SPDX 2.3" in built.stderr
    reference = run(
        [sys.executable, "-m", "ocibake", *args, "--output", str(tmp_path / "o-checkout")], cwd=service.parent
    )
    assert reference.returncode == 0, reference.stderr
    assert built.stdout.split("@")[1] == reference.stdout.split("@")[1]

    # the CI examples pin this version
    for example in (REPO / "examples" / "ci").glob("*.yml"):
        pins = re.findall(r"pip install \"?ocibake==([^\s\"]+)", example.read_text())
        assert pins == [version], (example.name, pins)
