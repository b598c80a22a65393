"""The annotation workflow against a real Label Studio server (the session's `ls_server`)."""

from __future__ import annotations

import dataclasses
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from annotation.allocation_step import allocate
from annotation.annotators import account_email, set_active
from annotation.consistency import evaluate_consistency
from annotation.labels import final_labels
from annotation.labelstudio.client import LabelStudio, http
from annotation.labelstudio.config import ServerError
from annotation.labelstudio.interface import annotation_result
from annotation.projects import load_projects
from annotation.pull import pull
from annotation.push import push
from annotation.simulate import PanelSettings, simulate
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from emotions_data.taxonomy import EMOTIONS6

GOOD = ["landscape.mp4", "portrait.mp4", "rotated.mp4", "variable rate.mp4", "vp9 clip.webm", "ünïcödé 视频.mp4",
        "lookalike_a.mp4", "lookalike_b.mp4", "source.mp4"]  # fmt: skip

ROSTER = "id,name,email,work_experience,eq_score,education,culture,leadership,role\n" + "\n".join(
    f"{i},Person {i},p{i}@example.org,{y},{s},{e},{c},{lead},{role}"
    for i, y, s, e, c, lead, role in [
        ("A1", 2, 95, "BSc", "CN", 0, "annotator"), ("A2", 9, 110, "MSc", "US", 1, "annotator"),
        ("A3", 4, 101, "PhD", "CN", 0, "annotator"), ("A4", 6, 99, "BSc", "US", 1, "annotator"),
        ("A5", 1, 120, "MSc", "CN", 0, "annotator"), ("A6", 12, 90, "PhD", "US", 1, "annotator"),
        ("EX", 20, 125, "PhD", "CN", 1, "expert"),
    ]
)  # fmt: skip


@pytest.fixture(scope="module")
def workflow(ls_server, corpus, tmp_path_factory):
    """A small ingested dataset inside the server's document root, allocated to 3 groups of 2."""
    root = ls_server.config.document_root / "workflow-ds"
    folder = tmp_path_factory.mktemp("wf-in")
    for name in GOOD:
        shutil.copy(corpus / name, folder / name)
    ingest([folder], root, load_settings(None), executor=make_executor("serial", 1))
    roster = tmp_path_factory.mktemp("wf-roster") / "annotators.csv"
    roster.write_text(ROSTER)
    client = LabelStudio(ls_server.config)
    report = allocate(DatasetLayout(root), roster, n_groups=3, seed=0, client=client)
    return DatasetLayout(root), client, report


def test_allocation_creates_pseudonymous_accounts_and_balanced_shares(workflow):
    layout, client, report = workflow
    assert sorted(len(m) for m in report.groups.values()) == [2, 2, 2] and report.experts == ["EX"]
    assert sorted(report.videos_per_group.values()) == [3, 3, 3]
    emails = {u["email"] for u in client.users()}
    assert {account_email(a) for a in ["A1", "A2", "A3", "A4", "A5", "A6", "EX"]} <= emails
    assert not any(e.endswith("@example.org") for e in emails), "contact details never leave the roster"
    annotators = pq.read_table(layout.manifests / "annotators.parquet").to_pandas()
    assert annotators["ls_user_id"].notna().all() and "email" not in annotators.columns


def test_push_is_idempotent_and_verifies_vote_counts(workflow):
    layout, client, _ = workflow
    first = push(layout, "label", client, EMOTIONS6, votes_per_item=2)
    # one project per annotator (independent votes): each of a group's two annotators gets its three items
    assert sorted(first.imported.values()) == [3, 3, 3, 3, 3, 3]
    project_id = next(p["id"] for k, p in load_projects(layout).items() if k.startswith("label/A/"))
    client.call("PATCH", f"/api/projects/{project_id}", {"expert_instruction": "stale"})
    again = push(layout, "label", client, EMOTIONS6, votes_per_item=2)
    assert set(again.imported.values()) == {0}
    assert "with sound" in client.project(project_id)["expert_instruction"], "push updates existing projects"
    for project in load_projects(layout).values():
        remote = client.project(project["id"])
        assert remote["maximum_annotations"] == 1 and "Excitation" in remote["label_config"]
        assert not remote["show_collab_predictions"] and not remote["show_annotation_history"]
        task = client.tasks(project["id"])[0]
        status, _ = http(client.config.url + task["data"]["video"], token=client.config.token)
        assert status == 200, "the browser can load the task's media through local storage"


