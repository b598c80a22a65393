"""Inter-annotator agreement over a long vote table: pure numpy, no I/O.

Everything starts from the item x category count matrix N (N[u, c] = votes for category c on
item u). Krippendorff's alpha (nominal) and Fleiss' kappa are sums of per-item terms, so a
bootstrap over items is a matrix product of resampling weights with those terms: 1,000
resamples of 28,000 items cost well under a second.

Nominal alpha from the coincidence matrix (Krippendorff 2011): for pairable items (m_u >= 2
votes), o_ck = sum_u (n_uc n_uk - [c = k] n_uc) / (m_u - 1); with n_c = sum_k o_ck = sum_u n_uc
and n = sum_c n_c,

    alpha = ((n - 1) * sum_c o_cc - sum_c n_c (n_c - 1)) / (n (n - 1) - sum_c n_c (n_c - 1)).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from annotation.plurality import TIE, unique_plurality

ITEM, ANNOTATOR, LABEL = "video_id", "annotator_id", "label"
#: Up to this many cells, Cohen's kappa counts every possible annotator pair's confusion matrix in one array.
DENSE_PAIR_CELLS = 50_000_000


@dataclass(frozen=True)
class EncodedVotes:
    """Votes as integer codes: one entry per vote."""

    item: np.ndarray  # (V,) index into items
    annotator: np.ndarray  # (V,) index into annotators
    label: np.ndarray  # (V,) index into labels
    items: list[str]
    annotators: list[str]
    labels: list[str]

    @property
    def counts(self) -> np.ndarray:
        """N: (items, labels) vote counts."""
        n_labels = len(self.labels)
        flat = np.bincount(self.item * n_labels + self.label, minlength=len(self.items) * n_labels)
        return flat.reshape(len(self.items), n_labels).astype(np.int64)


def _as_text(column: pd.Series) -> pd.Series:
    """The column as strings (ids typed as numbers in a spreadsheet become their text); string columns as they are."""
    return column if pd.api.types.is_string_dtype(column) else column.astype(str)


def encode(votes: pd.DataFrame, labels: list[str] | None = None) -> EncodedVotes:
    """Integer-code a long table with `video_id`, `annotator_id`, `label` columns. `labels` fixes
    the category order (e.g. a taxonomy); otherwise the sorted distinct labels are used."""
    missing = {ITEM, ANNOTATOR, LABEL} - set(votes.columns)
    if missing:
        raise ValueError(f"vote table lacks column(s): {', '.join(sorted(missing))}")
    frame = votes[[ITEM, ANNOTATOR, LABEL]].dropna()
    label_codes, label_names = pd.factorize(_as_text(frame[LABEL]))
    label_names = [str(name) for name in label_names]
    if labels is None:
        labels = sorted(label_names)
    unknown = sorted(set(label_names) - set(labels))
    if unknown:
        raise ValueError(f"label(s) outside the taxonomy: {', '.join(unknown)}")
    item_codes, items = pd.factorize(_as_text(frame[ITEM]), sort=True)
    annotator_codes, annotators = pd.factorize(_as_text(frame[ANNOTATOR]), sort=True)
    label_index = {name: i for i, name in enumerate(labels)}
    to_label = np.array([label_index[name] for name in label_names], dtype=np.int64)
    return EncodedVotes(
        item=item_codes.astype(np.int64),
        annotator=annotator_codes.astype(np.int64),
        label=to_label[label_codes] if len(label_codes) else np.empty(0, np.int64),
        items=[str(i) for i in items.tolist()],
        annotators=[str(a) for a in annotators.tolist()],
        labels=list(labels),
    )


# ---------------------------------------------------------------- Krippendorff's alpha


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


# ---------------------------------------------------------------- Fleiss' and Cohen's kappa


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
    first, _, kind_of = _kinds(counts)
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


# ---------------------------------------------------------------- bootstrap


def bootstrap_counts(kinds: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, T) draw counts of T kinds of items, one row per bootstrap resample of all the items.

    `kinds` (T,) holds how many items are of each kind, items of one kind having the same terms (the same vote
    counts). Drawing n items with replacement, uniformly, and counting the draws per kind is a multinomial draw over
    the kinds with probabilities kinds / n (the draws per item are multinomial, and sums of multinomial cells are
    multinomial): the same resampling distribution as the item-level bootstrap (Efron & Tibshirani 1993, ch. 6),
    at a cost that follows the number of kinds, not of items."""
    n = int(kinds.sum())
    return rng.multinomial(n, kinds / n, size=n_resamples).astype(np.float64)


