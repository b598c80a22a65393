"""Annotators' Label Studio passwords: issued by the lead (a 0600 CSV per server, handed to each person), reset,
and revoked for good when an annotator is dropped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from annotation.annotators import account_email, account_ids, load_annotators, set_active
from annotation.labelstudio.accounts import AdminSession, revoke_personal_tokens
from annotation.labelstudio.client import LabelStudio
from annotation.labelstudio.config import ServerConfig
from annotation.server_record import check_server
from emotions_data.dataset_lock import writes_dataset
from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic

CREDENTIALS_CSV = "annotator-credentials.csv"  # in the folder `issue_credentials` is given


@writes_dataset("annotate credentials")
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
    ids = account_ids(layout, chosen)
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


@writes_dataset("annotate revoke")
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


@writes_dataset("annotate drop")
def drop(layout: DatasetLayout, annotator_id: str, server_config: ServerConfig | None) -> bool:
    """Drop an annotator: their votes stop counting, they get no new tasks, and (with `server_config`) their Label
    Studio account is deactivated and its token revoked. Returns whether an account was deactivated."""
    set_active(layout, annotator_id, False)
    return revoke_credentials(layout, server_config, annotator_id) if server_config is not None else False
