"""A tiny release for the baseline's commands, made through the real CLI with the real ffmpeg: clips that encode
their class in picture and sound -> `import-official`, `split`, `release`."""

from __future__ import annotations

from pathlib import Path

from emotions_data.demo_corpus import ClipSpec, make_clip
from emotions_data.taxonomy import EMOTIONS6
from tests.support.commands import run_cli


def tiny_release(root: Path, per_class: int = 2, duration_s: float = 1.0, version: str = "1.0.0") -> Path:
    """`root/ds/releases/<version>/`, from `per_class` clips of each class (6 × 2 one-second clips by default:
    train and val hold six videos each)."""
    for c, label in enumerate(EMOTIONS6.classes):
        for k in range(per_class):
            make_clip(
                ClipSpec(label, 100 * c + k, duration_s=duration_s), root / "in" / label / f"{label.lower()}_{k}.mp4"
            )
    run_cli("import-official", str(root / "in"), "--out", str(root / "ds"), check=True)
    run_cli("split", str(root / "ds"), "--ratios", "0.5,0.25,0.25", check=True)
    run_cli("release", str(root / "ds"), "--version", version, check=True)
    return root / "ds" / "releases" / version
