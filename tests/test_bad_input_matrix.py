"""Bad input to every command, as a table: each row sets up a working directory, runs the real CLI and expects the
documented exit code, a one-line error (plus at most a hint line) holding a phrase, no traceback, and nothing changed
on disk (every file, directory and symlink of the working directory as it was) or in the registry."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, build, require
from registry_servers import write_layout
from regtools import base_env, ocibake, tag_exists

HELLO = FIXTURES / "hello-root"
REF = "org.opencontainers.image.ref.name"


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """hello-root built as v1 (tags v1, latest), copied by the rows that need a real layout."""
    require("go")
    out = tmp_path_factory.mktemp("built") / "layout"
    build(HELLO, out, "--version", "v1", "--upx", "off")
    return out


@pytest.fixture(scope="module")
def pulled_image(plain_registry, tmp_path_factory) -> dict:
    """A small image pushed once to the plain registry, for the pull rows."""
    src = tmp_path_factory.mktemp("pullsrc") / "layout"
    info = write_layout(src, tags=("v1",), layer_sizes=(5000,), seed=7)
    proc = ocibake("push", str(src), f"{plain_registry.host}/matrix/src", env=base_env(src.parent / "home"))
    assert proc.returncode == 0, proc.stderr
    return {**info, "src": src}


def service(w: Path, toml: str) -> Path:
    d = w / "svc"
    shutil.copytree(HELLO, d)
    (d / "ocibake.toml").write_text(toml, encoding="utf-8")
    return d


def copy_built(w: Path, built: Path) -> Path:
    shutil.copytree(built, w / "L", symlinks=True)
    return w / "L"


def edit_index(layout: Path, change) -> Path:
    index = json.loads((layout / "index.json").read_text())
    change(index)
    (layout / "index.json").write_text(json.dumps(index))
    return layout


def rand_layout(w: Path) -> Path:
    write_layout(w / "L", tags=("v1",), layer_sizes=(3000,), seed=11)
    return w / "L"


def symlinked_blob(w: Path) -> Path:
    """A layout whose first layer blob is a symlink to a file outside it with the same bytes (same hash)."""
    info = write_layout(w / "L", tags=("v1",), layer_sizes=(3000,), seed=12)
    blob = w / "L" / "blobs" / "sha256" / info["blobs"][0][7:]
    outside = w / "host-secret"
    outside.write_bytes(blob.read_bytes())
    blob.unlink()
    blob.symlink_to(outside)
    return w / "L"


def deep_index(layout: Path) -> Path:
    """index.json nested 100,000 levels deep: Python's JSON parser recurses once per level."""
    (layout / "index.json").write_text('{"schemaVersion":2,"manifests":' + "[" * 100_000 + "]" * 100_000 + "}")
    return layout


def with_env(argv: list[str], **env: str) -> list:
    """A row's argv whose run also sets these environment variables."""
    return [env, *argv]


def first_entry(change):
    return lambda index: change(index["manifests"][0])


def no_digest(e):
    e.pop("digest")


def string_size(e):
    e["size"] = str(e["size"])


def list_annotations(e):
    e["annotations"] = [e.get("annotations")]


