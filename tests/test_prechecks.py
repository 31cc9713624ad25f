"""Every pre-check: a one-line error with a hint, the documented exit code, and nothing written."""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import FIXTURES, require, run_cli


def assert_refused(proc, code: int, *words: str):
    assert proc.returncode == code, f"exit {proc.returncode}, wanted {code}:\n{proc.stderr}"
    assert proc.stdout == ""
    first = proc.stderr.splitlines()[0]
    assert first.startswith("ocibake: error: "), proc.stderr
    for word in words:
        assert word in first, f"{word!r} not in {first!r}"
    assert "hint: " in proc.stderr
    assert "Traceback" not in proc.stderr


def nothing_written(tmp_path, out):
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_directory(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(tmp_path / "nope"), "--output", str(out))
    assert_refused(proc, 4, "service directory not found")
    nothing_written(tmp_path, out)


def test_bare_name_that_is_not_under_services(tmp_path):
    proc = run_cli("build", "no-such-service", "--output", str(tmp_path / "out"))
    assert_refused(proc, 4, "no-such-service", "services/no-such-service")


def test_no_go_mod(tmp_path):
    out = tmp_path / "out"
    assert_refused(run_cli("build", str(FIXTURES / "no-gomod"), "--output", str(out)), 4, "no go.mod")
    nothing_written(tmp_path, out)


def test_no_main_package(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(FIXTURES / "no-main"), "--output", str(out))
    assert_refused(proc, 4, "no main package", "cmd/main.go", "main.go")
    assert "--main" in proc.stderr
    nothing_written(tmp_path, out)


def test_wrong_main_flag(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--main", "./cmd/nothing", "--output", str(tmp_path / "o"))
    assert_refused(proc, 4, "--main ./cmd/nothing")


def test_no_go_toolchain(tmp_path):
    out = tmp_path / "out"
    env = {"PATH": os.path.dirname(shutil.which("git") or "/usr/bin") + ":/nonexistent"}
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(out), "--go", str(tmp_path / "no-go"), env=env
    )
    assert_refused(proc, 3, "no Go toolchain")
    assert "install Go" in proc.stderr
    nothing_written(tmp_path, out)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--version", "v1.0.0+build"), ("--version", "-v1"), ("--tag", "a b"), ("--tag", "x" * 129), ("--tag", ".hidden")],
)
def test_invalid_version_or_tag(tmp_path, flag, value):
    out = tmp_path / "out"
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out), f"{flag}={value}")
    assert_refused(proc, 4, "not a valid OCI tag")
    nothing_written(tmp_path, out)


def test_output_is_a_file(tmp_path):
    out = tmp_path / "file"
    out.write_text("keep me")
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out))
    assert_refused(proc, 4, "is not a directory")
    assert out.read_text() == "keep me"


def test_output_is_a_directory_that_is_not_a_layout(tmp_path):
    out = tmp_path / "stuff"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_refused(run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out)), 4, "not an OCI layout")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_output_not_writable(tmp_path):
    """Run as a user that does not own the parent: a user namespace where the directory's owner is unmapped."""
    require("unshare")
    parent = tmp_path / "readonly"
    parent.mkdir(mode=0o555)
    os.chown(parent, 65534, 65534)
    tmp_path.chmod(0o755)
    out = parent / "out"
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(out),
        prefix=["unshare", "--user", "--map-user=4242", "--map-group=4242"],
    )
    assert_refused(proc, 4, "not writable")
    assert not out.exists()


def test_compile_error_shows_go_output(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(FIXTURES / "compile-error"), "--output", str(out))
    assert proc.returncode == 3, proc.stderr
    assert "ocibake: error: go build failed" in proc.stderr
    assert "undefined: undefinedFunction" in proc.stderr
    nothing_written(tmp_path, out)


