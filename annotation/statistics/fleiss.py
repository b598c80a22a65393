"""Fleiss' kappa (Fleiss 1971, "Measuring nominal scale agreement among many raters"): every item needs the same
number (>= 2) of votes. P_u = (sum_c n_uc^2 - m) / (m (m - 1)), p_c = sum_u n_uc / (U m), P_e = sum_c p_c^2,
kappa = (mean_u P_u - P_e) / (1 - P_e): sums of per-item terms, so the bootstrap over items needs no recount.
"""

from __future__ import annotations

import numpy as np

from annotation.statistics import AgreementStatistic, Estimate, Ratings, Terms, register


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa (1971); every item must have the same number (>= 2) of ratings."""
    m = counts.sum(axis=1)
    if len(counts) == 0 or m.min() != m.max() or m[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings on every item")
    p_item, _ = _fleiss_terms(counts)
    return float(_fleiss_from_sums(p_item.sum(), counts.sum(axis=0), len(counts)))


def _fleiss_terms(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = counts.sum(axis=1)
    p_item = ((counts * counts).sum(axis=1) - m) / (m * (m - 1))
    return p_item, counts


def _fleiss_from_sums(p_item_sum: np.ndarray, n_c: np.ndarray, n_items: int) -> np.ndarray:
    p_bar = p_item_sum / n_items
    p_c = n_c / n_c.sum(axis=-1, keepdims=True)
    p_e = (p_c * p_c).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p_bar - p_e) / (1 - p_e)


def _estimate(ratings: Ratings) -> Estimate:
    counts, m = ratings.counts, ratings.m
    n_items = len(counts)
    if not n_items or m.min() != m.max() or m[0] < 2:
        low, high = (int(m.min()), int(m.max())) if n_items else (0, 0)
        reason = (
            f"items have {low} to {high} votes; Fleiss' kappa needs the same number (>= 2) on every item"
            if low != high
            else f"every item has {low} vote(s); Fleiss' kappa needs at least 2"
        )
        return Estimate(None, reason=reason, applies=False)
    p_item, _ = _fleiss_terms(counts)
    kappa = float(_fleiss_from_sums(p_item.sum(), counts.sum(axis=0), n_items))
    terms = Terms(
        lambda rows: np.hstack([_fleiss_terms(rows)[0][:, None], rows]),
        lambda s: _fleiss_from_sums(s[..., 0], s[..., 1:], n_items),
    )
    reason = None if np.isfinite(kappa) else "every vote is in one category: chance agreement is 1"
    return Estimate(kappa, reason=reason, terms=terms)


FLEISS_KAPPA = register(
    AgreementStatistic(
        key="fleiss_kappa",
        name="Fleiss' kappa",
        source="Fleiss (1971), Measuring nominal scale agreement among many raters",
        rank=20,
        estimate=_estimate,
    )
)
