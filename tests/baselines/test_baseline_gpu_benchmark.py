"""`benchmarks/baseline_gpu.py` runs as a stock GPU machine would run it: the repository copied, not installed
(PYTHONPATH unset, started from elsewhere) and no ffmpeg on PATH; here on the CPU with the tiny model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "baseline_gpu.py"


def test_the_gpu_benchmark_runs_on_the_cpu_without_ffmpeg(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = str(bin_dir)  # nothing on it: no ffmpeg, no ffprobe
    assert shutil.which("ffmpeg", path=env["PATH"]) is None
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--loader-workers", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for measure in ("model step", "FLOPs per clip", "loader alone", "waiting for data", "28k-clip epoch"):
        assert measure in proc.stdout
