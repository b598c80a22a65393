"""The card's README.md (pure): a Hugging Face YAML header (configs per variant and split), then a datasheet, one
function per section, every number from `CardMetadata`."""

from __future__ import annotations

import json

from emotions_data.card.metadata import CardMetadata, in_card_order
from emotions_data.card.plots import PLOT_NAMES
from emotions_data.card.text import agreement_summary, filter_settings, fmt, fmt_ci, key_values, markdown_table
from emotions_data.schema import Split, Variant


def size_category(n: int) -> str:
    """Hugging Face `size_categories` bucket."""
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


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
        if variant == Variant.FULL:
            lines.append("  default: true")
    lines += _dataset_info(meta)
    lines.append("---")
    return "\n".join(lines) + "\n"


def _feature_lines(feature: dict, indent: str) -> list[str]:
    """One feature of `CardMetadata.features` as a YAML list item (`datasets`' YAML form of `Features`)."""
    lines = [f"{indent}- name: {_q(feature['name'])}"]
    if "list" in feature:
        lines.append(f"{indent}  list:")
        for inner in feature["list"]:
            lines += _feature_lines(inner, indent + "  ")
    elif isinstance(feature["dtype"], dict):
        names = feature["dtype"]["class_label"]["names"]
        lines += [f"{indent}  dtype:", f"{indent}    class_label:", f"{indent}      names:"]
        lines += [f"{indent}        {_q(key)}: {_q(name)}" for key, name in names.items()]
    else:
        lines.append(f"{indent}  dtype: {_q(feature['dtype'])}")
    return lines


def _dataset_info(meta: CardMetadata) -> list[str]:
    """`dataset_info` per config: the columns' features, `label` a ClassLabel of the taxonomy's classes."""
    if not meta.features:
        return []
    lines = ["dataset_info:"]
    for variant, splits in meta.files.items():
        if not any(meta.variants.get(variant, {}).get(s, 0) > 0 for s in splits):
            continue  # no config either (`render_yaml_header`)
        lines += [f"- config_name: {_q(variant)}", "  features:"]
        for feature in meta.features:
            lines += _feature_lines(feature, "  ")
    return lines


def _plot_links(plots: list[str], wanted: tuple[tuple[str, str], ...]) -> list[str]:
    """An image line per (plot name, alt text) of `wanted` that was written."""
    lines: list[str] = []
    for name, alt in wanted:
        if name in plots:
            lines += [f"![{alt}](plots/{name}.png)", ""]
    return lines


def _introduction(meta: CardMetadata) -> list[str]:
    classes = list(meta.taxonomy.get("classes") or [])
    return [
        f"# {meta.title}",
        "",
        meta.description or f"{meta.title}: short videos labelled with one of {len(classes)} emotion classes.",
        "",
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
    ]


def _motivation() -> list[str]:
    return [
        "## Motivation",
        "",
        "To study and benchmark emotion recognition on short-form videos, where picture, sound and editing jointly "
        "carry the emotion, with labels whose reliability is measured and documented.",
        "",
    ]


def _composition(meta: CardMetadata) -> list[str]:
    """Taxonomy, rows per variant and split, class counts."""
    classes = list(meta.taxonomy.get("classes") or [])
    polarity = meta.taxonomy.get("polarity") or {}
    splits = in_card_order(list({s for v in meta.variants.values() for s in v}), list(Split))
    return [
        "## Composition",
        "",
        f"Taxonomy **{meta.taxonomy.get('name', 'n/a')}**, one label per video, class index order fixed:",
        "",
        *markdown_table(
            ["index", "class", "polarity"], [[i, c, polarity.get(c, "n/a")] for i, c in enumerate(classes)]
        ),
        "",
        "Rows per variant and split (`full` = every labelled video; `balanced` and `test_oriented` sample it; "
        "empty splits are not listed as configs in the header):",
        "",
        *markdown_table(
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
        ),
        "",
        "Class counts per variant and split:",
        "",
        *markdown_table(
            ["variant/split", *classes],
            [
                [f"{v}/{s}", *(counts.get(c, 0) for c in classes)]
                for v, per in meta.class_counts.items()
                for s, counts in per.items()
            ],
        ),
    ]


def _durations_and_sampling(meta: CardMetadata, plots: list[str]) -> list[str]:
    """Durations, platforms, how the splits and variants were made, the Parquet columns and their plots."""
    st = meta.duration_stats
    return [
        "",
        f"Durations (full variant): min {fmt(st.get('min'), 1)} s, median {fmt(st.get('median'), 1)} s, "
        f"max {fmt(st.get('max'), 1)} s, total {fmt(st.get('total_hours'), 2)} h. "
        f"Platforms: {key_values(meta.platforms)}.",
        f"Split settings: {key_values({k: v for k, v in meta.split_settings.items() if k != 'rules'})}. Splits keep "
        "uploader, same-content and near-duplicate groups together (leakage gate). How each variant is sampled "
        "(the paper's own rules are unpublished; these are the toolkit's):",
        "",
        *[f"- `{variant}`: {rule}" for variant, rule in (meta.split_settings.get("rules") or {}).items()],
        "",
        "Columns of every Parquet file: " + ", ".join(f"`{n}` ({t})" for n, t in meta.columns) + ".",
        "",
        *_plot_links(
            plots,
            (
                ("class_distribution", "class distribution per split and variant"),
                ("duration_histogram", "duration histogram"),
            ),
        ),
    ]