# (id, setup(w, ctx) -> argv, exit code, phrase in the error line); ctx: built, registry host
ROWS = [
    # --- build: flags and ocibake.toml
    (
        "build-abbreviated-flag",
        lambda w, c: ["build", str(HELLO), "--out", str(w / "o")],
        2,
        "unrecognized arguments: --out",
    ),
    (
        "build-abbreviated-force",
        lambda w, c: ["build", str(HELLO), "--force-tag", "--output", str(w / "o")],
        2,
        "unrecognized arguments: --force-tag",
    ),
    (
        "build-docker-archive-no-file",
        lambda w, c: ["build", str(HELLO), "--output", "docker-archive:"],
        4,
        "--output 'docker-archive:' names no file",
    ),
    ("build-unknown-scheme", lambda w, c: ["build", str(HELLO), "--output", "foo:bar"], 4, "unknown output kind 'foo'"),
    (
        "build-toml-output-scheme",
        lambda w, c: ["build", str(service(w, 'output = "zip:x.zip"'))],
        4,
        "ocibake.toml: output zip:x.zip",
    ),
    (
        "build-toml-empty-tags",
        lambda w, c: ["build", str(service(w, "tags = []")), "--output", str(w / "o")],
        4,
        "tags = [] names no tag",
    ),
    (
        "build-toml-empty-version",
        lambda w, c: ["build", str(service(w, 'version = ""')), "--output", str(w / "o")],
        4,
        "svc/ocibake.toml: version ''",
    ),
    (
        "build-toml-bad-version-with-tags",
        lambda w, c: ["build", str(service(w, 'version = "a b"\ntags = ["x"]')), "--output", str(w / "o")],
        4,
        "svc/ocibake.toml: version 'a b'",
    ),
    (
        "build-toml-bad-tag",
        lambda w, c: ["build", str(service(w, 'tags = ["no good"]')), "--output", str(w / "o")],
        4,
        "svc/ocibake.toml: tag 'no good'",
    ),
    (
        "build-toml-force-tags-type",
        lambda w, c: ["build", str(service(w, 'force-tags = "yes"')), "--output", str(w / "o")],
        4,
        "force_tags must be true or false",
    ),
    (
        "build-empty-version-flag",
        lambda w, c: ["build", str(HELLO), "--version", "", "--output", str(w / "o")],
        4,
        "version ''",
    ),
    ("build-bad-platform", lambda w, c: ["build", str(HELLO), "--platform", "linux", "--output", str(w / "o")], 4, ""),
    ("build-missing-service", lambda w, c: ["build", str(w / "nope")], 4, "service directory not found"),
    # --- build: the output
    (
        "build-output-is-file",
        lambda w, c: (w / "f").write_text("x") and ["build", str(HELLO), "--output", str(w / "f")],
        4,
        "exists and is not a directory",
    ),
    (
        "build-output-foreign-dir",
        lambda w, c: (
            (w / "d").mkdir() or ((w / "d" / "x").write_text("x") and ["build", str(HELLO), "--output", str(w / "d")])
        ),
        4,
        "not an OCI layout",
    ),
    (
        "build-index-garbage",
        lambda w, c: (
            (copy_built(w, c["built"]) / "index.json").write_text("{oops")
            and ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "index.json is not valid JSON",
    ),
    (
        "build-index-not-index",
        lambda w, c: (
            edit_index(copy_built(w, c["built"]), lambda i: i.update(manifests={}))
            and ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "is not an OCI image index",
    ),
    (
        "build-entry-no-digest",
        lambda w, c: (
            edit_index(copy_built(w, c["built"]), first_entry(no_digest))
            and ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "entry 0 has no digest",
    ),
    (
        "build-entry-string-size",
        lambda w, c: (
            edit_index(copy_built(w, c["built"]), first_entry(string_size))
            and ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "entry 0 has a size that is not a number",
    ),
    (
        "build-entry-list-annotations",
        lambda w, c: (
            edit_index(copy_built(w, c["built"]), first_entry(list_annotations))
            and ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "entry 0 has annotations that are not an object",
    ),
    (
        "build-blobs-dir-symlink",
        lambda w, c: (
            (
                shutil.move(str(copy_built(w, c["built"]) / "blobs"), str(w / "elsewhere"))
                and (w / "L" / "blobs").symlink_to(w / "elsewhere")
            )
            or ["build", str(HELLO), "--output", str(w / "L")]
        ),
        4,
        "blobs is a symlink",
    ),
    # --- build: tags that would move
    (
        "build-tag-to-other-name",
        lambda w, c: (
            copy_built(w, c["built"])
            and ["build", str(FIXTURES / "cmd-main"), "--version", "v1", "--output", str(w / "L"), "--upx", "off"]
        ),
        4,
        "another image name (cmd-main, was hello-root)",
    ),
    (
        "build-tag-to-other-version",
        lambda w, c: (
            copy_built(w, c["built"])
            and ["build", str(HELLO), "--version", "v2", "--tag", "v1", "--output", str(w / "L"), "--upx", "off"]
        ),
        4,
        "the tag names version v1",
    ),
    (
        "build-toml-tags-to-other-version",
        lambda w, c: (
            copy_built(w, c["built"])
            and [
                "build",
                str(service(w, 'name = "hello-root"\ntags = ["v1", "stable"]')),
                "--version",
                "v1.0.1",
                "--output",
                str(w / "L"),
                "--upx",
                "off",
            ]
        ),
        4,
        "would move from hello-root v1",
    ),
    (
        "build-index-symlink",
        lambda w, c: _symlink_index(copy_built(w, c["built"])) and ["build", str(HELLO), "--output", str(w / "L")],
        4,
        "index.json is a symlink",
    ),
    # --- push
    (
        "push-index-symlink",
        lambda w, c: _symlink_index(rand_layout(w)) and ["push", str(w / "L"), f"{c['host']}/matrix/idxlink"],
        4,
        "index.json is a symlink",
    ),
    (
        "push-symlinked-blob",
        lambda w, c: symlinked_blob(w) and ["push", str(w / "L"), f"{c['host']}/matrix/leak"],
        4,
        "is a symlink",
    ),
    (
        "push-missing-blob",
        lambda w, c: (
            (rand_layout(w) / "blobs" / "sha256")
            .joinpath(json.loads((w / "L" / "index.json").read_text())["manifests"][0]["digest"][7:])
            .unlink()
            or ["push", str(w / "L"), f"{c['host']}/matrix/missing"]
        ),
        4,
        "is missing from",
    ),
    (
        "push-index-garbage",
        lambda w, c: (
            (rand_layout(w) / "index.json").write_text("[") and ["push", str(w / "L"), f"{c['host']}/matrix/garbage"]
        ),
        4,
        "is not valid JSON",
    ),
    (
        "push-entry-no-digest",
        lambda w, c: (
            edit_index(rand_layout(w), first_entry(no_digest))
            and ["push", str(w / "L"), f"{c['host']}/matrix/nodigest"]
        ),
        4,
        "entry 0 has no digest",
    ),
    (
        "push-entry-string-size",
        lambda w, c: (
            edit_index(rand_layout(w), first_entry(string_size))
            and ["push", str(w / "L"), f"{c['host']}/matrix/strsize"]
        ),
        4,
        "size that is not a number",
    ),
    (
        "push-entry-list-annotations",
        lambda w, c: (
            edit_index(rand_layout(w), first_entry(list_annotations))
            and ["push", str(w / "L"), f"{c['host']}/matrix/annlist"]
        ),
        4,
        "annotations that are not an object",
    ),
    ("push-not-a-layout", lambda w, c: ["push", str(w / "nope"), f"{c['host']}/matrix/nope"], 4, "is not a directory"),
    (
        "push-abbreviated-flag",
        lambda w, c: rand_layout(w) and ["push", str(w / "L"), f"{c['host']}/matrix/x", "--ta", "v1"],
        2,
        "unrecognized arguments: --ta",
    ),
    (
        "push-manifest-not-json",
        lambda w, c: (
            rand_layout(w)
            and _replace_manifest(w / "L", b"not json")
            and ["push", str(w / "L"), f"{c['host']}/matrix/notjson"]
        ),
        4,
        "does not match its digest",
    ),
    # --- pull
    (
        "pull-into-file",
        lambda w, c: (w / "f").write_text("x") and ["pull", f"{c['host']}/matrix/src:v1", str(w / "f")],
        4,
        "exists and is not a directory",
    ),
    (
        "pull-into-garbage-index",
        lambda w, c: (
            (rand_layout(w) / "index.json").write_text("{") and ["pull", f"{c['host']}/matrix/src:v1", str(w / "L")]
        ),
        4,
        "is not valid JSON",
    ),
    (
        "pull-into-entry-no-digest",
        lambda w, c: (
            edit_index(rand_layout(w), first_entry(no_digest)) and ["pull", f"{c['host']}/matrix/src:v1", str(w / "L")]
        ),
        4,
        "entry 0 has no digest",
    ),
    (
        "pull-over-symlinked-blob",
        lambda w, c: _symlink_pulled_blob(w, c) and ["pull", f"{c['host']}/matrix/src:v1", str(w / "L")],
        4,
        "is a symlink",
    ),
    (
        "pull-unknown-scheme",
        lambda w, c: ["pull", f"{c['host']}/matrix/src:v1", f"docker-archive:{w}/x.tar"],
        4,
        "this command cannot write 'docker-archive'",
    ),
    (
        "pull-abbreviated-flag",
        lambda w, c: ["pull", f"{c['host']}/matrix/src:v1", str(w / "o"), "--plat", "linux/amd64"],
        2,
        "unrecognized arguments: --plat",
    ),
    # --- layout
    ("layout-check-not-a-layout", lambda w, c: ["layout", "check", str(w)], 4, "is not an OCI image layout"),
    (
        "layout-check-damaged",
        lambda w, c: edit_index(rand_layout(w), first_entry(string_size)) and ["layout", "check", str(w / "L")],
        4,
        "1 of 1 index entries cannot be read",
    ),
    (
        "layout-check-symlinked-blob",
        lambda w, c: symlinked_blob(w) and ["layout", "check", str(w / "L")],
        4,
        "cannot be read",
    ),
    ("layout-repair-missing", lambda w, c: ["layout", "repair", str(w / "nope")], 4, "is not an OCI image layout"),
    ("layout-unknown-command", lambda w, c: ["layout", "chek", str(w)], 2, "no such command"),
    # --- hostile input: JSON nested too deep, times past year 9999, a byte-order mark, no directory name
    (
        "build-index-too-deep",
        lambda w, c: deep_index(copy_built(w, c["built"])) and ["build", str(HELLO), "--output", str(w / "L")],
        4,
        "index.json is not valid JSON: JSON nested too deep",
    ),
    (
        "pull-into-index-too-deep",
        lambda w, c: deep_index(rand_layout(w)) and ["pull", f"{c['host']}/matrix/src:v1", str(w / "L")],
        4,
        "nested too deep",
    ),
    (
        "push-index-too-deep",
        lambda w, c: deep_index(rand_layout(w)) and ["push", str(w / "L"), f"{c['host']}/matrix/deep"],
        4,
        "nested too deep",
    ),
    (
        "export-index-too-deep",
        lambda w, c: deep_index(rand_layout(w)) and ["export", str(w / "L"), f"docker-archive:{w}/x.tar"],
        4,
        "nested too deep",
    ),
    (
        "layout-check-index-too-deep",
        lambda w, c: deep_index(rand_layout(w)) and ["layout", "check", str(w / "L")],
        4,
        "index.json: not readable JSON (JSON nested too deep to read)",
    ),
    (
        "build-epoch-after-9999",
        lambda w, c: with_env(["build", str(HELLO), "--output", str(w / "o")], SOURCE_DATE_EPOCH="253402300800"),
        4,
        "SOURCE_DATE_EPOCH=253402300800 is after the year 9999",
    ),
    (
        "build-epoch-not-ascii-digits",
        lambda w, c: with_env(["build", str(HELLO), "--output", str(w / "o")], SOURCE_DATE_EPOCH="\u00b2"),
        4,
        "is not a number of seconds",
    ),
    ("build-root-directory", lambda w, c: ["build", "/", "--output", str(w / "o")], 4, "/ has no go.mod"),
    (
        "build-toml-byte-order-mark",
        lambda w, c: ["build", str(service(w, '\ufeffport = "http"')), "--output", str(w / "o")],
        4,
        "port",
    ),
    # --- login, cache
    ("login-without-stdin", lambda w, c: ["login", c["host"], "-u", "x"], 2, "reads the password from stdin"),
    ("cache-unknown-command", lambda w, c: ["cache", "clen"], 2, "'clen' is not one of"),
]


def _symlink_index(layout: Path) -> Path:
    outside = layout.parent / "index-outside.json"
    (layout / "index.json").rename(outside)
    (layout / "index.json").symlink_to(outside)
    return layout


def _replace_manifest(layout: Path, data: bytes) -> Path:
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    (layout / "blobs" / "sha256" / digest[7:]).write_bytes(data)
    return layout


def _symlink_pulled_blob(w: Path, c: dict) -> Path:
    """A layout already holding the image to pull, with its layer blob a symlink to an outside copy."""
    layout = rand_layout(w)
    blob = layout / "blobs" / "sha256" / c["pulled"]["blobs"][0][7:]
    outside = w / "outside"
    shutil.copyfile(_source_blob(c), outside)
    blob.symlink_to(outside)
    return layout


def _source_blob(c: dict) -> Path:
    return c["pulled"]["src"] / "blobs" / "sha256" / c["pulled"]["blobs"][0][7:]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input(row, built, pulled_image, plain_registry, tmp_path):
    _name, setup, code, phrase = row
    w = tmp_path / "w"
    w.mkdir()
    ctx = {"built": built, "host": plain_registry.host, "pulled": pulled_image}
    argv = setup(w, ctx)
    extra_env = argv.pop(0) if isinstance(argv[0], dict) else {}
    before = snapshot(w)
    env = {**base_env(tmp_path / "home"), "OCIBAKE_REGISTRY_RETRIES": "0", **extra_env}
    proc = subprocess.run(
        [sys.executable, "-m", "ocibake", *argv],
        check=False,
        cwd=w,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ocibake: error:")]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and phrase in errors[0], proc.stderr
    assert all(
        line.startswith(("ocibake: error:", "  hint:", "  entry", "  index.json", "ocibake: warning:"))
        for line in lines
    ), proc.stderr
    assert snapshot(w) == before, "something changed on disk"
    if argv[0] == "push":
        repo = argv[2].split("/", 1)[1]
        assert not tag_exists(plain_registry, f"{repo}:v1"), "something reached the registry"
