"""What the card says, as one object: `CardMetadata`, and `build_metadata`, which reads it from a written release
folder (docs/reference/release-format.md: release.json, the Parquet files) and the counted vote table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.layout import ReleaseLayout
from emotions_data.probe import sha256_file
from emotions_data.release_info import ReleaseInfo
from emotions_data.schema import Split, Stage, Variant

EMOTIONS_LICENSE_TERMS = (
    "Academic (non-commercial research) use only. The media are not redistributed: the release holds manifests, "
    "labels, checksums and recipes; the videos remain under the terms of their platforms (Douyin, Kuaishou, TikTok) "
    "and their uploaders. Do not redistribute media, and do not try to identify people shown in them."
)


@dataclass
class CardMetadata:
    """Everything the card says; README, Croissant and plots are generated from this object alone."""

    name: str
    version: str
    pretty_name: str = ""
    description: str = ""
    license: str = "other"  # HF licence id; "other" = eMotions' academic-use terms below
    license_name: str = "emotions-academic-use"
    license_terms: str = EMOTIONS_LICENSE_TERMS
    license_link: str = ""
    citation: str = ""
    homepage: str = "https://arxiv.org/abs/2311.17335"
    language: list[str] = field(default_factory=lambda: ["zh", "en"])  # spoken/caption languages; a setting
    tags: list[str] = field(
        default_factory=lambda: ["emotion-recognition", "affective-computing", "short-video", "audio-visual"]
    )
    created_at: str = ""
    toolkit_version: str = ""
    schema_version: str = ""
    taxonomy: dict[str, Any] = field(default_factory=dict)  # {name, classes, polarity}
    variants: dict[str, dict[str, int]] = field(default_factory=dict)  # variant -> split -> rows
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> split -> relative Parquet path
    file_sha256: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    file_bytes: dict[str, int] = field(default_factory=dict)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (Parquet column, arrow type)
    split_settings: dict[str, Any] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)  # status_counts, reason_counts, settings
    annotation: dict[str, Any] = field(default_factory=dict)  # n_annotators, groups, votes_per_item, stages, ...
    agreement: dict[str, Any] | None = None  # AgreementReport.to_dict()
    # What the plots need (aggregates only: no per-item data, no identities beyond pseudonymous ids).
    class_counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # variant -> split -> class
    duration_hist: dict[str, list[float]] = field(default_factory=dict)  # {"edges": [...], "counts": [...]}
    duration_stats: dict[str, float] = field(default_factory=dict)  # min, median, max, total_hours
    platforms: dict[str, int] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)  # annotator vote (row) x final label (col)
    features: list[dict[str, Any]] = field(default_factory=list)  # Hugging Face features (`hf_features`)
    uses: list[str] = field(
        default_factory=lambda: [
            "Training and evaluating audio-visual emotion recognition models on short-form videos.",
            "Studying annotator agreement on affective labels.",
        ]
    )
    out_of_scope: list[str] = field(
        default_factory=lambda: [
            "Identifying, profiling or surveilling people shown in the videos.",
            "Commercial use, or redistribution of the media.",
            "Inferring the emotional state of real individuals for decisions that affect them.",
        ]
    )
    limitations: list[str] = field(
        default_factory=lambda: [
            "Labels are perceived emotions of a small annotator panel, single-label, and culturally situated.",
            "Videos can disappear from their platforms; the dataset then cannot be fully rebuilt.",
            "Platform sampling and cleaning filters shape which content is represented.",
        ]
    )
    biases: list[str] = field(
        default_factory=lambda: [
            "Content comes from three platforms' recommendation-driven feeds (mostly Chinese-language).",
            "Class sizes are imbalanced in the full variant; use the balanced variant or per-class metrics.",
            "Annotators share a cultural background, which shapes emotion perception.",
        ]
    )
    personal_information: list[str] = field(
        default_factory=lambda: [
            "Videos may show faces and voices of uploaders and bystanders; the media are not redistributed.",
            "Annotators appear only under pseudonymous ids; names and contacts never leave the roster.",
            "Uploaders appear under keyed pseudonyms (`uploader`: HMAC-SHA256 with a key the publisher keeps) unless "
            "the release was made with --include-uploaders; titles, descriptions and the platforms' raw metadata are "
            "not released.",
        ]
    )
    maintenance: str = (
        "Each release is immutable and versioned (semantic versioning) with SHA256SUMS; corrections and removal "
        "requests lead to a new release with a changelog. Issues are tracked in the toolkit's repository."
    )

    @property
    def title(self) -> str:
        """The name the card shows: `pretty_name`, else `name`."""
        return self.pretty_name or self.name

    @property
    def n_items(self) -> int:
        """Videos in the release (rows of the full variant, all splits)."""
        return sum(self.variants.get(Variant.FULL, {}).values())


def in_card_order(keys: list[str], order: list[Split] | list[Variant]) -> list[str]:
    """`keys` in the order of `order` (the enum's order), then any others (e.g. an imported `official` variant)
    alphabetically."""
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


#: Arrow types the card names as Hugging Face `datasets` dtypes (the types `RELEASE_SCHEMA` uses).
_HF_DTYPES = {pa.string(): "string", pa.large_string(): "string", pa.int32(): "int32", pa.int64(): "int64",
              pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool"}  # fmt: skip


def _hf_feature(name: str, kind: pa.DataType, classes: list[str]) -> dict[str, Any]:
    if name == "label" and classes and pa.types.is_string(kind):
        return {"name": name, "dtype": {"class_label": {"names": {str(i): c for i, c in enumerate(classes)}}}}
    if pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
        struct = kind.value_type
        return {"name": name, "list": [_hf_feature(struct.field(i).name, struct.field(i).type, []) for i in
                                       range(struct.num_fields)]}  # fmt: skip
    if kind not in _HF_DTYPES:
        raise ValueError(f"column {name!r}: type {kind} has no Hugging Face dtype in the card")
    return {"name": name, "dtype": _HF_DTYPES[kind]}


def hf_features(schema: pa.Schema, classes: list[str]) -> list[dict[str, Any]]:
    """The release files' columns as Hugging Face `datasets` features (the card's `dataset_info.features`, the
    list form of `datasets.Features._to_yaml_list`): `label` as a `ClassLabel` of `classes` in taxonomy order, so
    `load_dataset` gives class ids and `train_test_split(stratify_by_column="label")` works; nested votes as a list
    of structs. Raises ValueError naming a column of a type the card cannot name."""
    return [_hf_feature(f.name, f.type, classes) for f in schema]


def _files_from_release(info: ReleaseInfo, release_dir: Path) -> dict[str, dict[str, str]]:
    """variant -> split -> path in card order, from `files` in release.json or, when it lists none, the folder."""
    files = info.files
    if not files:
        release = ReleaseLayout(release_dir)
        found = [p.relative_to(release_dir).as_posix() for p in release.data_files()]
        files = ReleaseInfo.from_dict({"files": found}).files
    return {
        v: {s: files[v][s] for s in in_card_order(list(files[v]), list(Split))}
        for v in in_card_order(list(files), list(Variant))
    }


def _release_votes(full: pd.DataFrame) -> pd.DataFrame:
    """The long vote table carried in the release's `votes` column."""
    rows = [
        {"video_id": vid, **vote}
        for vid, votes in zip(full["video_id"], full["votes"], strict=True)
        if votes is not None
        for vote in votes
    ]
    return pd.DataFrame(rows, columns=["video_id", "annotator_id", "stage", "label"])


