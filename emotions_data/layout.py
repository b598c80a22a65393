"""Where everything lives inside a dataset folder. Paths in manifests are relative to its root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


def local_dataset_dir(location: str | os.PathLike[str]) -> Path:
    """The dataset folder named by a path or a `file://` URL. Other URLs (`s3://`, `gs://`) are refused with
    ValueError: a folder is needed (local, or shared such as NFS mounted at the same path everywhere). `emotions
    ingest` also takes `s3://` (`emotions_data.location`); commands that take only a folder call this."""
    text = os.fspath(location)
    parts = urlsplit(text)
    # `Path("s3://b/x")` reads "s3:/b/x", so a scheme followed by "/" is a URL; "ds:v2" is a folder.
    if len(parts.scheme) < 2 or not text[len(parts.scheme) + 1 :].startswith("/"):
        return Path(text)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    url = f"{parts.scheme}://{text[len(parts.scheme) + 1 :].lstrip('/')}"  # as typed, though a Path folds "//"
    netloc = urlsplit(url).netloc  # from the URL as typed: a Path argument has folded "//" into "/"
    if "@" in netloc:  # `user:password@`: never repeated in a message
        url = url.replace(netloc, netloc.rpartition("@")[2], 1)
    raise ValueError(
        f"{url}: {parts.scheme}:// is not a folder; this command needs a local dataset folder (for an s3:// "
        "dataset, copy it to a folder first, e.g. aws s3 sync URL FOLDER; see docs/lead/scale.md, Datasets in object "
        "storage)"
    )


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

    # The annotation workflow's records of its Label Studio server, its projects and its pulls.

    @property
    def ls_projects(self) -> Path:
        """The Label Studio project of each stage and annotator, with its items (JSON)."""
        return self.manifests / "ls_projects.json"

    def ls_projects_archive(self, server_id: str) -> Path:
        """Where a server's project list goes when the dataset moves to another server (JSON)."""
        return self.manifests / f"ls_projects.{server_id}.json"

    @property
    def ls_server(self) -> Path:
        """The Label Studio server the dataset's projects and votes live on (JSON)."""
        return self.manifests / "ls_server.json"

    @property
    def vote_history(self) -> Path:
        """Every change to a vote on record (VOTE_HISTORY_SCHEMA)."""
        return self.manifests / "vote_history.parquet"

    @property
    def ls_tasks(self) -> Path:
        """Each Label Studio task push made, with its data as push made it (JSON)."""
        return self.manifests / "ls_tasks.json"

    @property
    def pull_report(self) -> Path:
        """What the last pull did not count, and why (JSON)."""
        return self.manifests / "pull_report.json"

    @property
    def ls_media(self) -> Path:
        """The name of the dataset's local-files link on the toolkit's Label Studio server (JSON)."""
        return self.manifests / "ls_media.json"

    @property
    def labels(self) -> Path:
        return self.manifests / "labels.parquet"

    @property
    def splits(self) -> Path:
        return self.manifests / "splits.parquet"

    @property
    def split_settings(self) -> Path:
        """How the splits were made (settings, rules, seed; JSON), committed with `splits`."""
        return self.manifests / "splits.json"

    @property
    def agreement_report(self) -> Path:
        """The labels step's agreement report over the counted crowd votes (JSON), read by release cards."""
        return self.manifests / "agreement.json"

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
    def resolve_log(self) -> Path:
        return self.work / "resolve"

    @property
    def fetch_log(self) -> Path:
        return self.work / "fetch"

    @property
    def normalise_log(self) -> Path:
        return self.work / "normalise"

    @property
    def near_duplicates(self) -> Path:
        """The last near-duplicate search's result, with the digest of the input it answers (reused while that
        input stays the same)."""
        return self.work / "near_duplicates.parquet"

    @property
    def downloads(self) -> Path:
        return self.work / "downloads"

    @property
    def rate_locks(self) -> Path:
        return self.work / "rate"

    @property
    def lock(self) -> Path:
        return self.work / "ingest.lock"

    def originals_of(self, video_id: str) -> list[Path]:
        """The downloaded original files of exactly this item: `originals/<video_id>.<ext>` with a single
        extension. Ids may contain dots, so a pattern like `clip.*` would also match `clip.v2.mp4`, another
        item's file; names are compared literally, never as glob patterns."""
        if not self.originals.is_dir():
            return []
        prefix = f"{video_id}."
        return [
            path
            for path in self.originals.iterdir()
            if path.name.startswith(prefix) and (ext := path.name[len(prefix) :]) and "." not in ext
        ]

    @property
    def platform_info(self) -> Path:
        """The platform's own description of each downloaded video (`<video_id>.info.json`, see
        `emotions_data.platforms`)."""
        return self.root / "platform_info"

    def info_json(self, video_id: str) -> Path:
        return self.platform_info / f"{video_id}.info.json"

    @property
    def release_key(self) -> Path:
        """The secret key of the uploaders' pseudonyms in releases, when no environment variable gives one."""
        return self.root / ".keys" / "release-pseudonyms.key"

    def media_file(self, video_id: str) -> Path:
        return self.media / f"{video_id}.mp4"

    # Releases: the published folders and, outside them, the record of what each held when it was made.

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    def release(self, version: str) -> ReleaseLayout:
        """The folder of release `version` (`releases/X.Y.Z/`)."""
        return ReleaseLayout(self.releases / version)

    @property
    def release_ledger(self) -> Path:
        """Per release version, the digests of its files when it was written (`<version>.json`), kept outside the
        release so a changed `SHA256SUMS` is caught too (`emotions release verify`)."""
        return self.manifests / "release-ledger"

    def release_record(self, version: str) -> Path:
        return self.release_ledger / f"{version}.json"

    @classmethod
    def of_release(cls, release_dir: Path) -> DatasetLayout:
        """The dataset a release folder (`DATASET/releases/X.Y.Z/`) belongs to."""
        return cls(Path(release_dir).resolve().parents[1])

    def data_card(self, name: str, version: str) -> Path:
        """The copy of a release's card outside the release."""
        return self.root / "data_cards" / f"{name}-{version}"

    @property
    def baseline_cache(self) -> Path:
        """The baseline's preprocessing cache, one folder per recipe; safe to delete."""
        return self.root / "cache" / "baseline"

    @property
    def runs(self) -> Path:
        """Baseline training runs, `runs/<release version>/<variant>-<config>/`."""
        return self.root / "runs"

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()


