"""Vote integrity through the real Label Studio (the session's `ls_server`): every attack a careless or dishonest
annotator tried with their own account ends with the vote not counted and its reason in `manifests/pull_report.json`.

The attacks use the annotator's own API token, which they get as anyone can: log in through Label Studio's login
page with the password `issue_credentials` gave them, then ask for their token. One dataset and one set of accounts
serve every test in this module, in order (each attack builds on the votes before it), to keep the suite short.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pandas as pd
import pyarrow.parquet as pq
import pytest

from annotation.allocation_step import allocate
from annotation.annotators import account_email, set_active
from annotation.credentials import drop, issue_credentials
from annotation.labels_step import decide_labels
from annotation.labelstudio.client import LabelStudio, http
from annotation.labelstudio.interface import annotation_result
from annotation.labelstudio.process import _run_shell, start
from annotation.progress import campaign_progress
from annotation.projects import load_projects
from annotation.pull import pull
from annotation.push import push
from annotation.server_record import migrate_server
from annotation.simulate import simulate
from annotation.vetting import MAX_RESULT_BYTES, Reason
from annotation.votes import counted_votes, kept_votes, read_vote_table, vote_history_path
from emotions_data.executor import make_executor
from emotions_data.ingest import ingest
from emotions_data.layout import DatasetLayout
from emotions_data.settings import load_settings
from emotions_data.taxonomy import EMOTIONS6
from tests.support.ls_fixtures import login_session

CLIPS = ["landscape.mp4", "portrait.mp4", "rotated.mp4", "lookalike_a.mp4", "source.mp4", "variable rate.mp4"]

ROSTER = "id,name,email,work_experience,eq_score,education,culture,leadership,role\n" + "\n".join(
    f"{i},Person {i},p{i}@example.org,{y},{s},{e},{c},{lead},{role}"
    for i, y, s, e, c, lead, role in [
        ("A1", 2, 95, "BSc", "CN", 0, "annotator"), ("A2", 9, 110, "MSc", "US", 1, "annotator"),
        ("A3", 4, 101, "PhD", "CN", 0, "annotator"), ("A4", 6, 99, "BSc", "US", 1, "annotator"),
        ("A5", 1, 120, "MSc", "CN", 0, "annotator"), ("A6", 12, 90, "PhD", "US", 1, "annotator"),
        ("EX", 20, 125, "PhD", "CN", 1, "expert"), ("EY", 18, 118, "MSc", "US", 1, "expert"),
    ]
)  # fmt: skip


@dataclass
class Lab:
    layout: DatasetLayout
    admin: LabelStudio
    users: dict[str, int]  # annotator id -> Label Studio user id
    groups: dict[str, str]
    passwords: dict[str, str]
    tokens: dict[str, LabelStudio]  # annotator id -> a client with that annotator's own token

    def project_of(self, stage: str, annotator: str) -> dict:
        return next(
            p for p in load_projects(self.layout).values() if p["stage"] == stage and p["annotator"] == annotator
        )

    def task_of(self, stage: str, annotator: str, index: int = 0) -> dict:
        return sorted(self.admin.tasks(self.project_of(stage, annotator)["id"]), key=lambda t: t["id"])[index]


def _own_token(url: str, email: str, password: str) -> str:
    """The API token an annotator gets for themselves after logging in."""
    opener, _ = login_session(url, email, password)
    return json.loads(opener.open(f"{url}/api/current-user/token").read())["token"]


def _report(lab: Lab) -> dict:
    return json.loads((lab.layout.manifests / "pull_report.json").read_text())


def _excluded(lab: Lab, reason: Reason) -> list[dict]:
    return [e for e in _report(lab)["excluded"] if e["reason"] == reason]


@pytest.fixture(scope="module")
def lab(ls_server, corpus, tmp_path_factory) -> Lab:
    """Six clips in three groups of two annotators and two experts, label stage pushed (two votes per clip),
    passwords issued, tokens of A1 (the attacker), A2 and A3 taken through the login page; A2 casts one vote with
    their own token (with a comment) and the simulated panel the rest; pulled."""
    root = ls_server.config.document_root / "integrity-ds"
    folder = tmp_path_factory.mktemp("integrity-in")
    for name in CLIPS:
        shutil.copy(corpus / name, folder / name)
    ingest([folder], root, load_settings(None), executor=make_executor("serial", 1))
    roster = tmp_path_factory.mktemp("integrity-roster") / "annotators.csv"
    roster.write_text(ROSTER)
    layout = DatasetLayout(root)
    admin = LabelStudio(ls_server.config)
    allocate(layout, roster, n_groups=3, seed=0, client=admin)
    push(layout, "label", admin, EMOTIONS6, votes_per_item=2)
    path = issue_credentials(layout, ls_server.config, tmp_path_factory.mktemp("integrity-secrets"))
    passwords = {row.split(",")[0]: row.split(",")[2] for row in path.read_text().splitlines()[1:]}
    people = pq.read_table(layout.annotators).to_pandas()
    users = dict(zip(people["annotator_id"], people["ls_user_id"].astype(int), strict=True))
    groups = dict(zip(people["annotator_id"], people["group"], strict=True))
    tokens = {
        a: LabelStudio(dataclasses.replace(ls_server.config, token=_own_token(ls_server.config.url,
                                                                               account_email(a), passwords[a])))
        for a in ("A1", "A2", "A3")
    }  # fmt: skip
    lab = Lab(layout, admin, users, groups, passwords, tokens)
    task = lab.task_of("label", "A2")
    tokens["A2"].annotate(task["id"], "Fear", users["A2"], comment="the sound cuts out at the end")
    simulate(layout, "label", admin, EMOTIONS6, seed=3)
    pull(layout, admin, EMOTIONS6)
    return lab


def test_honest_votes_count_with_their_facts_and_nothing_is_reported(lab):
    report = _report(lab)
    assert report["excluded"] == [] and report["votes"]["kept"] == 12 and report["votes"]["new"] == 12
    votes = read_vote_table(lab.layout)
    projects = {p["id"]: p for p in load_projects(lab.layout).values()}
    for row in votes.itertuples():
        plan = projects[row.ls_project_id]
        assert row.annotator_id == plan["annotator"] and row.group == plan["group"] == lab.groups[row.annotator_id]
    own = votes[votes["ls_written_by"] == lab.users["A2"]]
    assert len(own) == 1 and own["comment"].iloc[0] == "the sound cuts out at the end", "the comment is kept"
    assert votes["server_id"].str.startswith("ls-").all() and (votes["server_url"] == lab.admin.config.url).all()
    assert pq.read_schema(lab.layout.votes).metadata[b"emotions.schema_version"] == b"2.0"


def test_attack_6_no_annotator_is_shown_another_annotators_vote(lab):
    """Projects are per annotator: a task never holds anyone else's annotation, and nothing of others is shown."""
    for plan in load_projects(lab.layout).values():
        remote = lab.admin.project(plan["id"])
        assert remote["maximum_annotations"] == 1 and not remote["show_collab_predictions"]
        assert not remote["show_annotation_history"] and not remote["reveal_preannotations_interactively"]
        for task in lab.admin.export_snapshot(plan["id"]):
            assert {a["completed_by"] for a in task["annotations"]} <= {lab.users[plan["annotator"]]}
    # Opening another annotator's project is still possible in Label Studio Community: a vote cast there is reported.
    task = lab.task_of("label", "A3")
    lab.tokens["A1"].annotate(task["id"], "Sadness", lab.users["A1"])
    pull(lab.layout, lab.admin, EMOTIONS6)
    [hit] = _excluded(lab, Reason.NOT_ASSIGNED)
    assert hit["claimed"] == "A1" and hit["writer"] == "A1" and "A3's project" in hit["detail"]


