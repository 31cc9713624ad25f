"""Branch coverage of the last `make test`, per package, against the floor in pyproject.toml.

Reads the combined data (COVERAGE_FILE, default .coverage), prints one row per package of ocibake (statements,
branches, percentage), then every module below the floor, then the total. Exits 1 when the total is below the
floor (`[tool.coverage.report] fail_under`), so CI fails when coverage drops.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def percent(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def package_of(path: str) -> str:
    parts = Path(path).parts
    inner = parts[parts.index("ocibake") + 1 :]
    return "ocibake" if len(inner) == 1 else f"ocibake.{inner[0]}"


def main() -> int:
    floor = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["coverage"]["report"]["fail_under"]
    # --fail-under=0: the floor is checked below, after the table, so a drop shows where it happened
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "json", "-q", "--fail-under=0", "-o", "-"],
        check=False,
        capture_output=True,
        text=True,
    )
    if report.returncode != 0:
        reason = (report.stdout + report.stderr).strip() or f"coverage json exited {report.returncode}"
        print(f"coverage: no report: {reason} (run `make test` first)", file=sys.stderr)
        return 1
    files = json.loads(report.stdout)["files"]
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    below = []
    for path, data in sorted(files.items()):
        s = data["summary"]
        row = sums[package_of(path)]
        for i, key in enumerate(("covered_lines", "num_statements", "covered_branches", "num_branches")):
            row[i] += s[key]
        if s["percent_covered"] < floor:
            below.append((path, s["percent_covered"]))
    print(f"{'package':<20} {'statements':>10} {'branches':>9} {'covered':>8}")
    total = [0, 0, 0, 0]
    for name, (lines, stmts, branches_hit, branches) in sorted(sums.items()):
        total = [a + b for a, b in zip(total, (lines, stmts, branches_hit, branches), strict=True)]
        print(f"{name:<20} {stmts:>10} {branches:>9} {percent(lines + branches_hit, stmts + branches):>7.1f}%")
    overall = percent(total[0] + total[2], total[1] + total[3])
    if below:
        print(f"\nmodules below the floor of {floor}%:")
        for path, pct in below:
            print(f"  {path:<48} {pct:>5.1f}%")
    print(f"\ntotal branch coverage {overall:.1f}% (floor {floor}%)")
    if overall < floor:
        print(f"coverage is below the floor: {overall:.1f}% < {floor}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
