"""Same source and toolchain, same digests: whatever the checkout path, umask, TZ, locale, user or clock."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

from conftest import COMMIT_DATE, FIXTURES, REPO, build, git, layout_index, manifest_and_config, require


def test_two_checkouts_two_users_two_clocks_one_digest(tmp_path):
    require("faketime")
    require("unshare")
    # The image name defaults to the directory name, so both checkouts end in "hello"; their paths differ.
    origin = tmp_path / "hello"
    shutil.copytree(FIXTURES / "hello-root", origin)
    git("init", "-q", cwd=origin)
    git("add", ".", cwd=origin)
    git("commit", "-qm", "fixture", cwd=origin)

    first_digest, _first = build(
        origin, tmp_path / "out-a", "--version", "v1.2.3", env={"TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    )

    # The second build: another clone path made under umask 077, another user (uid 4242 in a user namespace),
    # another HOME and an empty Go build cache, another time zone and locale, and a clock years ahead.
    other = tmp_path / "elsewhere" / "deeper" / "hello"
    other.parent.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "TZ": "Asia/Kathmandu",
        "LANG": "de_DE.UTF-8",
        "LC_ALL": "de_DE.UTF-8",
        "HOME": str(home),
        "GOCACHE": str(home / "gocache"),
        "USER": "someone-else",
    }
    subprocess.run(["sh", "-c", f"umask 077 && git clone -q {origin} {other}"], check=True, env=env)
    assert (other / "main.go").stat().st_mode & 0o077 == 0
    out_b = tmp_path / "out-b"
    proc = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-user=4242",
            "--map-group=4242",
            "faketime",
            "-f",
            "@2031-02-03 04:05:06",
            "sh",
            "-c",
            (
                f"umask 077 && id -u && date +%Y && exec {sys.executable} -m ocibake build {other} "
                f"--output {out_b} --version v1.2.3"
            ),
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    uid, year, ref = proc.stdout.split()
    assert (uid, year) == ("4242", "2031"), "the second build really ran as another user at another time"
    assert ref.split("@")[1] == first_digest
    assert layout_index(tmp_path / "out-a") == layout_index(out_b)
    _, config = manifest_and_config(out_b, first_digest)
    assert config["created"] == COMMIT_DATE


def test_source_date_epoch_defaults_to_zero_outside_git_and_follows_the_environment(tmp_path):
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    d1, _ = build(service, tmp_path / "a")
    _, config = manifest_and_config(tmp_path / "a", d1)
    assert config["created"] == "1970-01-01T00:00:00Z"
    d2, _ = build(service, tmp_path / "b", env={"SOURCE_DATE_EPOCH": "1700000000"})
    _, config2 = manifest_and_config(tmp_path / "b", d2)
    assert config2["created"] == "2023-11-14T22:13:20Z" and d2 != d1
    assert json.loads(config2["config"]["Labels"]["dev.ocibake.build-record"])["commit"] == "unknown"


def test_local_origin_paths_never_reach_the_image():
    from ocibake.builder.project import public_source_url

    assert public_source_url("/home/me/src/app") == ""
    assert public_source_url("file:///srv/git/app.git") == ""
    assert public_source_url("https://ci:s3cret@git.example.com/app.git") == "https://git.example.com/app.git"
    assert public_source_url("git@git.example.com:team/app.git") == "git@git.example.com:team/app.git"


def test_source_credentials_never_reach_the_image(tmp_path):
    """GitLab's CI_REPOSITORY_URL carries a job token as user:TOKEN@: --source given so is written without it."""
    token = "glcbt-" + os.urandom(6).hex()
    digest, proc = build(
        FIXTURES / "hello-root",
        tmp_path / "a",
        "--upx",
        "off",
        "--source",
        f"https://gitlab-ci-token:{token}@git.example.com/x.git",
    )
    manifest, config = manifest_and_config(tmp_path / "a", digest)
    assert manifest["annotations"]["org.opencontainers.image.source"] == "https://git.example.com/x.git"
    assert config["config"]["Labels"]["org.opencontainers.image.source"] == "https://git.example.com/x.git"
    assert token not in proc.stdout + proc.stderr
    for blob in (tmp_path / "a" / "blobs" / "sha256").iterdir():
        data = blob.read_bytes()
        plain = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert token.encode() not in plain, blob.name


def test_a_goenv_file_cannot_change_the_image(tmp_path):
    """go reads GOFLAGS from its per-user GOENV file when the environment leaves it empty; ocibake never leaves it
    empty, so a file that would build with other tags changes nothing (and the record says what go was given)."""
    goenv = tmp_path / "goenv"
    goenv.write_text("GOFLAGS=-tags=timetzdata\n")
    plain, _ = build(FIXTURES / "hello-root", tmp_path / "a", "--upx", "off")
    with_file, _ = build(FIXTURES / "hello-root", tmp_path / "b", "--upx", "off", env={"GOENV": str(goenv)})
    assert plain == with_file
    _, config = manifest_and_config(tmp_path / "b", with_file)
    assert json.loads(config["config"]["Labels"]["dev.ocibake.build-record"])["go"]["goflags"] == "-buildvcs=false"