def test_attack_2_completed_by_naming_someone_else(lab):
    task = lab.task_of("label", "A2", 1)
    lab.tokens["A1"].annotate(task["id"], "Tension", lab.users["A2"])  # claims to be A2
    lab.tokens["A1"].annotate(task["id"], "Tension", lab.users["EX"])  # claims to be the expert
    before = len(counted_votes(lab.layout, read_vote_table(lab.layout)))
    pull(lab.layout, lab.admin, EMOTIONS6)
    forged = _excluded(lab, Reason.WRITTEN_BY_ANOTHER)
    assert sorted(e["claimed"] for e in forged) == ["A2", "EX"] and {e["writer"] for e in forged} == {"A1"}
    assert len(counted_votes(lab.layout, read_vote_table(lab.layout))) == before


def test_attack_3_editing_another_annotators_vote_is_not_applied_but_ones_own_is(lab):
    votes = read_vote_table(lab.layout)
    victim = votes[(votes["annotator_id"] == "A3") & (votes["ls_written_by"] != lab.users["A1"])].iloc[0]
    other = next(c for c in EMOTIONS6.classes if c != victim["label"])
    lab.tokens["A1"].call("PATCH", f"/api/annotations/{int(victim['ls_annotation_id'])}",
                          {"result": annotation_result(other)})  # fmt: skip
    mine = votes[votes["ls_written_by"] == lab.users["A2"]].iloc[0]
    lab.tokens["A2"].call("PATCH", f"/api/annotations/{int(mine['ls_annotation_id'])}",
                          {"result": annotation_result("Sadness", unsure=True)})  # fmt: skip
    report = pull(lab.layout, lab.admin, EMOTIONS6)
    [tampered] = _excluded(lab, Reason.EDIT_BY_ANOTHER)
    assert tampered["ls_annotation_id"] == victim["ls_annotation_id"] and tampered["writer"] == "A1"
    after = read_vote_table(lab.layout).set_index("ls_annotation_id")
    assert after.loc[victim["ls_annotation_id"], "label"] == victim["label"], "credited to nobody: not applied"
    assert after.loc[mine["ls_annotation_id"], "label"] == "Sadness" and after.loc[mine["ls_annotation_id"], "unsure"]
    assert report.n_edited == 1
    history = pq.read_table(vote_history_path(lab.layout)).to_pandas()
    [edit] = history[history["event"] == "edited"].to_dict("records")
    assert (edit["annotator_id"], edit["old_label"], edit["new_label"], edit["by"]) == ("A2", "Fear", "Sadness", "A2")