def test_simulate_pull_and_repull_without_duplicates(workflow):
    layout, client, _ = workflow
    posted = simulate(layout, "label", client, EMOTIONS6, votes_per_item=2, seed=1)
    assert posted.posted == 18
    assert simulate(layout, "label", client, EMOTIONS6, votes_per_item=2, seed=1).posted == 0  # already full
    first = pull(layout, client, EMOTIONS6)
    assert (first.n_votes, first.n_new, first.problems) == (18, 18, 0)
    votes = pd.read_parquet(layout.votes)
    assert set(votes["stage"]) == {"label"} and votes["ls_annotation_id"].is_unique
    assert set(votes["annotator_id"]) <= {"A1", "A2", "A3", "A4", "A5", "A6"}
    assert votes["label"].isin(EMOTIONS6.classes).all() and votes["created_at"].notna().all()
    second = pull(layout, client, EMOTIONS6)
    assert (second.n_votes, second.n_new, second.n_updated) == (18, 0, 18)


def test_pull_reports_skips_foreign_labels_and_strangers(workflow):
    layout, client, _ = workflow
    project = next(p for k, p in load_projects(layout).items() if k.startswith("label/"))
    task = client.tasks(project["id"])[0]
    people = pq.read_table(layout.manifests / "annotators.parquet").to_pandas().set_index("annotator_id")
    expert = int(people.loc["EX", "ls_user_id"])
    client.call("POST", f"/api/tasks/{task['id']}/annotations/",
                {"result": [], "was_cancelled": True, "completed_by": expert})  # fmt: skip
    client.call("POST", f"/api/tasks/{task['id']}/annotations/",
                {"result": annotation_result("Joy"), "completed_by": expert})  # fmt: skip
    admin = client.call("GET", "/api/current-user/whoami")["id"]
    client.call("POST", f"/api/tasks/{task['id']}/annotations/",
                {"result": annotation_result("Fear"), "completed_by": admin})  # fmt: skip
    report = pull(layout, client, EMOTIONS6)
    assert len(report.skipped) == 1 and len(report.outside_taxonomy) == 1 and len(report.unknown_annotators) == 1
    assert "'Joy'" in report.outside_taxonomy[0] and task["data"]["video_id"] in report.skipped[0]
    assert report.n_votes == 18, "none of them is kept"


def test_a_server_that_goes_away_mid_pull_leaves_the_votes_untouched(workflow):
    layout, client, _ = workflow
    before = layout.votes.read_bytes()
    dead = LabelStudio(dataclasses.replace(client.config, port=1), attempts=2, backoff_s=0.01)
    with pytest.raises(ServerError, match="no answer"):
        pull(layout, dead, EMOTIONS6)
    assert layout.votes.read_bytes() == before


