"""Versioned releases: manifests, the authors' split formats, the card and checksums; never media.

A release is built in a staging folder and committed with its card's copy in `data_cards/<name>-<version>/` as one
file group (`storage.file_group`), so both exist whole or neither does. An existing version is never overwritten, and
a release whose splits are stale or whose leakage gate fails is not written. See docs/reference/release-format.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from emotions_data import __version__
from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.probe import sha256_file
from emotions_data.release_formats import FORMATS
from emotions_data.release_info import ReleaseInfo
from emotions_data.release_ledger import file_digests, ledger_record, listed_digests, sha256sums_text
from emotions_data.schema import LABELS_DIGEST_KEY, LABELS_VOTES_KEY, OWN_VOTES, SCHEMA_VERSION, Split, Stage, Variant
from emotions_data.split_step import LeakageError, check_splits
from emotions_data.storage import file_group, recover_commits, write_bytes_atomic
from emotions_data.taxonomy import EMOTIONS6, Taxonomy

# Semantic Versioning 2.0.0, section 2: MAJOR.MINOR.PATCH, non-negative integers without leading zeros. ASCII digits
# only (`\d` would take other scripts' digits): `01.0.0` or `١.0.0` beside `1.0.0` would be a second name for it.
_VERSION = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
#: The shortest pseudonym key: 16 bytes (128 bits), beyond trying. RFC 2104 (sec. 3) discourages keys shorter than
#: the hash's output (32 bytes, what the dataset's own key file holds); shorter ones can be found by trying.
MIN_KEY_BYTES = 16
LICENSE = "other"  # eMotions: academic use only; media are not redistributed
CardWriter = Callable[[Path, pd.DataFrame | None], list[Path]]
#: The key of the uploaders' pseudonyms in releases (any text of at least `MIN_KEY_BYTES` bytes; keep it secret and the
#: same across releases).
PSEUDONYM_KEY_ENV = "EMOTIONS_RELEASE_KEY"


def check_version(version: str) -> None:
    """Raises ValueError unless `version` is a semantic version MAJOR.MINOR.PATCH in ASCII digits without leading
    zeros (Semantic Versioning 2.0.0, section 2)."""
    if not _VERSION.fullmatch(version):
        raise ValueError(
            f"version {version!r} must be a semantic version X.Y.Z: three numbers in ASCII digits without leading "
            "zeros (1.0.0, 1.2.10)"
        )


def pseudonym_key(layout: DatasetLayout) -> bytes:
    """The secret key of the uploaders' pseudonyms: the `EMOTIONS_RELEASE_KEY` environment variable, else the
    dataset's own key file (`layout.release_key`, 32 random bytes made at the first release that needs it, mode
    0600). Never written into a release. Raises OSError when the key file cannot be read or made, ValueError naming
    the variable or file when the key is shorter than `MIN_KEY_BYTES` (a short key can be found by trying)."""
    text = os.environ.get(PSEUDONYM_KEY_ENV)
    if text:
        key, where = text.encode("utf-8", "surrogateescape"), PSEUDONYM_KEY_ENV
    else:
        path = layout.release_key
        if not path.exists():
            write_bytes_atomic(path, secrets.token_hex(32).encode(), mode=0o600)
        key, where = path.read_bytes().strip(), str(path)
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{where}: the pseudonym key is {len(key)} byte(s); it needs at least {MIN_KEY_BYTES} bytes (128 bits), "
            "e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


def uploader_pseudonym(uploader: str, key: bytes) -> str:
    """A keyed pseudonym of an uploader (``u-`` + the first 20 hex digits of HMAC-SHA256(key, uploader), RFC 2104):
    the same uploader gets the same pseudonym in every release made with the same key, so users can still keep an
    uploader's videos in one split; without the key it cannot be reversed by trying known handles."""
    return "u-" + hmac.new(key, uploader.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def release_name_problem(name: str) -> str | None:
    """Why `name` cannot name a release (it names the folder `data_cards/<name>-<version>/`), or None."""
    if not name.strip():
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator; it must be one folder name"
    if set(name) == {"."}:
        return "is only dots; it must be one folder name"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character"
    return None


def public_source(source: str, source_kind: str) -> str:
    """What a release may say about where a video came from. A local file (or a `file://` URL) is named by its file
    name only: its folder is the importer's machine (home folder, user name) and means nothing to anyone else. A
    URL loses any user name and password; the rest, query included, is the platform's public address."""
    parts = urlsplit(source)
    if source_kind == "file" or parts.scheme == "file":
        return PurePosixPath(unquote(parts.path) if parts.scheme == "file" else source.replace("\\", "/")).name
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port}" if parts.port is not None else ""
        return urlunsplit(parts._replace(netloc=netloc))
    return source


