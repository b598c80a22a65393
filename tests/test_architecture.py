"""The layer contracts in pyproject.toml (`[tool.importlinter]`) hold, and each kind of back-edge breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("emotions_data", "annotation", "baselines", "emotions_cli")
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # The packages are found from the working directory first, so a patched copy is checked, not the install.
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "verdict"),
    [
        ("emotions_data/release.py", "from annotation import agreement",
         "emotions_data is not allowed to import annotation"),
        ("baselines/recipes.py", "import annotation.votes", "baselines is not allowed to import annotation"),
        ("annotation/votes.py", "import baselines.metrics", "annotation is not allowed to import baselines"),
        ("emotions_data/ingest.py", "import emotions_cli.console",
         "emotions_data is not allowed to import emotions_cli"),
        ("emotions_data/schema.py", "from emotions_data import storage",
         "emotions_data.schema is not allowed to import emotions_data.storage"),
        ("annotation/statistics/gwet.py", "import annotation.labelstudio.client",
         "annotation.statistics is not allowed to import annotation.labelstudio"),
        # a circle kept alive by an import inside a function still counts
        ("emotions_data/probe.py", "def _late():\n    from emotions_data import normalise",
         "No cycles are allowed in emotions_data"),
    ],
)  # fmt: skip
def test_a_back_edge_breaks_a_contract(tmp_path, module, line, verdict):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as handle:
        handle.write(f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert verdict in broken, result.stdout