def test_attack_4_a_deleted_annotation_stops_counting(lab):
    votes = read_vote_table(lab.layout)
    victim = votes[(votes["annotator_id"] == "A4") & (votes["status"] == "kept")].iloc[0]
    lab.tokens["A1"].call("DELETE", f"/api/annotations/{int(victim['ls_annotation_id'])}")
    report = pull(lab.layout, lab.admin, EMOTIONS6)
    assert report.n_deleted == 1
    after = read_vote_table(lab.layout).set_index("ls_annotation_id")
    assert after.loc[victim["ls_annotation_id"], "status"] == "deleted", "kept on record, marked deleted"
    counted = counted_votes(lab.layout, read_vote_table(lab.layout))
    assert victim["ls_annotation_id"] not in set(counted["ls_annotation_id"])
    [change] = [c for c in _report(lab)["changes"] if c["event"] == "deleted"]
    assert change["ls_annotation_id"] == victim["ls_annotation_id"] and change["old_label"] == victim["label"]


def test_attack_5_second_votes_other_groups_own_items_and_a_load_test(lab):
    own = lab.task_of("label", "A1")
    lab.tokens["A1"].annotate(own["id"], "Neutral", lab.users["A1"])  # the "+" button: a second annotation
    b_member = next(a for a, g in sorted(lab.groups.items()) if isinstance(g, str) and g != lab.groups["A1"])
    lab.tokens["A1"].annotate(lab.task_of("label", b_member)["id"], "Neutral", lab.users["A1"])  # another group
    push(lab.layout, "crosscheck", lab.admin, EMOTIONS6, votes_per_item=2)
    own_items = next(p for k, p in load_projects(lab.layout).items() if k.startswith(f"crosscheck/{lab.groups['A1']}/"))
    lab.tokens["A1"].annotate(lab.admin.tasks(own_items["id"])[0]["id"], "Fear", lab.users["A1"])  # own items
    load = lab.task_of("label", "A5")
    for label in ["Fear", "Fear", "Neutral", "Tension", "Fear"]:  # the API ignores maximum_annotations
        lab.admin.annotate(load["id"], label, lab.users["A5"])
    before = len(counted_votes(lab.layout, read_vote_table(lab.layout)))
    pull(lab.layout, lab.admin, EMOTIONS6)
    duplicates = _excluded(lab, Reason.DUPLICATE)
    assert {(e["claimed"], e["ls_task_id"]) for e in duplicates} == {("A1", own["id"]), ("A5", load["id"])}
    assert len(duplicates) == 6
    outside = [e["detail"] for e in _excluded(lab, Reason.NOT_ASSIGNED) if e["claimed"] == "A1"]
    assert any(f"{b_member}'s project" in d for d in outside) and any(own_items["annotator"] in d for d in outside)
    assert len(counted_votes(lab.layout, read_vote_table(lab.layout))) == before


