"""Cohen's kappa (Cohen 1960, "A coefficient of agreement for nominal scales") of every pair of annotators on the
items they share, and its mean over the pairs where it is defined: kappa = (p_o - p_e) / (1 - p_e), p_o the share of
shared items they agree on, p_e = sum_l (their first's share of l) (their second's share of l).
"""

from __future__ import annotations

import math

import numpy as np

from annotation.statistics import AgreementStatistic, Estimate, Ratings, register
from annotation.votes import EncodedVotes

#: Up to this many cells, Cohen's kappa counts every possible annotator pair's confusion matrix in one array.
DENSE_PAIR_CELLS = 50_000_000


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_labels: int) -> float:
    """Cohen's kappa of two raters' label codes on the same items; NaN when chance agreement is 1."""
    if len(a) == 0:
        return math.nan
    p_o = float(np.mean(a == b))
    p_e = float(np.dot(np.bincount(a, minlength=n_labels), np.bincount(b, minlength=n_labels))) / len(a) ** 2
    return (p_o - p_e) / (1 - p_e) if p_e < 1 else math.nan


def pairwise_cohen(enc: EncodedVotes, min_common: int = 2) -> dict[tuple[int, int], tuple[float, int]]:
    """{(annotator i, annotator j): (kappa, items in common)} for pairs (i < j, in that order) sharing >= min_common
    items. An annotator who voted twice on an item counts with their last vote.

    One confusion matrix per co-rating pair, counted from the pairs of votes on each item (so the cost follows the
    votes, not annotators x items); kappa from it is `cohen_kappa`'s formula."""
    n_ann, n_labels = len(enc.annotators), len(enc.labels)
    # The last vote of each (item, annotator): sorting (item, annotator, position in the table) as one integer.
    n_votes = len(enc.item)
    ordered = np.sort((enc.item * n_ann + enc.annotator) * n_votes + np.arange(n_votes))
    key, position = ordered // n_votes, ordered % n_votes
    last = position[np.r_[key[1:] != key[:-1], True]]
    item, ann, label = enc.item[last], enc.annotator[last], enc.label[last]
    # Every pair of votes on one item is (v, v + d) for some offset d within the item; the votes with at least d
    # more votes after them in their item are the first `at_least[d]` of them ordered by that count, so the pairs
    # at each offset come without building them all at once.
    starts = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, len(item)])
    after = np.repeat(starts + sizes, sizes) - np.arange(len(item)) - 1
    narrow = after.astype(np.int16) if len(after) and after.max() < 2**15 else after  # radix-sortable
    by_after = np.argsort(-narrow, kind="stable")
    at_least = np.cumsum(np.bincount(after, minlength=1)[::-1])[::-1]
    # Within an item the votes are sorted by annotator, so vote v's annotator is the pair's first.
    cells = n_labels * n_labels
    if n_ann * n_ann * cells <= DENSE_PAIR_CELLS:  # every possible pair's matrix fits: count straight into it
        pair_keys = np.arange(n_ann * n_ann)
        left, right = ann * (n_ann * cells) + label * n_labels, ann * cells + label
        flat = np.zeros(len(pair_keys) * cells, np.int64)
        for d in range(1, len(at_least)):
            v = by_after[: at_least[d]]
            flat += np.bincount(left[v] + right[v + d], minlength=len(flat))
    else:
        v = np.concatenate([by_after[: at_least[d]] for d in range(1, len(at_least))] or [np.empty(0, np.int64)])
        w = v + np.concatenate([np.full(at_least[d], d) for d in range(1, len(at_least))] or [np.empty(0, np.int64)])
        pair_keys, pair = np.unique(ann[v] * n_ann + ann[w], return_inverse=True)
        flat = np.bincount(pair * cells + label[v] * n_labels + label[w], minlength=len(pair_keys) * cells)
    confusion = flat.reshape(len(pair_keys), n_labels, n_labels)
    n_common = confusion.sum(axis=(1, 2))
    agreeing = np.trace(confusion, axis1=1, axis2=2)
    chance = (confusion.sum(axis=2) * confusion.sum(axis=1)).sum(axis=1)  # sum_l rows_l * columns_l
    result = {}
    for p in np.flatnonzero(n_common >= min_common):
        n = int(n_common[p])
        p_o = int(agreeing[p]) / n
        p_e = float(chance[p]) / n**2
        kappa = (p_o - p_e) / (1 - p_e) if p_e < 1 else math.nan
        result[(int(pair_keys[p] // n_ann), int(pair_keys[p] % n_ann))] = (kappa, n)
    return result


def pairs_of(ratings: Ratings) -> dict[tuple[int, int], tuple[float, int]]:
    """`pairwise_cohen` of the ratings' votes, counted once per report (shared with the per-annotator means)."""
    return ratings.shared("cohen_pairs", lambda: pairwise_cohen(ratings.votes))


def _estimate(ratings: Ratings) -> Estimate:
    pairs = pairs_of(ratings)
    kappas = [k for k, _ in pairs.values() if math.isfinite(k)]
    value = float(np.mean(kappas)) if kappas else None
    names = ratings.votes.annotators
    flat = [f"{names[i]}-{names[j]}" for (i, j), (k, _) in pairs.items() if not math.isfinite(k)]
    figures = {"pairs": len(kappas)}
    if flat:  # Cohen's kappa of a pair that used a single label between them divides by zero
        reason = (
            f"{len(flat)} of {len(pairs)} pair(s) left out ({', '.join(flat[:5])}{', ...' if len(flat) > 5 else ''}): "
            "on their shared items both used one and the same label, so chance agreement is 1"
        )
        return Estimate(value, reason=reason, detail=f"over {len(kappas)} pairs", figures=figures)
    if value is None:
        reason = "no two annotators share two items with more than one label among their votes"
        return Estimate(None, reason=reason, applies=False, figures=figures)
    return Estimate(value, detail=f"over {len(kappas)} pairs", figures=figures)


COHEN_KAPPA_MEAN = register(
    AgreementStatistic(
        key="cohen_kappa_mean",
        name="Mean pairwise Cohen's kappa",
        source="Cohen (1960), A coefficient of agreement for nominal scales",
        rank=30,
        estimate=_estimate,
    )
)
