"""The agreement report of a long vote table: every registered agreement statistic (`annotation.statistics`) with a
bootstrap interval over items, per-category alpha, per-annotator agreement and the most disputed items. Pure numpy,
no I/O.

Everything starts from the item x category count matrix N (N[u, c] = votes for category c on item u, built by
`annotation.votes.encode`). The statistics that are sums of per-item terms are bootstrapped together: 1,000 resamples
of 28,000 items cost well under a second.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from annotation.plurality import TIE, unique_plurality
from annotation.statistics import (
    Estimate,
    Ratings,
    bootstrap,
    bootstrap_counts,
    kinds_of,
    percentile_ci,
    registered,
)
from annotation.statistics.cohen import DENSE_PAIR_CELLS, cohen_kappa, pairs_of, pairwise_cohen
from annotation.statistics.fleiss import fleiss_kappa
from annotation.statistics.krippendorff import class_alphas, class_terms, krippendorff_alpha, per_class_alpha
from annotation.votes import ANNOTATOR, ITEM, LABEL, EncodedVotes, encode

# The maths of each statistic lives in its module; these names stay importable from here.
__all__ = [
    "ANNOTATOR",
    "DENSE_PAIR_CELLS",
    "ITEM",
    "LABEL",
    "AgreementReport",
    "EncodedVotes",
    "agreement_report",
    "bootstrap_counts",
    "cohen_kappa",
    "encode",
    "fleiss_kappa",
    "item_agreement",
    "krippendorff_alpha",
    "leave_one_out",
    "pairwise_cohen",
    "per_class_alpha",
]


# ---------------------------------------------------------------- per item and per annotator


def item_agreement(counts: np.ndarray) -> np.ndarray:
    """Observed pairwise agreement per item (share of agreeing vote pairs); NaN for < 2 votes."""
    m = counts.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m >= 2, (counts * (counts - 1)).sum(axis=1) / (m * (m - 1)), np.nan)


def leave_one_out(enc: EncodedVotes, counts: np.ndarray) -> pd.DataFrame:
    """Per annotator: how often they agree with the others on the same items.

    `agreement`: mean share of the other votes on the item that match this vote.
    `majority_agreement`: share of votes equal to the others' unique plurality label (items where
    the others tie or are absent are left out)."""
    m = counts.sum(axis=1)
    others_total = m[enc.item] - 1
    others_same = counts[enc.item, enc.label] - 1
    has_others = others_total > 0
    share = np.where(has_others, others_same / np.maximum(others_total, 1), np.nan)
    # The others' winner depends only on the item's counts and this vote's label: found once per kind of item.
    first, _, kind_of = kinds_of(counts)
    kinds, n_labels = counts[first], counts.shape[1]
    removed = np.repeat(kinds, n_labels, axis=0) - np.tile(np.eye(n_labels, dtype=counts.dtype), (len(kinds), 1))
    winner = unique_plurality(removed).reshape(len(kinds), n_labels)[kind_of[enc.item], enc.label]
    decided = has_others & (winner != TIE)
    matches = np.where(decided, winner == enc.label, np.nan)
    frame = pd.DataFrame({"annotator": enc.annotator, "share": share, "match": matches})
    grouped = frame.groupby("annotator")
    result = pd.DataFrame(
        {
            "n_votes": grouped.size(),
            "agreement": grouped["share"].mean(),
            "majority_agreement": grouped["match"].mean(),
        }
    )
    result.index = [enc.annotators[i] for i in result.index]
    return result


# ---------------------------------------------------------------- the report


@dataclass
class AgreementReport:
    """Every agreement figure of one vote table. `statistics` lists each registered statistic as data (key, name,
    value, interval, why it is missing or partial, how to print it), so a reader of `agreement.json` shows whatever
    is registered; the flat fields before it are the statistics the report had before it listed them, kept for
    readers of those files."""

    n_items: int
    n_annotators: int
    n_votes: int
    n_pairable_items: int
    labels: list[str]
    krippendorff_alpha: float | None
    alpha_ci: list[float] | None
    fleiss_kappa: float | None
    fleiss_kappa_ci: list[float] | None
    fleiss_kappa_absent_reason: str | None
    cohen_kappa_mean: float | None
    cohen_kappa_pairs: int
    per_class: dict[str, dict[str, object]]
    per_annotator: dict[str, dict[str, object]]
    most_disputed: list[dict[str, object]]
    confidence: float
    n_bootstrap: int
    seed: int | None
    votes_per_item: dict[str, int] = field(default_factory=dict)  # "k votes" -> number of items
    # Why a statistic is missing or covers less than it seems: statistic key -> reason (e.g. every vote in one
    # category leaves alpha and Fleiss' kappa undefined; pairs whose labels never vary leave Cohen's mean).
    undefined: dict[str, str] = field(default_factory=dict)
    statistics: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return _finite(asdict(self))


def _finite(value):
    """JSON-safe: NaN and inf become None."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