def test_crosscheck_consistency_expert_and_final_labels(workflow):
    layout, client, _ = workflow
    push(layout, "crosscheck", client, EMOTIONS6, votes_per_item=2)
    keys = sorted(k for k in load_projects(layout) if k.startswith("crosscheck/"))
    assert sorted({k.split("/")[1] for k in keys}) == ["A", "B", "C"] and len(keys) == 6
    assert all(
        "group B (items of A)" in load_projects(layout)[k]["title"] for k in keys if k.startswith("crosscheck/A/")
    )
    simulate(layout, "crosscheck", client, EMOTIONS6, votes_per_item=2, seed=1,
             settings=PanelSettings(accuracy=0.9))  # fmt: skip
    pull(layout, client, EMOTIONS6)
    votes = pd.read_parquet(layout.votes)
    assert (votes["stage"] == "crosscheck").sum() == 18
    crossed = votes[votes["stage"] == "crosscheck"].merge(
        pd.read_parquet(layout.manifests / "assignments.parquet"), on="video_id", suffixes=("", "_items")
    )
    assert (crossed["group"] != crossed["group_items"]).all(), "a group never cross-checks its own items"
    consistency = evaluate_consistency(votes, threshold=0.5)
    assert set(consistency.groups.index) == {"A", "B", "C"}

    result = final_labels(votes, EMOTIONS6)
    pq.write_table(result.needs_expert, layout.needs_expert)
    report = push(layout, "expert", client, EMOTIONS6, min_agreement=1.01)  # every item goes to the expert
    assert report.imported["expert/EX"] == 9
    expert_task = client.tasks(load_projects(layout)["expert/EX"]["id"])[0]
    assert expert_task["data"]["previous_votes"]  # the expert sees the earlier votes
    simulate(layout, "expert", client, EMOTIONS6, seed=1)
    pull(layout, client, EMOTIONS6)
    votes = pd.read_parquet(layout.votes)
    final = final_labels(votes, EMOTIONS6).labels.to_pandas()
    assert len(final) == 9 and set(final["decided_by"]) == {"expert"}

    set_active(layout, "A1", False)
    people = pq.read_table(layout.manifests / "annotators.parquet").to_pandas().set_index("annotator_id")
    assert not people.loc["A1", "active"]
    # Personnel adjustment: A1's label votes stop counting and their items get fresh votes instead.
    lost = votes[(votes["annotator_id"] == "A1") & (votes["stage"] == "label")]
    relabel = push(layout, "relabel", client, EMOTIONS6)
    assert sum(relabel.imported.values()) == lost["video_id"].nunique() > 0
    assert simulate(layout, "relabel", client, EMOTIONS6, seed=2).posted == len(lost)
    pull(layout, client, EMOTIONS6)
    votes = pd.read_parquet(layout.votes)
    fresh = votes[votes["stage"] == "relabel"]
    assert sorted(fresh["video_id"]) == sorted(lost["video_id"]) and "A1" not in set(fresh["annotator_id"])
    earlier = votes[votes["stage"] != "relabel"].groupby("video_id")["annotator_id"].apply(set)
    assert all(row.annotator_id not in earlier[row.video_id] for row in fresh.itertuples()), "fresh eyes only"
    with pytest.raises(ValueError, match="unknown annotator"):
        set_active(layout, "nobody", False)


def test_a_suspect_label_goes_back_to_the_expert_and_only_the_expert_changes_it(workflow):
    """`emotions validate`'s suspects reach the real server as expert tasks with the model's reason beside the
    earlier votes; queueing them changes no label; the expert's decision is pulled and counted like any other."""
    import pyarrow as pa

    from emotions_data.storage import write_table_atomic
    from emotions_data.suspects import DISPUTE_REASON, SUSPECTS_SCHEMA, request_expert_review, suspects_path

    layout, client, _ = workflow
    before = final_labels(pd.read_parquet(layout.votes), EMOTIONS6).labels.to_pandas().set_index("video_id")
    video = str(before.index[0])
    other = next(c for c in EMOTIONS6.classes if c != before.loc[video, "label"])
    row = {"rank": 1, "video_id": video, "label": before.loc[video, "label"], "suggested": other,
           "self_confidence": 0.05, "suggested_p": 0.9, "margin": -0.85, "fold": 0}  # fmt: skip
    write_table_atomic(suspects_path(layout), pa.Table.from_pylist([row], schema=SUSPECTS_SCHEMA))
    assert request_expert_review(layout, top=1) == 1
    assert (
        final_labels(pd.read_parquet(layout.votes), EMOTIONS6).labels.to_pandas().set_index("video_id").equals(before)
    ), "queueing a suspect changes no label"
    push(layout, "expert", client, EMOTIONS6)
    tasks = client.tasks(load_projects(layout)["expert/EX"]["id"])
    shown = [t for t in tasks if t["data"].get("video_id") == video and DISPUTE_REASON in str(t["data"])]
    assert shown, "the expert sees the suspect with the model's reason"
    simulate(layout, "expert", client, EMOTIONS6, seed=3)
    pull(layout, client, EMOTIONS6)
    after = final_labels(pd.read_parquet(layout.votes), EMOTIONS6).labels.to_pandas().set_index("video_id")
    assert after.loc[video, "decided_by"] == "expert"


