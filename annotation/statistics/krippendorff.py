"""Krippendorff's alpha, nominal (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"), overall and per
category, from the item x category count matrix N (N[u, c] = votes for category c on item u).

From the coincidence matrix: for pairable items (m_u >= 2 votes), o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1);
with n_c = sum_k o_ck = sum_u n_uc and n = sum_c n_c,

    alpha = ((n - 1) * sum_c o_cc - sum_c n_c (n_c - 1)) / (n (n - 1) - sum_c n_c (n_c - 1)).

Both sums are sums of per-item terms, so the bootstrap over items needs no recount.
"""

from __future__ import annotations

import numpy as np

from annotation.statistics import AgreementStatistic, Estimate, Ratings, Terms, register


def _alpha_terms(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-item additive terms: (sum_c o_cc contribution (U,), n_uc (U, C)), zero for unpairable items."""
    m = counts.sum(axis=1)
    pairable = m >= 2
    diag = np.zeros(len(counts))
    diag[pairable] = (counts[pairable] * (counts[pairable] - 1)).sum(axis=1) / (m[pairable] - 1)
    return diag, counts * pairable[:, None]


def _alpha_from_sums(diag_sum: np.ndarray, n_c: np.ndarray) -> np.ndarray:
    """Alpha from summed terms; works on batches (leading axes) of sums."""
    n = n_c.sum(axis=-1)
    expected = (n_c * (n_c - 1)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((n - 1) * diag_sum - expected) / (n * (n - 1) - expected)


def krippendorff_alpha(counts: np.ndarray) -> float:
    """Nominal alpha from an (items, categories) count matrix; NaN when undefined (no variation)."""
    diag, n_uc = _alpha_terms(counts)
    return float(_alpha_from_sums(diag.sum(), n_uc.sum(axis=0)))


def per_class_alpha(counts: np.ndarray) -> np.ndarray:
    """Alpha of each category against all others (the data binarised per category)."""
    m = counts.sum(axis=1, keepdims=True)
    result = np.empty(counts.shape[1])
    for c in range(counts.shape[1]):
        result[c] = krippendorff_alpha(np.hstack([counts[:, [c]], m - counts[:, [c]]]))
    return result


def _class_terms(counts: np.ndarray, m: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """`_alpha_terms` of each category against the rest, [c, m - c] per item, for all categories at once."""
    pairable = m >= 2
    rest = m[:, None] - counts
    same = counts * (counts - 1) + rest * (rest - 1)  # per item and category, integers
    with np.errstate(invalid="ignore", divide="ignore"):
        diag = np.where(pairable[:, None], same / (m - 1)[:, None], 0.0).T.copy()  # (C, U), rows contiguous
    return [(diag[c], np.stack([counts[:, c], rest[:, c]], axis=1) * pairable[:, None]) for c in range(counts.shape[1])]


def _overall_terms(counts: np.ndarray) -> np.ndarray:
    diag, n_uc = _alpha_terms(counts)
    return np.hstack([diag[:, None], n_uc])


def _per_class_terms(counts: np.ndarray) -> np.ndarray:
    blocks = [np.empty((len(counts), 0))]
    for diag, n_uc in _class_terms(counts, counts.sum(axis=1)):
        blocks += [diag[:, None], n_uc]
    return np.hstack(blocks)


#: Overall alpha as `Terms`: [sum_c o_cc contribution, n_uc per category] per item.
ALPHA_TERMS = Terms(_overall_terms, lambda s: _alpha_from_sums(s[..., 0], s[..., 1:]))


def class_terms(n_labels: int) -> Terms:
    """Per-category alpha (each category against the rest) of `n_labels` categories as one `Terms`: (items, 3 C)
    terms, and sums -> (..., C) alphas."""

    def of_sums(sums: np.ndarray) -> np.ndarray:
        grouped = sums.reshape(*sums.shape[:-1], n_labels, 3)
        return _alpha_from_sums(grouped[..., 0], grouped[..., 1:])

    return Terms(_per_class_terms, of_sums)


def class_alphas(counts: np.ndarray) -> np.ndarray:
    """(categories,) alpha of each category against the rest, summed over every item (as `per_class_alpha`)."""
    return np.array([_alpha_from_sums(d.sum(), n.sum(axis=0)) for d, n in _class_terms(counts, counts.sum(axis=1))])


def _estimate(ratings: Ratings) -> Estimate:
    diag, n_uc = _alpha_terms(ratings.counts)
    terms = ALPHA_TERMS
    alpha = float(_alpha_from_sums(diag.sum(), n_uc.sum(axis=0)))
    reason = None
    if not np.isfinite(alpha):
        paired = ratings.counts[ratings.m >= 2].sum(axis=0)
        only = ", ".join(ratings.votes.labels[c] for c in np.flatnonzero(paired))
        reason = f"no variation: every paired vote is {only}"
    return Estimate(alpha, reason=reason, terms=terms)


KRIPPENDORFF_ALPHA = register(
    AgreementStatistic(
        key="krippendorff_alpha",
        name="Krippendorff's alpha (nominal)",
        source="Krippendorff (2011), Computing Krippendorff's alpha-reliability",
        rank=10,
        estimate=_estimate,
    )
)
