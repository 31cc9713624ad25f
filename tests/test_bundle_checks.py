"""A bundle's files are checked where a build uses them, not only by `bundle --check`: a Delve changed after the
bundle was made never goes into an image. `bundle --target` takes only the targets there are."""

from __future__ import annotations

import hashlib

import pytest

from conftest import run_cli
from ocibake.errors import InputError
from ocibake.toolchain import offline


def test_a_changed_delve_in_the_bundle_is_refused_by_the_build_that_would_use_it(tmp_path):
    dlv = tmp_path / "delve" / "v1.27.2" / "amd64" / "dlv"
    dlv.parent.mkdir(parents=True)
    dlv.write_bytes(b"\x7fELF a debugger")
    sums = f"{hashlib.sha256(dlv.read_bytes()).hexdigest()}  delve/v1.27.2/amd64/dlv\n"
    (tmp_path / offline.SUMS).write_text(sums)
    assert offline.delve(tmp_path, "v1.27.2", "amd64") == dlv
    dlv.write_bytes(b"\x7fELF a debugger, changed")
    with pytest.raises(InputError) as info:
        offline.delve(tmp_path, "v1.27.2", "amd64")
    assert "delve/v1.27.2/amd64/dlv has changed" in info.value.message and info.value.exit_code == 4
    assert offline.delve(tmp_path, "v1.27.2", "arm64") is None  # absent: the caller names the missing piece


def test_bundle_refuses_an_unknown_target(tmp_path):
    proc = run_cli("bundle", "services/emergency-service", "--target", "developement", "--output", str(tmp_path / "b"))
    assert proc.returncode == 2 and "developement" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "b").exists()
