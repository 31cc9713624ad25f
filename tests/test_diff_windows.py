"""`ocibake diff -v`: long values that differ only near the end are shown around their difference."""

from __future__ import annotations

import json
import shutil

from conftest import run_cli
from ocibake.audit.value_window import windows
from test_audit import record_of, rewrite_image


def test_windows_show_the_first_difference_with_ellipses_on_the_cut_sides():
    a = "-s -w -X main.Version=v1.0.0 -X main.BuildDate=2024-03-01T10:20:30Z -X main.GitCommit=0123456"
    b = a.replace("0123456", "unknown")
    wa, wb = windows(a, b)
    assert wa != wb and wa.startswith("…") and wb.startswith("…")
    assert wa.endswith("GitCommit=0123456") and wb.endswith("GitCommit=unknown")
    assert len(wa) <= 80 and len(wb) <= 80
    head_a, head_b = windows("A" + "x" * 200, "B" + "x" * 200)
    assert head_a.startswith("Ax") and head_a.endswith("…") and head_b.startswith("Bx")
    mid_a, mid_b = windows("x" * 100 + "A" + "y" * 100, "x" * 100 + "B" + "y" * 100)
    assert mid_a.startswith("…") and mid_a.endswith("…") and "xA" in mid_a and "xB" in mid_b
    assert windows("short", "shorter") == ("short", "shorter")


def test_diff_verbose_shows_where_long_ldflags_differ(origin, tmp_path):
    _, layout, _ = origin
    copy = tmp_path / "image"
    shutil.copytree(layout, copy)
    seen = {}

    def edit(config):
        record = record_of(config)
        ldflags = record["go"]["ldflags"]
        seen["ldflags"] = ldflags
        record["go"]["ldflags"] = ldflags[:-7] + "zzzzzzz"
        config["config"]["Labels"]["dev.ocibake.build-record"] = json.dumps(
            record, sort_keys=True, separators=(",", ":")
        )

    rewrite_image(copy, "v1", config_edit=edit)
    assert len(seen["ldflags"]) > 80
    proc = run_cli("diff", "-v", f"oci:{layout}:v1", f"oci:{copy}:v1")
    assert proc.returncode == 6, proc.stderr
    lines = proc.stdout.splitlines()
    i = lines.index("  build-record.go.ldflags")
    a, b = lines[i + 1].strip(), lines[i + 2].strip()
    assert a.startswith("a: …") and b.startswith("b: …") and a[3:] != b[3:]
    assert a.endswith(seen["ldflags"][-7:]) and b.endswith("zzzzzzz")