def test_attack_1_an_annotator_voting_twice_in_the_expert_project(lab):
    decide_labels(lab.layout, EMOTIONS6)
    push(lab.layout, "expert", lab.admin, EMOTIONS6, min_agreement=1.01)  # every item goes to the experts
    task = lab.task_of("expert", "EX")
    lab.tokens["A1"].annotate(task["id"], "Fear", lab.users["A1"])
    lab.tokens["A1"].annotate(task["id"], "Fear", lab.users["A1"])
    pull(lab.layout, lab.admin, EMOTIONS6)
    hits = [e for e in _excluded(lab, Reason.NOT_ASSIGNED) if e["project"] == "expert/EX"]
    assert len(hits) == 2 and {e["claimed"] for e in hits} == {"A1"}
    labels = decide_labels(lab.layout, EMOTIONS6).labels.to_pandas()
    assert "expert" not in set(labels["decided_by"]), "no expert decision came from A1"


def test_the_expert_queue_returns_items_whose_experts_disagree(lab):
    simulate(lab.layout, "expert", lab.admin, EMOTIONS6, seed=0)
    pull(lab.layout, lab.admin, EMOTIONS6)
    votes = read_vote_table(lab.layout)
    expert = votes[(votes["stage"] == "expert") & (votes["status"] == "kept")]
    both = expert.groupby("video_id")["annotator_id"].nunique()
    vid = both.index[both == 2][0]
    ey = expert[(expert["video_id"] == vid) & (expert["annotator_id"] == "EY")].iloc[0]
    ex_label = expert[(expert["video_id"] == vid) & (expert["annotator_id"] == "EX")]["label"].iloc[0]
    other = next(c for c in EMOTIONS6.classes if c != ex_label)
    lab.admin.call("PATCH", f"/api/annotations/{int(ey['ls_annotation_id'])}", {"result": annotation_result(other)})
    pull(lab.layout, lab.admin, EMOTIONS6)
    now = read_vote_table(lab.layout)
    now = now[(now["stage"] == "expert") & (now["status"] == "kept")]
    disputed = set(now.groupby("video_id")["label"].nunique().loc[lambda n: n > 1].index)
    assert vid in disputed  # the simulated experts (97 % accurate) may disagree on another item too
    report = push(lab.layout, "expert", lab.admin, EMOTIONS6, min_agreement=1.01)
    n = len(disputed)
    assert report.returned == {"expert/EX": n, "expert/EY": n}, "both experts see every disputed item again"
    back = [t for t in lab.admin.tasks(lab.project_of("expert", "EX")["id"]) if t["data"]["video_id"] == vid]
    latest = max(back, key=lambda t: t["data"]["round"])
    assert latest["data"]["round"] == 2 and f"EY: {other}" in latest["data"]["previous_votes"]
    simulate(lab.layout, "expert", lab.admin, EMOTIONS6, seed=5)
    pull(lab.layout, lab.admin, EMOTIONS6)
    votes = read_vote_table(lab.layout)
    mine = votes[(votes["stage"] == "expert") & (votes["video_id"] == vid)]
    assert sorted(mine["status"]) == ["kept", "kept", "superseded", "superseded"], "round 2 supersedes round 1"


def test_the_second_cross_check_round_goes_to_eyes_that_have_not_seen_the_items(lab):
    push(lab.layout, "crosscheck2", lab.admin, EMOTIONS6, votes_per_item=2)
    plans = {k: p for k, p in load_projects(lab.layout).items() if p["stage"] == "crosscheck2"}
    groups = sorted({g for g in lab.groups.values() if isinstance(g, str)})  # experts have none
    for plan in plans.values():  # three groups: a group that did neither the labels nor the first cross-check
        assert plan["group"] == groups[(groups.index(plan["items_of"]) + 2) % 3] == lab.groups[plan["annotator"]]
    simulate(lab.layout, "crosscheck2", lab.admin, EMOTIONS6, seed=4)
    report = pull(lab.layout, lab.admin, EMOTIONS6)
    votes = read_vote_table(lab.layout)
    second = votes[votes["stage"] == "crosscheck2"]
    earlier = votes[votes["stage"] != "crosscheck2"].groupby("video_id")["annotator_id"].agg(set)
    assert len(second) == report.n_new > 0
    assert not any(r.annotator_id in earlier.get(r.video_id, set()) for r in second.itertuples())


