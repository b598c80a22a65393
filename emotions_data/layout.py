"""Where everything lives inside a dataset folder. Paths in manifests are relative to its root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetLayout:
    root: Path

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def videos_manifest(self) -> Path:
        return self.manifests / "videos.parquet"

    @property
    def votes(self) -> Path:
        return self.manifests / "votes.parquet"

    @property
    def annotators(self) -> Path:
        return self.manifests / "annotators.parquet"

    @property
    def assignments(self) -> Path:
        return self.manifests / "assignments.parquet"

    @property
    def labels(self) -> Path:
        return self.manifests / "labels.parquet"

    @property
    def splits(self) -> Path:
        return self.manifests / "splits.parquet"

    @property
    def needs_expert(self) -> Path:
        return self.manifests / "needs_expert.parquet"

    @property
    def ingest_summary(self) -> Path:
        return self.manifests / "ingest_summary.json"

    @property
    def media(self) -> Path:
        return self.root / "media"

    @property
    def originals(self) -> Path:
        return self.root / "originals"

    @property
    def work(self) -> Path:
        """Resumable state of the pipeline; safe to delete once a run has finished."""
        return self.root / ".work"

    @property
    def inputs(self) -> Path:
        return self.work / "inputs.parquet"

    @property
    def fetch_log(self) -> Path:
        return self.work / "fetch"

    @property
    def normalise_log(self) -> Path:
        return self.work / "normalise"

    @property
    def downloads(self) -> Path:
        return self.work / "downloads"

    @property
    def rate_locks(self) -> Path:
        return self.work / "rate"

    @property
    def lock(self) -> Path:
        return self.work / "ingest.lock"

    def media_file(self, video_id: str) -> Path:
        return self.media / f"{video_id}.mp4"

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()