def _duration_summary(durations: np.ndarray) -> tuple[dict[str, list[float]], dict[str, float]]:
    durations = durations[np.isfinite(durations)]
    if len(durations) == 0:
        return {}, {}
    counts, edges = np.histogram(durations, bins=min(30, max(5, int(math.sqrt(len(durations))))))
    stats = {
        "min": float(durations.min()),
        "median": float(np.median(durations)),
        "max": float(durations.max()),
        "total_hours": float(durations.sum() / 3600),
    }
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}, stats


def _class_counts(tables: dict[str, dict[str, pa.Table]], classes: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """variant -> split -> class -> rows; every class of `classes` (or, without a taxonomy, those found)."""
    class_counts: dict[str, dict[str, dict[str, int]]] = {}
    for variant, splits in tables.items():
        class_counts[variant] = {}
        for split, table in splits.items():
            counts = pd.Series(table.column("label").to_pylist()).value_counts()
            class_counts[variant][split] = {c: int(counts.get(c, 0)) for c in classes or sorted(counts.index)}
    return class_counts


def _vote_confusion(votes: pd.DataFrame | None, full: pd.DataFrame, classes: list[str]) -> list[list[int]]:
    """Counted votes (row: the annotator's vote) against the item's final label (column), in class order; expert
    votes are left out because they decide the final label rather than vote on it."""
    if votes is None or not len(votes):
        return []
    counted = votes[votes["stage"].astype(str) != Stage.EXPERT] if "stage" in votes else votes
    if not len(counted):
        return []
    final = dict(zip(full["video_id"], full["label"], strict=True))
    pairs = pd.DataFrame({"vote": counted["label"].astype(str), "final": counted["video_id"].map(final)}).dropna()
    matrix = pd.crosstab(pairs["vote"], pairs["final"]).reindex(index=classes, columns=classes, fill_value=0)
    return matrix.to_numpy(dtype=int).tolist()


def build_metadata(
    release_dir: Path,
    votes: pd.DataFrame | None,
    *,
    pretty_name: str = "",
    description: str = "",
    citation: str = "",
    agreement: dict[str, Any] | None = None,
) -> CardMetadata:
    """Card metadata of a written release folder. `votes` is the counted long vote table (`video_id`,
    `annotator_id`, `label`, `stage`; without it, the votes carried in the release's `votes` column), from
    which the card's vote-vs-final confusion matrix is counted; expert votes are left out. `agreement` is the
    agreement report as data (`annotation.agreement.AgreementReport.to_dict()`, written by the labels step to
    `manifests/agreement.json`); without it the card says agreement was not computed. `pretty_name`,
    `description` and `citation` override those of release.json. Raises ValueError when release.json cannot be
    read (`ReleaseInfo.from_directory`)."""

    release_dir = Path(release_dir)
    info = ReleaseInfo.from_directory(release_dir)
    taxonomy = dict(info.taxonomy)
    classes: list[str] = list(taxonomy.get("classes") or [])
    files = _files_from_release(info, release_dir)

    tables = {v: {s: pq.read_table(release_dir / p) for s, p in splits.items()} for v, splits in files.items()}
    first = next((t for splits in tables.values() for t in splits.values()), None)
    class_counts = _class_counts(tables, classes)
    if not classes and class_counts:
        classes = sorted({c for splits in class_counts.values() for sc in splits.values() for c in sc})
        taxonomy["classes"] = classes

    full_name = Variant.FULL if Variant.FULL in tables else next(iter(tables), None)
    full = (
        pa.concat_tables(tables[full_name].values()).to_pandas()
        if full_name
        else pd.DataFrame(columns=["video_id", "label", "duration_s", "platform", "votes"])
    )
    duration_hist, duration_stats = _duration_summary(pd.to_numeric(full["duration_s"], errors="coerce").to_numpy())
    if votes is None and "votes" in full:
        votes = _release_votes(full)

    return CardMetadata(
        name=info.name,
        version=info.version,
        pretty_name=pretty_name or info.pretty_name,
        description=description or info.description,
        citation=citation or info.citation,
        license=info.license,
        created_at=info.created_at,
        toolkit_version=info.toolkit_version,
        schema_version=info.schema_version,
        taxonomy=taxonomy,
        variants={v: {s: t.num_rows for s, t in splits.items()} for v, splits in tables.items()},
        files=files,
        file_sha256={p: sha256_file(release_dir / p) for splits in files.values() for p in splits.values()},
        file_bytes={p: (release_dir / p).stat().st_size for splits in files.values() for p in splits.values()},
        columns=[(f.name, str(f.type)) for f in first.schema] if first is not None else [],
        split_settings=dict(info.split_settings),
        ingest=dict(info.ingest),
        annotation=dict(info.annotation),
        agreement=agreement,
        class_counts=class_counts,
        duration_hist=duration_hist,
        duration_stats=duration_stats,
        platforms={str(k): int(v) for k, v in full["platform"].fillna("unknown").value_counts().items()},
        confusion=_vote_confusion(votes, full, classes),
        features=hf_features(first.schema, classes) if first is not None else [],
    )
