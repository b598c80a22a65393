"""`emotions release` through the real command line: a release, and a second one of the same version refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.manifests import released_dataset

EMOTIONS = str(Path(sys.executable).with_name("emotions"))


def test_release_cli(tmp_path):
    released_dataset(tmp_path / "ds")
    proc = subprocess.run(
        [EMOTIONS, "release", str(tmp_path / "ds"), "--version", "0.3.0"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "full: train" in proc.stdout and (tmp_path / "ds" / "releases" / "0.3.0" / "SHA256SUMS").exists()
    again = subprocess.run(
        [EMOTIONS, "release", str(tmp_path / "ds"), "--version", "0.3.0"], capture_output=True, text=True
    )
    lines = [ln for ln in again.stderr.splitlines() if ln.strip()]
    assert again.returncode == 1 and len(lines) == 1 and "never overwritten" in lines[0]
