"""The size rules of the house: no module of the library, the command line or the benchmarks over 600 lines, no
function over 80. A module that grows past them is split along its jobs, not trimmed."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("emotions_data", "annotation", "baselines", "emotions_cli", "yt_dlp_plugins", "benchmarks")
MODULE_LINES_MAX = 600
FUNCTION_LINES_MAX = 80


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_the_rules_see_every_package():
    assert {path.relative_to(ROOT).parts[0] for path in _modules()} == set(PACKAGES)


def test_no_module_over_600_lines():
    lines = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in _modules()}
    long = {name: n for name, n in lines.items() if n > MODULE_LINES_MAX}
    assert not long, f"modules over {MODULE_LINES_MAX} lines: {long}"


def test_no_function_over_80_lines():
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if lines > FUNCTION_LINES_MAX:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, f"functions over {FUNCTION_LINES_MAX} lines: {long}"
