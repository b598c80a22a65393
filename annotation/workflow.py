"""The multi-stage annotation workflow of the eMotions protocol, run against Label Studio.

State lives in the dataset folder: `manifests/annotators.parquet` (groups, pseudonymous ids),
`manifests/assignments.parquet` (which group labels which video), `manifests/ls_projects.json`
(the Label Studio project of each stage and annotator, with its items), `manifests/ls_server.json` (the server
those projects and votes live on), `manifests/votes.parquet` (the system of record),
`manifests/vote_history.parquet` (every later change to a vote) and `manifests/pull_report.json` (what the last
pull did not count, and why). Label Studio holds only what annotators need to work, and is untrusted input
(`annotation.vetting`).

Stages: `label` (each group labels its own share), `crosscheck` (each group's share re-labelled by
the next group: A->B, B->C, C->A), `relabel` (after personnel adjustments: the items that carried
votes of dropped annotators get as many new votes from annotators who have not seen them), `crosscheck2` (the
paper's second cross-check round after the adjustments: each group's share re-labelled by a group that has not
seen it, by the updated groups), `expert` (items without a clear majority, with weak agreement, where experts
disagree, or whose earlier votes changed since the expert saw them, shown with the earlier votes; the expert's
decision is final).

Independence by construction: annotators never see each other's votes because every annotator has a Label Studio
project of their own per stage, holding only the items allocated to them (`maximum_annotations` 1, no other
annotator's annotations, predictions or history shown). Within a group, each item goes to `votes_per_item`
annotators, balanced by load; cross-checks and relabelling go only to annotators who have not seen the item.

How an annotator finds their project (the browser test and `emotions annotate credentials` rely on this):
log in with the login and password from the credentials file (`<id lower-cased>@annotators.invalid`), then open
the project titled `<dataset> · <stage> · <annotator id> · group <G>` (e.g. `demo · label · A1 · group A`;
cross-checks add `(items of B)`; `demo · expert · EX`; the dataset's name is shortened so the title fits Label
Studio's 50 characters, the rest never), and work through "Label All Tasks". Its key in
`manifests/ls_projects.json` is `<stage>/<items' group>/<annotator id>` (`relabel/<annotator's group>/<id>`,
`expert/<id>`), which also holds its Label Studio id. Label Studio Community still lists every project to every
account: opening another annotator's project shows their votes, and a vote cast there is reported and never
counted (see README, "Vote integrity").
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from annotation.agreement import item_agreement
from annotation.allocation import allocate_annotators, assign_videos, balance_table, crosscheck_group
from annotation.labelstudio.accounts import AdminSession, revoke_personal_tokens
from annotation.labelstudio.client import PROJECT_SETTINGS, LabelStudio
from annotation.labelstudio.config import ServerConfig
from annotation.labelstudio.interface import instructions, labeling_config
from annotation.labelstudio.media_links import point_link
from annotation.plurality import TIE, unique_plurality
from annotation.roster import read_roster
from annotation.vetting import Accounts, Exclusion, Reason, vet
from annotation.votes import counted_votes, dropped_votes, read_vote_table, write_votes
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
from emotions_data.schema import (
    ANNOTATORS_SCHEMA,
    ASSIGNMENTS_SCHEMA,
    VOTE_HISTORY_SCHEMA,
    Stage,
    VoteStatus,
)
from emotions_data.storage import recover_commits, write_bytes_atomic, write_table_atomic
from emotions_data.taxonomy import Taxonomy

ACCOUNT_DOMAIN = "annotators.invalid"  # Label Studio logins are pseudonymous: e-mails stay in the roster


def account_email(annotator_id: str) -> str:
    """The Label Studio login of an annotator: lower case, because its login form lower-cases e-mails."""
    return f"{annotator_id.lower()}@{ACCOUNT_DOMAIN}"


# ---------------------------------------------------------------- state files


def _projects_path(layout: DatasetLayout) -> Path:
    return layout.manifests / "ls_projects.json"


def load_projects(layout: DatasetLayout) -> dict[str, dict]:
    """Project key ("label/A", "expert", ...) -> its Label Studio project id, title, stage and `items_of` group;
    empty before the first push."""
    path = _projects_path(layout)
    return json.loads(path.read_text()) if path.exists() else {}


def _save_projects(layout: DatasetLayout, projects: dict[str, dict]) -> None:
    write_bytes_atomic(_projects_path(layout), json.dumps(projects, indent=2, sort_keys=True).encode())


def load_annotators(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/annotators.parquet` as a frame; ValueError before the first allocation."""
    path = layout.annotators
    if not path.exists():
        raise ValueError(f"{path}: no allocation yet (run 'emotions annotate allocate')")
    return pq.read_table(path).to_pandas()


def load_assignments(layout: DatasetLayout) -> pd.DataFrame:
    """`manifests/assignments.parquet` (video_id, group) as a frame; empty before the first allocation."""
    path = layout.assignments
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame(columns=["video_id", "group"])


def _ok_videos(layout: DatasetLayout) -> pd.DataFrame:
    frame = read_versioned_table(layout.videos_manifest).to_pandas()
    return frame[frame["status"] == "ok"]