def test_annotate_commands_through_the_cli(workflow, ls_server):
    import subprocess
    import sys
    from pathlib import Path

    emotions = str(Path(sys.executable).with_name("emotions"))
    layout, _, _ = workflow
    data_dir = str(ls_server.config.data_dir)

    def run(*args):
        return subprocess.run([emotions, "annotate", *args], capture_output=True, text=True, timeout=300)

    pulled = run("pull", str(layout.root), "--data-dir", data_dir)
    assert pulled.returncode == 0 and "votes:" in pulled.stdout, pulled.stderr
    # the skip, the foreign label and the stranger posted above: summed up, one line each, the file named
    assert "not counted: 3 annotation(s)" in pulled.stdout and "pull_report.json" in pulled.stdout
    assert "not counted (unknown_account)" in pulled.stdout
    checked = run("consistency", str(layout.root), "--threshold", "0.99")
    assert checked.returncode == 0 and "vs cross-check" in checked.stdout and "annotate drop" in checked.stdout
    dropped = run("drop", str(layout.root), "A2", "--data-dir", data_dir)
    assert dropped.returncode == 0 and "account deactivated, token and sessions revoked" in dropped.stdout
    revoked = run("revoke", str(layout.root), "A4", "--data-dir", data_dir)
    assert revoked.returncode == 0 and "A4: account deactivated" in revoked.stdout, revoked.stderr
    issued = run("credentials", str(layout.root), "--annotator", "A4", "--data-dir", data_dir)
    assert issued.returncode == 0 and "annotator-credentials.csv" in issued.stdout, issued.stderr
    again = run("credentials", str(layout.root), "--annotator", "A2", "--data-dir", data_dir)
    assert again.returncode == 1 and "A2 was dropped" in again.stderr
    labels = subprocess.run([emotions, "labels", str(layout.root)], capture_output=True, text=True, timeout=120)
    assert labels.returncode == 0 and "dropped annotators not counted" in labels.stderr
    missing = run("pull", str(layout.root), "--data-dir", str(layout.root / "no-server"))
    lines = [ln for ln in missing.stderr.splitlines() if ln.strip()]
    assert missing.returncode == 1 and len(lines) == 1 and "no Label Studio running" in lines[0]


def _login(url: str, email: str, password: str) -> dict:
    """Log in through Label Studio's own login form, as a person in a browser would; returns whoami."""
    import http.cookiejar
    import json
    import re
    import urllib.parse
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), urllib.request.ProxyHandler({}))
    page = opener.open(f"{url}/user/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"email": email, "password": password, "csrfmiddlewaretoken": token}).encode()
    opener.open(urllib.request.Request(f"{url}/user/login/", data=form, headers={"Referer": f"{url}/user/login/"}))
    return json.loads(opener.open(f"{url}/api/current-user/whoami").read())


def test_issued_passwords_let_annotators_log_in(workflow, ls_server, tmp_path):
    import csv
    import stat
    import urllib.error

    from annotation.credentials import issue_credentials

    layout, _, _ = workflow
    path = issue_credentials(layout, ls_server.config, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = list(csv.DictReader(path.open()))
    assert {r["annotator_id"] for r in rows} >= {"A3", "EX"} and all(len(r["password"]) >= 16 for r in rows)
    first = rows[0]
    assert _login(ls_server.config.url, first["login"], first["password"])["email"] == first["login"]
    with pytest.raises(urllib.error.HTTPError):
        _login(ls_server.config.url, first["login"], "wrong-password")