def _kinds(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kinds of items (distinct rows of an (items, labels) count matrix): (first item of each kind (T,), items
    of each kind (T,), each item's kind (items,))."""
    base = int(counts.max(initial=0)) + 1
    if counts.shape[1] * math.log2(base) < 62:  # one integer per row
        keys = counts @ (base ** np.arange(counts.shape[1], dtype=np.int64))
        _, first, kind_of, freq = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    else:
        _, first, kind_of, freq = np.unique(counts, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return first, freq, kind_of.ravel()


def _percentile_ci(values: np.ndarray, confidence: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


# ---------------------------------------------------------------- the report


@dataclass
class AgreementReport:
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
    # Why a statistic is missing or covers less than it seems: statistic -> reason (e.g. every vote in one
    # category leaves alpha and Fleiss' kappa undefined; pairs whose labels never vary leave Cohen's mean).
    undefined: dict[str, str] = field(default_factory=dict)

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


def agreement_report(
    votes: pd.DataFrame,
    labels: list[str] | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    top_disputed: int = 10,
) -> AgreementReport:
    """All agreement statistics of a long vote table (`video_id`, `annotator_id`, `label`).

    Raises ValueError naming the parameter when `n_bootstrap`, `top_disputed` or `seed` is negative or `confidence`
    is not strictly between 0 and 1, and when no item has two votes (every statistic would be undefined)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, not {confidence}")
    for name, value in (("n_bootstrap", n_bootstrap), ("top_disputed", top_disputed), ("seed", seed or 0)):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
    enc = encode(votes, labels)
    counts = enc.counts
    n_items, n_labels = counts.shape
    if n_items == 0 or counts.sum(axis=1).max() < 2:
        raise ValueError(
            f"no item has two or more votes ({len(enc.label)} vote(s) on {n_items} item(s)): agreement needs at "
            "least two votes on one item"
        )
    rng = np.random.default_rng(seed)
    m = counts.sum(axis=1)

    diag, n_uc = _alpha_terms(counts)
    alpha = float(_alpha_from_sums(diag.sum(), n_uc.sum(axis=0)))
    class_terms = _class_terms(counts, m)
    class_alpha = [float(_alpha_from_sums(d.sum(), n.sum(axis=0))) for d, n in class_terms]

    fleiss_ok = n_items > 0 and m.min() == m.max() and m[0] >= 2
    fleiss = fleiss_reason = None
    if fleiss_ok:
        p_item, _ = _fleiss_terms(counts)
        fleiss = float(_fleiss_from_sums(p_item.sum(), counts.sum(axis=0), n_items))
    else:
        low, high = (int(m.min()), int(m.max())) if n_items else (0, 0)
        fleiss_reason = (
            f"items have {low} to {high} votes; Fleiss' kappa needs the same number (>= 2) on every item"
            if low != high
            else f"every item has {low} vote(s); Fleiss' kappa needs at least 2"
        )

    # Every statistic above is a function of per-item sums, and items with the same vote counts have the same
    # terms: each resample is its draw counts per kind of item times the kinds' terms, all in one matrix product.
    first, freq, _ = _kinds(counts)
    blocks = [diag[first, None], n_uc[first]] + [part for d, n in class_terms for part in (d[first, None], n[first])]
    if fleiss_ok:
        blocks += [p_item[first, None], counts[first]]
    terms = np.hstack(blocks).astype(np.float64)
    alpha_samples, fleiss_samples, class_samples = [], [], []
    if n_items and n_bootstrap:
        sums = bootstrap_counts(freq, n_bootstrap, rng) @ terms
        alpha_samples.append(_alpha_from_sums(sums[:, 0], sums[:, 1 : 1 + n_labels]))
        col = 1 + n_labels
        batch = []
        for _ in range(n_labels):
            batch.append(_alpha_from_sums(sums[:, col], sums[:, col + 1 : col + 3]))
            col += 3
        class_samples.append(np.stack(batch, axis=1))
        if fleiss_ok:
            fleiss_samples.append(_fleiss_from_sums(sums[:, col], sums[:, col + 1 : col + 1 + n_labels], n_items))
    alpha_ci = _percentile_ci(np.concatenate(alpha_samples), confidence) if alpha_samples else None
    fleiss_ci = _percentile_ci(np.concatenate(fleiss_samples), confidence) if fleiss_samples else None
    class_boot = np.concatenate(class_samples, axis=0) if class_samples else np.empty((0, n_labels))

    pairs = pairwise_cohen(enc)
    kappas = np.array([k for k, _ in pairs.values()])
    kappas = kappas[np.isfinite(kappas)]
    undefined = {}
    if not math.isfinite(alpha):
        only = ", ".join(enc.labels[c] for c in np.flatnonzero(counts[m >= 2].sum(axis=0)))
        undefined["krippendorff_alpha"] = f"no variation: every paired vote is {only}"
    if fleiss_ok and not math.isfinite(fleiss):
        fleiss_reason = undefined["fleiss_kappa"] = "every vote is in one category: chance agreement is 1"
    flat = [f"{enc.annotators[i]}-{enc.annotators[j]}" for (i, j), (k, _) in pairs.items() if not math.isfinite(k)]
    if flat:  # Cohen's kappa of a pair that used a single label between them divides by zero
        undefined["cohen_kappa_mean"] = (
            f"{len(flat)} of {len(pairs)} pair(s) left out ({', '.join(flat[:5])}{', ...' if len(flat) > 5 else ''}): "
            "on their shared items both used one and the same label, so chance agreement is 1"
        )
    loo = leave_one_out(enc, counts)
    per_annotator = {}
    kappas_of: list[list[float]] = [[] for _ in enc.annotators]
    for (i, j), (k, _) in pairs.items():  # in pair order, as the means have always been summed
        if math.isfinite(k):
            kappas_of[i].append(k)
            kappas_of[j].append(k)
    for a, name in enumerate(enc.annotators):
        mine = kappas_of[a]
        row = loo.loc[name] if name in loo.index else None
        per_annotator[name] = {
            "n_votes": int(row["n_votes"]) if row is not None else 0,
            "agreement": float(row["agreement"]) if row is not None else math.nan,
            "majority_agreement": float(row["majority_agreement"]) if row is not None else math.nan,
            "cohen_kappa_mean": float(np.mean(mine)) if mine else math.nan,
        }

    per_class = {}
    vote_totals = counts.sum(axis=0)
    for c, name in enumerate(enc.labels):
        per_class[name] = {
            "alpha": class_alpha[c],
            "alpha_ci": _percentile_ci(class_boot[:, c], confidence) if len(class_boot) else None,
            "n_votes": int(vote_totals[c]),
        }

    agree = item_agreement(counts)
    order = np.argsort(np.where(np.isnan(agree), np.inf, agree), kind="stable")
    disputed = []
    for u in order[:top_disputed]:
        if np.isnan(agree[u]) or agree[u] >= 1.0:  # an item everyone agreed on is not disputed
            break
        disputed.append(
            {
                "video_id": enc.items[u],
                "agreement": float(agree[u]),
                "votes": {enc.labels[c]: int(counts[u, c]) for c in np.flatnonzero(counts[u])},
            }
        )
    sizes, freq = np.unique(m, return_counts=True)
    return AgreementReport(
        n_items=n_items,
        n_annotators=len(enc.annotators),
        n_votes=len(enc.label),
        n_pairable_items=int((m >= 2).sum()),
        labels=enc.labels,
        krippendorff_alpha=alpha,
        alpha_ci=alpha_ci,
        fleiss_kappa=fleiss,
        fleiss_kappa_ci=fleiss_ci,
        fleiss_kappa_absent_reason=fleiss_reason,
        cohen_kappa_mean=float(np.mean(kappas)) if len(kappas) else None,
        cohen_kappa_pairs=len(kappas),
        per_class=per_class,
        per_annotator=per_annotator,
        most_disputed=disputed,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        seed=seed,
        votes_per_item={f"{int(s)}": int(f) for s, f in zip(sizes, freq, strict=True)},
        undefined=undefined,
    )
