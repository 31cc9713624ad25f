"""The code-shape limits `make lint` enforces: every function under 60 lines, every module under 400 lines.

A function's length is counted from its `def` line (decorators excluded) to its last line, docstring included.
Prints every offender as PATH:LINE: what, and exits 1 when there is one.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def offenders(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = text.count("\n") + (not text.endswith("\n"))
        if lines >= MAX_MODULE_LINES:
            found.append(f"{path}:1: module is {lines} lines (must be under {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length >= MAX_FUNCTION_LINES:
                    found.append(
                        f"{path}:{node.lineno}: {node.name}() is {length} lines (must be under {MAX_FUNCTION_LINES})"
                    )
    return found


def main(argv: list[str]) -> int:
    found = [line for root in (argv or ["src"]) for line in offenders(Path(root))]
    for line in found:
        print(line)
    if not found:
        print(f"code shape: every function under {MAX_FUNCTION_LINES} lines, every module under {MAX_MODULE_LINES}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
