"""The dataset card, through the real libraries: mlcroissant validates and reads the Croissant file,
Hugging Face `datasets` loads every config and split offline through the README's YAML."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from annotation.agreement import agreement_report
from emotions_data.card import build_metadata, card_files, write_card
from emotions_data.card.plots import PLOT_NAMES
from emotions_data.card.text import fmt, fmt_ci, statistic_sentence
from emotions_data.taxonomy import EMOTIONS6

VARIANTS = {
    "full": {"train": 36, "val": 12, "test": 12},
    "balanced": {"train": 12, "val": 6, "test": 6},
    "test_oriented": {"train": 30, "val": 0, "test": 12},
}  # fmt: skip  (an empty split, as a release can have)
ANNOTATORS = [f"A{i:02d}" for i in range(1, 7)]
CITATION = "@misc{emotions-demo, title={eMotions demo}, year={2026}}"

RELEASE_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("label", pa.string()),
        ("label_index", pa.int32()),
        ("polarity", pa.string()),
        ("source", pa.string()),
        ("platform", pa.string()),
        ("sha256", pa.string()),
        ("media_sha256", pa.string()),
        ("duration_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fps", pa.float64()),
        ("confidence", pa.float64()),
        ("decided_by", pa.string()),
        ("n_votes", pa.int32()),
        ("agreement", pa.float64()),
        (
            "votes",
            pa.list_(pa.struct([("annotator_id", pa.string()), ("stage", pa.string()), ("label", pa.string())])),
        ),
    ]
)


def _make_release(root: Path) -> tuple[Path, pd.DataFrame]:
    """A release folder as docs/reference/release-format.md describes it, and its counted vote table."""
    rng = np.random.default_rng(7)
    classes = list(EMOTIONS6.classes)
    n = sum(VARIANTS["full"].values())
    ids = [f"v{i:03d}" for i in range(n)]
    truth = [classes[i % len(classes)] for i in range(n)]
    votes = []
    for i, (vid, label) in enumerate(zip(ids, truth, strict=True)):
        group = ANNOTATORS[:3] if i % 2 == 0 else ANNOTATORS[3:]
        for annotator in group:
            vote = label if rng.random() < 0.75 else classes[rng.integers(len(classes))]
            votes.append({"video_id": vid, "annotator_id": annotator, "label": vote, "stage": "label"})
        if i % 10 == 0:
            votes.append({"video_id": vid, "annotator_id": "E01", "label": label, "stage": "expert"})
    votes_df = pd.DataFrame(votes)
    rows = {}
    for i, vid in enumerate(ids):
        mine = votes_df[votes_df["video_id"] == vid]
        rows[vid] = {
            "video_id": vid,
            "label": truth[i],
            "label_index": classes.index(truth[i]),
            "polarity": EMOTIONS6.polarity[truth[i]],
            "source": f"https://demo-corpus.invalid/{vid}.mp4",
            "platform": ["douyin", "kuaishou", "tiktok"][i % 3],
            "sha256": f"{i:064x}",
            "media_sha256": f"{i + 1000:064x}",
            "duration_s": float(rng.uniform(2, 60)),
            "width": 720,
            "height": 1280,
            "fps": 30.0,
            "confidence": 1.0,
            "decided_by": "majority",
            "n_votes": 3,
            "agreement": 0.5,
            "votes": mine[["annotator_id", "stage", "label"]].to_dict("records"),
        }
    release = root / "releases" / "1.0.0"
    files = []
    order = {"full": ids, "balanced": ids, "test_oriented": ids[::-1]}
    for variant, splits in VARIANTS.items():
        offset = 0
        for split, k in splits.items():
            # balanced takes the first rows of each full split; the others are consecutive slices
            start = (
                sum(list(VARIANTS["full"].values())[: list(splits).index(split)]) if variant == "balanced" else offset
            )
            chosen = order[variant][start : start + k]
            offset += k
            path = release / "data" / variant / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist([rows[v] for v in chosen], schema=RELEASE_SCHEMA), path)
            files.append(path.relative_to(release).as_posix())
    info = {
        "name": "emotions-demo",
        "version": "1.0.0",
        "created_at": "2026-01-02T03:04:05Z",
        "toolkit_version": "0.1.0",
        "schema_version": "1.0",
        "license": "other",
        "taxonomy": {"name": EMOTIONS6.name, "classes": classes, "polarity": EMOTIONS6.polarity},
        "variants": VARIANTS,
        "split_settings": {"seed": 0, "ratios": [0.8, 0.1, 0.1]},
        "ingest": {
            "status_counts": {"ok": 60, "rejected": 5, "failed": 2},
            "reason_counts": {"rejected": {"too_short": 2, "duplicate": 3}, "failed": {"download_error": 2}},
            "settings": {
                "filters": {"min_duration_s": 1.0, "max_duration_s": 300.0},
                "dedup": {"near_duplicate_threshold": 0.3},
            },
        },
        "annotation": {
            "n_annotators": 6,
            "groups": {"A": 3, "B": 3},
            "votes_per_item": {"3": 60},
            "stages": {"label": 180, "expert": 6},
            "decided_by": {"majority": 54, "expert": 6},
        },
        "files": files,
    }  # fmt: skip
    (release / "release.json").write_text(json.dumps(info, indent=2))
    return release, votes_df


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    root = tmp_path_factory.mktemp("card")
    release, votes = _make_release(root)
    # Contact columns that must never reach the card (the toolkit's vote table has none; a careless caller might).
    leaky = votes.assign(email=votes["annotator_id"] + "@example.org", name="Alice Example")
    crowd = votes[votes["stage"] != "expert"]
    agreement = agreement_report(crowd, list(EMOTIONS6.classes), n_bootstrap=200, seed=0).to_dict()
    meta = build_metadata(release, leaky, agreement=agreement, citation=CITATION)
    copy = root / "data_cards" / "emotions-demo-1.0.0"
    written = write_card(meta, release, [copy])
    return meta, release, copy, votes, written


def _front_matter(readme: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    assert match, "README has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_croissant_validates_and_reads(card):
    _, release, *_ = card
    path = release / "croissant.json"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("mlcroissant")), "validate", "--jsonld", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=path)
    assert not dataset.metadata.ctx.issues.errors and not dataset.metadata.ctx.issues.warnings
    data = json.loads(path.read_text())
    for key in ("rai:dataCollection", "rai:dataAnnotationPlatform", "rai:annotatorDemographics",
                "rai:dataAnnotationAnalysis", "rai:dataReleaseMaintenancePlan"):  # fmt: skip
        assert data[key]
    assert dataset.metadata.data_annotation_platform == ["Label Studio (open-source edition)"]
    records = list(dataset.records("balanced/val"))
    assert len(records) == VARIANTS["balanced"]["val"]
    assert {r["balanced/val/label"].decode() for r in records} <= set(EMOTIONS6.classes)


def test_croissant_describes_the_votes_as_a_repeated_field_whose_records_load(card):
    _, release, _, votes, _ = card
    import mlcroissant as mlc

    data = json.loads((release / "croissant.json").read_text())
    record_set = next(r for r in data["recordSet"] if r["@id"] == "balanced/val")
    (field,) = [f for f in record_set["field"] if f["name"] == "votes"]
    assert field["repeated"] is True and [s["name"] for s in field["subField"]] == ["annotator_id", "stage", "label"]
    assert "votes" not in record_set["description"], "nothing is left out, so nothing is said to be"
    records = list(mlc.Dataset(jsonld=release / "croissant.json").records("balanced/val"))
    by_item = votes.groupby("video_id")
    for record in records:
        vid = record["balanced/val/video_id"].decode()
        carried = [(v["balanced/val/votes/annotator_id"].decode(), v["balanced/val/votes/stage"].decode(),
                    v["balanced/val/votes/label"].decode()) for v in record["balanced/val/votes"]]  # fmt: skip
        expected = by_item.get_group(vid)[["annotator_id", "stage", "label"]].itertuples(index=False, name=None)
        assert carried == list(expected)


def test_hf_datasets_loads_every_config_offline(card, tmp_path, monkeypatch):
    _, release, *_ = card
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)  # in case it was imported before
    datasets.disable_progress_bars()
    for variant, splits in VARIANTS.items():
        loaded = datasets.load_dataset(str(release), name=variant, cache_dir=str(tmp_path / "cache"))
        assert {s: loaded[s].num_rows for s in loaded} == {s: n for s, n in splits.items() if n}
        assert "votes" in loaded["train"].column_names


def test_readme_yaml_lists_every_variant_and_split(card):
    _, release, copy, *_ = card
    readme = (release / "README.md").read_text()
    header = _front_matter(readme)
    assert header["task_categories"] == ["video-classification"]
    assert header["license"] == "other" and header["pretty_name"] and header["size_categories"] == ["n<1K"]
    configs = {c["config_name"]: c for c in header["configs"]}
    assert set(configs) == set(VARIANTS)
    assert configs["full"].get("default") is True
    for variant, splits in VARIANTS.items():
        files = {f["split"]: f["path"] for f in configs[variant]["data_files"]}
        assert files == {s: f"data/{variant}/{s}.parquet" for s, n in splits.items() if n}
    for section in ("## Motivation", "## Composition", "## Collection and cleaning", "## Annotation process",
                    "### Agreement", "## Uses", "## Distribution and licence", "## Maintenance"):  # fmt: skip
        assert section in readme
    assert "too_short | 2" in readme and "min_duration_s | 1.0" in readme
    assert (copy / "README.md").read_text() == readme  # the copy is the same card, pointing at the release folder


def test_plots_are_pngs_and_embedded(card):
    _, release, copy, *_ = card
    import matplotlib.image

    readme = (release / "README.md").read_text()
    for name in PLOT_NAMES:
        for folder in (release, copy):
            path = folder / "plots" / f"{name}.png"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert matplotlib.image.imread(path).shape[0] > 50
        assert f"](plots/{name}.png)" in readme


def test_no_identities_or_emails(card):
    written = card[4]
    allowed = set(ANNOTATORS) | {"E01"}
    for path in written:
        if path.suffix in {".md", ".json"}:
            text = path.read_text()
            assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)
            assert "annotators.invalid" not in text and "Alice" not in text and "example.org" not in text
            found = set(re.findall(r"\b[A-Z]\d{2}\b", text))
            assert found <= allowed


def test_agreement_numbers_match_report(card):
    meta, release, _, votes, _ = card
    report = agreement_report(votes[votes["stage"] != "expert"], list(EMOTIONS6.classes), n_bootstrap=200, seed=0)
    readme = (release / "README.md").read_text()
    assert meta.agreement == report.to_dict()
    assert f"Krippendorff's alpha (nominal): {fmt(report.krippendorff_alpha)}" in readme
    assert fmt_ci(report.alpha_ci) in readme
    assert f"Fleiss' kappa: {fmt(report.fleiss_kappa)}, 95% CI {fmt_ci(report.fleiss_kappa_ci)}" in readme
    assert f"Mean pairwise Cohen's kappa: {fmt(report.cohen_kappa_mean)}" in readme
    for name, row in report.per_class.items():
        assert f"| {name} | {fmt(row['alpha'])} | {fmt_ci(row['alpha_ci'])} |" in readme
    for name, row in report.per_annotator.items():
        assert f"| {name} | {row['n_votes']} | {fmt(row['agreement'])} |" in readme
    croissant = json.loads((release / "croissant.json").read_text())
    assert any(fmt(report.krippendorff_alpha) in s for s in croissant["rai:dataAnnotationAnalysis"])


def test_every_listed_statistic_is_in_the_card(card):
    meta, release, *_ = card
    readme = (release / "README.md").read_text()
    croissant = json.loads((release / "croissant.json").read_text())
    assert {s["key"] for s in meta.agreement["statistics"]} >= {"krippendorff_alpha", "gwet_ac1"}
    for statistic in meta.agreement["statistics"]:
        assert f"- {statistic_sentence(statistic, 0.95)}" in readme
        assert statistic_sentence(statistic, 0.95) in croissant["rai:dataAnnotationAnalysis"]


def test_card_refuses_email_addresses(card):
    meta = dataclasses.replace(card[0], description="Contact annotator jane.doe@example.org for details.")
    with pytest.raises(ValueError, match="e-mail"):
        card_files(meta)
