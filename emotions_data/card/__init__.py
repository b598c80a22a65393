"""The dataset card of a release: an HF-style README (YAML header + datasheet), Croissant JSON-LD with its
Responsible-AI fields, and PNG plots, all generated from one `CardMetadata`.

`build_metadata` reads a release folder (docs/release-format.md) and the counted vote table;
`render_readme`, `croissant_jsonld` and `render_plots` are pure; `write_card` writes the files atomically.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.probe import sha256_file
from emotions_data.release_info import ReleaseInfo
from emotions_data.storage import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPLIT_ORDER = ("train", "val", "test")
VARIANT_ORDER = ("full", "balanced", "test_oriented")
PLOT_NAMES = ("class_distribution", "duration_histogram", "agreement_per_class", "agreement_per_annotator", "confusion")
CROISSANT_CONFORMS_TO = ["http://mlcommons.org/croissant/1.0", "http://mlcommons.org/croissant/RAI/1.0"]
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")

#: The Croissant 1.0 JSON-LD context, as mlcroissant writes it (plus the RAI prefix).
CROISSANT_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

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
        ]
    )
    maintenance: str = (
        "Each release is immutable and versioned (semantic versioning) with SHA256SUMS; corrections and removal "
        "requests lead to a new release with a changelog. Issues are tracked in the toolkit's repository."
    )

    @property
    def title(self) -> str:
        return self.pretty_name or self.name

    @property
    def n_items(self) -> int:
        return sum(self.variants.get("full", {}).values())


# ---------------------------------------------------------------- reading a release


def _ordered(keys: list[str], order: tuple[str, ...]) -> list[str]:
    return sorted(keys, key=lambda k: (order.index(k) if k in order else len(order), k))


def _files_from_release(info: ReleaseInfo, release_dir: Path) -> dict[str, dict[str, str]]:
    """variant -> split -> path in card order, from `files` in release.json or, when it lists none, the folder."""
    files = info.files
    if not files:
        found = [p.relative_to(release_dir).as_posix() for p in sorted(release_dir.glob("data/*/*.parquet"))]
        files = ReleaseInfo.from_dict({"files": found}).files
    return {
        v: {s: files[v][s] for s in _ordered(list(files[v]), SPLIT_ORDER)} for v in _ordered(list(files), VARIANT_ORDER)
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
    `manifests/agreement.json`); without it the card says agreement was not computed."""

    release_dir = Path(release_dir)
    info = ReleaseInfo.from_directory(release_dir)
    taxonomy = dict(info.taxonomy)
    classes: list[str] = list(taxonomy.get("classes") or [])
    files = _files_from_release(info, release_dir)

    tables = {v: {s: pq.read_table(release_dir / p) for s, p in splits.items()} for v, splits in files.items()}
    variants = {v: {s: t.num_rows for s, t in splits.items()} for v, splits in tables.items()}
    first = next((t for splits in tables.values() for t in splits.values()), None)
    columns = [(f.name, str(f.type)) for f in first.schema] if first is not None else []
    class_counts: dict[str, dict[str, dict[str, int]]] = {}
    for variant, splits in tables.items():
        class_counts[variant] = {}
        for split, table in splits.items():
            counts = pd.Series(table.column("label").to_pylist()).value_counts()
            class_counts[variant][split] = {c: int(counts.get(c, 0)) for c in classes or sorted(counts.index)}
    if not classes and class_counts:
        classes = sorted({c for splits in class_counts.values() for sc in splits.values() for c in sc})
        taxonomy["classes"] = classes

    full_name = "full" if "full" in tables else next(iter(tables), None)
    full = (
        pa.concat_tables(tables[full_name].values()).to_pandas()
        if full_name
        else pd.DataFrame(columns=["video_id", "label", "duration_s", "platform", "votes"])
    )
    duration_hist, duration_stats = _duration_summary(pd.to_numeric(full["duration_s"], errors="coerce").to_numpy())
    platforms = {str(k): int(v) for k, v in full["platform"].fillna("unknown").value_counts().items()}

    if votes is None and "votes" in full:
        votes = _release_votes(full)
    confusion: list[list[int]] = []
    if votes is not None and len(votes):
        counted = votes[votes["stage"].astype(str) != "expert"] if "stage" in votes else votes
        if len(counted):
            final = dict(zip(full["video_id"], full["label"], strict=True))
            pairs = pd.DataFrame({"vote": counted["label"].astype(str), "final": counted["video_id"].map(final)})
            pairs = pairs.dropna()
            matrix = pd.crosstab(pairs["vote"], pairs["final"]).reindex(index=classes, columns=classes, fill_value=0)
            confusion = matrix.to_numpy(dtype=int).tolist()

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
        variants=variants,
        files=files,
        file_sha256={p: sha256_file(release_dir / p) for splits in files.values() for p in splits.values()},
        file_bytes={p: (release_dir / p).stat().st_size for splits in files.values() for p in splits.values()},
        columns=columns,
        split_settings=dict(info.split_settings),
        ingest=dict(info.ingest),
        annotation=dict(info.annotation),
        agreement=agreement,
        class_counts=class_counts,
        duration_hist=duration_hist,
        duration_stats=duration_stats,
        platforms=platforms,
        confusion=confusion,
    )