def test_attack_8_move_keeps_votes_drop_revokes_reset_ends_old_password(lab, ls_server, tmp_path):
    url = ls_server.config.url
    before = read_vote_table(lab.layout)
    set_active(lab.layout, "A2", True, group="C")
    pull(lab.layout, lab.admin, EMOTIONS6)
    after = read_vote_table(lab.layout)
    old = before[before["annotator_id"] == "A2"].set_index("ls_annotation_id")["group"]
    assert (after[after["annotator_id"] == "A2"].set_index("ls_annotation_id").loc[old.index, "group"] == old).all()
    assert http(f"{url}/api/current-user/whoami", token=lab.tokens["A1"].config.token)[0] == 200
    assert drop(lab.layout, "A1", ls_server.config)
    assert http(f"{url}/api/current-user/whoami", token=lab.tokens["A1"].config.token)[0] == 401, "token revoked"
    with pytest.raises(urllib.error.HTTPError):
        _own_token(url, account_email("A1"), lab.passwords["A1"])
    old_password = lab.passwords["A3"]
    path = issue_credentials(lab.layout, ls_server.config, tmp_path, ["A3"])
    new_password = path.read_text().splitlines()[1].split(",")[2]
    assert http(f"{url}/api/current-user/whoami", token=lab.tokens["A3"].config.token)[0] == 401
    with pytest.raises(urllib.error.HTTPError):
        _own_token(url, account_email("A3"), old_password)
    lab.tokens["A3"] = LabelStudio(
        dataclasses.replace(ls_server.config, token=_own_token(url, account_email("A3"), new_password))
    )
    with pytest.raises(ValueError, match="dropped"):
        issue_credentials(lab.layout, ls_server.config, tmp_path, ["A1"])


def test_attack_7_deleted_and_changed_projects_and_the_invite_link(lab):
    keys = sorted(k for k in load_projects(lab.layout) if k.startswith("label/"))
    gone, changed = load_projects(lab.layout)[keys[0]], load_projects(lab.layout)[keys[1]]
    kept_before = read_vote_table(lab.layout)
    attacker = lab.tokens["A3"]
    attacker.call(
        "PATCH", f"/api/projects/{changed['id']}", {"show_annotation_history": True, "maximum_annotations": 5}
    )
    attacker.call("POST", "/api/invite/reset-token")
    assert lab.admin.invite_link_enabled()
    attacker.call("DELETE", f"/api/projects/{gone['id']}")
    report = pull(lab.layout, lab.admin, EMOTIONS6)
    doc = _report(lab)
    assert doc["projects"][keys[0]]["status"] == "deleted" and report.deleted_projects == [keys[0]]
    assert doc["projects"][keys[1]]["drift"] == ["maximum_annotations", "show_annotation_history"]
    assert doc["invite_link_was_enabled"] and not lab.admin.invite_link_enabled(), "pull disables it again"
    after = read_vote_table(lab.layout)
    theirs = kept_before[kept_before["ls_project_id"] == gone["id"]]
    now = after.set_index("ls_annotation_id").loc[theirs["ls_annotation_id"], "status"]
    assert len(theirs) and (now == theirs.set_index("ls_annotation_id")["status"]).all(), "votes stay as last pulled"
    push(lab.layout, "label", lab.admin, EMOTIONS6, votes_per_item=2)
    restored = lab.admin.project(changed["id"])
    assert restored["maximum_annotations"] == 1 and not restored["show_annotation_history"]


def _tasks(lab: Lab, project: dict) -> list[dict]:
    return sorted(lab.admin.tasks(project["id"]), key=lambda t: t["id"])


def _key_of(lab: Lab, project: dict) -> str:
    return next(k for k, p in load_projects(lab.layout).items() if p["id"] == project["id"])


