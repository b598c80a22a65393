"""`emotions votes import`: a Label Studio JSON export with cancelled annotations, predictions, drafts and unknown
tasks imported into a dataset through the command, then labelled and released with a card that names nobody from
outside the roster; refusals are one line. The other refusals are tested on the library
(tests/annotation/test_label_studio_export.py)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.schema import ANNOTATORS_SCHEMA
from tests.support.commands import run_cli
from tests.support.ls_export import outside_export
from tests.support.manifests import released_dataset


def _one_error(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_an_export_is_imported_checked_labelled_and_released_without_outside_names(tmp_path, monkeypatch):
    monkeypatch.delenv("EMOTIONS_RELEASE_KEY", raising=False)
    layout, _ = released_dataset(tmp_path / "ds")
    people = [{"annotator_id": f"ann{k}", "role": "annotator", "group": "A", "active": True, "ls_user_id": k + 2}
              for k in range(2)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(people, schema=ANNOTATORS_SCHEMA), layout.annotators)
    labels = pd.read_parquet(layout.labels)
    export = tmp_path / "project-7-at-2025-03-04.json"
    export.write_text(json.dumps(outside_export(list(labels["video_id"]), list(labels["label"]))))
    ds = str(layout.root)

    refused = _one_error(run_cli("votes", "import", ds, str(export)))
    assert "v-not-here" in refused and "--leave-out-unknown-videos" in refused
    assert not layout.votes.exists(), "nothing written before every check passed"

    done = run_cli("votes", "import", ds, str(export), "--leave-out-unknown-videos", "--pseudonymise", check=True)
    for said in ("1 skipped or cancelled left out", "2 predictions (not votes) left out", "warning: 2 vote(s)",
                 f"imported {3 * len(labels)} vote(s) on {len(labels)} video(s) by 3 annotator(s)"):  # fmt: skip
        assert said in done.stderr, done.stderr
    run_cli("labels", ds, check=True)
    run_cli("release", ds, "--version", "0.1.0", "--name", "ds", check=True)
    release = layout.root / "releases" / "0.1.0"
    for path in [*release.rglob("*"), *(layout.root / "data_cards").rglob("*"), layout.agreement_report]:
        if path.is_file():
            data = path.read_bytes()
            assert b"jane" not in data.lower() and b"example.org" not in data, path
    rows = pd.concat([pd.read_parquet(p) for p in sorted((release / "data" / "full").glob("*.parquet"))])
    carried = {vote["annotator_id"] for votes in rows["votes"] for vote in votes}
    report = json.loads(layout.agreement_report.read_text())
    assert carried == set(report["per_annotator"]), "the card's statistics and the release's votes: one table"
    assert {"ann0", "ann1"} < carried and len(carried) == 3


def test_agreement_names_labels_that_differ_only_by_form_or_case(tmp_path):
    sheet = tmp_path / "votes.csv"
    sheet.write_text("video_id,annotator_id,label\nv1,a,FEAR\nv1,b,ＦＥＡＲ\nv2,a,Joy\nv2,b,joy\nv3,a,Joy\nv3,b,FEAR\n")
    proc = run_cli("agreement", str(sheet), "--json", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["labels"] == ["FEAR", "Joy"]
    assert "one class 'FEAR': 'FEAR' (2), 'ＦＥＡＲ' (1)" in proc.stderr and "one class 'Joy'" in proc.stderr