# ---------------------------------------------------------------- text (pure)


def size_category(n: int) -> str:
    """Hugging Face `size_categories` bucket."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def fmt(value: Any, digits: int = 3) -> str:
    """A number as the card prints it ("n/a" for missing)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def fmt_ci(ci: list[float] | None) -> str:
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "n/a"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def render_yaml_header(meta: CardMetadata) -> str:
    """The README's YAML front matter (between `---` lines)."""
    lines = ["---", f"pretty_name: {_q(meta.title)}", f"license: {_q(meta.license)}"]
    if meta.license == "other":
        lines.append(f"license_name: {_q(meta.license_name)}")
        if meta.license_link:
            lines.append(f"license_link: {_q(meta.license_link)}")
    lines += ["language:", *(f"- {_q(x)}" for x in meta.language)]
    lines += ["task_categories:", "- video-classification"]
    lines += ["size_categories:", f"- {_q(size_category(meta.n_items))}"]
    lines += ["tags:", *(f"- {_q(x)}" for x in meta.tags)]
    lines.append("configs:")
    for variant, splits in meta.files.items():
        # Empty splits are left out: `datasets` cannot read a 0-row Parquet file (pyarrow "BatchSize ... 0").
        present = {s: p for s, p in splits.items() if meta.variants.get(variant, {}).get(s, 0) > 0}
        if not present:
            continue
        lines += [f"- config_name: {_q(variant)}", "  data_files:"]
        for split, path in present.items():
            lines += [f"  - split: {_q(split)}", f"    path: {_q(path)}"]
        if variant == "full":
            lines.append("  default: true")
    lines.append("---")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _kv(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in mapping.items()) if mapping else "n/a"


def _filter_settings(meta: CardMetadata) -> dict[str, Any]:
    settings = meta.ingest.get("settings") or {}
    return {
        **{f"filters.{k}": v for k, v in (settings.get("filters") or {}).items()},
        **{f"dedup.{k}": v for k, v in (settings.get("dedup") or {}).items()},
    }