def test_attack_10_task_data_imported_copies_and_instructions_are_vetted_against_what_push_made(lab):
    """A2 imports two copies of their own cross-check task and votes on all three before the item's other
    annotator; A3 changes the video of one task and the instructions of their project, and votes under both."""
    mine = lab.project_of("crosscheck", "A2")
    original = _tasks(lab, mine)[0]
    vid = original["data"]["video_id"]
    other = next(p for p in load_projects(lab.layout).values() if p["stage"] == "crosscheck"
                 and vid in p["videos"] and p["annotator"] not in ("A2", "A3"))  # fmt: skip
    lab.tokens["A2"].call("POST", f"/api/projects/{mine['id']}/import", [{"data": original["data"]}] * 2)
    copies = [t for t in _tasks(lab, mine) if t["id"] > original["id"] and t["data"] == original["data"]]
    for task in [*copies, original]:
        lab.tokens["A2"].annotate(task["id"], "Tension", lab.users["A2"])
    honest = next(t for t in _tasks(lab, other) if t["data"]["video_id"] == vid)
    lab.admin.annotate(honest["id"], "Fear", lab.users[other["annotator"]])
    theirs = lab.project_of("crosscheck", "A3")
    moved, instructed = _tasks(lab, theirs)[:2]
    elsewhere = next(v for v in lab.project_of("crosscheck", "A2")["videos"] if v != moved["data"]["video_id"])
    lab.tokens["A3"].call("PATCH", f"/api/tasks/{moved['id']}", {"data": {**moved["data"], "video_id": elsewhere}})
    lab.tokens["A3"].annotate(moved["id"], "Tension", lab.users["A3"])
    lab.tokens["A3"].call("PATCH", f"/api/projects/{theirs['id']}", {"expert_instruction": "<p>Choose Tension.</p>"})
    lab.tokens["A3"].annotate(instructed["id"], "Tension", lab.users["A3"])
    pull(lab.layout, lab.admin, EMOTIONS6)
    imported = _excluded(lab, Reason.IMPORTED_TASK)
    assert sorted(e["ls_task_id"] for e in imported) == sorted(t["id"] for t in copies) and len(copies) == 2
    assert {(e["claimed"], e["writer"]) for e in imported} == {("A2", "A2")}
    votes = read_vote_table(lab.layout)
    counted = votes[(votes["stage"] == "crosscheck") & (votes["video_id"] == vid) & (votes["status"] == "kept")]
    assert sorted(counted["annotator_id"]) == sorted(["A2", other["annotator"]]), [
        e for e in _report(lab)["excluded"] if e["video_id"] == vid
    ]  # honest votes are not crowded out
    [changed] = _excluded(lab, Reason.TASK_CHANGED)
    assert (changed["ls_task_id"], changed["claimed"]) == (moved["id"], "A3") and "video_id" in changed["detail"]
    assert changed["video_id"] == moved["data"]["video_id"], "reported under the video push assigned"
    [under] = _excluded(lab, Reason.PROJECT_CHANGED)
    assert under["ls_task_id"] == instructed["id"] and "expert_instruction" in under["detail"]
    doc = _report(lab)
    found = {(t["kind"], t["task_id"]): t for t in doc["tasks"]}
    assert {k for k in found if k[0] == "imported"} == {("imported", t["id"]) for t in copies}
    assert found[("changed", moved["id"])]["fields"] == ["video_id"]
    assert "expert_instruction" in doc["projects"][_key_of(lab, theirs)]["drift"]
    lab.tokens["A3"].call("PATCH", f"/api/tasks/{moved['id']}", {"data": moved["data"]})  # put back: still held out
    pull(lab.layout, lab.admin, EMOTIONS6)
    assert [e["ls_task_id"] for e in _excluded(lab, Reason.TASK_CHANGED)] == [moved["id"]]


def test_push_reports_a_changed_task_and_leaves_it_and_a_recreated_project_asks_for_no_counted_vote(lab):
    project = lab.project_of("label", "A2")
    task = _tasks(lab, project)[0]
    lab.tokens["A2"].call("PATCH", f"/api/tasks/{task['id']}", {"data": {**task["data"], "video": "/elsewhere.mp4"}})
    report = push(lab.layout, "label", lab.admin, EMOTIONS6, votes_per_item=2)
    assert report.tampered == {_key_of(lab, project): [task["id"]]} and not report.repointed
    assert lab.admin.task(task["id"])["data"]["video"] == "/elsewhere.mp4", "not silently put back"
    votes = kept_votes(read_vote_table(lab.layout))
    for key, plan in load_projects(lab.layout).items():  # the project attack 7 deleted was re-created by push
        if plan["stage"] == "label":
            voted = set(votes[(votes["stage"] == "label") & (votes["annotator_id"] == plan["annotator"])]["video_id"])
            again = [t for t in lab.admin.tasks(plan["id"]) if t["data"]["video_id"] in voted
                     and not t["total_annotations"]]  # fmt: skip
            assert again == [], f"{key} asks again for a vote on record"
    lab.tokens["A2"].call("PATCH", f"/api/tasks/{task['id']}", {"data": task["data"]})


