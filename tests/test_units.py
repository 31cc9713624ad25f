"""Small pure functions: go.mod parsing, main package discovery, the tar writer's normalisation, tag rules."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from ocibake.builder.project import find_main_package, parse_go_mod
from ocibake.errors import InputError
from ocibake.layers.tar import Entry, normalise, write_layer
from ocibake.oci.names import TAG_RE
from ocibake.run.health import parse_duration


def test_parse_go_mod_counts_direct_dependencies_only():
    mod = parse_go_mod("""module example.com/svc // comment

go 1.21.5
toolchain go1.21.13

require github.com/a/b v1.0.0
require (
\tgithub.com/c/d v1.2.0
\tgithub.com/e/f v0.1.0 // indirect
\t// a comment line
)
replace example.com/x => ../x
""")
    assert mod.path == "example.com/svc" and mod.go_version == "1.21.5" and mod.toolchain == "go1.21.13"
    assert mod.direct_deps == ("github.com/a/b", "github.com/c/d") and mod.indirect_deps == 1
    assert mod.replaces == ("example.com/x => ../x",)


def test_main_package_search_order(tmp_path):
    (tmp_path / "cmd" / "svc").mkdir(parents=True)
    (tmp_path / "cmd" / "svc" / "main.go").write_text("package main\n")
    assert find_main_package(tmp_path, "svc", None) == "./cmd/svc"
    (tmp_path / "cmd" / "main.go").write_text("package main\n")
    assert find_main_package(tmp_path, "svc", None) == "./cmd"
    (tmp_path / "cmd" / "other").mkdir()
    (tmp_path / "cmd" / "other" / "main.go").write_text("package main\n")
    assert find_main_package(tmp_path, "nomatch", None) == "./cmd"
    (tmp_path / "cmd" / "main.go").unlink()
    with pytest.raises(InputError, match="several main packages"):
        find_main_package(tmp_path, "nomatch", None)
    assert find_main_package(tmp_path, "x", "./cmd/other") == "./cmd/other"
    assert find_main_package(tmp_path, "x", "cmd/other/main.go") == "./cmd/other"


def test_normalise_sorts_and_adds_parents():
    entries = normalise([Entry.file("/b/c/file", b"x"), Entry.file("/a", b"y")])
    assert [(e.path, e.kind) for e in entries] == [
        ("/a", "file"),
        ("/b", "dir"),
        ("/b/c", "dir"),
        ("/b/c/file", "file"),
    ]
    with pytest.raises(ValueError, match="must be absolute and normalised"):
        normalise([Entry.file("relative", b"")])
    with pytest.raises(ValueError, match="must be absolute and normalised"):
        normalise([Entry.file("/a/../etc", b"")])


def test_layer_bytes_do_not_depend_on_umask_or_source_file_metadata(tmp_path):
    src = tmp_path / "bin"
    src.write_bytes(b"same bytes")
    old = os.umask(0o077)
    try:
        os.chmod(src, 0o700)
        os.utime(src, (1, 1))
        a = write_layer([Entry.from_path("/app", src, mode=0o555)], tmp_path / "a", mtime=5)
        os.chmod(src, 0o644)
        os.utime(src, (999999, 999999))
        b = write_layer([Entry.from_path("/app", src, mode=0o555)], tmp_path / "b", mtime=5)
    finally:
        os.umask(old)
    assert (a.digest, a.diff_id) == (b.digest, b.diff_id)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    with tarfile.open(tmp_path / "a") as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.mode, member.mtime, member.uid, member.uname) == ("app", 0o555, 5, 0, "")


def test_gzip_header_has_no_name_and_no_time(tmp_path):
    blob = write_layer([Entry.file("/x", b"x")], tmp_path / "layer-with-a-name.tar.gz", mtime=0)
    header = Path(blob.path).read_bytes()[:10]
    assert header[3] & 0x08 == 0, "no FNAME flag"
    assert header[4:8] == b"\0\0\0\0", "MTIME is zero"


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        ("v1.0.0", True),
        ("latest", True),
        ("_x", True),
        ("v1+meta", False),
        ("-x", False),
        (".x", False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
    ],
)
def test_tag_grammar(tag, ok):
    assert bool(TAG_RE.match(tag)) is ok


def test_parallel_gzip_bytes_do_not_depend_on_threads_and_gunzip_reads_them():
    import gzip
    import os

    from ocibake.layers.pgzip import BLOCK, ParallelGzipWriter

    data = os.urandom(BLOCK // 2) + b"go binaries repeat themselves " * 40000 + os.urandom(3)
    for size in (0, 1, BLOCK, 2 * BLOCK, len(data)):
        outputs = set()
        for threads in (1, 2, 3):
            out: list[bytes] = []
            w = ParallelGzipWriter(out.append, 6, threads)
            for i in range(0, size, 7777):  # odd write sizes: block cuts depend on length only
                w.write(data[i : min(i + 7777, size)])
            w.close()
            outputs.add(b"".join(out))
        assert len(outputs) == 1
        blob = outputs.pop()
        assert gzip.decompress(blob) == data[:size]
        assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, no time


def test_docker_hub_references_name_its_api_host_and_library_images():
    from ocibake.registry.reference import API_HOSTS, parse_reference

    ref = parse_reference("docker.io/alpine:3.20")
    assert (ref.registry, ref.repository, ref.tag) == ("docker.io", "library/alpine", "3.20")
    assert parse_reference("index.docker.io/team/app").repository == "team/app"
    assert API_HOSTS["docker.io"] == "registry-1.docker.io"
    assert parse_reference("registry.example.com/alpine").repository == "alpine"


def test_replace_targets_shown_to_the_sandbox_are_module_directories_only(tmp_path):
    from ocibake.builder.project import local_replace_dirs, parse_go_mod

    svc = tmp_path / "svc"
    (svc / "vendor").mkdir(parents=True)
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "go.mod").write_text("module example.com/lib\n")
    (tmp_path / "nomod").mkdir()
    mod = parse_go_mod(
        "module example.com/svc\n\nreplace (\n\texample.com/lib => ../lib\n\texample.com/root => /\n"
        "\texample.com/gone => ../gone\n\texample.com/nomod => ../nomod\n\texample.com/x => example.com/y v1\n)\n"
    )
    assert local_replace_dirs(svc, mod) == ((tmp_path / "lib").resolve(),)


def test_go_env_values_are_read_one_per_line_even_when_empty():
    from ocibake.toolchain.base import last_lines

    assert last_lines("go1.26.8\n\n", 2) == ["go1.26.8", ""]
    assert last_lines("go: downloading go1.22.0\ngo1.22.0\nnoregabi\n", 2) == ["go1.22.0", "noregabi"]
    assert last_lines("", 1) == [""]


def test_tokens_are_renewed_before_they_expire():
    from ocibake.registry.bearer import _refresh_after

    assert _refresh_after({"expires_in": 300}) == 270
    assert _refresh_after({"expires_in": 10}) == 8
    assert _refresh_after({}) == 54  # the distribution spec's default lifetime is 60 s
    assert _refresh_after({"expires_in": 2}) == 1


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        *[("30s", 30.0), ("1m", 60.0), ("500ms", 0.5), ("1.5s", 1.5), ("2h", 7200.0), ("1h30m", 5400.0)],
        *[("0s", 0.0), ("10", None), ("-1s", None), ("soon", None), ("1d", None), ("", None), ("s", None)],
        *[(" 1s", None), ("1S", None), ("1s2", None)],
    ],
)
def test_health_interval_durations(text, seconds):
    assert parse_duration(text) == seconds