# ---------------------------------------------------------------- allocate


@dataclass(frozen=True)
class AllocationReport:
    groups: dict[str, list[str]]
    experts: list[str]
    balance: pd.DataFrame
    imbalance: float
    random_imbalance: float
    videos_per_group: dict[str, int]


def allocate(
    layout: DatasetLayout, roster_path: Path, n_groups: int = 3, seed: int = 0, client: LabelStudio | None = None
) -> AllocationReport:
    """Groups balanced on the roster's attributes, video shares, and (with a client) the accounts."""
    roster = read_roster(roster_path)
    people = roster.frame
    crowd = people[people["role"] == "annotator"]
    allocation = allocate_annotators(crowd, n_groups, seed)
    previous = load_annotators(layout) if (layout.annotators).exists() else None
    user_ids = dict(zip(previous["annotator_id"], previous["ls_user_id"], strict=True)) if previous is not None else {}
    if client is not None:
        check_server(layout, client)
        user_ids = {a: client.ensure_user(account_email(a), a) for a in people["id"]}
    rows = [
        {
            "annotator_id": a, "role": role, "group": allocation.annotator_group.get(a), "active": True,
            "ls_user_id": user_ids.get(a),
        }
        for a, role in zip(people["id"], people["role"], strict=True)
    ]  # fmt: skip
    write_table_atomic(layout.annotators, pa.Table.from_pylist(rows, schema=ANNOTATORS_SCHEMA))
    existing = load_assignments(layout)
    shares = assign_videos(
        list(_ok_videos(layout)["video_id"]),
        n_groups,
        seed,
        dict(zip(existing["video_id"], existing["group"], strict=True)),
    )
    table = pa.Table.from_pylist(
        [{"video_id": v, "group": g} for v, g in sorted(shares.items())], schema=ASSIGNMENTS_SCHEMA
    )
    write_table_atomic(layout.assignments, table)
    groups: dict[str, list[str]] = {}
    for ann, group in sorted(allocation.annotator_group.items()):
        groups.setdefault(group, []).append(ann)
    return AllocationReport(
        groups=groups,
        experts=list(people.loc[people["role"] == "expert", "id"]),
        balance=balance_table(crowd, allocation.annotator_group),
        imbalance=allocation.imbalance,
        random_imbalance=allocation.random_imbalance,
        videos_per_group=dict(Counter(shares.values())),
    )


# ---------------------------------------------------------------- the vote table and the server


def _server_path(layout: DatasetLayout) -> Path:
    return layout.manifests / "ls_server.json"


def load_server(layout: DatasetLayout) -> dict[str, str] | None:
    """The Label Studio server the dataset's projects and votes live on ({"server_id", "url"}, and "data_dir" for a
    server the toolkit started on this machine), None before the first contact. Raises ValueError for a damaged
    file."""
    path = _server_path(layout)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("server_id"), str) or not record.get("url"):
        raise ValueError(f"{path}: not a server record (server_id and url)")
    return record


def _server_record(client: LabelStudio, identity: str) -> dict[str, str]:
    config = client.config
    record = {"server_id": identity, "url": config.url}
    if config.base_url is None:  # a server the toolkit runs: its data folder holds its admin's credentials
        record["data_dir"] = str(config.data_dir)
    return record


def check_server(layout: DatasetLayout, client: LabelStudio) -> tuple[str, str]:
    """(server_id, url) of the client's server, after checking it is the dataset's: user, task and annotation ids
    are local to a server, so a dataset never mixes two. The first contact records the server; a changed URL of the
    same server (same database) is recorded too. Raises ValueError for another server: moving to one is an explicit
    `migrate_server`."""
    identity, url = client.server_identity(), client.config.url
    known = load_server(layout)
    if known is not None and known["server_id"] != identity:
        raise ValueError(
            f"{_server_path(layout)}: this dataset's projects and votes are on Label Studio server "
            f"{known['server_id']} ({known['url']}), but {url} is another server ({identity}); to move the dataset "
            f"to it, run 'emotions annotate migrate-server {layout.root}'"
        )
    record = _server_record(client, identity)
    if known != record:
        write_bytes_atomic(_server_path(layout), json.dumps(record, indent=2).encode())
    return identity, url


@dataclass(frozen=True)
class MigrationReport:
    old: dict[str, str] | None
    new: dict[str, str]
    archived_projects: Path | None  # where the old server's project list went
    accounts: int


def migrate_server(layout: DatasetLayout, client: LabelStudio) -> MigrationReport:
    """Move the dataset to the client's server: the old server's project list is archived
    (`ls_projects.<server_id>.json`), the roster's accounts are found or made on the new server and their ids
    recorded, and the new server becomes the dataset's. Votes keep the server they were cast on (their `server_id`),
    so no old vote is ever matched with a new server's annotation or user ids. The next `push` makes the projects."""
    old = load_server(layout)
    identity = client.server_identity()
    archived = None
    if _projects_path(layout).exists():
        archived = layout.manifests / f"ls_projects.{old['server_id'] if old else 'unknown'}.json"
        write_bytes_atomic(archived, _projects_path(layout).read_bytes())
        _projects_path(layout).unlink()
    people = load_annotators(layout)
    people["ls_user_id"] = [client.ensure_user(account_email(a), a) for a in people["annotator_id"]]
    write_table_atomic(
        layout.annotators,
        pa.Table.from_pandas(people[ANNOTATORS_SCHEMA.names], schema=ANNOTATORS_SCHEMA, preserve_index=False),
    )
    new = _server_record(client, identity)
    write_bytes_atomic(_server_path(layout), json.dumps(new, indent=2).encode())
    return MigrationReport(old, new, archived, len(people))