def test_binary_that_does_not_print_its_version(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("build", str(FIXTURES / "no-version"), "--output", str(out), "--version", "v7")
    assert proc.returncode == 3, proc.stderr
    assert "did not print the version 'v7'" in proc.stderr and "I ignore flags" in proc.stderr
    nothing_written(tmp_path, out)
    ok = run_cli("build", str(FIXTURES / "no-version"), "--output", str(out), "--version", "v7", "--no-verify")
    assert ok.returncode == 0, ok.stderr


def test_unknown_flag_is_a_usage_error(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--frobnicate")
    assert_refused(proc, 2, "unrecognized arguments")


def test_bad_platform(tmp_path):
    assert_refused(run_cli("build", str(FIXTURES / "hello-root"), "--platform", "linux"), 4, "os/arch")


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("colour = 'blue'", ("unknown setting 'colour'",)),
        ("versoin = 'v1'", ("unknown setting 'versoin'", "did you mean 'version'")),
        ("port = 'abc'", ("port must be an integer, not a string",)),
        ("upx = 11", ("unknown UPX mode '11'",)),
        ("compression = 'lz4'", ("unknown compression 'lz4'",)),
        ("platform = 'linux'", ("os/arch",)),
        ("[buld]\nport = 1", ("unknown section [buld]", "did you mean [build]")),
        ("port = 8081\n[build]\nport = 8082", ("port is set twice",)),
    ],
)
def test_bad_settings_file(tmp_path, line, words):
    """Every error about a setting names the file it came from."""
    service = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", service)
    (service / "ocibake.toml").write_text(line + "\n")
    out = tmp_path / "out"
    assert_refused(run_cli("build", str(service), "--output", str(out)), 4, "ocibake.toml: ", *words)
    nothing_written(tmp_path, out)


@pytest.mark.parametrize("flag", [("--compression", "lz4"), ("--target", "debug"), ("--upx", "ultra")])
def test_a_bad_value_of_a_flag_is_bad_input_like_the_same_value_in_the_file(tmp_path, flag):
    out = tmp_path / "out"
    assert_refused(run_cli("build", str(FIXTURES / "hello-root"), *flag, "--output", str(out)), 4, repr(flag[1]))
    nothing_written(tmp_path, out)


@pytest.mark.parametrize(
    ("platform", "words"),
    [
        ("windows/amd64", ("Linux images only",)),
        ("linux/sparc", ("does not build Linux binaries", "sparc")),
        ("linux/amd64/v9", ("unknown variant 'v9'",)),
        ("linux/386/v2", ("unknown variant",)),
    ],
)
def test_platforms_ocibake_cannot_build(tmp_path, platform, words):
    out = tmp_path / "out"
    assert_refused(
        run_cli("build", str(FIXTURES / "hello-root"), "--platform", platform, "--output", str(out)), 4, *words
    )
    nothing_written(tmp_path, out)


def test_cpu_level_from_the_environment_must_be_in_the_platform(tmp_path):
    """GOAMD64=v3 would make a binary that crashes on older CPUs while the image says plain linux/amd64."""
    out = tmp_path / "out"
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(out), env={"GOAMD64": "v3"})
    assert_refused(proc, 4, "GOAMD64=v3", "linux/amd64")
    assert "--platform linux/amd64/v3" in proc.stderr
    nothing_written(tmp_path, out)


def test_a_tag_named_twice_is_written_once(tmp_path):
    import json

    out = tmp_path / "out"
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(out),
        "--upx",
        "off",
        "--tag",
        "a",
        "--tag",
        "b",
        "--tag",
        "a",
    )
    assert proc.returncode == 0, proc.stderr
    names = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((out / "index.json").read_text())["manifests"]
        if "annotations" in m
    ]
    assert names == ["a", "b"]