class _LostExport(LabelStudio):
    """The admin's client, to which the snapshot export of one project comes back altered once (`alter`), as from a
    server that lost data or a proxy that cut the answer short."""

    def __init__(self, config, project_id: int, alter) -> None:
        super().__init__(config)
        self.project_id, self.alter = project_id, alter

    def _request(self, method, path, payload=None, timeout=None):
        status, body = super()._request(method, path, payload, timeout)
        if self.alter and path.startswith(f"/api/projects/{self.project_id}/exports/") and "/download" in path:
            body, self.alter = self.alter(body), None
        return status, body


def _without_one_annotation(body: list[dict]) -> list[dict]:
    i = next(i for i, t in enumerate(body) if t["annotations"])
    return [*body[:i], {**body[i], "annotations": []}, *body[i + 1 :]]


def test_an_empty_or_partial_export_deletes_nothing_and_halts_its_project(lab):
    votes = kept_votes(read_vote_table(lab.layout))
    current = {p["id"]: k for k, p in load_projects(lab.layout).items() if p["stage"] == "label"}
    pid = int(votes[votes["ls_project_id"].isin(current)].groupby("ls_project_id").size().idxmax())
    key = current[pid]
    for alter in (lambda body: [], _without_one_annotation):
        report = pull(lab.layout, _LostExport(lab.admin.config, pid, alter), EMOTIONS6)
        assert report.n_deleted == 0 and key in report.halted_projects, report.projects[key]
        assert _report(lab)["projects"][key]["status"] == "halted"
        after = read_vote_table(lab.layout).set_index("ls_annotation_id")
        assert (after.loc[votes["ls_annotation_id"], "status"] == "kept").all(), "nothing marked deleted"
    report = pull(lab.layout, lab.admin, EMOTIONS6)
    assert report.n_deleted == 0 and report.projects[key]["status"] == "ok"


def test_skips_two_choices_and_oversized_answers_are_reported_and_status_says_who_owes_what(lab):
    skipped = _tasks(lab, lab.project_of("crosscheck", "A2"))[1]
    lab.tokens["A2"].call("POST", f"/api/tasks/{skipped['id']}/annotations/",
                          {"result": [], "was_cancelled": True, "completed_by": lab.users["A2"]})  # fmt: skip
    votes = read_vote_table(lab.layout)
    taken = {"A1", "A2", "A3"} | set(votes.loc[votes["stage"] == "crosscheck", "annotator_id"])
    who = next(a for a in ("A4", "A5", "A6") if a not in taken)
    two, big = _tasks(lab, lab.project_of("crosscheck", who))[:2]
    both = annotation_result("Fear") + annotation_result("Tension")
    huge = annotation_result("Fear", comment="x" * (MAX_RESULT_BYTES + 10))
    for task, result in ((two, both), (big, huge)):
        lab.admin.call("POST", f"/api/tasks/{task['id']}/annotations/",
                       {"result": result, "completed_by": lab.users[who]})  # fmt: skip
    pull(lab.layout, lab.admin, EMOTIONS6)
    assert [e["ls_task_id"] for e in _excluded(lab, Reason.CANCELLED) if e["claimed"] == "A2"] == [skipped["id"]]
    assert [(e["ls_task_id"], e["claimed"]) for e in _excluded(lab, Reason.AMBIGUOUS)] == [(two["id"], who)]
    assert [(e["ls_task_id"], e["claimed"]) for e in _excluded(lab, Reason.TOO_LARGE)] == [(big["id"], who)]
    progress = campaign_progress(lab.layout)
    row = next(r for r in progress.annotators if (r.stage, r.annotator) == ("crosscheck", "A2"))
    assert row.closed == 1 and row.remaining == row.assigned - row.done - 1
    assert any(f"A2 has 1 item(s) whose answer does not count ({skipped['data']['video_id']})" in b
               for b in progress.blocked)  # fmt: skip
    assert any(f"of {who} not counted (ambiguous: 1, too_large: 1)" in b for b in progress.blocked)
    assert any("duplicate: " in b for b in progress.blocked), "double votes are shown"


