"""Re-running a step is safe: `annotate allocate` again keeps the groups, the video shares and the drops, and a
number of groups other than the one on record is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tests.support.commands import run_cli
from tests.support.manifests import write_dataset

ROSTER = "id,name,email,work_experience,eq_score,education,culture,leadership\n" + "".join(
    f"C{i},P{i},p{i}@example.org,{i},{100 + i},BSc,CN,0\n" for i in range(1, 7)
)


def _allocation(ds: Path) -> list[str]:
    """The annotators (group, active, account) and the video shares on record, as comparable text."""
    return [
        pd.read_parquet(ds / "manifests" / name).to_json() for name in ("annotators.parquet", "assignments.parquet")
    ]


def test_allocate_twice_keeps_groups_shares_and_drops_and_refuses_another_group_count(tmp_path):
    from annotation.annotators import set_active
    from emotions_data.layout import DatasetLayout

    ds = tmp_path / "ds"
    write_dataset(ds, n=30)
    (tmp_path / "roster.csv").write_text(ROSTER)
    args = ["annotate", "allocate", str(ds), "--roster", str(tmp_path / "roster.csv"), "--no-accounts"]
    run_cli(*args, check=True)
    first = _allocation(ds)
    set_active(DatasetLayout(ds), "C2", False)  # dropped after a consistency evaluation
    dropped = _allocation(ds)
    again = run_cli(*args, "--seed", "7")  # another seed would draw other groups from scratch
    assert again.returncode == 0, again.stderr
    assert "keep their group; still dropped: C2" in again.stdout
    assert _allocation(ds) == dropped, "same groups, same shares, C2 still dropped"
    people = pd.read_parquet(ds / "manifests" / "annotators.parquet").set_index("annotator_id")
    assert not people.loc["C2", "active"] and people["ls_user_id"].isna().all()
    assert first[1] == dropped[1]

    refused = run_cli(*args, "--groups", "4")
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 1 and len(lines) == 1, refused.stderr
    assert f"{ds}/manifests/annotators.parquet" in lines[0] and "in 3 group(s) (A, B, C)" in lines[0]
    assert _allocation(ds) == dropped, "nothing was written"
