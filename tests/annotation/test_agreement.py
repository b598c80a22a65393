"""Agreement and aggregation: against reference libraries, published worked examples and hand sums."""

from __future__ import annotations

import json
import math

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from annotation.aggregate import DawidSkene, MajorityVote
from annotation.agreement import (
    agreement_report,
    cohen_kappa,
    encode,
    fleiss_kappa,
    krippendorff_alpha,
    per_class_alpha,
)
from annotation.labels import final_labels
from emotions_data.taxonomy import EMOTIONS6
from tests.support.agreement_tables import KRIPPENDORFF_2011
from tests.support.votes import simulated


def long_table(matrix: np.ndarray) -> pd.DataFrame:
    """(raters, items) matrix with NaN for missing -> long vote table."""
    raters, items = np.nonzero(~np.isnan(matrix))
    return pd.DataFrame(
        {
            "video_id": [f"u{i:04d}" for i in items],
            "annotator_id": [f"r{r:02d}" for r in raters],
            "label": [str(int(v)) for v in matrix[raters, items]],
        }
    )


def random_matrix(seed: int, raters: int, items: int, categories: int, missing: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    noisy = np.where(rng.random((raters, items)) < 0.6, truth, rng.integers(0, categories, (raters, items)))
    matrix = noisy.astype(float)
    matrix[rng.random((raters, items)) < missing] = np.nan
    return matrix


@pytest.mark.parametrize(
    ("seed", "raters", "items", "categories", "missing"),
    [(0, 3, 50, 6, 0.0), (1, 5, 200, 6, 0.3), (2, 12, 80, 3, 0.6), (3, 2, 300, 2, 0.1), (4, 30, 500, 6, 0.85)],
)
def test_alpha_matches_the_krippendorff_package_to_1e9(seed, raters, items, categories, missing):
    matrix = random_matrix(seed, raters, items, categories, missing)
    ours = agreement_report(long_table(matrix), n_bootstrap=0).krippendorff_alpha
    reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    assert abs(ours - reference) < 1e-9


def test_alpha_reproduces_krippendorffs_published_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units
    # example with missing data: nominal alpha = 0.743.
    matrix = KRIPPENDORFF_2011
    report = agreement_report(long_table(matrix), n_bootstrap=200, seed=1)
    assert round(report.krippendorff_alpha, 3) == 0.743
    assert report.n_items == 12 and report.n_pairable_items == 11  # unit 12 has one value: not pairable
    assert report.fleiss_kappa is None and "1 to 4 votes" in report.fleiss_kappa_absent_reason


FLEISS_1971 = np.array(  # the classic worked example: 10 subjects, 14 raters, 5 categories, kappa = 0.210
    [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
)  # fmt: skip


def test_fleiss_kappa_reproduces_the_published_example():
    assert round(fleiss_kappa(FLEISS_1971), 3) == 0.210
    rows = [
        (f"s{u}", f"r{k}", f"c{c}")
        for u, counts in enumerate(FLEISS_1971)
        for k, c in enumerate(np.repeat(np.arange(5), counts))
    ]
    report = agreement_report(pd.DataFrame(rows, columns=["video_id", "annotator_id", "label"]), seed=3)
    assert round(report.fleiss_kappa, 3) == 0.210
    low, high = report.fleiss_kappa_ci
    assert low <= report.fleiss_kappa <= high


def test_fleiss_kappa_refuses_unequal_rater_counts():
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[2, 1], [1, 0]]))


@pytest.mark.parametrize("seed", range(5))
def test_cohen_kappa_matches_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, 200)
    b = np.where(rng.random(200) < 0.5, a, rng.integers(0, 6, 200))
    assert abs(cohen_kappa(a, b, 6) - cohen_kappa_score(a, b)) < 1e-12


def test_mean_pairwise_cohen_kappa_uses_only_shared_items():
    matrix = random_matrix(7, 4, 120, 4, 0.4)
    report = agreement_report(long_table(matrix), n_bootstrap=0)
    kappas = []
    for i in range(4):
        for j in range(i + 1, 4):
            both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
            kappas.append(cohen_kappa_score(matrix[i, both].astype(int), matrix[j, both].astype(int)))
    assert report.cohen_kappa_pairs == 6
    assert abs(report.cohen_kappa_mean - np.mean(kappas)) < 1e-12


def test_per_class_alpha_is_alpha_of_the_binarised_data():
    matrix = random_matrix(11, 5, 150, 4, 0.3)
    enc = encode(long_table(matrix))
    ours = per_class_alpha(enc.counts)
    for c, name in enumerate(enc.labels):
        binary = np.where(np.isnan(matrix), np.nan, (matrix == int(name)).astype(float))
        assert abs(ours[c] - krippendorff.alpha(reliability_data=binary, level_of_measurement="nominal")) < 1e-9
    report = agreement_report(long_table(matrix), n_bootstrap=100)
    assert [round(v["alpha"], 12) for v in report.per_class.values()] == [round(v, 12) for v in ours]


def test_bootstrap_interval_is_seeded_and_narrows_with_more_items():
    small = long_table(random_matrix(5, 3, 60, 6, 0.0))
    big = long_table(random_matrix(5, 3, 2000, 6, 0.0))
    a, b = agreement_report(small, seed=1), agreement_report(small, seed=1)
    assert a.alpha_ci == b.alpha_ci and a.alpha_ci != agreement_report(small, seed=2).alpha_ci
    assert a.alpha_ci[0] <= a.krippendorff_alpha <= a.alpha_ci[1]
    width = lambda r: r.alpha_ci[1] - r.alpha_ci[0]  # noqa: E731
    assert width(agreement_report(big, seed=1)) < width(a) / 3