def test_attack_9_another_server_is_refused_until_an_explicit_migration(lab, ls_data_dir, ls_server):
    # A fresh server: a copy of the template whose organization was made at another time (another database).
    _run_shell(ls_data_dir, "from organizations.models import Organization\nimport datetime\n"
               "Organization.objects.update(created_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))\n"
               "print('FRESH')\n", "FRESH")  # fmt: skip
    fresh = start(ls_data_dir, ls_server.config.document_root)
    other = LabelStudio(fresh.config)
    with pytest.raises(ValueError, match=r"another server.*migrate-server"):
        push(lab.layout, "label", other, EMOTIONS6, votes_per_item=2)
    with pytest.raises(ValueError, match="another server"):
        pull(lab.layout, other, EMOTIONS6)
    before = read_vote_table(lab.layout)
    migration = migrate_server(lab.layout, other)
    assert migration.old["server_id"] != migration.new["server_id"] and migration.archived_projects.exists()
    stranger = other.ensure_user("stranger@elsewhere.invalid", "stranger")
    push(lab.layout, "label", other, EMOTIONS6, votes_per_item=2)
    task = other.tasks(next(iter(load_projects(lab.layout).values()))["id"])[0]
    other.annotate(task["id"], "Fear", stranger)
    simulate(lab.layout, "label", other, EMOTIONS6, seed=9)
    pull(lab.layout, other, EMOTIONS6)
    after = read_vote_table(lab.layout)
    old = after[after["server_id"] == migration.old["server_id"]].set_index("ls_annotation_id")
    pd.testing.assert_series_equal(
        old["label"].sort_index(), before.set_index("ls_annotation_id")["label"].sort_index()
    )
    new = after[after["server_id"] == migration.new["server_id"]]
    assert len(new) == len(after) - len(before) > 0, "the new server's votes sit beside the old ones, keyed apart"
    assert [e["claimed"] for e in _excluded(lab, Reason.UNKNOWN_ACCOUNT)] == [f"user {stranger}"]


def test_vetting_rules_the_per_annotator_projects_make_unreachable():
    """Over the limit, own items, seen before: plans that push never makes, vetted directly."""
    from datetime import UTC, datetime

    from annotation.vetting import Accounts, vet
    from emotions_data.schema import VOTES_SCHEMA

    people = pd.DataFrame({"annotator_id": ["A1", "A2", "A3"], "role": ["annotator"] * 3, "group": ["A", "A", "B"],
                           "active": [True] * 3, "ls_user_id": [11, 12, 13]})  # fmt: skip
    accounts = Accounts({11: ("A1", "annotator"), 12: ("A2", "annotator"), 13: ("A3", "annotator")}, admin_id=1)

    def ann(i: int, user: int, label: str = "Fear") -> dict:
        return {"id": i, "completed_by": user, "updated_by": 1, "result": annotation_result(label),
                "created_at": f"2026-01-01T00:00:0{i}Z", "updated_at": f"2026-01-01T00:00:0{i}Z"}  # fmt: skip

    def plan(pid: int, stage: str, annotator: str, group: str, items_of: str, limit: int) -> dict:
        return {"id": pid, "stage": stage, "annotator": annotator, "group": group, "items_of": items_of,
                "videos": {"v": limit}}  # fmt: skip

    def task(tid: int, annotation: dict) -> list[dict]:
        return [{"id": tid, "data": {"video_id": "v"}, "annotations": [annotation]}]

    exports = {
        "label/A/A1": (plan(1, "label", "A1", "A", "A", 1), task(1, ann(1, 11))),
        "label/A/A2": (plan(2, "label", "A2", "A", "A", 1), task(2, ann(2, 12))),
        "crosscheck/A/A1": (plan(3, "crosscheck", "A1", "B", "A", 2), task(3, ann(3, 11))),
        "crosscheck/A/A3": (plan(4, "crosscheck", "A3", "A", "A", 2), task(4, ann(4, 13))),
    }
    empty = pd.DataFrame({n: pd.Series(dtype=object) for n in VOTES_SCHEMA.names})
    result = vet(empty, exports, people, accounts, {"v"}, EMOTIONS6, ("ls-x", "http://x"), datetime.now(UTC))
    reasons = {e.ls_annotation_id: e.reason for e in result.excluded}
    assert reasons == {2: Reason.OVER_LIMIT, 3: Reason.SEEN_BEFORE, 4: Reason.OWN_ITEMS}
    assert list(result.votes["ls_annotation_id"]) == [1]
