"""The agreement report's fast paths give the results of the straightforward computation they replaced.

`data/agreement_reports.json` holds the reports the earlier implementation (a dense annotators x items grid for
Cohen's kappa, per-category loops, a bootstrap drawing items one by one) wrote for the tables of
`tests.support.agreement_tables.random_table`; their `statistics` lists hold the same values, and Gwet's AC1 (added
later) as a plain loop over the items computes it. Every statistic must be the same; the bootstrap intervals come from
another random stream of the same resampling distribution, so they must agree within Monte Carlo error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from annotation.agreement import agreement_report, bootstrap_counts, encode, pairwise_cohen
from annotation.statistics import kinds_of as _kinds
from tests.support.agreement_tables import SEEDS, random_table

GOLDEN = json.loads((Path(__file__).parent / "data" / "agreement_reports.json").read_text())
INTERVALS = {"alpha_ci", "fleiss_kappa_ci", "ci"}


def _same(got, want, path=""):
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for key in want:
            if key in INTERVALS:
                continue
            _same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{path}[{k}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), path
    else:
        assert got == want, path


@pytest.mark.parametrize("seed", SEEDS)
def test_report_is_the_one_the_earlier_implementation_gave(seed):
    got = agreement_report(random_table(seed), n_bootstrap=200, seed=seed).to_dict()
    _same(got, GOLDEN[str(seed)])


@pytest.mark.parametrize("seed", [s for s in SEEDS if GOLDEN[str(s)]["alpha_ci"]])
def test_bootstrap_intervals_agree_with_the_item_bootstrap_within_monte_carlo_error(seed):
    votes = random_table(seed)
    want = GOLDEN[str(seed)]
    got = agreement_report(votes, n_bootstrap=200, seed=seed + 100).to_dict()
    width = want["alpha_ci"][1] - want["alpha_ci"][0]
    for g, w in zip(got["alpha_ci"], want["alpha_ci"], strict=True):
        assert abs(g - w) <= 0.25 * width + 1e-9
    assert got["alpha_ci"][0] <= got["krippendorff_alpha"] <= got["alpha_ci"][1]


def test_bootstrap_counts_draw_as_many_items_as_there_are_and_follow_the_kinds():
    rng = np.random.default_rng(0)
    kinds = np.array([500, 300, 200])
    draws = bootstrap_counts(kinds, 4000, rng)
    assert (draws.sum(axis=1) == 1000).all()
    np.testing.assert_allclose(draws.mean(axis=0), kinds, rtol=0.01)
    # the item-level bootstrap's variance of a kind's count: n p (1 - p)
    np.testing.assert_allclose(draws.var(axis=0), 1000 * (kinds / 1000) * (1 - kinds / 1000), rtol=0.1)


def test_kinds_group_items_with_the_same_counts():
    counts = np.array([[2, 1], [0, 3], [2, 1], [1, 2], [0, 3], [2, 1]])
    first, freq, kind_of = _kinds(counts)
    assert sorted(zip(map(tuple, counts[first]), freq, strict=True)) == [((0, 3), 2), ((1, 2), 1), ((2, 1), 3)]
    assert (counts[first][kind_of] == counts).all()
    big = np.array([[10**6] * 6, [0] * 6, [10**6] * 6])  # too wide for one integer a row
    first, freq, kind_of = _kinds(big)
    assert sorted(freq) == [1, 2] and (big[first][kind_of] == big).all()


def test_pairwise_cohen_counts_a_repeated_vote_once_with_its_last_label():
    import pandas as pd
    from sklearn.metrics import cohen_kappa_score

    votes = pd.DataFrame({
        "video_id": ["1", "2", "3", "4", "2"],
        "annotator_id": ["a", "a", "a", "a", "a"],
        "label": ["x", "y", "x", "y", "x"],
    })  # fmt: skip
    other = pd.DataFrame({"video_id": ["1", "2", "3", "4"], "annotator_id": ["b"] * 4, "label": ["x", "x", "x", "y"]})
    enc = encode(pd.concat([votes, other]))
    ((kappa, n),) = pairwise_cohen(enc).values()
    assert n == 4 and math.isclose(kappa, cohen_kappa_score(["x", "x", "x", "y"], ["x", "x", "x", "y"]))


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_pairwise_cohen_is_the_same_when_too_many_annotators_for_one_array(seed, monkeypatch):
    import annotation.statistics.cohen as agreement

    enc = encode(random_table(seed))
    dense = pairwise_cohen(enc)
    monkeypatch.setattr(agreement, "DENSE_PAIR_CELLS", 0)
    sparse = pairwise_cohen(enc)
    assert list(sparse) == list(dense)
    for key, (kappa, n) in dense.items():
        assert sparse[key][1] == n and (sparse[key][0] == kappa or (math.isnan(kappa) and math.isnan(sparse[key][0])))