#: The most bootstrap resamples: each is a row of draw counts per kind of item and of sums per statistic (8 bytes a
#: cell), so memory grows with it (2e8 resamples took 65 GiB), while a percentile interval is usually computed from
#: 1,000-2,000 resamples (Efron & Tibshirani 1993): 100 times that leaves no Monte Carlo error worth having.
MAX_BOOTSTRAP = 100_000


def _check_parameters(n_bootstrap: int, confidence: float, seed: int | None, top_disputed: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, not {confidence}")
    if n_bootstrap > MAX_BOOTSTRAP:
        raise ValueError(f"n_bootstrap must be at most {MAX_BOOTSTRAP} (more resamples do not narrow the interval; "
                         f"they take memory and time in proportion), not {n_bootstrap}")  # fmt: skip
    for name, value in (("n_bootstrap", n_bootstrap), ("top_disputed", top_disputed), ("seed", seed or 0)):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")


def _ratings(votes: pd.DataFrame, labels: list[str] | None) -> Ratings:
    """The encoded votes and their count matrix; ValueError when no item has two votes."""
    enc = encode(votes, labels)
    counts = enc.counts
    if len(counts) == 0 or counts.sum(axis=1).max() < 2:
        raise ValueError(
            f"no item has two or more votes ({len(enc.label)} vote(s) on {len(counts)} item(s)): agreement needs at "
            "least two votes on one item"
        )
    return Ratings(enc, counts)


def _statistics(
    ratings: Ratings, n_bootstrap: int, confidence: float, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every registered statistic as report data (in `registered()` order), and per-category alpha; the intervals of
    both come from the same bootstrap resamples."""
    statistics = registered()
    estimates = [s.estimate(ratings) for s in statistics]
    with_terms = [e.terms for e in estimates if e.terms is not None]
    per_class = class_terms(ratings.counts.shape[1])
    samples = bootstrap(ratings, [*with_terms, per_class], n_bootstrap, rng)
    drawn = iter(samples[:-1])
    entries = []
    for statistic, estimate in zip(statistics, estimates, strict=True):
        ci = percentile_ci(next(drawn), confidence) if samples and estimate.terms is not None else None
        entries.append(_entry(statistic.key, statistic.name, statistic.source, statistic.digits, estimate, ci))
    class_alpha = class_alphas(ratings.counts)
    class_boot = samples[-1] if samples else None
    totals = ratings.counts.sum(axis=0)
    classes = {
        name: {
            "alpha": float(class_alpha[c]),
            "alpha_ci": percentile_ci(class_boot[:, c], confidence) if class_boot is not None else None,
            "n_votes": int(totals[c]),
        }
        for c, name in enumerate(ratings.votes.labels)
    }
    return entries, classes


def _entry(key: str, name: str, source: str, digits: int, estimate: Estimate, ci: list[float] | None) -> dict:
    """One statistic as `agreement.json` lists it."""
    value = None if estimate.value is None else float(estimate.value)
    return {
        "key": key,
        "name": name,
        "value": value,
        "ci": ci,
        "reason": estimate.reason,
        "applies": estimate.applies,
        "detail": estimate.detail,
        "figures": dict(estimate.figures),
        "digits": digits,
        "source": source,
    }


def _flat_fields(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's fields from before it listed its statistics, from the listed ones."""
    of = {e["key"]: e for e in entries}
    alpha, fleiss, cohen = of["krippendorff_alpha"], of["fleiss_kappa"], of["cohen_kappa_mean"]
    return {
        "krippendorff_alpha": alpha["value"],
        "alpha_ci": alpha["ci"],
        "fleiss_kappa": fleiss["value"],
        "fleiss_kappa_ci": fleiss["ci"],
        "fleiss_kappa_absent_reason": fleiss["reason"],
        "cohen_kappa_mean": cohen["value"],
        "cohen_kappa_pairs": cohen["figures"].get("pairs", 0),
        "undefined": {e["key"]: e["reason"] for e in entries if e["reason"] and e["applies"]},
    }


def _per_annotator(ratings: Ratings) -> dict[str, dict[str, object]]:
    """Per annotator: votes, agreement with the others (`leave_one_out`) and their mean Cohen's kappa over the pairs
    they belong to."""
    enc = ratings.votes
    loo = leave_one_out(enc, ratings.counts)
    kappas_of: list[list[float]] = [[] for _ in enc.annotators]
    for (i, j), (k, _) in pairs_of(ratings).items():  # in pair order, as the means have always been summed
        if math.isfinite(k):
            kappas_of[i].append(k)
            kappas_of[j].append(k)
    per_annotator = {}
    for a, name in enumerate(enc.annotators):
        mine = kappas_of[a]
        row = loo.loc[name] if name in loo.index else None
        per_annotator[name] = {
            "n_votes": int(row["n_votes"]) if row is not None else 0,
            "agreement": float(row["agreement"]) if row is not None else math.nan,
            "majority_agreement": float(row["majority_agreement"]) if row is not None else math.nan,
            "cohen_kappa_mean": float(np.mean(mine)) if mine else math.nan,
        }
    return per_annotator


def _most_disputed(ratings: Ratings, top: int) -> list[dict[str, object]]:
    """Up to `top` items with the lowest observed agreement, lowest first; items everyone agreed on are left out."""
    enc, counts = ratings.votes, ratings.counts
    agree = item_agreement(counts)
    order = np.argsort(np.where(np.isnan(agree), np.inf, agree), kind="stable")
    disputed = []
    for u in order[:top]:
        if np.isnan(agree[u]) or agree[u] >= 1.0:  # an item everyone agreed on is not disputed
            break
        disputed.append(
            {
                "video_id": enc.items[u],
                "agreement": float(agree[u]),
                "votes": {enc.labels[c]: int(counts[u, c]) for c in np.flatnonzero(counts[u])},
            }
        )
    return disputed


def agreement_report(
    votes: pd.DataFrame,
    labels: list[str] | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    top_disputed: int = 10,
) -> AgreementReport:
    """All agreement statistics of a long vote table (`video_id`, `annotator_id`, `label`): every registered
    statistic with a `confidence` percentile interval from `n_bootstrap` resamples over items (seeded by `seed`),
    per category, per annotator and the `top_disputed` most disputed items.

    Raises ValueError naming the parameter when `n_bootstrap`, `top_disputed` or `seed` is negative, `n_bootstrap`
    is above `MAX_BOOTSTRAP` or `confidence` is not strictly between 0 and 1, and when no item has two votes (every
    statistic would be undefined)."""
    _check_parameters(n_bootstrap, confidence, seed, top_disputed)
    ratings = _ratings(votes, labels)
    entries, per_class = _statistics(ratings, n_bootstrap, confidence, np.random.default_rng(seed))
    m = ratings.m
    sizes, freq = np.unique(m, return_counts=True)
    return AgreementReport(
        n_items=len(m),
        n_annotators=len(ratings.votes.annotators),
        n_votes=len(ratings.votes.label),
        n_pairable_items=int((m >= 2).sum()),
        labels=ratings.votes.labels,
        **_flat_fields(entries),
        per_class=per_class,
        per_annotator=_per_annotator(ratings),
        most_disputed=_most_disputed(ratings, top_disputed),
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        votes_per_item={f"{int(s)}": int(f) for s, f in zip(sizes, freq, strict=True)},
        statistics=entries,
    )
