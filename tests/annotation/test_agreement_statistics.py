"""The agreement-statistic plug-in point: a registered statistic reaches the report, `agreement.json`, the command
line and the card with nothing else changed; a key is registered once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import annotation.statistics as statistics
from annotation.agreement import agreement_report
from annotation.statistics import AgreementStatistic, Estimate, Ratings, Terms, register, registered
from emotions_data.card.metadata import CardMetadata
from emotions_data.card.text import agreement_summary, listed_statistics

VOTES = pd.DataFrame(
    [(f"v{u}", f"a{a}", "PQ"[(u + (a == 2 and u % 2 == 0)) % 2]) for u in range(20) for a in range(3)],
    columns=["video_id", "annotator_id", "label"],
)


def _unanimous(counts: np.ndarray) -> np.ndarray:
    m = counts.sum(axis=1)
    return np.stack([(counts.max(axis=1) == m) & (m >= 2), m >= 2], axis=1)


def _share_unanimous(ratings: Ratings) -> Estimate:
    """Share of items whose votes all agree: a sum over items, so it gets an interval."""
    terms = Terms(_unanimous, lambda s: s[..., 0] / s[..., 1])
    pairable = int((ratings.m >= 2).sum())
    return Estimate(float(terms.value(ratings.counts, ratings.kinds)), detail=f"of {pairable} items", terms=terms)


TOY = AgreementStatistic(
    key="unanimous_share", name="Unanimous items", source="a test", rank=99, estimate=_share_unanimous, digits=2
)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(statistics._REGISTRY, TOY.key, TOY)  # undone after the test
    return TOY


def test_a_registered_statistic_reaches_report_json_and_card(toy):
    report = agreement_report(VOTES, n_bootstrap=100, seed=0)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert [s["key"] for s in data["statistics"]] == [s.key for s in registered()]
    (entry,) = [s for s in data["statistics"] if s["key"] == toy.key]
    assert entry["name"] == "Unanimous items" and entry["value"] == 0.5 and entry["detail"] == "of 20 items"
    assert entry["ci"][0] <= 0.5 <= entry["ci"][1] and entry["digits"] == 2
    summary = agreement_summary(CardMetadata(name="x", version="1.0.0", agreement=data))
    assert any(line.startswith("Unanimous items: 0.50, 95% CI [") and "of 20 items" in line for line in summary)


def test_the_command_line_prints_whatever_is_registered(toy, capsys):
    from emotions_cli.labels import print_agreement

    print_agreement(agreement_report(VOTES, n_bootstrap=50, seed=0).to_dict())
    out = capsys.readouterr().out
    assert "Unanimous items (of 20 items)" in out and "Gwet's AC1" in out and "Krippendorff" in out


def test_a_key_is_registered_once():
    with pytest.raises(ValueError, match="already registered"):
        register(AgreementStatistic("krippendorff_alpha", "another alpha", "", 1, _share_unanimous))


def test_an_agreement_json_written_before_the_list_reads_as_its_three_statistics():
    report = agreement_report(VOTES, n_bootstrap=100, seed=0).to_dict()
    older = {k: v for k, v in report.items() if k != "statistics"}
    listed = listed_statistics(older)
    assert [s["key"] for s in listed] == ["krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean"]
    now = {s["key"]: s for s in report["statistics"]}
    for entry in listed:
        assert entry["value"] == now[entry["key"]]["value"] and entry["ci"] == now[entry["key"]]["ci"]
    lines = agreement_summary(CardMetadata(name="x", version="1.0.0", agreement=older))
    assert lines[:3] == agreement_summary(CardMetadata(name="x", version="1.0.0", agreement=report))[:3]
