"""docker-archive and oci-archive files (`ocibake build --output KIND:FILE`, `ocibake export`), read back by the real
programs: skopeo, podman (as root, vfs storage in a temp dir), umoci; the image they hold is run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from conftest import FIXTURES, build, health_check, layout_index, manifest_and_config, require, run_cli, unpack

REF_NAME = "org.opencontainers.image.ref.name"


def skopeo(*args: str) -> subprocess.CompletedProcess:
    require("skopeo")
    return subprocess.run(["skopeo", *args], check=False, capture_output=True, text=True, timeout=120)


def export(*args: str, **kw) -> subprocess.CompletedProcess:
    return run_cli("export", *args, **kw)


def podman(store, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    require("podman")
    return subprocess.run(
        [
            "podman",
            "--root",
            str(store / "root"),
            "--runroot",
            str(store / "run"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def podman_store():
    """A private podman storage (podman refuses a runroot path over 50 characters, so not under tmp_path)."""
    store = Path(tempfile.mkdtemp(prefix="ocibake-podman-"))
    yield store
    shutil.rmtree(store, ignore_errors=True)


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def docker_archive(sample_image, tmp_path_factory):
    layout, _digest = sample_image
    path = tmp_path_factory.mktemp("archive") / "emergency.tar"
    proc = export(str(layout), f"docker-archive:{path}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"docker-archive:{path}\n"
    assert "emergency-service:v1.0.0" not in proc.stdout and "docker load" in proc.stderr
    return path


def test_docker_archive_lists_every_tag_and_skopeo_sees_the_layouts_diff_ids(sample_image, docker_archive):
    layout, digest = sample_image
    _, config = manifest_and_config(layout, digest)
    with tarfile.open(docker_archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        members = tar.getmembers()
    assert [m["RepoTags"] for m in manifest] == [["emergency-service:v1.0.0", "emergency-service:latest"]]
    assert manifest[0]["Layers"] == [d.split(":")[1] + ".tar" for d in config["rootfs"]["diff_ids"]]
    assert {m.mtime for m in members} == {0} and {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert [m.name for m in members] == sorted(m.name for m in members)
    for ref in ("", ":emergency-service:v1.0.0", ":emergency-service:latest"):
        proc = skopeo("inspect", f"docker-archive:{docker_archive}{ref}")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["Layers"] == config["rootfs"]["diff_ids"]
    proc = skopeo("inspect", "--config", f"docker-archive:{docker_archive}")
    assert json.loads(proc.stdout)["config"]["User"] == "1001:1001"


def test_podman_loads_the_docker_archive_with_its_tags_and_the_image_runs(
    sample_image, docker_archive, podman_store, tmp_path
):
    layout, digest = sample_image
    _, config = manifest_and_config(layout, digest)
    store = podman_store
    proc = podman(store, "load", "-i", str(docker_archive))
    assert proc.returncode == 0, proc.stderr
    assert "emergency-service:v1.0.0" in proc.stdout and "emergency-service:latest" in proc.stdout
    listed = podman(store, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()}
    assert {n.rsplit("/", 1)[-1] for n in names} == {"emergency-service:v1.0.0", "emergency-service:latest"}
    inspected = json.loads(podman(store, "image", "inspect", "emergency-service:v1.0.0").stdout)[0]
    assert inspected["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert inspected["Config"]["User"] == "1001:1001" and "8080/tcp" in inspected["Config"]["ExposedPorts"]

    run = podman(store, "run", "--rm", "--network", "none", "emergency-service:v1.0.0", "--version", timeout=60)
    if run.returncode == 0:
        assert run.stdout.startswith("emergency-service v1.0.0"), run.stdout
    else:
        # This machine's sandbox forbids what crun needs (setrlimit RLIMIT_NOFILE); say so, and run the image the
        # archive holds from its unpacked rootfs instead.
        print(
            f"podman run cannot run containers here ({run.stderr.strip().splitlines()[-1]}); "
            "running the archive's image from its unpacked rootfs under bubblewrap instead"
        )
    copied = tmp_path / "from-archive"
    proc = skopeo("copy", f"docker-archive:{docker_archive}:emergency-service:v1.0.0", f"oci:{copied}:v1.0.0")
    assert proc.returncode == 0, proc.stderr
    rootfs = unpack(copied, "v1.0.0", tmp_path / "bundle")
    health = health_check(rootfs)
    assert health["status"] == "ok" and health["version"] == "v1.0.0"


def test_oci_archive_copies_back_with_the_same_digest(sample_image, tmp_path):
    layout, digest = sample_image
    path = tmp_path / "emergency.oci.tar"
    proc = export(f"{layout}:v1.0.0", f"oci-archive:{path}")
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))
        names = tar.getnames()
    assert [m["annotations"][REF_NAME] for m in index["manifests"]] == ["v1.0.0"]
    assert "oci-layout" in names and f"blobs/sha256/{digest.split(':')[1]}" in names
    for source in (f"oci-archive:{path}", f"oci-archive:{path}:v1.0.0"):
        out = tmp_path / f"copy{len(source)}"
        proc = skopeo("copy", "--preserve-digests", source, f"oci:{out}:v1")
        assert proc.returncode == 0, proc.stderr
        assert layout_index(out)["manifests"][0]["digest"] == digest
    assert json.loads(skopeo("inspect", f"oci-archive:{path}").stdout)["Digest"] == digest
    again = export(f"{layout}:v1.0.0", f"oci-archive:{path}", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["images"] == [{"digest": digest, "tags": ["v1.0.0"]}] and report["size"] == path.stat().st_size
    import hashlib

    assert report["sha256"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_archives_of_the_same_image_are_byte_identical(sample_image, docker_archive, tmp_path):
    """Same image, other umask, TZ and time: the same bytes, for both kinds."""
    layout, _ = sample_image
    again = tmp_path / "again.tar"
    umask = ["sh", "-c", 'umask 077; exec "$@"', "sh"]
    proc = export(str(layout), f"docker-archive:{again}", env={"TZ": "Asia/Kolkata"}, prefix=umask)
    assert proc.returncode == 0, proc.stderr
    assert again.read_bytes() == docker_archive.read_bytes()
    one, two = tmp_path / "1.tar", tmp_path / "2.tar"
    assert export(f"{layout}:latest", f"oci-archive:{one}").returncode == 0
    assert (
        export(f"{layout}:latest", f"oci-archive:{two}", env={"TZ": "America/New_York"}, prefix=umask).returncode == 0
    )
    assert one.read_bytes() == two.read_bytes()
    assert oct(again.stat().st_mode & 0o777) == oct(0o600)  # the umask decides, as for any new file


def test_build_output_archives_beside_the_layout(tmp_path):
    """--output docker-archive:FILE builds the layout in its usual place and writes the archive from it."""
    work = tmp_path / "work"
    work.mkdir()
    args = (str(FIXTURES / "hello-root"), "--version", "v2", "--upx", "off", "--tag", "v2", "--tag", "stable")
    docker = run_cli("build", *args, "--output", "docker-archive:out/hello.tar", cwd=work)
    assert docker.returncode == 0, docker.stderr
    digest = docker.stdout.strip().split("@")[1]
    assert docker.stdout == f"hello-root@{digest}\n"
    assert f"wrote docker-archive:{work / 'out' / 'hello.tar'}" in docker.stderr
    assert layout_index(work / "dist" / "oci" / "hello-root")["manifests"][0]["digest"] == digest
    with tarfile.open(work / "out" / "hello.tar") as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["hello-root:v2", "hello-root:stable"]
    oci = run_cli("build", *args, "--output", "oci-archive:hello.oci.tar", "--json", cwd=work)
    assert oci.returncode == 0, oci.stderr
    report = json.loads(oci.stdout)
    assert report["digest"] == digest and report["archive"]["kind"] == "oci-archive"
    assert report["archive"]["path"] == str(work / "hello.oci.tar")
    assert report["archive"]["images"] == [{"digest": digest, "tags": ["v2", "stable"]}]
    assert json.loads(skopeo("inspect", f"oci-archive:{work / 'hello.oci.tar'}:stable").stdout)["Digest"] == digest
    assert leftovers(work) == [] and leftovers(work / "out") == []
    assert f"export {work / 'dist' / 'oci' / 'hello-root'}:v2 docker-archive:hello-root.tar" in docker.stderr


def test_a_bad_archive_output_is_refused_before_the_build(tmp_path):
    (tmp_path / "adir").mkdir()
    for output, words in (
        (f"docker-archive:{tmp_path / 'adir'}", "is a directory"),
        ("oci-archive:", "names no file"),
        (f"docker-archive:{tmp_path / 'file'}/x.tar", "is not a directory"),
    ):
        (tmp_path / "file").write_text("")
        proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", output, cwd=tmp_path)
        assert proc.returncode == 4, proc.stderr
        assert words in proc.stderr and "go build" not in proc.stderr and proc.stdout == ""
        assert not (tmp_path / "dist").exists()


def _multi_platform_layout(tmp_path):
    """One tag naming an index of linux/amd64 and linux/arm64 images, assembled from two ocibake builds."""
    from ocibake.oci.image import Descriptor, canonical_json, make_index

    parts = {}
    for arch in ("amd64", "arm64"):
        digest, _ = build(
            FIXTURES / "hello-root", tmp_path / arch, "--platform", f"linux/{arch}", "--upx", "off", "--version", "v3"
        )
        parts[arch] = (tmp_path / arch, digest)
    multi = tmp_path / "multi"
    shutil.copytree(tmp_path / "amd64", multi)
    for src in (tmp_path / "arm64" / "blobs" / "sha256").iterdir():
        shutil.copy(src, multi / "blobs" / "sha256" / src.name)
    children = [
        Descriptor.from_json(layout_index(path)["manifests"][0]).with_annotations({}) for path, _ in parts.values()
    ]
    index = make_index(children)
    (multi / "blobs" / "sha256" / index.digest.split(":")[1]).write_bytes(index.data)
    top = index.descriptor(annotations={REF_NAME: "v3"})
    (multi / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [top.as_json()]}))
    return multi, parts, index.digest


def test_a_multi_platform_tag_gives_the_hosts_platform_or_platforms(tmp_path):
    from ocibake.oci.platform import host_architecture

    multi, parts, _index_digest = _multi_platform_layout(tmp_path)
    host = tmp_path / "host.tar"
    proc = export(f"{multi}:v3", f"docker-archive:{host}")
    assert proc.returncode == 0, proc.stderr
    assert (
        f"v3 holds 2 platforms (linux/amd64, linux/arm64): the archive holds linux/{host_architecture()} "
        "(this host's platform; --platform picks another)"
    ) in proc.stderr
    arm = tmp_path / "arm.tar"
    proc = export(f"{multi}:v3", f"docker-archive:{arm}", "--platform", "linux/arm64", "--name", "sos/hello")
    assert proc.returncode == 0, proc.stderr
    assert "the archive holds linux/arm64 (--platform)" in proc.stderr
    inspected = json.loads(skopeo("inspect", "--override-arch", "arm64", f"docker-archive:{arm}").stdout)
    assert inspected["Architecture"] == "arm64"
    _, arm_config = manifest_and_config(*parts["arm64"])
    assert inspected["Layers"] == arm_config["rootfs"]["diff_ids"]
    with tarfile.open(arm) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["sos/hello:v3"]
    missing = export(f"{multi}:v3", f"docker-archive:{tmp_path / 'no.tar'}", "--platform", "linux/s390x")
    assert (
        missing.returncode == 4 and "holds no linux/s390x image (platforms: linux/amd64, linux/arm64)" in missing.stderr
    )
    # an oci-archive keeps the whole index
    whole = tmp_path / "whole.oci.tar"
    assert export(f"{multi}:v3", f"oci-archive:{whole}").returncode == 0
    assert json.loads(skopeo("inspect", "--raw", f"oci-archive:{whole}").stdout)["manifests"][1]["platform"] == {
        "os": "linux",
        "architecture": "arm64",
    }
    refused = export(f"{multi}:v3", f"oci-archive:{tmp_path / 'no.tar'}", "--platform", "linux/arm64")
    assert refused.returncode == 2 and "an oci-archive keeps every platform" in refused.stderr
    assert not (tmp_path / "no.tar").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "case", ["no-layout", "bad-kind", "no-file", "directory", "unknown-tag", "bad-tag", "bad-name", "bad-platform"]
)
def test_bad_input_is_one_line_exit_4_and_no_file(case, sample_image, tmp_path):
    layout, _ = sample_image
    dest = tmp_path / "x.tar"
    args = {
        "no-layout": (str(tmp_path / "nothing"), f"docker-archive:{dest}"),
        "bad-kind": (str(layout), f"tarball:{dest}"),
        "no-file": (str(layout), "oci-archive:"),
        "directory": (str(layout), f"docker-archive:{tmp_path}"),
        "unknown-tag": (f"{layout}:v9", f"docker-archive:{dest}"),
        "bad-tag": (f"{layout}:-x", f"docker-archive:{dest}"),
        "bad-name": (str(layout), f"docker-archive:{dest}", "--name", "Bad Name"),
        "bad-platform": (str(layout), f"docker-archive:{dest}", "--platform", "linux"),
    }[case]
    proc = export(*args)
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == "" and proc.stderr.startswith("ocibake: error: ") and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not dest.exists() and leftovers(tmp_path) == []


def test_a_damaged_layer_fails_and_keeps_the_old_archive(tmp_path):
    layout = tmp_path / "layout"
    digest, _ = build(FIXTURES / "hello-root", layout, "--upx", "off", "--version", "v1")
    dest = tmp_path / "out.tar"
    dest.write_bytes(b"the previous archive")
    manifest, _ = manifest_and_config(layout, digest)
    victim = layout / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    for kind in ("docker-archive", "oci-archive"):
        proc = export(str(layout), f"{kind}:{dest}")
        assert proc.returncode == 4, proc.stderr
        assert "does not match its digest" in proc.stderr and proc.stdout == ""
        assert dest.read_bytes() == b"the previous archive" and leftovers(tmp_path) == []


def test_zstd_layers_go_into_a_docker_archive_uncompressed(tmp_path):
    layout = tmp_path / "z"
    digest, _ = build(FIXTURES / "hello-root", layout, "--compression", "zstd", "--upx", "off", "--version", "v1")
    _, config = manifest_and_config(layout, digest)
    dest = tmp_path / "z.tar"
    proc = export(f"{layout}:v1", f"docker-archive:{dest}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(skopeo("inspect", f"docker-archive:{dest}").stdout)["Layers"] == config["rootfs"]["diff_ids"]
    with tarfile.open(dest) as tar:
        for name in json.load(tar.extractfile("manifest.json"))[0]["Layers"]:
            with tarfile.open(fileobj=tar.extractfile(name)) as layer:  # a plain tar, readable as is
                assert layer.getnames()


def test_a_layout_of_two_images_gives_two_entries_each_with_its_tags(tmp_path):
    layout = tmp_path / "two"
    one, _ = build(FIXTURES / "hello-root", layout, "--upx", "off", "--version", "v1")
    two, _ = build(FIXTURES / "hello-root", layout, "--upx", "off", "--version", "v2", "--tag", "v2", "--tag", "edge")
    assert one != two
    dest = tmp_path / "both.tar"
    proc = export(str(layout), f"docker-archive:{dest}", "--name", "hello")
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(dest) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
    assert sorted(tuple(e["RepoTags"]) for e in entries) == [("hello:v1", "hello:latest"), ("hello:v2", "hello:edge")]
    layers = [e["Layers"] for e in entries]
    assert layers[0][:-1] == layers[1][:-1] and layers[0][-1] != layers[1][-1]  # shared layers stored once
    configs = {
        tag: json.loads(skopeo("inspect", "--config", f"docker-archive:{dest}:hello:{tag}").stdout)
        for tag in ("v1", "edge")
    }
    assert configs["v1"]["config"]["Labels"]["org.opencontainers.image.version"] == "v1"
    assert configs["edge"]["config"]["Labels"]["org.opencontainers.image.version"] == "v2"


def test_a_layout_of_three_images_names_each_after_its_own_title(tmp_path):
    layout = tmp_path / "three"
    for name in ("alpha", "beta", "team/gamma"):
        build(FIXTURES / "hello-root", layout, "--upx", "off", "--name", name, "--version", "v1", "--tag", name[-2:])
    dest = tmp_path / "three.tar"
    proc = export(str(layout), f"docker-archive:{dest}")
    assert proc.returncode == 0, proc.stderr
    with tarfile.open(dest) as tar:
        entries = json.load(tar.extractfile("manifest.json"))
    assert sorted(tuple(e["RepoTags"]) for e in entries) == [("alpha:ha",), ("beta:ta",), ("team/gamma:ma",)]
    for name in ("alpha", "beta", "team/gamma"):
        config = json.loads(skopeo("inspect", "--config", f"docker-archive:{dest}:{name}:{name[-2:]}").stdout)
        assert config["config"]["Labels"]["org.opencontainers.image.title"] == name
