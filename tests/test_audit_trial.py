"""`ocibake audit` from an archive of the source, from a directory above the service, and after a
SOURCE_DATE_EPOCH mismatch (the findings of a new-user trial)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from conftest import run_cli
from test_audit import audit, origin, record_of, rewrite_image  # noqa: F401  (origin is a fixture)


def archive(source: Path, dest: Path) -> Path:
    """`git archive HEAD` of ``source`` unpacked into ``dest``: the revision's files, no .git."""
    data = subprocess.run(["git", "-C", str(source), "archive", "HEAD"], check=True, stdout=subprocess.PIPE).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def test_a_git_archive_of_the_recorded_revision_is_reproduced(origin, tmp_path):
    source, layout, digest = origin
    work = archive(source, tmp_path / "nogit")
    proc, doc = audit(layout, work)
    assert proc.returncode == 0, proc.stderr
    assert "is not a git checkout" in proc.stderr and "recorded commit" in proc.stderr
    assert doc["reproduced"] and doc["rebuilt"] == digest


def test_a_source_above_the_service_finds_it_by_its_module(origin, tmp_path):
    source, layout, digest = origin
    repo = tmp_path / "repo"
    archive(source, repo / "services" / "hello")
    (repo / "tools" / "other").mkdir(parents=True)
    (repo / "tools" / "other" / "go.mod").write_text("module example.com/other\n\ngo 1.22\n")
    proc, doc = audit(layout, repo)
    assert proc.returncode == 0, proc.stderr
    assert f"using {repo / 'services' / 'hello'}" in proc.stderr
    assert doc["rebuilt"] == digest


def test_a_source_above_no_or_several_matching_services_names_the_candidates(origin, tmp_path):
    source, layout, _ = origin
    repo = tmp_path / "repo"
    (repo / "tools" / "other").mkdir(parents=True)
    (repo / "tools" / "other" / "go.mod").write_text("module example.com/other\n\ngo 1.22\n")
    proc, _ = audit(layout, repo)
    assert proc.returncode == 4, proc.stderr
    assert "no directory under it declares module" in proc.stderr and "example.com/other" in proc.stderr
    archive(source, repo / "a")
    archive(source, repo / "b")
    proc, _ = audit(layout, repo)
    assert proc.returncode == 4, proc.stderr
    assert "several directories" in proc.stderr and str(repo / "a") in proc.stderr and str(repo / "b") in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_source_date_epoch_mismatch_blames_the_build_date_not_a_source_file(origin, tmp_path):
    source, layout, _ = origin
    copy = tmp_path / "image"
    shutil.copytree(layout, copy)

    def edit(config):
        record = record_of(config)
        record["source_date_epoch"] += 3600
        config["config"]["Labels"]["dev.ocibake.build-record"] = json.dumps(
            record, sort_keys=True, separators=(",", ":")
        )

    rewrite_image(copy, "v1", config_edit=edit)
    proc = run_cli("audit", f"oci:{copy}:v1", "--source", str(source), "--json", env={"SOURCE_DATE_EPOCH": "12345"})
    assert proc.returncode == 6, proc.stderr
    causes = json.loads(proc.stdout)["probable_causes"]
    assert any("build date" in c and "not through a source change" in c for c in causes), causes
    assert not any("a source file differs" in c or c.startswith("a changed source file") for c in causes), causes
    assert "SOURCE_DATE_EPOCH=12345 in the environment is ignored" in proc.stderr