# ---------------------------------------------------------------- accounts and credentials


def _account_ids(layout: DatasetLayout, annotators: list[str]) -> dict[str, int]:
    """annotator id -> Label Studio user id; ValueError for one allocated without an account."""
    people = load_annotators(layout).set_index("annotator_id")
    missing = [a for a in annotators if pd.isna(people.loc[a, "ls_user_id"])]
    if missing:
        raise ValueError(f"{', '.join(missing)}: no Label Studio account (allocated with --no-accounts)")
    return {a: int(people.loc[a, "ls_user_id"]) for a in annotators}


def issue_credentials(
    layout: DatasetLayout, server_config: ServerConfig, out_dir: Path, annotators: list[str] | None = None
) -> Path:
    """New passwords for `annotators` (default: every active roster member with an account), set in Label Studio
    over HTTP (`annotation.labelstudio.accounts`, as the server's admin) and written to a 0600 CSV in `out_dir` (a
    secret, like the admin's credentials): the lead hands each person theirs. Issuing again is a reset: the old
    password, legacy API token, personal access tokens and browser sessions of those accounts stop working at once.
    Nothing forces a change at first login (Label Studio Community cannot), so these are ordinary passwords, not
    one-time ones. Raises ValueError for an unknown or dropped annotator, another server than the dataset's or a
    file at the CSV's path that is not one, ServerError when the server refuses; every password set before a
    failure is in the CSV all the same. The CSV keeps the other accounts' rows (`write_credentials`)."""
    import secrets

    people = load_annotators(layout)
    chosen = list(annotators) if annotators else list(people.loc[people["active"], "annotator_id"])
    known = dict(zip(people["annotator_id"], people["active"], strict=True))
    for a in chosen:
        if a not in known:
            raise ValueError(f"unknown annotator {a!r}")
        if not known[a]:
            raise ValueError(f"{a} was dropped: their account stays deactivated")
    ids = _account_ids(layout, chosen)
    check_server(layout, LabelStudio(server_config))
    path = out_dir / CREDENTIALS_CSV
    read_credentials(path)  # a file we could not add to fails before any password changes
    session = AdminSession(server_config)
    passwords = {a: secrets.token_urlsafe(12) for a in chosen}
    done: dict[str, tuple[str, str]] = {}
    try:
        for a in chosen:
            session.set_password(ids[a], passwords[a])
            done[account_email(a)] = (a, passwords[a])
            revoke_personal_tokens(server_config.url, account_email(a), passwords[a])
    finally:  # a password set is never lost, whatever fails after it
        if done:
            out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_credentials(path, done)
    return path


CREDENTIALS_CSV = "annotator-credentials.csv"


def read_credentials(path: Path) -> dict[str, tuple[str, str]]:
    """login -> (annotator id, password) from the credentials CSV at `path`, empty when there is none. Raises
    ValueError naming the file when it is not such a CSV."""
    import csv

    if not path.exists():
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["annotator_id", "login", "password"]:
            raise ValueError(f"{path}: not an annotator credentials file (annotator_id,login,password)")
        return {r["login"]: (r["annotator_id"], r["password"]) for r in reader}


def write_credentials(path: Path, issued: dict[str, tuple[str, str]]) -> None:
    """Write `issued` (login -> (annotator id, password)) into the credentials CSV at `path` (0600, atomically),
    keeping the rows of the other logins already there: the file holds one server's accounts, and each dataset or
    `--annotator` issue on that server changes only the passwords it set. Rows come out sorted by login. Raises
    ValueError naming the file when an existing one is not such a CSV (nothing is written then)."""
    import csv
    import io

    rows = read_credentials(path)
    rows.update(issued)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["annotator_id", "login", "password"])
    writer.writerows([annotator, login, password] for login, (annotator, password) in sorted(rows.items()))
    write_bytes_atomic(path, text.getvalue().encode(), mode=0o600)