def agreement_summary(meta: CardMetadata) -> list[str]:
    """One sentence per statistic (also used for `rai:dataAnnotationAnalysis`)."""
    a = meta.agreement
    if not a:
        return ["No vote table was given, so agreement was not computed."]
    conf = round(100 * float(a.get("confidence") or 0.95))
    out = [
        f"Krippendorff's alpha (nominal): {fmt(a.get('krippendorff_alpha'))}, {conf}% bootstrap CI "
        f"{fmt_ci(a.get('alpha_ci'))} ({a.get('n_bootstrap')} resamples over items).",
    ]
    if a.get("fleiss_kappa") is not None:
        out.append(f"Fleiss' kappa: {fmt(a['fleiss_kappa'])}, {conf}% CI {fmt_ci(a.get('fleiss_kappa_ci'))}.")
    else:
        out.append(f"Fleiss' kappa: n/a ({a.get('fleiss_kappa_absent_reason')}).")
    out.append(
        f"Mean pairwise Cohen's kappa: {fmt(a.get('cohen_kappa_mean'))} over {a.get('cohen_kappa_pairs')} pairs."
    )
    per_class = a.get("per_class") or {}
    out.append(
        "Per-class alpha (one class against the rest): "
        + "; ".join(f"{c} {fmt(v.get('alpha'))} {fmt_ci(v.get('alpha_ci'))}" for c, v in per_class.items())
        + "."
    )
    return out


