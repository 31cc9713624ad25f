"""`ocibake audit`: an image built from a fixture is reproduced from its source; each kind of difference is named."""

from __future__ import annotations

import glob
import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import FIXTURES, build, git, require, run_cli

# A real other Go release from Debian (scripts/install-debian-deps.sh): golang-1.19-go on Debian 12, golang-go on 13
OTHER_GO = (sorted(glob.glob("/usr/lib/go-1.*/bin/go")) or ["/usr/lib/go-1.19/bin/go"])[0]


def clone(origin_source: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin_source), str(dest)], check=True)
    return dest


def audit(layout: Path, source: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_cli("audit", f"oci:{layout}:v1", "--source", str(source), "--json", *args)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        doc = {}
    return proc, doc


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def put_blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    return digest


def rewrite_image(layout: Path, tag: str, config_edit=None, layer: int | None = None, member_edit=None) -> str:
    """Change an image in place, as a tamperer would: a layer's tar entries, or the config. -> the new digest."""
    index = json.loads((layout / "index.json").read_text())
    entry = next(
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )
    manifest = json.loads(blob_path(layout, entry["digest"]).read_bytes())
    config = json.loads(blob_path(layout, manifest["config"]["digest"]).read_bytes())
    if layer is not None:
        old = gzip.decompress(blob_path(layout, manifest["layers"][layer]["digest"]).read_bytes())
        out = io.BytesIO()
        with (
            tarfile.open(fileobj=io.BytesIO(old)) as src,
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
        ):
            for info in src.getmembers():
                data = src.extractfile(info).read() if info.isreg() else None
                member_edit(info)
                dst.addfile(info, io.BytesIO(data) if data is not None else None)
        tar = out.getvalue()
        compressed = gzip.compress(tar, mtime=0)
        manifest["layers"][layer].update(digest=put_blob(layout, compressed), size=len(compressed))
        config["rootfs"]["diff_ids"][layer] = "sha256:" + hashlib.sha256(tar).hexdigest()
    if config_edit is not None:
        config_edit(config)
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest["config"].update(digest=put_blob(layout, config_bytes), size=len(config_bytes))
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    entry.update(digest=put_blob(layout, manifest_bytes), size=len(manifest_bytes))
    (layout / "index.json").write_text(json.dumps(index))
    return entry["digest"]


def record_of(config: dict) -> dict:
    return json.loads(config["config"]["Labels"]["dev.ocibake.build-record"])


def test_an_image_built_from_the_fixture_is_reproduced(origin):
    source, layout, digest = origin
    proc, doc = audit(layout, source)
    assert proc.returncode == 0, proc.stderr
    assert doc["reproduced"] and doc["rebuilt"] == digest and doc["probable_causes"] == []
    human = run_cli("audit", f"oci:{layout}:v1", "--source", str(source))
    assert human.returncode == 0 and human.stdout.startswith("reproduced:")


def test_a_changed_source_file_is_named(origin, tmp_path):
    source, layout, _ = origin
    work = clone(source, tmp_path / "hello")
    main = work / "main.go"
    main.write_text(main.read_text().replace("hello from the root", "hello from elsewhere"))
    proc, doc = audit(layout, work)
    assert proc.returncode == 6, proc.stderr
    assert "uncommitted changes (main.go)" in proc.stderr
    assert any(c.startswith("a changed source file") and "main.go" in c for c in doc["probable_causes"]), doc
    assert "/app" in [f["path"] for layer in doc["diff"]["layers"] for f in layer["files"]]


def test_a_different_go_release_is_named(origin, tmp_path):
    require(OTHER_GO)
    other = subprocess.run([OTHER_GO, "env", "GOVERSION"], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    minor = ".".join(other.split(".")[:2])  # go1.19
    source, _, _ = origin
    layout = tmp_path / "old-go"
    build(source, layout, "--version", "v1", "--upx", "off", "--sbom", "none", "--go", OTHER_GO)
    proc, doc = audit(layout, source)
    assert proc.returncode == 6, proc.stderr
    assert "the local go is go1.2" in proc.stderr and f"built with {minor}" in proc.stderr
    assert doc["probable_causes"][0].startswith(f"a different Go release: {minor}.")


def test_a_different_zoneinfo_version_is_named(origin, tmp_path):
    import tzdata

    source, _, _ = origin
    zones = tmp_path / "zoneinfo"
    shutil.copytree(Path(tzdata.__file__).parent / "zoneinfo", zones)
    shutil.copy(zones / "Europe" / "Paris", zones / "Europe" / "Berlin")  # an "older release" of one zone
    layout = tmp_path / "zones"
    build(source, layout, "--version", "v1", "--upx", "off", "--sbom", "none", "--zoneinfo", str(zones))
    proc, doc = audit(layout, source)
    assert proc.returncode == 6, proc.stderr
    assert "zoneinfo came from a directory that is not recorded" in proc.stderr
    assert any(c.startswith("the zoneinfo data differs (version)") and "tzdata" in c for c in doc["probable_causes"])
    changed = [f["path"] for layer in doc["diff"]["layers"] for f in layer["files"]]
    assert changed == ["/usr/share/zoneinfo/Europe/Berlin"]


def test_a_file_mode_changed_in_a_layer_is_named(origin, tmp_path):
    source, layout, _ = origin
    copy = tmp_path / "image"
    shutil.copytree(layout, copy)

    def chmod(info):
        if info.name.endswith("etc/passwd"):
            info.mode = 0o666

    rewrite_image(copy, "v1", layer=0, member_edit=chmod)
    proc, doc = audit(copy, source)
    assert proc.returncode == 6, proc.stderr
    assert doc["probable_causes"] == ["file modes differ: /etc/passwd 0666 in the image, 0644 in the rebuild"]


def test_a_different_source_date_epoch_is_named(origin, tmp_path):
    """The image's times come from another SOURCE_DATE_EPOCH than its record names (the record was edited)."""
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
    proc, doc = audit(copy, source)
    assert proc.returncode == 6, proc.stderr
    assert any(c.startswith("timestamps differ") and "SOURCE_DATE_EPOCH" in c for c in doc["probable_causes"]), doc


def test_an_image_without_a_build_record_says_what_it_cannot_check(origin, tmp_path):
    source, layout, _ = origin
    copy = tmp_path / "image"
    shutil.copytree(layout, copy)
    rewrite_image(copy, "v1", config_edit=lambda c: c["config"]["Labels"].pop("dev.ocibake.build-record"))
    proc, _ = audit(copy, source)
    assert proc.returncode == 4, proc.stderr
    assert "has no ocibake build record" in proc.stderr and "cannot be checked" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_source_directory_at_another_revision_is_refused(origin, tmp_path):
    source, layout, _ = origin
    work = clone(source, tmp_path / "hello")
    (work / "NOTES").write_text("later\n")
    git("add", "NOTES", cwd=work)
    git("commit", "-qm", "later", cwd=work)
    proc, _ = audit(layout, work)
    assert proc.returncode == 4, proc.stderr
    assert "but the image was built from" in proc.stderr and "git -C" in proc.stderr and "checkout" in proc.stderr


def test_a_different_module_version_is_named(tmp_path):
    """A dependency at another version than the one recorded (go.mod and vendor/ edited, not committed)."""
    source = tmp_path / "svc"
    shutil.copytree(FIXTURES / "vendored-service", source)
    git("init", "-q", cwd=source)
    git("add", ".", cwd=source)
    git("commit", "-qm", "fixture", cwd=source)
    layout = tmp_path / "image"
    build(source, layout, "--version", "v1", "--upx", "off", "--sbom", "none")
    for name in ("go.mod", "vendor/modules.txt"):
        path = source / name
        path.write_text(path.read_text().replace("v1.2.3", "v1.2.4"))
    proc, doc = audit(layout, source)
    assert proc.returncode == 6, proc.stderr
    assert "module versions differ: example.com/vendored/greet v1.2.3 -> v1.2.4" in doc["probable_causes"], doc


def test_an_image_in_a_registry_is_audited(origin, plain_registry, tmp_path):
    from regtools import ocibake, reg_env

    source, layout, digest = origin
    env = reg_env(plain_registry, tmp_path / "home")
    assert ocibake("push", str(layout), f"{plain_registry.host}/audit/hello", "-t", "v1", env=env).returncode == 0
    proc = ocibake("audit", f"{plain_registry.host}/audit/hello:v1", "--source", str(source), "-q", env=env)
    assert proc.returncode == 0, proc.stderr
    verdict = proc.stdout.strip()
    assert verdict.startswith(f"reproduced: the rebuild from source is {digest}, the same image; checked: ")
    assert "every blob of the image against its digest and size (6 blobs), every layer against its diff_id" in verdict
    assert "no signature (no --key given)" in verdict and "the build record (commit " in verdict


def test_audit_with_a_key_checks_the_signature_first_and_says_so(origin, plain_registry, tmp_path):
    from regtools import ocibake, reg_env

    source, layout, digest = origin
    env = {**reg_env(plain_registry, tmp_path / "home"), "COSIGN_PASSWORD": ""}
    ref = f"{plain_registry.host}/audit/signed:v1"
    assert ocibake("push", str(layout), ref.rsplit(":", 1)[0], "-t", "v1", env=env).returncode == 0
    assert ocibake("generate-key-pair", "--output-dir", str(tmp_path), env=env).returncode == 0
    unsigned = ocibake("audit", ref, "--source", str(source), "--key", str(tmp_path / "cosign.pub"), env=env)
    assert unsigned.returncode == 7 and "no signature for " + digest in unsigned.stderr, unsigned.stderr
    assert ocibake("sign", ref, "--key", str(tmp_path / "cosign.key"), env=env).returncode == 0
    proc = ocibake("audit", ref, "--source", str(source), "--key", str(tmp_path / "cosign.pub"), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["reproduced"] and f"the signature (1 valid with {tmp_path / 'cosign.pub'})" in doc["checked"]
    assert doc["checked"][-1] == "the rebuild from source with the recorded settings, compared by digest"


def test_a_recorded_toolchain_image_must_be_given():
    from ocibake.audit.rebuild import check_toolchain
    from ocibake.errors import InputError
    from ocibake.toolchain.local import LocalToolchain

    record = {"toolchain": {"kind": "image", "digest": "sha256:" + "1" * 64}, "go": {"version": "go1.26.0"}}
    with pytest.raises(InputError) as err:
        check_toolchain(record, LocalToolchain(), FIXTURES / "hello-root", [])
    assert "toolchain image sha256:1111" in err.value.message and "--toolchain" in err.value.hint


def test_an_image_built_in_a_toolchain_image_is_audited_with_that_image(
    origin, toolchain, toolchain_cache_env, tmp_path
):
    source, _, _ = origin
    ref, _ = toolchain
    layout = tmp_path / "in-image"
    digest, _ = build(
        source,
        layout,
        "--version",
        "v1",
        "--upx",
        "off",
        "--sbom",
        "none",
        "--toolchain",
        ref,
        env=toolchain_cache_env,
        timeout=600,
    )
    without = run_cli("audit", f"oci:{layout}:v1", "--source", str(source), env=toolchain_cache_env)
    assert without.returncode == 4, without.stderr
    assert "toolchain image sha256:" in without.stderr and "--toolchain" in without.stderr
    proc = run_cli(
        "audit",
        f"oci:{layout}:v1",
        "--source",
        str(source),
        "--toolchain",
        ref,
        "--json",
        env=toolchain_cache_env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rebuilt"] == digest


# audit from an archive of the source, from a directory above the service, after a SOURCE_DATE_EPOCH mismatch


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