def _collection(meta: CardMetadata) -> list[str]:
    """How the videos were collected and cleaned, with the ingest outcome and settings."""
    ing = meta.ingest
    lines = [
        "## Collection and cleaning",
        "",
        "Videos were collected by URL from short-video platforms, downloaded with yt-dlp, probed with ffprobe, "
        "filtered, de-duplicated (exact: sha256; near: perceptual fingerprint) and normalised to H.264/AAC.",
        "",
        f"Ingest outcome: {key_values(ing.get('status_counts') or {})}.",
        "",
    ]
    reasons = [[st_, r, n] for st_, per in (ing.get("reason_counts") or {}).items() for r, n in per.items()]
    if reasons:
        lines += [*markdown_table(["status", "reason", "items"], reasons), ""]
    settings = filter_settings(meta)
    if settings:
        lines += [
            "Filter and duplicate settings:",
            "",
            *markdown_table(["setting", "value"], [[k, v] for k, v in settings.items()]),
            "",
        ]
    return lines


def _annotation(meta: CardMetadata) -> list[str]:
    """The annotation process and its counts (agreement follows in its own subsection)."""
    ann = meta.annotation
    return [
        "## Annotation process",
        "",
        "Labelled in Label Studio. Annotators were split into groups balanced on work experience, emotional "
        "intelligence score, education, cultural background and leadership; each group labelled its share, a "
        "rotating cross-check had each group's items re-labelled by another group, consistency evaluations led to "
        "personnel adjustments, and an expert resolved ties and disputed items. Annotators appear only under "
        "pseudonymous ids.",
        "",
        f"- Annotators: {ann.get('n_annotators', 'n/a')}; groups: {key_values(ann.get('groups') or {})}",
        f"- Annotations per item (votes -> items): {key_values(ann.get('votes_per_item') or {})}",
        f"- Votes per stage: {key_values(ann.get('stages') or {})}",
        f"- Final label decided by: {key_values(ann.get('decided_by') or {})}",
        "",
    ]


def _agreement(meta: CardMetadata, plots: list[str]) -> list[str]:
    """Agreement statistics, per class and per annotator, and their plots; one sentence when not computed."""
    a = meta.agreement
    lines = ["### Agreement", ""]
    if a:
        lines += [
            f"Over {a.get('n_items')} items, {a.get('n_annotators')} annotators and {a.get('n_votes')} counted votes "
            "(expert votes excluded):",
            "",
            *(f"- {s}" for s in agreement_summary(meta)),
            "",
            *markdown_table(
                ["class", "alpha", "CI", "votes"],
                [
                    [c, fmt(v.get("alpha")), fmt_ci(v.get("alpha_ci")), v.get("n_votes")]
                    for c, v in a["per_class"].items()
                ],
            ),
            "",
            *markdown_table(
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
    return lines + _plot_links(
        plots,
        (
            ("agreement_per_class", "agreement per class"),
            ("agreement_per_annotator", "agreement per annotator"),
            ("confusion", "annotator vote vs final label"),
        ),
    )


def _uses(meta: CardMetadata) -> list[str]:
    """Intended uses, out-of-scope uses, limitations and biases, personal information."""
    return [
        "## Uses",
        "",
        *(f"- {u}" for u in meta.uses),
        "",
        "Out of scope:",
        "",
        *(f"- {u}" for u in meta.out_of_scope),
        "",
        "### Limitations and biases",
        "",
        *(f"- {u}" for u in meta.limitations + meta.biases),
        "",
        "### Personal and sensitive information",
        "",
        *(f"- {u}" for u in meta.personal_information),
        "",
    ]


def _distribution(meta: CardMetadata) -> list[str]:
    """Licence, the release's files, maintenance and (when given) the citation."""
    lines = [
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
    return lines


def render_readme(meta: CardMetadata, plots: list[str] | None = None) -> str:
    """The README.md: YAML header, then the datasheet with the numbers; `plots` = the PNG names written (default:
    every plot of `PLOT_NAMES`), each embedded in its section."""
    plots = list(PLOT_NAMES) if plots is None else plots
    lines = [
        render_yaml_header(meta),
        *_introduction(meta),
        *_motivation(),
        *_composition(meta),
        *_durations_and_sampling(meta, plots),
        *_collection(meta),
        *_annotation(meta),
        *_agreement(meta, plots),
        *_uses(meta),
        *_distribution(meta),
    ]
    return "\n".join(lines)