def revoke_credentials(layout: DatasetLayout, server_config: ServerConfig, annotator_id: str) -> bool:
    """Deactivate the annotator's Label Studio account over HTTP (as the server's admin), which ends its
    password, sessions and API tokens of both kinds (their votes on record stay). Its personal access tokens are
    also revoked for good, so that reactivating the account in Label Studio's admin site brings none of them back:
    the account gets a random password nobody is told, the toolkit revokes them with it
    (`revoke_personal_tokens`), and the account is deactivated whatever happened. False when the annotator has no
    account (allocated without one). Raises ValueError for an unknown annotator or another server than the
    dataset's, ServerError when the server refuses."""
    import secrets

    people = load_annotators(layout).set_index("annotator_id")
    if annotator_id not in people.index:
        raise ValueError(f"unknown annotator {annotator_id!r}")
    if pd.isna(people.loc[annotator_id, "ls_user_id"]):
        return False
    check_server(layout, LabelStudio(server_config))
    session, user_id = AdminSession(server_config), int(people.loc[annotator_id, "ls_user_id"])
    unknown = secrets.token_urlsafe(24)
    try:
        session.set_password(user_id, unknown)
        revoke_personal_tokens(server_config.url, account_email(annotator_id), unknown)
    finally:
        session.deactivate(user_id)
    return True


def set_active(layout: DatasetLayout, annotator_id: str, active: bool, group: str | None = None) -> None:
    """Drop (active=False) or move (group=...) an annotator after a consistency evaluation. Votes already cast keep
    the group of the project they were cast in; a move applies to the projects pushed after it."""
    annotators = load_annotators(layout)
    if annotator_id not in set(annotators["annotator_id"]):
        raise ValueError(f"unknown annotator {annotator_id!r}")
    mask = annotators["annotator_id"] == annotator_id
    annotators.loc[mask, "active"] = active
    if group is not None:
        if group not in set(annotators["group"].dropna()):
            raise ValueError(f"unknown group {group!r}")
        annotators.loc[mask, "group"] = group
    table = pa.Table.from_pandas(annotators[ANNOTATORS_SCHEMA.names], schema=ANNOTATORS_SCHEMA, preserve_index=False)
    write_table_atomic(layout.annotators, table)


def drop(layout: DatasetLayout, annotator_id: str, server_config: ServerConfig | None) -> bool:
    """Drop an annotator: their votes stop counting, they get no new tasks, and (with `server_config`) their Label
    Studio account is deactivated and its token revoked. Returns whether an account was deactivated."""
    set_active(layout, annotator_id, False)
    return revoke_credentials(layout, server_config, annotator_id) if server_config is not None else False


# ---------------------------------------------------------------- push


def _local_files(layout: DatasetLayout, config: ServerConfig) -> tuple[str, str]:
    """(the dataset's folder as a path under the server's local-files document root, "" for the root itself; the
    local-files storage path of its `media/` folder as the server sees it). On the toolkit's server the dataset is
    served through its link (`annotation.labelstudio.media_links`), re-pointed here, so neither changes when the
    dataset moves; elsewhere through its place under `document_root`, which the server sees at
    `server_document_root` (a Docker bind mount) or at the same path. Raises ValueError without a document root or
    for a dataset outside it."""
    document_root = config.document_root
    if document_root is None:
        raise ValueError(
            f"Label Studio at {config.url} has no media source: start the toolkit's server with --document-root at "
            "(or above) the dataset folder, or set a media base URL (EMOTIONS_MEDIA_BASE_URL or the config file's "
            "media_base_url) where the dataset's media/ folder is served"
        )
    outside = ValueError(
        f"{layout.root.resolve()} is not under the server's document root {document_root}: start the server with "
        "--document-root at (or above) the dataset folder"
    )
    if config.media_links is not None:
        name = point_link(config.media_links, layout, document_root)
        if name is None:
            raise outside
        return name, str(config.media_links / name / "media")
    try:
        relative = layout.root.resolve().relative_to(document_root.resolve()).as_posix()
    except ValueError:
        raise outside from None
    relative = "" if relative == "." else relative
    server_root = posixpath.normpath(config.server_document_root or str(document_root))
    return relative, posixpath.join(server_root, relative, "media")


def _media_base(layout: DatasetLayout, config: ServerConfig) -> tuple[str, str | None]:
    """(the URL the dataset's `media/` folder loads from in the annotator's browser; the local-files storage path
    that lets Label Studio serve it, None under a media base URL). Media go under the configured media base URL
    (any static file server or bucket serving the dataset's `media/` folder), else through Label Studio's local
    files (`_local_files`). Raises ValueError when there is no media source or the dataset is outside it."""
    from urllib.parse import quote

    if config.media_base_url:
        return config.media_base_url, None
    prefix, storage = _local_files(layout, config)
    return "/data/local-files/?d=" + quote(f"{prefix}/media" if prefix else "media"), storage


def _media_url(layout: DatasetLayout, media_path: str, base: str) -> str:
    """The URL of one clip under `base` (`_media_base`); ValueError for media outside the dataset's `media/`."""
    from urllib.parse import quote

    absolute = (layout.root / media_path).resolve()
    try:
        relative = absolute.relative_to(layout.media.resolve())
    except ValueError:
        raise ValueError(f"{absolute} is not in the dataset's media folder {layout.media}") from None
    return f"{base}/{quote(relative.as_posix())}"


def _summaries(votes: pd.DataFrame) -> dict[str, str]:
    """video_id -> its crowd votes as text ("Fear: 2, Tension: 1"), most votes first."""
    crowd = votes[votes["stage"] != Stage.EXPERT]
    result = {}
    for vid, labels in crowd.groupby("video_id")["label"]:
        counts = labels.value_counts()
        result[str(vid)] = ", ".join(f"{lab}: {n}" for lab, n in sorted(counts.items(), key=lambda t: (-t[1], t[0])))
    return result