@dataclass(frozen=True)
class ReleaseLayout:
    """Where everything lives inside one release folder (docs/reference/release-format.md); paths listed in
    `release.json` and `SHA256SUMS` are relative to `root`."""

    root: Path

    DATA = "data"  # data/<variant>/<split>.parquet
    CHECKSUMS = "SHA256SUMS"

    @property
    def version(self) -> str:
        return self.root.name

    @property
    def data(self) -> Path:
        return self.root / self.DATA

    def data_file(self, variant: str, split: str) -> Path:
        return self.data / variant / f"{split}.parquet"

    def data_files(self, variant: str | None = None) -> list[Path]:
        """Every `data/<variant>/<split>.parquet` (of one variant, with `variant`), sorted."""
        return sorted(self.data.glob(f"{variant or '*'}/*.parquet"))

    def official(self, variant: str) -> Path:
        """The authors' layout of one variant (`emotions_data.official_format`)."""
        return self.root / "official" / variant

    @property
    def checksums(self) -> Path:
        return self.root / self.CHECKSUMS

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def baseline(self) -> Path:
        """Recorded baseline results, `baseline/<variant>/` (metrics.json, confusion.csv, confusion.png)."""
        return self.root / "baseline"

    def files(self) -> list[str]:
        """Every file of the release, relative POSIX paths in path order (SHA256SUMS included)."""
        return [p.relative_to(self.root).as_posix() for p in sorted(self.root.rglob("*")) if p.is_file()]

    @staticmethod
    def data_path_parts(rel: str) -> tuple[str, str] | None:
        """(variant, split) of a relative `data/<variant>/<split>.parquet` path, or None for any other path."""
        parts = Path(rel).parts
        if len(parts) == 3 and parts[0] == ReleaseLayout.DATA and rel.endswith(".parquet"):
            return parts[1], Path(parts[2]).stem
        return None
