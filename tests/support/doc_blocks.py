"""The documentation's code blocks, run as a reader would run them: shell blocks in bash, Python blocks in a fresh
interpreter, in order, from one working folder. A block preceded by ``<!-- docs-test: skip (reason) -->`` is not
run; the reason is required, so skipping is a visible decision in the page itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
_SKIP = re.compile(r"^<!-- docs-test: skip \((?P<reason>[^)]+)\) -->$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip_reason: str | None


def blocks(page: str) -> list[Block]:
    """Every fenced block of a page under docs/, with its language and skip marker."""
    lines = (ROOT / "docs" / page).read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = _SKIP.match(before.strip())
        found.append(Block(page, i + 1, match["lang"], "\n".join(lines[i + 1 : end]), skip and skip["reason"]))
        i = end + 1
    return found


def run_blocks(page: str, cwd: Path) -> list[Block]:
    """Run the page's bash and python blocks in `cwd` with this interpreter's environment first on PATH; return
    those run. AssertionError naming the page, the line and the output when one fails."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(cwd / ".hf-home"))
    ran = []
    for block in blocks(page):
        if block.skip_reason or block.lang not in ("bash", "python"):
            continue
        shell = ["bash", "-euo", "pipefail", "-c", block.code]
        argv = shell if block.lang == "bash" else [sys.executable, "-c", block.code]
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        where = f"docs/{page}:{block.line}"
        assert proc.returncode == 0, f"{where} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        ran.append(block)
    return ran
