"""Final labels from votes: the expert's decision when there is one, else the chosen estimator.
Ties are never broken silently: a tied item gets no label and is listed for the expert stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from annotation.aggregate import AGGREGATORS, MajorityVote, make_aggregator
from annotation.agreement import item_agreement
from annotation.votes import count_matrix
from emotions_data.schema import LABELS_SCHEMA, NEEDS_EXPERT_SCHEMA, DecidedBy, Stage
from emotions_data.taxonomy import Taxonomy

METHODS = tuple(AGGREGATORS)  # the registered aggregators, by name


@dataclass(frozen=True)
class FinalLabels:
    labels: pa.Table  # LABELS_SCHEMA
    needs_expert: pa.Table  # NEEDS_EXPERT_SCHEMA


def _vote_summary(votes: pd.DataFrame) -> pd.Series:
    counts = votes.groupby(["video_id", "label"]).size()
    return counts.groupby(level=0).apply(
        lambda s: ", ".join(f"{lab}:{n}" for (_, lab), n in s.sort_values(ascending=False).items())
    )


def _item_agreement(crowd: pd.DataFrame) -> dict[str, float]:
    """video_id -> observed pairwise agreement of its crowd votes (`agreement.item_agreement`); NaN becomes None."""
    if crowd.empty:
        return {}
    counts = count_matrix(crowd)
    values = item_agreement(counts.to_numpy())
    return {vid: (None if np.isnan(v) else float(v)) for vid, v in zip(counts.index, values, strict=True)}


def final_labels(votes: pd.DataFrame, taxonomy: Taxonomy | None = None, method: str = "majority") -> FinalLabels:
    """Decide each voted item with the registered aggregator `method` (`METHODS`). `votes` may carry a `stage`
    column; `expert` votes are final (an expert tie is itself unresolved). Each label row also records the item's
    per-item crowd agreement. ValueError for an unknown method."""
    estimator = make_aggregator(method)  # ValueError for an unknown method, before any work
    labels = list(taxonomy.classes) if taxonomy else None
    is_expert = votes["stage"].eq(Stage.EXPERT) if "stage" in votes.columns else pd.Series(False, index=votes.index)
    crowd, expert = votes[~is_expert], votes[is_expert]
    rows: dict[str, dict] = {}
    tied: dict[str, str] = {}

    if len(crowd):
        result = estimator.fit(crowd, labels).result_
        decided_by = estimator.decided_by
        for vid, lab, conf, n in zip(result.video_id, result.label, result.confidence, result.n_votes, strict=True):
            if lab is None:
                tied[vid] = "no majority: tied votes"
            else:
                rows[vid] = {"label": lab, "confidence": float(conf), "n_votes": int(n), "decided_by": str(decided_by)}
    crowd_n = crowd.groupby("video_id").size()
    if len(expert):
        verdict = MajorityVote().fit(expert, labels).result_
        for vid, lab in zip(verdict.video_id, verdict.label, strict=True):
            if lab is None:
                tied[vid] = "experts disagree"
                rows.pop(vid, None)
                continue
            tied.pop(vid, None)
            n = int(crowd_n.get(vid, 0))
            rows[vid] = {"label": lab, "confidence": 1.0, "n_votes": n, "decided_by": str(DecidedBy.EXPERT)}

    polarity = taxonomy.polarity if taxonomy else {}
    agreement = _item_agreement(crowd)
    table = pa.Table.from_pylist(
        [
            {"video_id": vid, **row, "polarity": polarity.get(row["label"]), "agreement": agreement.get(vid)}
            for vid, row in sorted(rows.items())
        ],
        schema=LABELS_SCHEMA,
    )
    summary = _vote_summary(votes) if tied else pd.Series(dtype=str)
    needs = pa.Table.from_pylist(
        [{"video_id": vid, "reason": why, "votes": summary.get(vid)} for vid, why in sorted(tied.items())],
        schema=NEEDS_EXPERT_SCHEMA,
    )
    return FinalLabels(table, needs)
