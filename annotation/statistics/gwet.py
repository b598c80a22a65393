"""Gwet's AC1 (Gwet 2008, "Computing inter-rater reliability and its variance in the presence of high agreement",
Brit. J. Math. Stat. Psych. 61:29-48), nominal categories, any number of raters per item: the form with missing
ratings of Gwet's Handbook of Inter-Rater Reliability (4th ed., 2014) and of his R functions (agree.coeff3.raw.r).

With r_uk the votes for category k on item u, r_u = sum_k r_uk, q the number of categories (the taxonomy's, or the
labels in the table without one), n' the items with r_u >= 2 and n the items with a vote:

    p_a  = (1 / n') sum_{u: r_u >= 2} sum_k r_uk (r_uk - 1) / (r_u (r_u - 1))
    pi_k = (1 / n) sum_u r_uk / r_u
    p_e  = sum_k pi_k (1 - pi_k) / (q - 1)
    AC1  = (p_a - p_e) / (1 - p_e).

An item with one vote agrees with nobody, so it stays out of p_a; it still says which categories are common, so it
enters pi_k, as in Gwet's definition. Chance agreement p_e is at most 1 / q, so AC1 is defined whenever some item has
two votes, including when every vote is in one category (AC1 = 1 then, where kappa-type statistics are undefined:
the paradox AC1 was built to resolve). With a single category (q = 1) there is no chance term: p_e = 0 and AC1 = p_a,
as in Gwet's R functions. All four sums are sums of per-item terms, so the bootstrap over items needs no recount.
"""

from __future__ import annotations

import numpy as np

from annotation.statistics import AgreementStatistic, Estimate, Ratings, Terms, register


def _per_item(counts: np.ndarray) -> np.ndarray:
    """Per item: [agreement on the item (0 for fewer than 2 votes), item has >= 2 votes, item has a vote, r_uk / r_u
    for each category k]."""
    m = counts.sum(axis=1).astype(np.float64)
    pairable, rated = m >= 2, m >= 1
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(pairable, (counts * (counts - 1)).sum(axis=1) / (m * (m - 1)), 0.0)
        shares = np.where(rated[:, None], counts / m[:, None], 0.0)
    return np.hstack([agreement[:, None], pairable[:, None], rated[:, None], shares])


def ac1_terms(n_categories: int) -> Terms:
    """Gwet's AC1 over `n_categories` categories (q) as per-item terms (`_per_item`, 3 + q columns); sums -> AC1,
    NaN when no item has two votes."""

    def of_sums(sums: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            p_a = sums[..., 0] / sums[..., 1]
            pi = sums[..., 3:] / sums[..., 2:3]
            q = n_categories
            p_e = (pi * (1 - pi)).sum(axis=-1) / (q - 1) if q > 1 else np.zeros_like(p_a)
            return (p_a - p_e) / (1 - p_e)

    return Terms(_per_item, of_sums)


def gwet_ac1(counts: np.ndarray) -> float:
    """Gwet's AC1 of an (items, categories) count matrix (items with fewer than 2 votes count only in the category
    prevalences); NaN when no item has two votes."""
    counts = np.asarray(counts)
    return float(ac1_terms(counts.shape[1]).value(counts))


def _estimate(ratings: Ratings) -> Estimate:
    terms = ac1_terms(ratings.counts.shape[1])
    value = float(terms.value(ratings.counts, ratings.kinds))
    reason = None if np.isfinite(value) else "no item has two votes"
    return Estimate(value, reason=reason, terms=terms)


GWET_AC1 = register(
    AgreementStatistic(
        key="gwet_ac1",
        name="Gwet's AC1",
        source="Gwet (2008), Computing inter-rater reliability and its variance in the presence of high agreement",
        rank=40,
        estimate=_estimate,
    )
)