def expert_candidates(votes: pd.DataFrame, min_agreement: float) -> dict[str, str]:
    """video_id -> earlier votes as text, for items with no unique majority or agreement under the bar."""
    crowd = votes[votes["stage"] != Stage.EXPERT]
    counts = crowd.groupby(["video_id", "label"]).size().unstack(fill_value=0)
    matrix = counts.to_numpy()
    agree = item_agreement(matrix)
    tied = unique_plurality(matrix) == TIE
    weak = tied | (np.nan_to_num(agree, nan=0.0) < min_agreement)
    summaries = _summaries(crowd)
    return {str(vid): summaries[str(vid)] for vid in counts.index[weak]}


def experts_disagree(votes: pd.DataFrame) -> set[str]:
    """Items whose counted expert votes (the latest of each expert) do not all agree."""
    expert = votes[votes["stage"] == Stage.EXPERT]
    labels = expert.groupby("video_id")["label"].nunique()
    return set(labels.index[labels > 1])


@dataclass
class PushReport:
    imported: dict[str, int] = field(default_factory=dict)  # project key -> new tasks
    returned: dict[str, int] = field(default_factory=dict)  # expert project key -> items sent back (a new round)
    refreshed: dict[str, int] = field(default_factory=dict)  # expert project key -> earlier votes refreshed
    repointed: dict[str, int] = field(default_factory=dict)  # project key -> tasks whose media URL moved
    missing_media: dict[str, str] = field(default_factory=dict)  # video_id -> its media file, absent: not pushed
    invite_link_disabled: bool = False


TITLE_MAX = 50  # Label Studio refuses longer project titles


def project_title(annotator: str, stage: Stage, detail: str, dataset: str) -> str:
    """`<dataset> · <stage> · <annotator>[ · <detail>]`, the dataset's name shortened so the title fits Label
    Studio's 50 characters: the stage and the annotator's own id are never cut, so they find their project."""
    tail = " · ".join(p for p in (str(stage), annotator, detail) if p)
    room = TITLE_MAX - len(tail) - 3
    return f"{dataset[:room]} · {tail}" if room >= 4 else tail[:TITLE_MAX]


def _hash_order(ids: list[str]) -> list[str]:
    return sorted(ids, key=lambda v: hashlib.sha256(v.encode()).hexdigest())


def _allot(
    ids: list[str], pool: list[str], k: dict[str, int], planned: dict[str, set[str]], seen: dict[str, set[str]]
) -> dict[str, list[str]]:
    """annotator -> new items: each item not yet planned gets `k[item]` annotators of `pool` who have not seen it,
    the least loaded first (ties by id), so shares stay balanced and adding items later moves nothing."""
    load = Counter(a for who in planned.values() for a in who if a in pool)
    result: dict[str, list[str]] = {}
    for vid in _hash_order(ids):
        need = k[vid] - len(planned.get(vid, set()))
        if need <= 0:
            continue
        fresh = sorted((a for a in pool if a not in seen.get(vid, set()) and a not in planned.get(vid, set())),
                       key=lambda a: (load[a], a))  # fmt: skip
        for a in fresh[:need]:
            result.setdefault(a, []).append(vid)
            load[a] += 1
    return result