def test_leave_one_out_agreement_by_hand():
    votes = pd.DataFrame(
        [("x", "a", "P"), ("x", "b", "P"), ("x", "c", "Q"), ("y", "a", "R"), ("y", "b", "R"), ("y", "c", "R")],
        columns=["video_id", "annotator_id", "label"],
    )
    report = agreement_report(votes, n_bootstrap=0)
    # a: on x one of two others agrees (1/2), on y both (1) -> 0.75; c: 0 and 1 -> 0.5.
    assert report.per_annotator["a"]["agreement"] == pytest.approx(0.75)
    assert report.per_annotator["c"]["agreement"] == pytest.approx(0.5)
    assert report.per_annotator["c"]["majority_agreement"] == pytest.approx(0.5)
    assert report.most_disputed[0]["video_id"] == "x" and report.most_disputed[0]["votes"] == {"P": 2, "Q": 1}


def test_alpha_is_undefined_without_variation_and_json_stays_valid():
    votes = pd.DataFrame([("x", "a", "P"), ("x", "b", "P")], columns=["video_id", "annotator_id", "label"])
    report = agreement_report(votes, n_bootstrap=10)
    assert math.isnan(report.krippendorff_alpha)
    json.dumps(report.to_dict(), allow_nan=False)  # NaN became null


def test_alpha_from_counts_is_order_invariant():
    counts = np.array([[2, 1, 0], [0, 3, 0], [1, 1, 1], [0, 0, 2]])
    assert krippendorff_alpha(counts) == pytest.approx(krippendorff_alpha(counts[::-1, ::-1]))


# ---------------------------------------------------------------- aggregation


def test_majority_vote_never_breaks_ties():
    votes = pd.DataFrame(
        [("x", "a", "Fear"), ("x", "b", "Tension"), ("y", "a", "Fear"), ("y", "b", "Fear"), ("y", "c", "Sadness")],
        columns=["video_id", "annotator_id", "label"],
    )
    result = MajorityVote().fit(votes).result_
    assert dict(zip(result.video_id, result.label, strict=True)) == {"x": None, "y": "Fear"}
    assert result.confidence[1] == pytest.approx(2 / 3)


def test_dawid_skene_beats_majority_when_a_few_annotators_are_reliable():
    votes, truth = simulated(0)
    ds = DawidSkene().fit(votes, list(EMOTIONS6.classes))
    mv = MajorityVote().fit(votes, list(EMOTIONS6.classes)).result_
    ds_acc = np.mean([truth[v] == lab for v, lab in zip(ds.result_.video_id, ds.result_.label, strict=True)])
    mv_acc = np.mean([truth[v] == lab for v, lab in zip(mv.video_id, mv.label, strict=True)])  # ties count wrong
    assert ds_acc > mv_acc + 0.05 and ds_acc > 0.9
    diagonal = {name: np.trace(ds.confusion_[i]) / 6 for i, name in enumerate(ds.annotators_)}
    assert diagonal["ann0"] > 0.85 and diagonal["ann4"] < 0.5
    assert np.allclose(ds.result_.posteriors.sum(axis=1), 1.0)


def test_dawid_skene_is_certain_on_unanimous_votes():
    votes = pd.DataFrame(
        [(f"v{i}", a, EMOTIONS6.classes[i % 6]) for i in range(30) for a in ("a", "b", "c")],
        columns=["video_id", "annotator_id", "label"],
    )
    result = DawidSkene().fit(votes).result_
    assert [lab for lab in result.label] == [EMOTIONS6.classes[int(v[1:]) % 6] for v in result.video_id]
    assert result.confidence.min() > 0.99


def test_final_labels_expert_overrides_and_ties_wait_for_the_expert():
    votes = pd.DataFrame(
        [
            ("tie", "a", "label", "Fear"), ("tie", "b", "label", "Tension"),
            ("clear", "a", "label", "Relaxation"), ("clear", "b", "label", "Relaxation"),
            ("overruled", "a", "label", "Neutral"), ("overruled", "b", "label", "Neutral"),
            ("overruled", "boss", "expert", "Sadness"),
            ("settled", "a", "label", "Fear"), ("settled", "b", "label", "Sadness"),
            ("settled", "boss", "expert", "Fear"),
            ("experts_split", "a", "label", "Fear"), ("experts_split", "e1", "expert", "Fear"),
            ("experts_split", "e2", "expert", "Tension"),
        ],
        columns=["video_id", "annotator_id", "stage", "label"],
    )  # fmt: skip
    result = final_labels(votes, EMOTIONS6, "majority")
    labels = {r["video_id"]: r for r in result.labels.to_pylist()}
    assert labels["clear"]["label"] == "Relaxation" and labels["clear"]["decided_by"] == "majority"
    assert labels["clear"]["polarity"] == "positive" and labels["clear"]["n_votes"] == 2
    assert labels["overruled"]["label"] == "Sadness" and labels["overruled"]["decided_by"] == "expert"
    assert labels["settled"]["label"] == "Fear" and labels["settled"]["confidence"] == 1.0
    assert set(labels) == {"clear", "overruled", "settled"}
    waiting = {r["video_id"]: r for r in result.needs_expert.to_pylist()}
    assert set(waiting) == {"tie", "experts_split"}
    assert waiting["tie"]["votes"] in ("Fear:1, Tension:1", "Tension:1, Fear:1")
    model = final_labels(votes, EMOTIONS6, "dawid-skene")
    assert {r["decided_by"] for r in model.labels.to_pylist()} == {"model", "expert"}