def test_a_version_that_is_not_a_tag_needs_explicit_tags(tmp_path):
    proc = run_cli("build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "o"), "--version", "1.0.0+b5")
    assert_refused(proc, 4, "not a valid OCI tag")
    assert "--tag" in proc.stderr
    proc = run_cli(
        "build",
        str(FIXTURES / "hello-root"),
        "--output",
        str(tmp_path / "o"),
        "--version",
        "1.0.0+b5",
        "--tag",
        "1.0.0",
        "--upx",
        "off",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(tmp_path / "p"), "--version", "v1 'x'", "--tag", "1.0.0"
    )
    assert_refused(proc, 4, "cannot be injected with -X")


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """`timeout` or a cancelled CI job: exit 143, no staging directory, no temporary build directory left."""
    import signal

    from conftest import interrupt_build

    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "GOCACHE": str(tmp_path / "cold-cache"), "TMPDIR": str(tmpdir)}
    proc = interrupt_build(
        [str(FIXTURES / "hello-root"), "--output", str(tmp_path / "fresh")],
        env,
        lambda: any(p.name.startswith(".fresh") for p in tmp_path.iterdir()),
        signal.SIGTERM,
        0.3,
    )
    assert proc.returncode == 143, proc.stderr
    assert "terminated" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("cold-cache", "tmp")] == []
    assert list(tmpdir.iterdir()) == []


def test_stages_left_by_a_killed_build_are_removed_later(tmp_path):
    """SIGKILL leaves a staging directory behind; a later build into the same place removes it once its process is
    gone and it is an hour old, and never touches a live one."""
    from ocibake.oci.layout import LayoutWriter

    dead = tmp_path / ".fresh.ocibake-999999999-abcd"  # no such pid
    dead_work = tmp_path / ".fresh.ocibake-999999999-work-ijkl"  # its binary and go's temporary files
    live = tmp_path / f".fresh.ocibake-{os.getpid()}-efgh"  # this process
    for d in (dead, dead_work, live):
        d.mkdir()
        os.utime(d, (0, 0))
    with LayoutWriter(tmp_path / "fresh") as writer:
        work = writer.work_dir()
        assert work.parent == tmp_path and work.name.startswith(f".fresh.ocibake-{os.getpid()}-work-")
    assert not work.exists()
    assert not dead.exists() and not dead_work.exists() and live.exists()


def test_version_package_relative_to_the_module(tmp_path):
    service = tmp_path / "svc"
    (service / "internal" / "buildinfo").mkdir(parents=True)
    (service / "go.mod").write_text("module example.com/svc\n\ngo 1.21\n")
    (service / "internal" / "buildinfo" / "info.go").write_text(
        'package buildinfo\n\nvar (\n\tVersion   = "dev"\n\tBuildDate = ""\n\tGitCommit = ""\n)\n'
    )
    (service / "main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/svc/internal/buildinfo"\n)\n\n'
        'func main() { fmt.Println("svc", buildinfo.Version) }\n'
    )
    proc = run_cli(
        "build",
        str(service),
        "--output",
        str(tmp_path / "a"),
        "--version",
        "v7",
        "--upx",
        "off",
        "--version-package",
        "./internal/buildinfo",
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "build",
        str(service),
        "--output",
        str(tmp_path / "b"),
        "--version",
        "v7",
        "--upx",
        "off",
        "--version-package",
        "buildinfo",
        "-q",
    )
    assert_refused(proc, 3, "did not print the version")
    assert "full import path" in proc.stderr
    for missing in ("./internal/nope", "example.com/svc/internal/nope"):
        out = tmp_path / "c"
        proc = run_cli(
            "build", str(service), "--output", str(out), "--version", "v7", "--upx", "off", "--version-package", missing
        )
        assert_refused(proc, 4, f"--version-package {missing}: no Go package")
        assert "go build" not in proc.stderr
        nothing_written(tmp_path, out)


def test_common_flags_also_work_before_the_command(tmp_path):
    """`ocibake --json build ...` and `ocibake -v push ...` as well as after the command."""
    import json

    proc = run_cli("--json", "build", str(tmp_path / "missing"))
    assert proc.returncode == 4
    assert json.loads(proc.stdout)["error"]["exit_code"] == 4
    proc = run_cli("-q", "build", str(tmp_path / "missing"))
    assert_refused(proc, 4, "missing")