def _plan(
    layout: DatasetLayout, stage: Stage, name: str, votes_per_item: int, min_agreement: float
) -> dict[str, dict[str, Any]]:
    """Project key -> its plan (title, stage, items_of, group, annotator, videos {id: votes per video}, and for the
    expert stage earlier votes per item) for `stage`, extending the projects already pushed."""
    people = load_annotators(layout)
    active = people[people["active"]]
    crowd = active[active["role"] == "annotator"]
    assignments = load_assignments(layout)
    groups = sorted(assignments["group"].unique())
    # A project without an annotator is a group project of a dataset pushed before projects were per annotator: its
    # votes are still pulled, and the stage's items are planned anew in per-annotator projects.
    existing = {k: p for k, p in load_projects(layout).items() if p["stage"] == stage and p.get("annotator")}
    votes = read_vote_table(layout)
    seen: dict[str, set[str]] = {}  # anyone with a vote on the item, or planned for it in an earlier stage
    for vid, ann in votes[["video_id", "annotator_id"]].itertuples(index=False):
        seen.setdefault(vid, set()).add(ann)
    for p in load_projects(layout).values():
        if p["stage"] != stage and p.get("annotator"):
            for vid in p.get("videos") or {}:
                seen.setdefault(vid, set()).add(p["annotator"])
    planned: dict[str, set[str]] = {}
    for p in existing.values():
        for vid in p.get("videos") or {}:
            planned.setdefault(vid, set()).add(p["annotator"])
    if stage != Stage.EXPERT:  # votes of the stage already cast (in a legacy group project, say) fill places too
        cast = votes[(votes["stage"] == stage) & (votes["status"] == VoteStatus.KEPT)]
        for vid, ann in cast[["video_id", "annotator_id"]].itertuples(index=False):
            planned.setdefault(vid, set()).add(ann)
    plan = {k: {**p, "videos": dict(p.get("videos") or {})} for k, p in existing.items()}

    def add(key: str, title: str, items_of: str | None, group: str | None, ann: str, vids: dict[str, int]) -> None:
        entry = plan.setdefault(key, {"title": title, "stage": str(stage), "items_of": items_of, "group": group,
                                      "annotator": ann, "videos": {}})  # fmt: skip
        entry["videos"].update(vids)

    if stage in (Stage.LABEL, Stage.CROSSCHECK, Stage.CROSSCHECK2):
        for i, group in enumerate(groups):
            ids = sorted(assignments.loc[assignments["group"] == group, "video_id"])
            if stage == Stage.LABEL:
                by = group
            elif stage == Stage.CROSSCHECK or len(groups) < 3:
                by = crosscheck_group(group, groups)
            else:  # the second round goes to a group that has seen neither the labels nor the first cross-check
                by = groups[(i + 2) % len(groups)]
            pool = sorted(crowd.loc[crowd["group"] == by, "annotator_id"])
            k = {v: min(votes_per_item, len(pool)) for v in ids}
            for ann, vids in _allot(ids, pool, k, planned, {} if stage == Stage.LABEL else seen).items():
                detail = f"group {by}" + ("" if stage == Stage.LABEL else f" (items of {group})")
                add(f"{stage}/{group}/{ann}", project_title(ann, stage, detail, name), group, by, ann,
                    {v: k[v] for v in vids})  # fmt: skip
    elif stage == Stage.RELABEL:
        missing = dropped_votes(layout)
        pool = sorted(crowd["annotator_id"])
        group_of = dict(zip(crowd["annotator_id"], crowd["group"], strict=True))
        k = {str(v): int(n) for v, n in missing.items()}
        for ann, vids in _allot(list(k), pool, k, planned, seen).items():
            g = group_of[ann]
            add(f"{stage}/{g}/{ann}", project_title(ann, stage, f"group {g}", name), None, g, ann,
                {v: k[v] for v in vids})  # fmt: skip
    else:
        experts = sorted(active.loc[active["role"] == "expert", "annotator_id"])
        counted = counted_votes(layout, votes)
        earlier = expert_candidates(counted, min_agreement) if len(counted) else {}
        recover_commits(layout.root)  # needs_expert.parquet changes together with labels.parquet (the labels step)
        needs = pq.read_table(layout.needs_expert).to_pandas() if layout.needs_expert.exists() else pd.DataFrame()
        for row in needs.itertuples() if len(needs) else []:
            earlier.setdefault(row.video_id, row.votes or "")
        disputed = experts_disagree(counted) if len(counted) else set()
        summaries = _summaries(counted) if len(counted) else {}
        items = set(earlier) | disputed | set(planned)  # planned: their earlier votes may have changed since
        expert_votes = counted[counted["stage"] == Stage.EXPERT]
        for ann in experts:
            others = expert_votes[expert_votes["annotator_id"] != ann]
            shown = {}
            for vid in sorted(items):
                text = summaries.get(vid) or earlier.get(vid, "")
                theirs = others[others["video_id"] == vid]
                if vid in disputed and len(theirs):  # the other experts' decisions, when the experts disagree
                    pairs = sorted(zip(theirs["annotator_id"], theirs["label"], strict=True))
                    text += "; experts: " + ", ".join(f"{a}: {lab}" for a, lab in pairs)
                shown[vid] = text
            key = f"{stage}/{ann}"
            add(key, project_title(ann, stage, "", name), None, None, ann, dict.fromkeys(sorted(items), len(experts)))
            plan[key]["earlier"] = shown
    return plan


def _task_data(layout: DatasetLayout, videos: pd.DataFrame, base: str, vid: str, plan: dict, round_: int
               ) -> dict[str, Any]:  # fmt: skip
    data = {"video": _media_url(layout, videos.loc[vid, "media_path"], base), "video_id": vid,
            "stage": plan["stage"], "items_of": plan.get("items_of") or ""}  # fmt: skip
    if plan["stage"] == Stage.EXPERT:
        data |= {"previous_votes": plan["earlier"].get(vid, ""), "round": round_}
    return data