def build_release_rows(
    layout: DatasetLayout,
    votes: pd.DataFrame | None,
    taxonomy: Taxonomy,
    *,
    include_uploaders: bool = False,
) -> pd.DataFrame:
    """One release row per labelled ok video (all variants share it), with its counted votes and the per-item
    agreement the labels step recorded in `labels.parquet`. `uploader` is a keyed pseudonym (`uploader_pseudonym`)
    unless `include_uploaders`. Raises ValueError naming `labels.parquet` when a label is not in `taxonomy`."""
    videos = read_versioned_table(layout.videos_manifest).to_pandas()  # refuses a newer schema
    videos = videos[videos["status"] == "ok"]
    labels = pq.read_table(layout.labels).to_pandas()
    rows = labels.merge(videos, on="video_id", how="inner", suffixes=("", "_video"))
    unknown = sorted({str(lab) for lab in rows["label"].unique() if taxonomy.lookup(lab) is None})
    if unknown:
        raise ValueError(
            f"{layout.labels}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(unknown)} (release with the "
            "taxonomy the labels were decided in)"
        )
    rows["label_index"] = rows["label"].map(taxonomy.index)
    rows["polarity"] = rows["label"].map(taxonomy.polarity)
    rows["duration_s"] = rows["media_duration_s"].fillna(rows["duration_s"])
    kinds = rows["source_kind"] if "source_kind" in rows.columns else pd.Series("url", index=rows.index)
    rows["source"] = [public_source(str(src), str(kind)) for src, kind in zip(rows["source"], kinds, strict=True)]
    if "webpage_url" in rows.columns:  # a file:// URL's page is the importer's file: its name only, like `source`
        rows["webpage_url"] = [public_source(str(u), "url") if pd.notna(u) else None for u in rows["webpage_url"]]
    if "uploader" in rows.columns and not include_uploaders and rows["uploader"].notna().any():
        key = pseudonym_key(layout)
        rows["uploader"] = [uploader_pseudonym(str(u), key) if pd.notna(u) else None for u in rows["uploader"]]
    if "agreement" not in rows.columns:  # labels written before the labels step recorded per-item agreement
        rows["agreement"] = np.nan
    if votes is not None and len(votes):
        grouped = votes.groupby("video_id")[["annotator_id", "stage", "label"]].apply(lambda f: f.to_dict("records"))
        rows["votes"] = rows["video_id"].map(grouped)
    else:
        rows["votes"] = None
    rows["votes"] = rows["votes"].apply(lambda v: v if isinstance(v, list) else [])
    return rows


def _annotation_summary(layout: DatasetLayout, votes: pd.DataFrame | None, labels: pd.DataFrame) -> dict:
    summary: dict = {"decided_by": labels["decided_by"].value_counts().to_dict()}
    people = layout.annotators
    if people.exists():
        frame = pq.read_table(people).to_pandas()
        crowd = frame[frame["role"] == "annotator"]
        summary["n_annotators"] = len(crowd)
        summary["n_experts"] = int((frame["role"] == "expert").sum())
        summary["groups"] = {str(g): int(n) for g, n in crowd["group"].value_counts().sort_index().items()}
    if votes is not None and len(votes):
        per_item = votes[votes["stage"] != Stage.EXPERT].groupby("video_id").size().value_counts().sort_index()
        summary["votes_per_item"] = {str(k): int(n) for k, n in per_item.items()}
        summary["stages"] = {str(s): int(n) for s, n in votes["stage"].value_counts().items()}
    return summary


def write_release(
    layout: DatasetLayout,
    version: str,
    *,
    votes: pd.DataFrame | None = None,
    taxonomy: Taxonomy = EMOTIONS6,
    name: str | None = None,
    license_id: str = LICENSE,
    card: CardWriter | None = None,
    include_uploaders: bool = False,
) -> Path:
    """Write `releases/<version>/` and, with `card`, the card's copy in `data_cards/<name>-<version>/`: both
    appear together or not at all. `name` defaults to the dataset folder's name. Uploaders are keyed pseudonyms
    (`build_release_rows`) unless `include_uploaders`. Raises ValueError (bad or existing version, unsafe name, missing
    inputs, splits stale against the labels, labels outside `taxonomy`), OSError (the pseudonyms' key file) or
    LeakageError; nothing is written then."""
    check_version(version)
    name = name or layout.root.resolve().name
    problem = release_name_problem(name)
    if problem:
        raise ValueError(f"release name {name!r} {problem} (it names data_cards/<name>-<version>/)")
    recover_commits(layout.root)
    releases = layout.releases
    final = layout.release(version).root
    if final.exists():
        raise ValueError(f"{final}: release {version} exists; versions are never overwritten")
    if not layout.splits.exists():
        raise ValueError(f"{layout.splits}: no splits (run 'emotions split' first)")
    problems = check_splits(layout)
    if problems:
        raise LeakageError(problems)
    _refuse_labels_of_other_votes(layout, votes)
    releases.mkdir(parents=True, exist_ok=True)
    for stale in releases.glob(".tmp-*"):  # left by releases built here before they were staged as a file group
        shutil.rmtree(stale, ignore_errors=True)

    rows = build_release_rows(layout, votes, taxonomy, include_uploaders=include_uploaders)
    splits = pq.read_table(layout.splits).to_pandas()
    labels = pq.read_table(layout.labels).to_pandas()
    try:
        with file_group(layout.root) as group:
            tmp = group.path(final, replace=False)  # the commit fails rather than replace a version created meanwhile
            files, counts = _write_data(tmp, splits, rows, taxonomy)
            ingest = json.loads(layout.ingest_summary.read_text()) if layout.ingest_summary.exists() else {}
            split_record = layout.split_settings
            split_settings = json.loads(split_record.read_text()) if split_record.exists() else {}
            ReleaseInfo(
                name=name, version=version,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"), toolkit_version=__version__,
                schema_version=SCHEMA_VERSION, license=license_id,
                taxonomy={"name": taxonomy.name, "classes": list(taxonomy.classes), "polarity": taxonomy.polarity},
                variants=counts, files=files, ingest=ingest, split_settings=split_settings,
                annotation=_annotation_summary(layout, votes, labels),
            ).write_to_directory(tmp)  # fmt: skip
            if card is not None:  # the card's copy outside the release is staged too: visible only with it
                copy_card_files(card(tmp, votes) or [], tmp, group.path(layout.data_card(name, version)))
            ReleaseLayout(tmp).checksums.write_text(sha256sums_text(file_digests(tmp)))
            group.write_bytes(layout.release_record(version), ledger_record(tmp, version))
    except FileExistsError:
        raise ValueError(f"{final}: release {version} exists; versions are never overwritten") from None
    return final


