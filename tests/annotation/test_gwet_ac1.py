"""Gwet's AC1 (annotation/statistics/gwet.py): hand-computed tables, Gwet's published worked example, the degenerate
cases, and its place in the agreement report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from annotation.agreement import agreement_report
from annotation.statistics import registered
from annotation.statistics.gwet import ac1_terms, gwet_ac1
from emotions_data.taxonomy import EMOTIONS6
from tests.support.agreement_tables import KRIPPENDORFF_2011


def votes_of(counts: list[list[int]], labels: list[str]) -> pd.DataFrame:
    """A long vote table with counts[u][k] votes for labels[k] on item u, each vote from another annotator."""
    rows = [
        (f"u{u}", f"r{n}", labels[k])
        for u, row in enumerate(counts)
        for k, c in enumerate(row)
        for n in range(sum(row[:k]), sum(row[:k]) + c)
    ]
    return pd.DataFrame(rows, columns=["video_id", "annotator_id", "label"])


def test_two_items_two_categories_by_hand():
    # p_a = (1 + 0) / 2; pi = ((1 + 1/2) / 2, (0 + 1/2) / 2) = (3/4, 1/4); p_e = 2 (3/4)(1/4) / 1 = 3/8
    # AC1 = (1/2 - 3/8) / (1 - 3/8) = 1/5
    assert gwet_ac1(np.array([[2, 0], [1, 1]])) == pytest.approx(0.2, abs=1e-15)


def test_three_raters_three_categories_by_hand():
    # p_a = (6/6 + 2/6 + 2/6) / 3 = 5/9; pi = (5/9, 2/9, 2/9); p_e = (20/81 + 28/81) / 2 = 8/27
    # AC1 = (5/9 - 8/27) / (1 - 8/27) = 7/19
    assert gwet_ac1(np.array([[3, 0, 0], [2, 1, 0], [0, 1, 2]])) == pytest.approx(7 / 19, abs=1e-15)


def test_gwets_published_example_with_missing_ratings():
    # The 4 raters x 12 subjects table with missing ratings (Krippendorff 2011, used by Gwet's Handbook of
    # Inter-Rater Reliability and his irrCAC functions as raw_4raters): p_a = 0.818, p_e = 0.190, AC1 = 0.775
    # (unweighted, 5 categories). Subject 12 has one rating: out of p_a, in the prevalences.
    ratings = KRIPPENDORFF_2011
    counts = np.array([[int(np.sum(ratings[:, u] == k)) for k in range(1, 6)] for u in range(12)])
    sums = ac1_terms(5).of_counts(counts).sum(axis=0)
    p_a = sums[0] / sums[1]
    pi = sums[3:] / sums[2]
    p_e = (pi * (1 - pi)).sum() / 4
    assert (round(p_a, 3), round(p_e, 3)) == (0.818, 0.190)
    assert round(gwet_ac1(counts), 3) == 0.775
    raters, items = np.nonzero(~np.isnan(ratings))
    votes = pd.DataFrame(
        {"video_id": items.astype(str), "annotator_id": raters.astype(str), "label": ratings[raters, items].astype(int)}
    )
    report = agreement_report(votes.astype(str), n_bootstrap=0)
    (entry,) = [s for s in report.statistics if s["key"] == "gwet_ac1"]
    assert round(entry["value"], 3) == 0.775 and entry["ci"] is None


def test_one_category_used_gives_one_where_the_kappas_are_undefined():
    votes = votes_of([[3, 0], [2, 0], [4, 0]], ["Fear", "Neutral"])
    report = agreement_report(votes, list(EMOTIONS6.classes), n_bootstrap=50)
    (entry,) = [s for s in report.statistics if s["key"] == "gwet_ac1"]
    # every pi but Fear's is 0 and Fear's is 1, so chance agreement is 0 and AC1 = p_a = 1 (Gwet 2008)
    assert entry["value"] == 1.0 and entry["reason"] is None and entry["ci"] == [1.0, 1.0]
    assert math.isnan(report.krippendorff_alpha) and report.fleiss_kappa is None
    # a single category known (no taxonomy, one label): no chance term, AC1 = p_a, as in Gwet's R functions
    assert gwet_ac1(np.array([[3], [2]])) == 1.0
    assert gwet_ac1(np.array([[3], [2], [1]])) == 1.0


def test_items_with_fewer_than_two_votes_stay_out_of_the_agreement():
    two = np.array([[2, 0], [1, 1]])
    with_single = np.vstack([two, [[1, 0]]])
    # p_a stays 1/2; the single vote moves the prevalences: pi = (5/6, 1/6), p_e = 10/36, AC1 = 4/13
    assert gwet_ac1(with_single) == pytest.approx(4 / 13, abs=1e-15)
    # an item without votes changes nothing
    assert gwet_ac1(np.vstack([two, [[0, 0]]])) == pytest.approx(0.2, abs=1e-15)
    # no item with two votes: undefined
    assert math.isnan(gwet_ac1(np.array([[1, 0], [0, 1]])))


def test_a_bootstrap_replicate_is_ac1_of_the_resampled_items():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 4, (60, 4))
    terms = ac1_terms(4)
    for _ in range(5):
        drawn = rng.integers(0, len(counts), len(counts))
        replicate = terms.of_sums(terms.of_counts(counts[drawn]).sum(axis=0))
        assert replicate == pytest.approx(gwet_ac1(counts[drawn]), rel=1e-12)


def test_the_report_lists_ac1_with_an_interval_and_json_keeps_it():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 6, 150)
    rows = [
        (f"v{u}", f"a{a}", EMOTIONS6.classes[truth[u] if rng.random() < 0.7 else rng.integers(0, 6)])
        for u in range(150)
        for a in rng.choice(8, 3, replace=False)
    ]
    votes = pd.DataFrame(rows, columns=["video_id", "annotator_id", "label"])
    report = agreement_report(votes, list(EMOTIONS6.classes), n_bootstrap=300, seed=1)
    assert [s.key for s in registered()].index("gwet_ac1") == len(registered()) - 1  # after the older three
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    (entry,) = [s for s in data["statistics"] if s["key"] == "gwet_ac1"]
    counts = votes.groupby(["video_id", "label"]).size().unstack(fill_value=0).reindex(columns=EMOTIONS6.classes)
    assert entry["name"] == "Gwet's AC1" and entry["value"] == pytest.approx(gwet_ac1(counts.fillna(0).to_numpy()))
    low, high = entry["ci"]
    assert low < entry["value"] < high and high - low < 0.25