def push(
    layout: DatasetLayout,
    stage: Stage | str,
    client: LabelStudio,
    taxonomy: Taxonomy,
    *,
    votes_per_item: int = 3,
    min_agreement: float = 0.5,
    dataset_name: str | None = None,
) -> PushReport:
    """Create or update the stage's per-annotator projects and import the tasks they lack (idempotent); restore the
    settings the toolkit owns on existing projects and disable the organization's invite link. For the expert
    stage, an item whose earlier votes changed (or whose experts disagree) is refreshed in place when the expert has
    not voted on it yet, else sent back as a new round. Media go under the configured media base URL, else through
    Label Studio's local files (a storage over the dataset's `media/` folder, through the dataset's link on the
    toolkit's server: `_local_files`); a task whose media URL changed (the base URL, or the dataset on a server by
    URL, moved) is pointed at the new one, and a clip whose file is missing is not pushed but
    reported by name (`PushReport.missing_media`). `stage` is a Stage or its value. Raises ValueError for an
    unknown stage, another server than the dataset's, no media source, or media outside it."""
    try:
        stage = Stage(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r} (choose: {', '.join(Stage)})") from None
    check_server(layout, client)
    media_base, storage_path = _media_base(layout, client.config)
    name = dataset_name or layout.root.resolve().name
    videos = _ok_videos(layout).set_index("video_id")
    plan = _plan(layout, stage, name, votes_per_item, min_agreement)
    projects = load_projects(layout)
    report = PushReport()
    if client.invite_link_enabled():
        client.disable_invite_link()
        report.invite_link_disabled = True
    for vid, media_path in videos["media_path"].items():
        if not (layout.root / media_path).is_file():
            report.missing_media[str(vid)] = str(layout.root / media_path)
    videos = videos.drop(index=list(report.missing_media))
    kept = read_vote_table(layout)
    kept = kept[kept["status"] == VoteStatus.KEPT]
    config, guide = labeling_config(taxonomy, stage == Stage.EXPERT), instructions(taxonomy)
    for key, entry in sorted(plan.items()):
        known = projects.get(key)
        project = client.project(known["id"]) if known else None
        if project is None:
            project = client.create_project(entry["title"], config, guide, 1)
        else:  # an existing project follows the current taxonomy and instructions, and gets its settings back
            wanted = {"title": entry["title"], "label_config": config, "expert_instruction": guide, **PROJECT_SETTINGS}
            changed = {k: v for k, v in wanted.items() if project.get(k) != v}
            if changed:
                client.call("PATCH", f"/api/projects/{project['id']}", changed)
            if project.get("maximum_annotations") != 1:
                client.set_maximum_annotations(project["id"], 1)
        earlier = entry.pop("earlier", None)
        projects[key] = {**entry, "id": project["id"]}
        _save_projects(layout, projects)
        if storage_path is not None:
            client.ensure_local_storage(project["id"], storage_path)
        tasks = client.tasks(project["id"])
        for t in tasks:  # a moved dataset (or base URL): the browser loads the clip from where it is now
            vid = t["data"].get("video_id")
            if vid in videos.index:
                url = _media_url(layout, videos.loc[vid, "media_path"], media_base)
                if t["data"].get("video") != url:
                    client.update_task_data(t["id"], {**t["data"], "video": url})
                    t["data"]["video"] = url
                    report.repointed[key] = report.repointed.get(key, 0) + 1
        latest: dict[str, dict] = {}
        for t in tasks:
            vid = t["data"].get("video_id")
            if vid not in latest or int(t["data"].get("round") or 1) > int(latest[vid]["data"].get("round") or 1):
                latest[vid] = t
        entry["earlier"] = earlier or {}
        new = [{"data": _task_data(layout, videos, media_base, v, entry, 1)}
               for v in sorted(entry["videos"]) if v not in latest and v in videos.index]  # fmt: skip
        if stage == Stage.EXPERT:
            mine = kept[(kept["stage"] == Stage.EXPERT) & (kept["annotator_id"] == entry["annotator"])]
            voted = set(zip(mine["video_id"], mine["round"].astype(int), strict=True))
            for vid, task in sorted(latest.items()):
                text = entry["earlier"].get(vid)
                if text is None or task["data"].get("previous_votes") == text:
                    continue
                round_ = int(task["data"].get("round") or 1)
                if (vid, round_) in voted or int(task.get("total_annotations") or 0) > 0:
                    new.append({"data": _task_data(layout, videos, media_base, vid, entry, round_ + 1)})
                    report.returned[key] = report.returned.get(key, 0) + 1
                else:
                    client.update_task_data(task["id"], {**task["data"], "previous_votes": text})
                    report.refreshed[key] = report.refreshed.get(key, 0) + 1
        entry.pop("earlier")
        report.imported[key] = client.import_tasks(project["id"], new)
    return report


# ---------------------------------------------------------------- pull


@dataclass
class PullReport:
    n_votes: int = 0  # in the table after the pull
    n_new: int = 0
    n_updated: int = 0  # votes on record read again
    n_edited: int = 0  # of those, changed by their annotator (history kept)
    n_deleted: int = 0  # votes whose annotation disappeared from Label Studio: marked deleted
    excluded: list[Exclusion] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)  # this pull's vote history events
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> id, status (ok, deleted), drift
    invite_link_was_enabled: bool = False
    path: Path | None = None  # manifests/pull_report.json

    def _of(self, reason: Reason) -> list[str]:
        return [f"{e.detail} ({e.video_id}, task {e.ls_task_id}, annotation {e.ls_annotation_id}, project "
                f"{e.project})" for e in self.excluded if e.reason == reason]  # fmt: skip

    @property
    def skipped(self) -> list[str]:
        return self._of(Reason.CANCELLED)

    @property
    def outside_taxonomy(self) -> list[str]:
        return self._of(Reason.OUTSIDE_TAXONOMY)

    @property
    def unknown_videos(self) -> list[str]:
        return self._of(Reason.UNKNOWN_VIDEO)

    @property
    def unknown_annotators(self) -> list[str]:
        return self._of(Reason.UNKNOWN_ACCOUNT)

    @property
    def deleted_projects(self) -> list[str]:
        return [k for k, p in self.projects.items() if p["status"] == "deleted"]

    @property
    def drifted_projects(self) -> dict[str, list[str]]:
        return {k: p["drift"] for k, p in self.projects.items() if p.get("drift")}

    @property
    def problems(self) -> int:
        """Everything the report lists: excluded annotations, deleted or drifted projects, an enabled invite link."""
        return (len(self.excluded) + len(self.deleted_projects) + len(self.drifted_projects)
                + int(self.invite_link_was_enabled))  # fmt: skip

    def summary(self) -> dict[str, int]:
        """Reason -> how many annotations were not counted for it."""
        return dict(sorted(Counter(str(e.reason) for e in self.excluded).items()))


