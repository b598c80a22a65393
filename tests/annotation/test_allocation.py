"""Roster reading and personnel allocation (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annotation.allocation import (
    allocate_annotators,
    assign_videos,
    balance_table,
    crosscheck_group,
    features,
    group_names,
    imbalance,
)
from annotation.roster import pseudonym, read_roster

ROSTER = """id,name,email,work_experience,msceit,education,culture,leadership,shift
A01,Ann Li,ann@example.org,3,102,MSc,CN,yes,am
,Bo Chen,bo@example.org,7,95,BSc,CN,no,pm
A03,Cy Ray,cy@example.org,1,110,PhD,US,no,am
"""


def test_roster_keeps_contacts_apart_and_makes_pseudonyms(tmp_path):
    (tmp_path / "annotators.csv").write_text(ROSTER)
    roster = read_roster(tmp_path / "annotators.csv")
    assert roster.ids == ["A01", pseudonym("bo@example.org"), "A03"]
    assert roster.ids[1].startswith("ann-") and "bo" not in roster.ids[1]
    assert "email" not in roster.frame.columns and "name" not in roster.frame.columns
    assert roster.frame["eq_score"].tolist() == [102.0, 95.0, 110.0]  # the msceit alias
    assert roster.frame["leadership"].tolist() == [1.0, 0.0, 0.0]
    assert list(roster.contacts.columns) == ["id", "name", "email"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id,email,work_experience,eq_score,education,culture\nA,a@x,1,2,B,C\n", "missing column(s) leadership"),
        (ROSTER.replace("95,", "ninety,"), "row 3: eq_score 'ninety' is not a number"),
        (ROSTER.replace("cy@example.org", "ann@example.org"), "duplicate email"),
        (ROSTER.replace("A03", "../x"), "row 4: id '../x'"),
        (ROSTER.replace("bo@example.org", ""), "row 3: empty email"),
    ],
)
def test_roster_errors_name_the_file_and_row(tmp_path, text, expected):
    (tmp_path / "annotators.csv").write_text(text)
    with pytest.raises(ValueError, match=r"annotators\.csv") as err:
        read_roster(tmp_path / "annotators.csv")
    assert expected in str(err.value)


def people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"P{i:02d}" for i in range(n)],
            "work_experience": rng.integers(0, 20, n).astype(float),
            "eq_score": rng.normal(100, 15, n),
            "leadership": rng.integers(0, 2, n).astype(float),
            "education": rng.choice(["BSc", "MSc", "PhD"], n),
            "culture": rng.choice(["CN", "US", "EU"], n),
        }
    )


@pytest.mark.parametrize(("n", "groups"), [(30, 3), (31, 3), (12, 4), (9, 3)])
def test_groups_are_equal_sized_and_far_better_balanced_than_random(n, groups):
    frame = people(n, seed=n)
    allocation = allocate_annotators(frame, groups, seed=0)
    sizes = pd.Series(allocation.annotator_group).value_counts()
    assert set(allocation.annotator_group) == set(frame["id"])
    assert sizes.max() - sizes.min() <= 1 and len(sizes) == groups
    assert allocation.imbalance < 0.5 * allocation.random_imbalance
    assert allocate_annotators(frame, groups, seed=0) == allocation  # deterministic


def test_twins_are_split_across_groups():
    base = people(3, seed=5)
    twins = pd.concat([base, base.assign(id=base["id"] + "b"), base.assign(id=base["id"] + "c")], ignore_index=True)
    allocation = allocate_annotators(twins, 3, seed=1)
    x = features(twins)
    groups = np.array([group_names(3).index(allocation.annotator_group[i]) for i in twins["id"]])
    assert imbalance(x, groups, 3) == pytest.approx(0.0, abs=1e-9)
    table = balance_table(twins, allocation.annotator_group)
    assert table["size"].tolist() == [3, 3, 3]
    assert table["mean_eq_score"].nunique() == 1


def test_video_shares_are_equal_and_stable_when_videos_are_added():
    first = assign_videos([f"v{i}" for i in range(100)], 3, seed=0)
    assert sorted(pd.Series(first).value_counts().tolist()) == [33, 33, 34]
    more = assign_videos([f"v{i}" for i in range(130)], 3, seed=0, existing=first)
    assert all(more[v] == g for v, g in first.items())
    assert sorted(pd.Series(more).value_counts().tolist()) == [43, 43, 44]


def test_crosscheck_rotation_and_group_names():
    names = group_names(3)
    assert [crosscheck_group(g, names) for g in names] == ["B", "C", "A"]
    with pytest.raises(ValueError):
        group_names(0)
    with pytest.raises(ValueError, match="cannot fill"):
        allocate_annotators(people(2, 0), 3)
