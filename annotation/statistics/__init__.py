"""Agreement statistics: one contract, one registry, and the bootstrap over items they share (pure numpy).

A statistic is an `AgreementStatistic`: a stable `key`, a `name` as printed, its `source`, a `rank` (its place in
reports) and `estimate`, which turns the `Ratings` of a vote table into an `Estimate` (its value, why it is missing,
undefined or partial, and, for a statistic that is a function of sums over items, those per-item `Terms`, from which
the report draws a bootstrap interval). Every module of this package is imported when the package is, and each
registers its statistics with `register`; the agreement report, `agreement.json` (a self-describing list of
statistics) and the release card all read `registered()`. Adding a statistic is one module here and its test.

The bootstrap resamples items (Efron & Tibshirani 1993, ch. 6): every statistic with terms is a function of column
sums of its per-item terms, and items with the same vote counts have the same terms, so one resample is its draw
counts per kind of item times the kinds' terms, all statistics in one matrix product.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from annotation.votes import EncodedVotes


@dataclass(frozen=True)
class Ratings:
    """What every statistic is computed from: the encoded votes and their (items, labels) count matrix N
    (N[u, c] = votes for label c on item u). `memo` lets statistics and the report share a costly intermediate (e.g.
    the pairwise confusion matrices) computed once per report."""

    votes: EncodedVotes
    counts: np.ndarray  # (items, labels) int64
    memo: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def m(self) -> np.ndarray:
        """(items,) votes per item."""
        return self.counts.sum(axis=1)

    @property
    def kinds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`kinds_of(counts)`, found once."""
        return self.shared("kinds", lambda: kinds_of(self.counts))

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for, the same object afterwards."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


@dataclass(frozen=True)
class Terms:
    """A statistic as a function of sums over items of additive per-item terms. `of_counts` maps the vote counts of
    some items, (r, labels), to their terms, (r, k): an item's terms depend on its counts alone, so items with the same
    counts (one kind) share them and only one item of each kind is ever computed. `of_sums` maps column sums (..., k),
    batched over leading axes, to the statistic (...)."""

    of_counts: Callable[[np.ndarray], np.ndarray]
    of_sums: Callable[[np.ndarray], np.ndarray]

    def value(self, counts: np.ndarray, kinds: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """The statistic over all items of the (items, labels) `counts` (`kinds`: their `kinds_of`, when known):
        each kind's terms times how many items are of that kind."""
        first, freq, _ = kinds if kinds is not None else kinds_of(counts)
        return self.of_sums(freq.astype(np.float64) @ self.of_counts(counts[first]).astype(np.float64))


@dataclass(frozen=True)
class Estimate:
    """A statistic on one vote table. `value` None: not computed on these votes (`applies` False: the statistic
    does not apply, e.g. Fleiss' kappa on unequal vote counts) or nothing to compute from; NaN: undefined. `reason`
    says why it is missing, undefined or covers less than it seems; `detail` is printed after the value (e.g. "over
    28 pairs"); `figures` are further numbers kept beside it in the report (e.g. {"pairs": 28}); `terms`, when given,
    yield a bootstrap interval."""

    value: float | None
    reason: str | None = None
    applies: bool = True
    detail: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    terms: Terms | None = None


@dataclass(frozen=True)
class AgreementStatistic:
    """One agreement statistic. `key` names it in `agreement.json` and never changes; `name` is how reports print
    it; `source` the formula's reference; `rank` orders reports (lower first); `digits` how many decimals reports
    print; `estimate` computes it from a vote table's `Ratings`."""

    key: str
    name: str
    source: str
    rank: int
    estimate: Callable[[Ratings], Estimate]
    digits: int = 3


_REGISTRY: dict[str, AgreementStatistic] = {}


def register(statistic: AgreementStatistic) -> AgreementStatistic:
    """Add `statistic` to the registry; ValueError when its key is taken by another statistic."""
    known = _REGISTRY.get(statistic.key)
    if known is not None and known != statistic:
        raise ValueError(f"agreement statistic key {statistic.key!r} is already registered ({known.name})")
    _REGISTRY[statistic.key] = statistic
    return statistic


def registered() -> list[AgreementStatistic]:
    """Every registered statistic, in report order (`rank`, then `key`)."""
    return sorted(_REGISTRY.values(), key=lambda s: (s.rank, s.key))


# ---------------------------------------------------------------- the bootstrap over items


def kinds_of(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kinds of items (distinct rows of an (items, labels) count matrix): (first item of each kind (T,), items
    of each kind (T,), each item's kind (items,))."""
    base = int(counts.max(initial=0)) + 1
    if counts.shape[1] * math.log2(base) < 62:  # one integer per row
        keys = counts @ (base ** np.arange(counts.shape[1], dtype=np.int64))
        _, first, kind_of, freq = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    else:
        _, first, kind_of, freq = np.unique(counts, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return first, freq, kind_of.ravel()


def bootstrap_counts(kinds: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, T) draw counts of T kinds of items, one row per bootstrap resample of all the items.

    `kinds` (T,) holds how many items are of each kind, items of one kind having the same terms (the same vote
    counts). Drawing n items with replacement, uniformly, and counting the draws per kind is a multinomial draw over
    the kinds with probabilities kinds / n (the draws per item are multinomial, and sums of multinomial cells are
    multinomial): the same resampling distribution as the item-level bootstrap (Efron & Tibshirani 1993, ch. 6),
    at a cost that follows the number of kinds, not of items."""
    n = int(kinds.sum())
    return rng.multinomial(n, kinds / n, size=n_resamples).astype(np.float64)


def bootstrap(ratings: Ratings, terms: list[Terms], n_resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """(n_resamples,) or (n_resamples, ...) bootstrap replicates over the items of `ratings` of each of `terms`, all
    from the same resamples: one `bootstrap_counts` draw and one matrix product. An empty list for no terms, no items
    or no resamples."""
    if not terms or not len(ratings.counts) or not n_resamples:
        return []
    first, freq, _ = ratings.kinds
    blocks = [t.of_counts(ratings.counts[first]).reshape(len(first), -1) for t in terms]
    sums = bootstrap_counts(freq, n_resamples, rng) @ np.hstack(blocks).astype(np.float64)
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    return [t.of_sums(sums[:, lo:hi]) for t, lo, hi in zip(terms, edges[:-1], edges[1:], strict=True)]


def percentile_ci(values: np.ndarray, confidence: float) -> list[float] | None:
    """The percentile interval [low, high] of the finite `values` at `confidence` (0-1); None when none is finite."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def _load_all() -> None:
    """Import every module of this package, so each registers its statistics."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")


_load_all()
