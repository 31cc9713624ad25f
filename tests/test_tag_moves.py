"""Tags move only where the user means them to: to a newer build of the same name and version (reported as `moved`),
or anywhere with --force-tags / `force-tags = true`; ocibake.toml's relative `output` is relative to the service;
tags in ocibake.toml that leave out the version are warned about. (The refusals are rows of
test_bad_input_matrix.py.)"""

from __future__ import annotations

import json
import shutil

from conftest import FIXTURES, build, layout_index, run_cli

REF = "org.opencontainers.image.ref.name"


def tags_of(layout) -> dict[str, str]:
    return {m["annotations"][REF]: m["digest"] for m in layout_index(layout)["manifests"] if "annotations" in m}


def test_a_newer_build_of_the_same_image_moves_its_tags_and_says_so(tmp_path):
    layout = tmp_path / "L"
    d1, _ = build(FIXTURES / "hello-root", layout, "--version", "v1", "--upx", "off")
    d2, proc = build(
        FIXTURES / "hello-root", layout, "--version", "v1", "--upx", "off", "--source", "https://example.com/changed"
    )
    assert d1 != d2 and tags_of(layout) == {"v1": d2, "latest": d2}
    assert f"moved tag v1 from {d1[:19]} to {d2[:19]}" in proc.stderr
    assert f"moved v1 (was {d1[:19]})" in proc.stderr  # in the report too
    # latest follows a new version of the same name
    d3, _ = build(FIXTURES / "hello-root", layout, "--version", "v2", "--upx", "off")
    assert tags_of(layout) == {"v1": d2, "v2": d3, "latest": d3}
    again = run_cli(
        "build", str(FIXTURES / "hello-root"), "--output", str(layout), "--version", "v1", "--upx", "off", "--json"
    )
    assert json.loads(again.stdout)["moved"] == {"v1": d2, "latest": d3}


def test_force_tags_moves_a_tag_to_another_image(tmp_path):
    layout = tmp_path / "L"
    build(FIXTURES / "hello-root", layout, "--version", "v1", "--upx", "off")
    d2, _ = build(FIXTURES / "cmd-main", layout, "--version", "v1", "--upx", "off", "--force-tags")
    assert tags_of(layout) == {"v1": d2, "latest": d2}
    svc = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", svc)
    (svc / "ocibake.toml").write_text('name = "hello-root"\nforce-tags = true\n')
    d3, _ = build(svc, layout, "--version", "v2", "--tag", "v1", "--upx", "off")
    assert tags_of(layout)["v1"] == d3


def test_toml_output_is_relative_to_the_service_and_tags_without_the_version_warn(tmp_path):
    svc = tmp_path / "svc"
    shutil.copytree(FIXTURES / "hello-root", svc)
    (svc / "ocibake.toml").write_text('output = "out/layout"\ntags = ["stable"]\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = run_cli("build", str(svc), "--version", "v3", "--upx", "off", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert tags_of(svc / "out" / "layout").keys() == {"stable"}
    assert list(elsewhere.iterdir()) == []
    assert f"warning: the tags in {svc / 'ocibake.toml'} (stable) do not include the version v3" in proc.stderr


def test_pull_refuses_to_move_a_tag_to_an_image_of_another_name(plain_registry, tmp_path):
    from regtools import base_env, ocibake

    env = base_env(tmp_path / "home")
    other = tmp_path / "other"
    build(FIXTURES / "cmd-main", other, "--version", "v1", "--upx", "off")
    assert ocibake("push", str(other), f"{plain_registry.host}/moves/cmd", env=env).returncode == 0
    layout = tmp_path / "L"
    mine, _ = build(FIXTURES / "hello-root", layout, "--version", "v1", "--upx", "off")
    before = tags_of(layout)
    refused = ocibake("pull", f"{plain_registry.host}/moves/cmd:latest", str(layout), env=env)
    assert refused.returncode == 4, refused.stderr
    assert "another image name (cmd-main, was hello-root)" in refused.stderr and "--force-tags" in refused.stderr
    assert tags_of(layout) == before and [p for p in layout.iterdir() if p.name.startswith(".")] == []
    forced = ocibake("pull", f"{plain_registry.host}/moves/cmd:latest", str(layout), "--force-tags", env=env)
    assert forced.returncode == 0, forced.stderr
    assert tags_of(layout)["v1"] == mine and tags_of(layout)["latest"] != mine
