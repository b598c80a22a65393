"""Suspect labels: group-aware folds over the labelled items, and confident learning over out-of-fold probabilities.

The model side (training one baseline per fold) lives in `baselines.crossval`; this module is the pure part: which
items go in which fold (`group_folds`), which final labels a model disputes (`find_suspects`), the suspects table
(`SUSPECTS_SCHEMA`, `manifests/suspects.parquet`) and the requests that send suspects to the expert stage
(`request_expert_review`, `manifests/expert_requests.parquet`). A label is never changed here: the expert decides.

Method: confident learning (Northcutt, Jiang and Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 70, 2021). Per-class threshold t_j = the mean self-confidence p_j(x) over the items labelled j (eq. 2);
an item counts towards the confident joint C[given, j*] with j* = argmax of p_j(x) over the classes j with
p_j(x) >= t_j (eq. 1). The suspects are chosen by prune by noise rate (the paper's section 3.2; cleanlab's default
`filter_by`), or, on request, are the items off the confident joint's diagonal (the paper's C_{ỹ,y*}); either way
they are ranked by normalised margin p_given - max_{j≠given} p_j, lowest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.layout import DatasetLayout
from emotions_data.schema import NEEDS_EXPERT_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY
from emotions_data.split_step import split_items, with_near_duplicate_edges
from emotions_data.storage import write_bytes_atomic, write_table_atomic
from emotions_data.stratified_split import assign_splits, connected_groups, grouping_links

#: The method `find_suspects` implements, as the card and the report name it.
METHOD = "confident learning, prune by noise rate (Northcutt et al., JAIR 2021); ranked by normalised margin"
#: Why an item goes back to the expert stage when the model disputes it.
DISPUTE_REASON = "the model disputes the label"

#: `manifests/suspects.parquet`: one row per item whose final label the out-of-fold model disputes, in rank order.
SUSPECTS_SCHEMA = pa.schema(
    [
        pa.field("rank", pa.int32(), nullable=False),  # 1 = most suspect (lowest normalised margin)
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # the final label
        pa.field("suggested", pa.string(), nullable=False),  # the class confident learning puts it in
        pa.field("self_confidence", pa.float64(), nullable=False),  # out-of-fold p of the final label
        pa.field("suggested_p", pa.float64(), nullable=False),
        pa.field("margin", pa.float64(), nullable=False),  # p(label) - max p(other class); negative = disputed
        pa.field("fold", pa.int32(), nullable=False),  # the fold whose model (never trained on it) scored it
        pa.field("votes", pa.string()),  # counted votes, e.g. "Fear:2, Tension:1"
        pa.field("agreement", pa.float64()),
        pa.field("decided_by", pa.string()),
        pa.field("probabilities", pa.list_(pa.float64())),  # out-of-fold, in taxonomy order
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


#: `manifests/validation_folds.parquet`: what each fold's model trained on and what it scored, as its loaders read.
FOLDS_SCHEMA = pa.schema(
    [
        pa.field("fold", pa.int32(), nullable=False),
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("role", pa.string(), nullable=False),  # "trained" or "scored"
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


#: `manifests/out_of_fold.parquet`: every labelled item's out-of-fold prediction (the review's confusion matrix).
OUT_OF_FOLD_SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("predicted", pa.string(), nullable=False),  # argmax of the out-of-fold probabilities
        pa.field("fold", pa.int32(), nullable=False),
        pa.field("probabilities", pa.list_(pa.float64())),  # in taxonomy order
    ]
).with_metadata({SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()})


def out_of_fold_path(layout: DatasetLayout) -> Path:
    return layout.manifests / "out_of_fold.parquet"


def suspects_path(layout: DatasetLayout) -> Path:
    return layout.manifests / "suspects.parquet"


def validation_report_path(layout: DatasetLayout) -> Path:
    """`manifests/validation.json`: k, configuration, method, fold accuracies, number of suspects."""
    return layout.manifests / "validation.json"


def validation_folds_path(layout: DatasetLayout) -> Path:
    """`manifests/validation_folds.parquet` (FOLDS_SCHEMA): per fold, the items its model trained on and scored."""
    return layout.manifests / "validation_folds.parquet"


def expert_requests_path(layout: DatasetLayout) -> Path:
    """`manifests/expert_requests.parquet` (NEEDS_EXPERT_SCHEMA): items sent to the expert stage besides ties."""
    return layout.manifests / "expert_requests.parquet"


def group_folds(layout: DatasetLayout, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """The labelled ok items of the dataset, one row each (video_id, label, group, fold in 0..k-1): stratified by
    label, whole leakage groups per fold (the split's groups: uploader, content hash, duplicate and near-duplicate
    links, `stratified_split.grouping_links`), so no group is in two folds. Raises ValueError when k < 2 or there
    are fewer labelled items than folds."""
    if k < 2:
        raise ValueError(f"folds must be >= 2 (got {k})")
    items = split_items(layout)
    items = with_near_duplicate_edges(items[items["label"].notna()])
    if len(items) < k:
        raise ValueError(f"{layout.labels}: {len(items)} labelled item(s), fewer than {k} folds")
    groups = connected_groups(len(items), list(grouping_links(items).values()))
    codes, _ = pd.factorize(items["label"], sort=True)
    folds = assign_splits(codes, groups, tuple([1.0 / k] * k), seed)
    return pd.DataFrame({"video_id": items["video_id"].astype(str), "label": items["label"].astype(str),
                         "group": groups, "fold": folds.astype(int)})  # fmt: skip


@dataclass
class ConfidentLearning:
    """What `find_suspects` found over n items and K classes: `thresholds` (K,), `suggested` (n,) class index per
    item (-1 where no class reaches its threshold), `suspect` (n,) bool, `margin` (n,), `self_confidence` (n,)."""

    thresholds: np.ndarray
    suggested: np.ndarray
    suspect: np.ndarray
    margin: np.ndarray
    self_confidence: np.ndarray

    def ranked(self) -> np.ndarray:
        """Indices of the suspects, most suspect first (lowest normalised margin; ties by index)."""
        idx = np.flatnonzero(self.suspect)
        return idx[np.argsort(self.margin[idx], kind="stable")]


#: The rules `find_suspects` knows: the confident joint's off-diagonal, and prune by noise rate (both in the paper).
RULES = ("off-diagonal", "noise-rate")


def find_suspects(labels: np.ndarray, probs: np.ndarray, rule: str = "noise-rate") -> ConfidentLearning:
    """Confident learning over `labels` (n,) int class indices and out-of-fold `probs` (n, K) rows summing to 1.

    Thresholds and the confident joint C as in the module docstring (a class with no labelled item gets threshold
    1 + eps: it cannot confidently claim an item). `rule` "off-diagonal": the items counted off C's diagonal (the
    paper's C_{ỹ,y*}). "noise-rate": prune by noise rate (the paper's section 3.2): C calibrated to the class counts
    (C̃[i, j] = C[i, j] / sum_j C[i, j] * n_i) estimates how many items labelled i belong to j; for each i != j the
    round(C̃[i, j]) items labelled i with the largest margin p_j - p_i are suspects. Raises ValueError on
    mismatched shapes, labels outside 0..K-1 or an unknown rule."""
    labels, probs = np.asarray(labels, dtype=int), np.asarray(probs, dtype=float)
    if probs.ndim != 2 or len(labels) != len(probs):
        raise ValueError(f"probabilities of shape {probs.shape} do not fit {len(labels)} labels")
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r} (choose: {', '.join(RULES)})")
    n, n_classes = probs.shape
    if n and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    rows = np.arange(n)
    self_conf = probs[rows, labels]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.bincount(labels, weights=self_conf, minlength=n_classes)
    thresholds = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0 + 1e-9)
    above = probs >= thresholds[None, :] - 1e-12  # float slack: an item at exactly its class mean counts
    suggested = np.where(above.any(axis=1), np.where(above, probs, -np.inf).argmax(axis=1), -1)
    others = probs.copy()
    others[rows, labels] = -np.inf
    margin = self_conf - (others.max(axis=1) if n_classes > 1 else 0.0)
    if rule == "off-diagonal":
        suspect = (suggested >= 0) & (suggested != labels)
    else:
        suspect = _prune_by_noise_rate(labels, probs, suggested, counts)
        suggested = np.where(suspect & ((suggested < 0) | (suggested == labels)), others.argmax(axis=1), suggested)
    return ConfidentLearning(thresholds, suggested, suspect, np.asarray(margin, float), self_conf)


def _prune_by_noise_rate(
    labels: np.ndarray, probs: np.ndarray, suggested: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    n_classes = probs.shape[1]
    joint = np.zeros((n_classes, n_classes))
    counted = suggested >= 0
    np.add.at(joint, (labels[counted], suggested[counted]), 1)
    row_sums = joint.sum(axis=1, keepdims=True)
    calibrated = np.divide(joint, row_sums, out=np.zeros_like(joint), where=row_sums > 0) * counts[:, None]
    suspect = np.zeros(len(labels), dtype=bool)
    for i in range(n_classes):
        members = np.flatnonzero(labels == i)
        for j in range(n_classes):
            k = int(np.rint(calibrated[i, j]))
            if j == i or k == 0:
                continue
            margins = probs[members, j] - probs[members, i]
            suspect[members[np.argsort(-margins, kind="stable")[:k]]] = True
    return suspect


def suspects_table(items: pd.DataFrame, probs: np.ndarray, classes: list[str], result: ConfidentLearning) -> pa.Table:
    """The suspects as `SUSPECTS_SCHEMA`, in rank order. `items`: one row per row of `probs`, with video_id, label,
    fold and (optional) votes, agreement, decided_by."""
    order = result.ranked()
    rows = items.iloc[order].reset_index(drop=True)

    def optional(column: str) -> list:
        return [None if pd.isna(v) else v for v in rows[column]] if column in rows else [None] * len(rows)

    columns = {
        "rank": np.arange(1, len(order) + 1, dtype=np.int32),
        "video_id": rows["video_id"].astype(str).tolist(), "label": rows["label"].astype(str).tolist(),
        "suggested": [classes[i] for i in result.suggested[order]],
        "self_confidence": result.self_confidence[order], "suggested_p": probs[order, result.suggested[order]],
        "margin": result.margin[order], "fold": rows["fold"].to_numpy(np.int32),
        "votes": optional("votes"), "agreement": optional("agreement"), "decided_by": optional("decided_by"),
        "probabilities": [list(map(float, p)) for p in probs[order]],
    }  # fmt: skip
    return pa.table(columns, schema=SUSPECTS_SCHEMA)


def folds_table(items: pd.DataFrame, trained_on: dict[int, list[str]]) -> pa.Table:
    """FOLDS_SCHEMA rows: each fold's training ids (`trained_on`) and the items it scored (`items`' fold)."""
    rows = [(int(f), str(v), "trained") for f, ids in sorted(trained_on.items()) for v in ids]
    rows += [(int(f), str(v), "scored") for f, v in zip(items["fold"], items["video_id"], strict=True)]
    fold, video_id, role = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table({"fold": list(fold), "video_id": list(video_id), "role": list(role)}, schema=FOLDS_SCHEMA)


def write_validation(layout: DatasetLayout, table: pa.Table, report: dict, folds: pa.Table | None = None) -> None:
    """Write the suspects table, the folds table (when given) and `validation.json` (atomic each)."""
    write_table_atomic(suspects_path(layout), table)
    if folds is not None:
        write_table_atomic(validation_folds_path(layout), folds)
    write_bytes_atomic(validation_report_path(layout), (json.dumps(report, indent=2) + "\n").encode())


def read_suspects(layout: DatasetLayout) -> pd.DataFrame:
    """The suspects table of the dataset. Raises ValueError naming the file when `emotions validate` has not run."""
    path = suspects_path(layout)
    if not path.is_file():
        raise ValueError(f"{path}: no suspects (run 'emotions validate' first)")
    return pq.read_table(path).to_pandas()


def request_expert_review(layout: DatasetLayout, *, top: int | None = None, max_margin: float | None = None) -> int:
    """Queue suspects for the expert stage: the first `top` by rank and/or those with margin <= `max_margin` (all
    suspects when neither is given) go into `expert_requests.parquet` with the reason `DISPUTE_REASON` and a note of
    the model's suggestion (earlier requests are kept). The next `emotions annotate push --stage expert` shows them
    to the experts (a new round for an item they decided before). Returns the number of items queued now. Raises
    ValueError when there is no suspects table."""
    suspects = read_suspects(layout)
    chosen = suspects
    if top is not None:
        chosen = chosen[chosen["rank"] <= top]
    if max_margin is not None:
        chosen = chosen[chosen["margin"] <= max_margin]
    notes = [
        f"{DISPUTE_REASON}: it suggests {row.suggested} (p {row.suggested_p:.2f}, {row.label} p "
        f"{row.self_confidence:.2f})"
        for row in chosen.itertuples()
    ]
    new = pd.DataFrame({"video_id": chosen["video_id"].astype(str), "reason": DISPUTE_REASON, "votes": notes})
    path = expert_requests_path(layout)
    earlier = pq.read_table(path).to_pandas() if path.is_file() else new.iloc[:0]
    merged = pd.concat([earlier[~earlier["video_id"].isin(new["video_id"])], new], ignore_index=True)
    write_table_atomic(path, pa.Table.from_pandas(merged, schema=NEEDS_EXPERT_SCHEMA, preserve_index=False))
    return len(new)


def votes_text(votes: pd.DataFrame | None) -> dict[str, str]:
    """video_id -> its counted votes as `Label:n, Label:n` (most votes first, then by label); empty without votes."""
    if votes is None or not len(votes):
        return {}
    counts = votes.groupby(["video_id", "label"]).size().reset_index(name="n")
    counts = counts.sort_values(["video_id", "n", "label"], ascending=[True, False, True])
    return {str(v): ", ".join(f"{lab}:{n}" for lab, n in zip(g["label"], g["n"], strict=True))
            for v, g in counts.groupby("video_id")}  # fmt: skip


def labels_digest(layout: DatasetLayout) -> str:
    """SHA-256 of `labels.parquet`: the labels a validation judged (its report is stale once they change)."""
    from emotions_data.probe import sha256_file

    return sha256_file(layout.labels)


def record_validation(
    layout: DatasetLayout, items: pd.DataFrame, probs: np.ndarray, classes: list[str], votes: pd.DataFrame | None,
    settings: dict, trained_on: dict[int, list[str]] | None = None,
) -> tuple[pa.Table, dict]:  # fmt: skip
    """Find the suspects among `items` (video_id, label, fold; the rows of the out-of-fold `probs` (n, K) over
    `classes`), with each item's counted votes (`votes`: video_id, label), agreement and decided_by beside it, and
    write the suspects table, every item's out-of-fold prediction and `validation.json` (`settings`: what the run
    was; `fold_accuracy` is expected among them), and with `trained_on` (fold -> ids its model trained on) the
    folds table. Returns the table and the report."""
    labels = pq.read_table(layout.labels).to_pandas()
    extra = [c for c in ("agreement", "decided_by") if c in labels.columns]
    items = items.merge(labels[["video_id", *extra]], on="video_id", how="left")
    items["votes"] = items["video_id"].map(votes_text(votes))
    codes = np.array([classes.index(lab) for lab in items["label"]], dtype=int)
    result = find_suspects(codes, probs)
    table = suspects_table(items, probs, classes, result)
    oof_accuracy = float(np.mean(probs.argmax(axis=1) == codes)) if len(codes) else float("nan")
    report = {**settings, "method": METHOD, "n_items": len(items), "n_suspects": table.num_rows,
              "out_of_fold_accuracy": oof_accuracy, "thresholds": dict(zip(classes, map(float, result.thresholds),
              strict=True)), "labels_sha256": labels_digest(layout)}  # fmt: skip
    write_validation(layout, table, report, folds_table(items, trained_on) if trained_on is not None else None)
    predictions = {"video_id": items["video_id"].astype(str).tolist(), "label": items["label"].astype(str).tolist(),
                   "predicted": [classes[i] for i in probs.argmax(axis=1)], "fold": items["fold"].to_numpy(np.int32),
                   "probabilities": [list(map(float, p)) for p in probs]}  # fmt: skip
    write_table_atomic(out_of_fold_path(layout), pa.table(predictions, schema=OUT_OF_FOLD_SCHEMA))
    return table, report


def current_validation(layout: DatasetLayout) -> dict | None:
    """The dataset's validation report when it judged the labels as they are now; None otherwise (no report, or
    the labels changed since)."""
    path = validation_report_path(layout)
    if not path.is_file() or not layout.labels.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.get("labels_sha256") == labels_digest(layout) else None


def render_validation_section(report: dict) -> str:
    """The card's "Label validation" section (Markdown, ends in a newline) from a validation report."""
    folds = ", ".join("empty" if a is None else f"{a:.3f}" for a in report.get("fold_accuracy", []))
    return "\n".join([
        "## Label validation", "",
        f"The final labels were checked by training the baseline (`{report.get('config')}` configuration, "
        f"{report.get('folds')} group-aware folds: no leakage group in two folds) and scoring every labelled item "
        "with the model of the fold that held it out. Method: " + METHOD + ".", "",
        f"- Accuracy of each fold's model on its held-out fold: {folds or 'n/a'}",
        f"- Out-of-fold accuracy over {report.get('n_items')} items: {report.get('out_of_fold_accuracy', 0):.3f}",
        f"- Suspect labels (the model disputes the final label): {report.get('n_suspects')}; they are listed for the "
        "expert, who decides (a suspect label is never changed by the model).",
        "", "Reproduce: `emotions validate DATASET`.", "",
    ])  # fmt: skip
