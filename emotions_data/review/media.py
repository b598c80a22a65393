"""Thumbnails (the real ffmpeg) and clips for the review page, and its plots (matplotlib, no pyplot)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from emotions_data.card.plots import figure_png, new_figure

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
THUMB_WIDTH = 160


def thumbnail(src: Path, at_s: float, dst: Path, width: int = THUMB_WIDTH) -> bool:
    """One JPEG frame of `src` at `at_s` seconds into `dst`, `width` pixels wide (aspect kept). False when ffmpeg
    cannot make it (an unreadable file): the page then says so instead of showing a broken image."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*FFMPEG, "-ss", f"{max(at_s, 0.0):.3f}", "-i", str(src), "-frames:v", "1", "-vf",
           f"scale={width}:-2", "-q:v", "4", str(dst)]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and dst.is_file() and dst.stat().st_size > 0


def place_clip(src: Path, dst: Path) -> None:
    """`src` at `dst` for the page's player: a hard link when the file system allows it, else a copy (the page's
    folder must stand alone when served or moved)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def lead_time_png(votes: pd.DataFrame) -> bytes | None:
    """Lead time (s) of every counted vote against its clip's length (s), one colour per stage; None without
    lead times."""
    frame = votes.dropna(subset=["lead_time_s", "clip_s"]) if {"lead_time_s", "clip_s"} <= set(votes) else None
    if frame is None or not len(frame):
        return None
    fig = new_figure((6, 3.5))
    ax = fig.subplots()
    for stage, part in frame.groupby("stage"):
        ax.scatter(part["clip_s"], part["lead_time_s"], s=12, alpha=0.7, label=str(stage))
    ax.set_xlabel("clip length (s)")
    ax.set_ylabel("lead time (s)")
    ax.legend(fontsize="small")
    return figure_png(fig)


def stage_consistency(votes: pd.DataFrame) -> pd.Series:
    """annotator -> share of the items they voted on in more than one stage on which all their votes agree."""
    per_item = votes.groupby(["annotator_id", "video_id"])["label"].agg(["nunique", "size"])
    repeated = per_item[per_item["size"] > 1]
    if not len(repeated):
        return pd.Series(dtype=float)
    return (repeated["nunique"] == 1).groupby(level=0).mean()


def consistency_png(votes: pd.DataFrame) -> bytes | None:
    """Per annotator, the share of their repeated items on which they kept their label (`stage_consistency`)."""
    shares = stage_consistency(votes)
    if not len(shares):
        return None
    fig = new_figure((max(5, 0.6 * len(shares)), 3.5))
    ax = fig.subplots()
    ax.bar(np.arange(len(shares)), shares.to_numpy(), 0.6)
    ax.set_xticks(np.arange(len(shares)), list(shares.index), rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("same label across stages")
    return figure_png(fig)
