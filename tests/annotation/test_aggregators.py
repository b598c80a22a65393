"""The aggregators' common interface (crowd-kit's: fit, fit_predict, fit_predict_proba) and their registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotation.aggregate import AGGREGATORS, Aggregator, DawidSkene, MajorityVote, make_aggregator
from annotation.labels import METHODS, final_labels
from emotions_data.schema import DecidedBy
from emotions_data.taxonomy import EMOTIONS6

VOTES = pd.DataFrame(
    [("x", "a", "Fear"), ("x", "b", "Tension"), ("y", "a", "Fear"), ("y", "b", "Fear"), ("y", "c", "Sadness")],
    columns=["video_id", "annotator_id", "label"],
)


def test_the_registry_names_every_aggregator_and_the_labels_step_offers_them():
    assert AGGREGATORS == {"majority": MajorityVote, "dawid-skene": DawidSkene}
    assert METHODS == ("majority", "dawid-skene")
    assert isinstance(make_aggregator("dawid-skene"), DawidSkene)
    with pytest.raises(ValueError, match="unknown method 'median' \\(choose: majority, dawid-skene\\)"):
        make_aggregator("median")
    with pytest.raises(ValueError, match="unknown method"):
        final_labels(VOTES, EMOTIONS6, "median")


@pytest.mark.parametrize("cls", [MajorityVote, DawidSkene])
def test_fit_returns_the_aggregator_and_predictions_are_indexed_by_item(cls):
    aggregator = cls()
    assert isinstance(aggregator, Aggregator) and aggregator.fit(VOTES, list(EMOTIONS6.classes)) is aggregator
    labels = cls().fit_predict(VOTES, list(EMOTIONS6.classes))
    assert isinstance(labels, pd.Series) and list(labels.index) == ["x", "y"] and labels.index.name == "video_id"
    assert labels["y"] == "Fear"
    proba = cls().fit_predict_proba(VOTES, list(EMOTIONS6.classes))
    assert list(proba.columns) == list(EMOTIONS6.classes) and list(proba.index) == ["x", "y"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba.loc["y"].idxmax() == "Fear"


def test_majority_leaves_a_tie_undecided_and_its_probabilities_are_vote_shares():
    labels = MajorityVote().fit_predict(VOTES)
    assert labels["x"] is None and labels["y"] == "Fear"
    proba = MajorityVote().fit_predict_proba(VOTES)
    assert proba.loc["x", "Fear"] == 0.5 and proba.loc["y", "Fear"] == pytest.approx(2 / 3)
    assert MajorityVote.decided_by == DecidedBy.MAJORITY and DawidSkene.decided_by == DecidedBy.MODEL