def render_readme(meta: CardMetadata, plots: list[str] | None = None) -> str:
    """The README.md: YAML header, then the datasheet with the numbers; `plots` = the PNG names written."""
    plots = list(PLOT_NAMES) if plots is None else plots
    tax = meta.taxonomy
    classes = list(tax.get("classes") or [])
    polarity = tax.get("polarity") or {}
    ann = meta.annotation
    ing = meta.ingest
    a = meta.agreement
    lines = [render_yaml_header(meta), f"# {meta.title}", ""]
    lines += [
        meta.description or f"{meta.title}: short videos labelled with one of {len(classes)} emotion classes.",
        "",
    ]
    lines += [
        f"Version **{meta.version}**, created {meta.created_at or 'n/a'} with the `emotions` toolkit "
        f"{meta.toolkit_version or 'n/a'} (schema {meta.schema_version or 'n/a'}). Homepage: {meta.homepage or 'n/a'}.",
        "",
        "> **Media are not included.** This release holds manifests, labels, checksums and recipes only. "
        "Paths in this card (`data/...`, `plots/...`, `croissant.json`) are relative to the release folder "
        f"(`releases/{meta.version}/`); a copy of this card elsewhere (e.g. `data_cards/`) points there.",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("path/to/release", name="full")  # configs: ' + ", ".join(meta.files),
        "```",
        "",
        "## Motivation",
        "",
        "To study and benchmark emotion recognition on short-form videos, where picture, sound and editing jointly "
        "carry the emotion, with labels whose reliability is measured and documented.",
        "",
        "## Composition",
        "",
        f"Taxonomy **{tax.get('name', 'n/a')}**, one label per video, class index order fixed:",
        "",
        *_table(["index", "class", "polarity"], [[i, c, polarity.get(c, "n/a")] for i, c in enumerate(classes)]),
        "",
        "Rows per variant and split (`full` = every labelled video; `balanced` and `test_oriented` sample it; "
        "empty splits are not listed as configs in the header):",
        "",
    ]
    splits = _ordered(list({s for v in meta.variants.values() for s in v}), SPLIT_ORDER)
    lines += _table(
        ["variant", *splits, "total", "files"],
        [
            [
                v,
                *(meta.variants[v].get(s, 0) for s in splits),
                sum(meta.variants[v].values()),
                ", ".join(f"`{p}`" for p in meta.files.get(v, {}).values()),
            ]
            for v in meta.variants
        ],
    )
    lines += ["", "Class counts per variant and split:", ""]
    lines += _table(
        ["variant/split", *classes],
        [
            [f"{v}/{s}", *(counts.get(c, 0) for c in classes)]
            for v, per in meta.class_counts.items()
            for s, counts in per.items()
        ],
    )
    st = meta.duration_stats
    lines += [
        "",
        f"Durations (full variant): min {fmt(st.get('min'), 1)} s, median {fmt(st.get('median'), 1)} s, "
        f"max {fmt(st.get('max'), 1)} s, total {fmt(st.get('total_hours'), 2)} h. Platforms: {_kv(meta.platforms)}.",
        f"Split settings: {_kv({k: v for k, v in meta.split_settings.items() if k != 'rules'})}. Splits keep "
        "uploader, same-content and near-duplicate groups together (leakage gate). How each variant is sampled "
        "(the paper's own rules are unpublished; these are the toolkit's):",
        "",
        *[f"- `{variant}`: {rule}" for variant, rule in (meta.split_settings.get("rules") or {}).items()],
        "",
        "Columns of every Parquet file: " + ", ".join(f"`{n}` ({t})" for n, t in meta.columns) + ".",
        "",
    ]
    for name, alt in (
        ("class_distribution", "class distribution per split and variant"),
        ("duration_histogram", "duration histogram"),
    ):
        if name in plots:
            lines += [f"![{alt}](plots/{name}.png)", ""]
    lines += ["## Collection and cleaning", ""]
    lines += [
        "Videos were collected by URL from short-video platforms, downloaded with yt-dlp, probed with ffprobe, "
        "filtered, de-duplicated (exact: sha256; near: perceptual fingerprint) and normalised to H.264/AAC.",
        "",
        f"Ingest outcome: {_kv(ing.get('status_counts') or {})}.",
        "",
    ]
    reasons = [[st_, r, n] for st_, per in (ing.get("reason_counts") or {}).items() for r, n in per.items()]
    if reasons:
        lines += [*_table(["status", "reason", "items"], reasons), ""]
    settings = _filter_settings(meta)
    if settings:
        lines += [
            "Filter and duplicate settings:",
            "",
            *_table(["setting", "value"], [[k, v] for k, v in settings.items()]),
            "",
        ]
    lines += [
        "## Annotation process",
        "",
        "Labelled in Label Studio. Annotators were split into groups balanced on work experience, emotional "
        "intelligence score, education, cultural background and leadership; each group labelled its share, a "
        "rotating cross-check had each group's items re-labelled by another group, consistency evaluations led to "
        "personnel adjustments, and an expert resolved ties and disputed items. Annotators appear only under "
        "pseudonymous ids.",
        "",
        f"- Annotators: {ann.get('n_annotators', 'n/a')}; groups: {_kv(ann.get('groups') or {})}",
        f"- Annotations per item (votes -> items): {_kv(ann.get('votes_per_item') or {})}",
        f"- Votes per stage: {_kv(ann.get('stages') or {})}",
        f"- Final label decided by: {_kv(ann.get('decided_by') or {})}",
        "",
        "### Agreement",
        "",
    ]
    if a:
        lines += [
            f"Over {a.get('n_items')} items, {a.get('n_annotators')} annotators and {a.get('n_votes')} counted votes "
            "(expert votes excluded):",
            "",
            *(f"- {s}" for s in agreement_summary(meta)),
            "",
            *_table(
                ["class", "alpha", "CI", "votes"],
                [
                    [c, fmt(v.get("alpha")), fmt_ci(v.get("alpha_ci")), v.get("n_votes")]
                    for c, v in a["per_class"].items()
                ],
            ),
            "",
            *_table(
                ["annotator", "votes", "agreement", "majority agreement", "mean Cohen's kappa"],
                [
                    [
                        k,
                        v.get("n_votes"),
                        fmt(v.get("agreement")),
                        fmt(v.get("majority_agreement")),
                        fmt(v.get("cohen_kappa_mean")),
                    ]
                    for k, v in a["per_annotator"].items()
                ],
            ),
            "",
        ]
    else:
        lines += [agreement_summary(meta)[0], ""]
    for name, alt in (
        ("agreement_per_class", "agreement per class"),
        ("agreement_per_annotator", "agreement per annotator"),
        ("confusion", "annotator vote vs final label"),
    ):
        if name in plots:
            lines += [f"![{alt}](plots/{name}.png)", ""]
    lines += [
        "## Uses",
        "",
        *(f"- {u}" for u in meta.uses),
        "",
        "Out of scope:",
        "",
        *(f"- {u}" for u in meta.out_of_scope),
    ]
    lines += ["", "### Limitations and biases", "", *(f"- {u}" for u in meta.limitations + meta.biases), ""]
    lines += ["### Personal and sensitive information", "", *(f"- {u}" for u in meta.personal_information), ""]
    lines += [
        "## Distribution and licence",
        "",
        f"Licence: `{meta.license}`"
        + (f" ({meta.license_name})" if meta.license == "other" else "")
        + ". "
        + meta.license_terms,
        "",
        "Files: `data/<variant>/<split>.parquet` (above), official split lists under `official/`, this card "
        "(`README.md`, `croissant.json`, `plots/`), and `SHA256SUMS` for every file.",
        "",
        "## Maintenance",
        "",
        meta.maintenance,
        "",
    ]
    if meta.citation:
        lines += ["## Citation", "", "```bibtex", meta.citation.strip(), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- Croissant (pure)

_CR_TYPES = {
    "string": "sc:Text",
    "large_string": "sc:Text",
    "bool": "sc:Boolean",
    "double": "sc:Float",
    "float": "sc:Float",
}


def _cr_type(arrow_type: str) -> str:
    if arrow_type in _CR_TYPES:
        return _CR_TYPES[arrow_type]
    if re.fullmatch(r"u?int\d+", arrow_type):
        return "sc:Integer"
    if arrow_type.startswith("timestamp"):
        return "sc:DateTime"
    return "sc:Text"


def _is_nested(arrow_type: str) -> bool:
    return arrow_type.startswith(("list", "large_list", "struct", "map"))


def croissant_jsonld(meta: CardMetadata) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD with the RAI fields: one FileObject per Parquet file and one RecordSet per
    variant/split whose fields are the flat Parquet columns (nested ones, i.e. `votes`, are named in the
    RecordSet's description: mlcroissant 1.x cannot read nested Parquet values into fields)."""
    ann = meta.annotation
    distribution = [
        {
            "@type": "cr:FileObject",
            "@id": path,
            "name": path,
            "description": f"{variant} variant, {split} split ({meta.variants[variant][split]} rows).",
            "contentUrl": path,
            "contentSize": f"{meta.file_bytes.get(path, 0)} B",
            "encodingFormat": "application/x-parquet",
            "sha256": meta.file_sha256.get(path, ""),
        }
        for variant, splits in meta.files.items()
        for split, path in splits.items()
    ]
    flat = [(n, t) for n, t in meta.columns if not _is_nested(t)]
    nested = [n for n, t in meta.columns if _is_nested(t)]
    note = (
        f" The Parquet file also holds {', '.join(f'`{n}`' for n in nested)} (nested lists/structs, e.g. the "
        "item's counted votes as {annotator_id, stage, label}), which Croissant 1.0 cannot describe from "
        "Parquet; read it with pyarrow, pandas or Hugging Face datasets."
        if nested
        else ""
    )
    record_sets = []
    for variant, splits in meta.files.items():
        for split, path in splits.items():
            rs_id = f"{variant}/{split}"
            record_sets.append(
                {
                    "@type": "cr:RecordSet",
                    "@id": rs_id,
                    "name": rs_id,
                    "description": f"One record per video of the {variant} variant, {split} split.{note}",
                    "key": {"@id": f"{rs_id}/video_id"},
                    "field": [
                        {
                            "@type": "cr:Field",
                            "@id": f"{rs_id}/{name}",
                            "name": name,
                            "description": f"Column `{name}` ({arrow_type}).",
                            "dataType": _cr_type(arrow_type),
                            "source": {"fileObject": {"@id": path}, "extract": {"column": name}},
                        }
                        for name, arrow_type in flat
                    ],
                }
            )
    groups = ann.get("groups") or {}
    jsonld: dict[str, Any] = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": meta.name,
        "alternateName": meta.title,
        "description": meta.description or meta.title,
        "conformsTo": CROISSANT_CONFORMS_TO,
        "version": meta.version,
        "datePublished": meta.created_at[:10] if meta.created_at else None,
        "license": meta.license_link or f"{meta.license} ({meta.license_name}): {meta.license_terms}",
        "url": meta.homepage or None,
        "citeAs": meta.citation or None,
        "keywords": meta.tags,
        "inLanguage": meta.language,
        "isAccessibleForFree": True,
        "distribution": distribution,
        "recordSet": record_sets,
        "rai:dataCollection": (
            "Short videos collected by URL from short-video platforms, downloaded with yt-dlp, probed, filtered "
            f"and de-duplicated. Ingest outcome: {_kv(meta.ingest.get('status_counts') or {})}; "
            f"filter settings: {_kv(_filter_settings(meta))}."
        ),
        "rai:dataCollectionType": ["Web Scraping", "Manual Human Curation"],
        "rai:dataCollectionRawData": "Public short videos from Douyin, Kuaishou and TikTok (not redistributed).",
        "rai:dataPreprocessingProtocol": [
            "Filters on duration, resolution, audio and decodability; exact (sha256) and near (perceptual "
            "fingerprint) duplicate removal; normalisation to H.264/AAC constant frame rate.",
        ],
        "rai:dataAnnotationProtocol": [
            "Groups balanced on annotator attributes label their share in Label Studio; a rotating cross-check has "
            "each group's items re-labelled by another group; consistency evaluation and personnel adjustment; "
            "multi-stage labelling; an expert resolves ties and disputed items. Final label by majority vote "
            f"(ties to the expert). Votes per stage: {_kv(ann.get('stages') or {})}; decided by: "
            f"{_kv(ann.get('decided_by') or {})}.",
        ],
        "rai:dataAnnotationPlatform": ["Label Studio (open-source edition)"],
        "rai:dataAnnotationAnalysis": agreement_summary(meta),
        "rai:annotationsPerItem": f"Votes per item -> items: {_kv(ann.get('votes_per_item') or {})}.",
        "rai:annotatorDemographics": [
            f"{ann.get('n_annotators', 'n/a')} annotators in {len(groups)} groups ({_kv(groups)}), balanced on work "
            "experience, emotional-intelligence test score, education, cultural background and leadership; only "
            "aggregate attributes are reported, annotators are identified by pseudonymous ids only."
        ],
        "rai:dataUseCases": meta.uses,
        "rai:dataLimitations": meta.limitations,
        "rai:dataBiases": meta.biases,
        "rai:personalSensitiveInformation": meta.personal_information,
        "rai:dataReleaseMaintenancePlan": meta.maintenance,
    }
    return {k: v for k, v in jsonld.items() if v is not None}


# ---------------------------------------------------------------- plots (pure: bytes out)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _figure(figsize: tuple[float, float]) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a Figure without pyplot: no global state, thread-safe

    return Figure(figsize=figsize)


def confusion_png(
    counts: list[list[int]] | np.ndarray, classes: list[str], *, xlabel: str = "predicted", ylabel: str = "true"
) -> bytes:
    """A confusion matrix as a PNG: cells coloured by share of their row, labelled with counts."""
    matrix = np.array(counts, dtype=float)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = _figure((5.5, 4.5))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, int(count), ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label="share of row")
    return _png(fig)