def _drift(remote: dict[str, Any], plan: dict[str, Any], taxonomy: Taxonomy) -> list[str]:
    """The settings of a project that differ from what push set (push restores them)."""
    wanted = {"title": plan["title"], "label_config": labeling_config(taxonomy, plan["stage"] == Stage.EXPERT),
              **({"maximum_annotations": 1} if plan.get("annotator") else {}), **PROJECT_SETTINGS}  # fmt: skip
    return sorted(k for k, v in wanted.items() if remote.get(k) != v)


def pull(layout: DatasetLayout, client: LabelStudio, taxonomy: Taxonomy) -> PullReport:
    """Export every project (snapshot export) and merge it into the vote table under the rules of
    `annotation.vetting` (Label Studio is untrusted input); write `manifests/pull_report.json` with every
    annotation not counted and its reason, every deleted or drifted project and an invite link found enabled (which
    is disabled again), and append every change to a vote on record to `manifests/vote_history.parquet`.
    Idempotent: a vote is keyed by its server and Label Studio annotation id. A deleted project is reported and
    its votes stay as last pulled; the other projects are pulled. Nothing is written unless every export of the
    existing projects succeeded. Raises ValueError for another server than the dataset's, ServerError when the
    server fails."""
    server_id, url = check_server(layout, client)
    annotators = load_annotators(layout)
    by_user = {int(u): (a, r) for a, r, u in annotators[["annotator_id", "role", "ls_user_id"]].dropna(
        subset=["ls_user_id"]).itertuples(index=False)}  # fmt: skip
    accounts = Accounts(by_user, int(client.whoami()["id"]))
    known_videos = set(read_versioned_table(layout.videos_manifest, ["video_id"])["video_id"].to_pylist())
    report = PullReport()
    exports = {}
    for key, plan in sorted(load_projects(layout).items()):
        remote = client.project(plan["id"])
        if remote is None:
            report.projects[key] = {"id": plan["id"], "status": "deleted", "drift": []}
            continue
        report.projects[key] = {"id": plan["id"], "status": "ok", "drift": _drift(remote, plan, taxonomy)}
        exports[key] = (plan, client.export_snapshot(plan["id"]))
    report.invite_link_was_enabled = client.invite_link_enabled()
    if report.invite_link_was_enabled:
        client.disable_invite_link()
    now = datetime.now(UTC).replace(microsecond=0)
    vetted = vet(read_vote_table(layout), exports, annotators, accounts, known_videos, taxonomy, (server_id, url), now)
    report.excluded, report.changes = vetted.excluded, vetted.history
    report.n_new, report.n_updated = vetted.n_new, vetted.n_reread
    report.n_edited, report.n_deleted = vetted.n_edited, vetted.n_deleted
    write_votes(layout.votes, vetted.votes)
    if vetted.history:
        history = pd.DataFrame(vetted.history, columns=VOTE_HISTORY_SCHEMA.names)
        if layout.vote_history.exists():
            history = pd.concat([pq.read_table(layout.vote_history).to_pandas(), history], ignore_index=True)
        table = pa.Table.from_pandas(history, schema=VOTE_HISTORY_SCHEMA, preserve_index=False)
        write_table_atomic(layout.vote_history, table)
    report.n_votes = int((vetted.votes["status"] == VoteStatus.KEPT).sum())
    report.path = layout.manifests / "pull_report.json"
    document = {
        "pulled_at": now.isoformat(), "server": {"server_id": server_id, "url": url},
        "votes": {"kept": report.n_votes, "new": report.n_new, "read_again": report.n_updated,
                  "edited": report.n_edited, "deleted": report.n_deleted, "not_counted": len(report.excluded)},
        "summary": report.summary(), "projects": report.projects,
        "invite_link_was_enabled": report.invite_link_was_enabled,
        "excluded": [e.to_dict() for e in report.excluded],
        "changes": report.changes,  # votes on record edited by their annotator, deleted, superseded
    }  # fmt: skip
    write_bytes_atomic(report.path, json.dumps(document, indent=1, default=_json_value).encode())
    return report


def _json_value(value: Any) -> Any:
    """numpy scalars as Python numbers, times as ISO text."""
    return value.item() if hasattr(value, "item") else str(value)