def votes_digest(votes: pd.DataFrame) -> str:
    """sha256 (hex) over the votes' `video_id`, `annotator_id`, `stage` (`label` where the table has none) and
    `label`, whatever their row order: the labels step records it for the votes it decided from, and a release
    compares it with the votes it carries."""
    columns = ["video_id", "annotator_id", "stage", "label"]
    frame = votes.reindex(columns=columns).astype(object)
    frame["stage"] = frame["stage"].fillna(Stage.LABEL)
    frame = frame.astype(str).sort_values(columns, kind="stable")
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()


def _refuse_labels_of_other_votes(layout: DatasetLayout, votes: pd.DataFrame | None) -> None:
    """ValueError when `labels.parquet` was decided from other votes than `votes`, the counted votes the release
    carries and its card counts: from a table other than the dataset's own (its `LABELS_VOTES_KEY`), or from the
    dataset's table as it was before a pull, an import or a dropped annotator (its `LABELS_DIGEST_KEY`). Labels
    written without these keys are taken as they are."""
    if not layout.labels.exists():
        return
    metadata = pq.read_schema(layout.labels).metadata or {}
    source = metadata.get(LABELS_VOTES_KEY, OWN_VOTES.encode()).decode()
    if source != OWN_VOTES:
        raise ValueError(
            f"{layout.labels}: decided from {source}, not the dataset's vote table; import it ('emotions votes "
            f"import {layout.root} {source}') and run 'emotions labels {layout.root}' again"
        )
    recorded = metadata.get(LABELS_DIGEST_KEY)
    if recorded is not None and votes is not None and recorded.decode() != votes_digest(votes):
        raise ValueError(
            f"{layout.labels}: decided from other votes than the dataset's vote table counts now (a pull, an import "
            f"or a dropped annotator since); run 'emotions labels {layout.root}' again"
        )


def _write_data(
    tmp: Path, splits: pd.DataFrame, rows: pd.DataFrame, taxonomy: Taxonomy
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, int]]]:
    """Every variant in every registered format (`release_formats.FORMATS`) under `tmp`; returns the Parquet
    files and row counts per variant and split (release.json's `files` and `variants`)."""
    release = ReleaseLayout(tmp)
    files: dict[str, dict[str, str]] = {}
    counts: dict[str, dict[str, int]] = {}
    present = list(splits["variant"].unique())
    for variant in [v for v in Variant if v in present] + sorted(set(present) - set(Variant)):
        part = splits[splits["variant"] == variant].merge(rows, on="video_id", how="inner")
        for fmt in FORMATS.values():
            fmt.write(release, variant, part, taxonomy)
        for split in Split:
            files.setdefault(variant, {})[split] = release.data_file(variant, split).relative_to(tmp).as_posix()
            counts.setdefault(variant, {})[split] = int((part["split"] == split).sum())
    return files, counts


def copy_card_files(written: list[Path], release_dir: Path, copy: Path) -> None:
    """The card files the card step wrote into the release folder `release_dir`, copied (same relative paths) into
    `copy` (the card's copy outside the release, `DatasetLayout.data_card`)."""
    copy.mkdir(parents=True, exist_ok=True)
    for path in written:
        target = copy / Path(path).relative_to(release_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(path).read_bytes())


def verify_release(folder: Path) -> list[str]:
    """Files whose checksum does not match the release's own SHA256SUMS (or that are missing), as listed there.
    `emotions_data.release_ledger.check_release` also names extra files and checks against the digests recorded
    outside the release. A missing SHA256SUMS is itself listed. Raises ValueError naming SHA256SUMS when a line of
    it is malformed."""
    release = ReleaseLayout(Path(folder))
    if not release.checksums.is_file():
        return [release.CHECKSUMS]
    bad = []
    for rel, digest in listed_digests(release).items():
        path = Path(folder) / rel
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(rel)
    return bad