def render_plots(meta: CardMetadata) -> dict[str, bytes]:
    """PNG bytes per plot name; plots without data (e.g. agreement without votes) are left out."""
    classes = list(meta.taxonomy.get("classes") or [])
    out: dict[str, bytes] = {}
    if meta.class_counts and classes:
        n = len(meta.class_counts)
        fig = _figure((5 * n, 3.5))
        axes = fig.subplots(1, n, squeeze=False)[0]
        x = np.arange(len(classes))
        for ax, (variant, per) in zip(axes, meta.class_counts.items(), strict=True):
            width = 0.8 / max(1, len(per))
            for i, (split, counts) in enumerate(per.items()):
                ax.bar(x + i * width, [counts.get(c, 0) for c in classes], width, label=split)
            ax.set_xticks(x + 0.4 - width / 2, classes, rotation=45, ha="right")
            ax.set_title(variant)
            ax.legend()
        axes[0].set_ylabel("videos")
        out["class_distribution"] = _png(fig)
    if meta.duration_hist:
        fig = _figure((6, 3.5))
        ax = fig.subplots()
        edges, counts = meta.duration_hist["edges"], meta.duration_hist["counts"]
        ax.stairs(counts, edges, fill=True)
        ax.set_xlabel("duration (s)")
        ax.set_ylabel("videos")
        ax.set_title("Duration (full variant)")
        out["duration_histogram"] = _png(fig)
    a = meta.agreement
    if a and a.get("per_class"):
        fig = _figure((6, 3.5))
        ax = fig.subplots()
        names = list(a["per_class"])
        values = np.array([a["per_class"][c]["alpha"] or np.nan for c in names], dtype=float)
        cis = [a["per_class"][c].get("alpha_ci") for c in names]
        low = np.array([v - ci[0] if ci else 0.0 for v, ci in zip(values, cis, strict=True)])
        high = np.array([ci[1] - v if ci else 0.0 for v, ci in zip(values, cis, strict=True)])
        ax.bar(names, values, yerr=np.clip(np.nan_to_num(np.vstack([low, high])), 0, None), capsize=4)
        if a.get("krippendorff_alpha") is not None:
            ax.axhline(a["krippendorff_alpha"], color="k", linestyle="--", label="overall alpha")
            ax.legend()
        ax.set_ylabel("Krippendorff's alpha")
        ax.tick_params(axis="x", rotation=45)
        out["agreement_per_class"] = _png(fig)
    if a and a.get("per_annotator"):
        fig = _figure((max(5, 0.6 * len(a["per_annotator"])), 3.5))
        ax = fig.subplots()
        ids = list(a["per_annotator"])
        x = np.arange(len(ids))
        for i, key in enumerate(("agreement", "majority_agreement")):
            values = [a["per_annotator"][k].get(key) for k in ids]
            ax.bar(x + i * 0.4, [np.nan if v is None else v for v in values], 0.4, label=key.replace("_", " "))
        ax.set_xticks(x + 0.2, ids, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("share")
        ax.legend()
        out["agreement_per_annotator"] = _png(fig)
    if meta.confusion and classes:
        out["confusion"] = confusion_png(meta.confusion, classes, xlabel="final label", ylabel="annotator vote")
    return out


# ---------------------------------------------------------------- writing


def card_files(meta: CardMetadata) -> dict[str, bytes]:
    """Every file of the card, relative path -> bytes. Refuses anything that looks like an e-mail address."""
    plots = render_plots(meta)
    files = {
        "README.md": render_readme(meta, list(plots)).encode(),
        "croissant.json": (json.dumps(croissant_jsonld(meta), indent=2, ensure_ascii=False) + "\n").encode(),
        **{f"plots/{name}.png": data for name, data in plots.items()},
    }
    for name in ("README.md", "croissant.json"):
        found = EMAIL.search(files[name].decode())
        if found:
            raise ValueError(f"dataset card {name} would contain an e-mail address ({found.group(0)!r})")
    return files


def write_card(meta: CardMetadata, release_dir: Path, out_dirs: list[Path]) -> list[Path]:
    """Write README.md, croissant.json and plots/*.png into the release folder and copy them into each of
    `out_dirs` (e.g. data_cards/<name>-<version>/); atomic writes. Returns every path written."""
    files = card_files(meta)
    written = []
    for folder in [Path(release_dir), *map(Path, out_dirs)]:
        for rel, data in files.items():
            write_bytes_atomic(folder / rel, data)
            written.append(folder / rel)
    return written


def card_writer(layout: DatasetLayout) -> Callable[[Path, pd.DataFrame | None], list[Path]]:
    """The card step `write_release` calls on its temporary folder: metadata from the release, the given
    counted votes and the labels step's agreement report (`manifests/agreement.json`, when written), then the
    card in the release and in `data_cards/<name>-<version>/`."""

    def write(release_dir: Path, votes: pd.DataFrame | None) -> list[Path]:
        report = layout.agreement_report
        agreement = json.loads(report.read_text()) if report.exists() else None
        meta = build_metadata(release_dir, votes, agreement=agreement)
        return write_card(meta, release_dir, [layout.data_card(meta.name, meta.version)])

    return write


def metadata_dict(meta: CardMetadata) -> dict[str, Any]:
    """The metadata as plain JSON-ready data."""
    return asdict(meta)


# ---------------------------------------------------------------- baseline validation (pure)

BASELINE_BEGIN = "<!-- baseline-validation: written by `emotions evaluate` -->"
BASELINE_END = "<!-- /baseline-validation -->"


def render_baseline_section(results: dict[str, dict[str, Any]]) -> str:
    """The card's "Baseline validation" section from `metrics.json` of each evaluated variant."""
    lines = [BASELINE_BEGIN, "## Baseline validation", ""]
    lines += [
        "The release was checked by training the bundled AV-CANet baseline (AV-CPNet in the paper's first version) "
        "on each variant's train split, choosing the checkpoint on val, and evaluating it once on test "
        "(centre sampling). Files: `baseline/<variant>/metrics.json`, `confusion.csv`, `confusion.png`.",
        "",
    ]
    header = ["variant", "config", "epoch", "val acc", "test acc (WAR)", "UAR", "weighted F1", "polarity acc",
              "audio head", "visual head", "n"]  # fmt: skip
    rows = []
    for variant, m in results.items():
        run = m.get("run", {})
        epoch = f"{run.get('epoch')}/{run.get('epochs')}"
        rows.append([variant, run.get("config"), epoch, fmt(run.get("val_accuracy")), fmt(m.get("accuracy")),
                     fmt(m.get("uar")), fmt(m.get("weighted_f1")),
                     fmt(m.get("polarity_accuracy")), fmt(m.get("audio_accuracy")), fmt(m.get("visual_accuracy")),
                     m.get("n")])  # fmt: skip
    lines += _table(header, rows)
    for variant, m in results.items():
        per_class = m.get("per_class_accuracy") or {}
        if per_class:
            accuracies = ", ".join(f"{c} {fmt(v)}" for c, v in per_class.items())
            lines += ["", f"Per-class test accuracy ({variant}): {accuracies}", "",
                      f"![confusion matrix, {variant}](baseline/{variant}/confusion.png)"]  # fmt: skip
    lines += ["", "Reproduce: `emotions train RELEASE --variant V --config C` then "
              "`emotions evaluate RUN/best.pt RELEASE --split test`.", BASELINE_END]  # fmt: skip
    return "\n".join(lines) + "\n"


def with_baseline_section(readme: str, section: str) -> str:
    """`readme` with its baseline section replaced, or inserted before the licence section (or at the end)."""
    if BASELINE_BEGIN in readme and BASELINE_END in readme:
        head, _, rest = readme.partition(BASELINE_BEGIN)
        _, _, tail = rest.partition(BASELINE_END)
        return head + section.rstrip("\n") + tail
    anchor = "## Distribution and licence"
    if anchor in readme:
        head, _, tail = readme.partition(anchor)
        return head + section + "\n" + anchor + tail
    return readme.rstrip("\n") + "\n\n" + section
