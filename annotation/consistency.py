"""Consistency evaluation (pure): how each annotator and group agrees with the cross-check of
their items and with the consensus, and who falls under the threshold.

Inputs are the long vote table with `stage` and `group` columns. For an item of group A, the
`label` stage holds A's votes and the `crosscheck` stage holds the next group's votes; after the personnel
adjustments, the re-evaluation compares them with the second cross-check round (`crosscheck2`) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from annotation.plurality import TIE, unique_plurality
from annotation.votes import count_matrix
from emotions_data.schema import Stage


def plurality(votes: pd.DataFrame) -> pd.Series:
    """video_id -> the unique most frequent label; items whose top labels tie are absent."""
    counts = count_matrix(votes)
    winner = unique_plurality(counts.to_numpy())
    decided = winner != TIE
    return pd.Series(counts.columns[winner[decided]], index=counts.index[decided], name="label")


@dataclass(frozen=True)
class Consistency:
    annotators: pd.DataFrame  # one row per annotator: group, votes, agreement with cross-check / consensus, flagged
    groups: pd.DataFrame  # one row per group: items, agreement of its majority with the cross-check majority
    flagged_items: list[str]  # items whose label-stage votes include a flagged annotator


def evaluate_consistency(
    votes: pd.DataFrame, threshold: float = 0.6, crosscheck: Stage = Stage.CROSSCHECK
) -> Consistency:
    """Agreement of each annotator's `label` votes with the cross-check plurality of the same items (else with the
    plurality of everyone else's votes) and of each group's plurality with the cross-check's; annotators under
    `threshold` (a share, 0-1) are flagged. `crosscheck` is the round compared with: `crosscheck`, or `crosscheck2`
    for the re-evaluation after the personnel adjustments (the eMotions pipeline's second round). Raises ValueError
    when there is no `label`-stage vote, `crosscheck` is not a cross-check stage or `threshold` is not a share in
    [0, 1] (nan included: it would flag nobody)."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a share in [0, 1], not {threshold!r}")
    if crosscheck not in (Stage.CROSSCHECK, Stage.CROSSCHECK2):
        raise ValueError(f"{crosscheck!r} is not a cross-check stage ({Stage.CROSSCHECK}, {Stage.CROSSCHECK2})")
    labelled = votes[votes["stage"] == Stage.LABEL]
    checked = votes[votes["stage"] == crosscheck]
    if labelled.empty:
        raise ValueError(f"no votes of the '{Stage.LABEL}' stage to evaluate")
    cross = plurality(checked)
    both = votes[votes["stage"].isin([Stage.LABEL, crosscheck])]

    rows = []
    for ann, mine in labelled.groupby("annotator_id"):
        vs_cross = mine["label"].to_numpy() == mine["video_id"].map(cross).to_numpy()
        has_cross = mine["video_id"].isin(cross.index).to_numpy()
        # Consensus without this annotator: the plurality of everyone else's label+crosscheck votes.
        others = plurality(both[(both["annotator_id"] != ann) & both["video_id"].isin(mine["video_id"])])
        vs_consensus = mine["label"].to_numpy() == mine["video_id"].map(others).to_numpy()
        has_consensus = mine["video_id"].isin(others.index).to_numpy()
        rows.append(
            {
                "annotator_id": ann,
                "group": mine["group"].iloc[0] if "group" in mine else None,
                "n_votes": len(mine),
                "crosscheck_agreement": vs_cross[has_cross].mean() if has_cross.any() else np.nan,
                "consensus_agreement": vs_consensus[has_consensus].mean() if has_consensus.any() else np.nan,
            }
        )
    annotators = pd.DataFrame(rows).set_index("annotator_id")
    score = annotators["crosscheck_agreement"].fillna(annotators["consensus_agreement"])
    annotators["flagged"] = score < threshold

    group_rows = []
    own = plurality(labelled)
    for group, items in labelled.groupby("group"):
        ids = items["video_id"].unique()
        decided = [v for v in ids if v in own.index and v in cross.index]
        group_rows.append(
            {
                "group": group,
                "n_items": len(ids),
                "n_compared": len(decided),
                "crosscheck_agreement": float(np.mean([own[v] == cross[v] for v in decided])) if decided else np.nan,
                "mean_annotator_agreement": float(
                    annotators.loc[annotators["group"] == group, "crosscheck_agreement"].mean()
                ),
            }
        )
    flagged = set(annotators.index[annotators["flagged"]])
    items = sorted(labelled.loc[labelled["annotator_id"].isin(flagged), "video_id"].unique())
    return Consistency(
        annotators.sort_values("crosscheck_agreement"), pd.DataFrame(group_rows).set_index("group"), items
    )
