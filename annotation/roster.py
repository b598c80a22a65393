"""The annotator roster (`annotators.csv`): the only place names and e-mails live.

Columns: `id` (pseudonymous, used everywhere else), `name`, `email`, and the five allocation
attributes of the eMotions protocol: `work_experience` (years), `eq_score` (an emotional-
intelligence test score such as MSCEIT; `msceit` is accepted too), `education`, `culture`,
`leadership` (a number, or yes/no). Optional `role`: `annotator` (default) or `expert` (experts
resolve disputed items and are not put into groups). Extra columns are allowed and ignored.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

NUMERIC = ("work_experience", "eq_score", "leadership")
CATEGORICAL = ("education", "culture")
ATTRIBUTES = NUMERIC + CATEGORICAL
ROLES = ("annotator", "expert")
_ALIASES = {"msceit": "eq_score", "experience": "work_experience", "work_experience_years": "work_experience"}
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_YES_NO = {"yes": 1.0, "y": 1.0, "true": 1.0, "no": 0.0, "n": 0.0, "false": 0.0}


@dataclass(frozen=True)
class Roster:
    frame: pd.DataFrame  # id plus the five attributes, one row per annotator; no contact details
    contacts: pd.DataFrame  # id, name, email: never written anywhere else

    @property
    def ids(self) -> list[str]:
        """The pseudonymous ids in roster order."""
        return list(self.frame["id"])


def pseudonym(email: str) -> str:
    """A stable pseudonymous id ("ann-" and 8 hex digits) of an e-mail address, ignoring case and outer blanks."""
    return "ann-" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:8]


def read_roster(path: Path) -> Roster:
    """Read and validate a roster; errors name the file and row."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: unreadable roster: {exc}") from exc
    raw = raw.rename(columns={c: _ALIASES.get(c.strip().lower(), c.strip().lower()) for c in raw.columns})
    missing = [c for c in ("email", *ATTRIBUTES) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    if "id" not in raw.columns:
        raw["id"] = ""
    if "name" not in raw.columns:
        raw["name"] = ""
    rows = []
    for i, rec in enumerate(raw.to_dict("records"), start=2):
        email = rec["email"].strip()
        if not email:
            raise ValueError(f"{path}: row {i}: empty email")
        ann_id = rec["id"].strip() or pseudonym(email)
        if not _SAFE.fullmatch(ann_id):
            raise ValueError(f"{path}: row {i}: id {ann_id!r} must be letters, digits, '.', '_' or '-'")
        role = (rec.get("role") or "annotator").strip().lower() or "annotator"
        if role not in ROLES:
            raise ValueError(f"{path}: row {i}: role {rec['role']!r} is not one of {', '.join(ROLES)}")
        row = {"id": ann_id, "name": rec["name"].strip(), "email": email, "role": role}
        for col in NUMERIC:
            text = rec[col].strip().lower()
            try:
                row[col] = _YES_NO[text] if text in _YES_NO else float(text)
            except ValueError:
                raise ValueError(f"{path}: row {i}: {col} {rec[col]!r} is not a number") from None
        for col in CATEGORICAL:
            row[col] = rec[col].strip() or "unknown"
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("id", "email"):
        dup = frame[col][frame[col].str.lower().duplicated()]
        if len(dup):
            raise ValueError(f"{path}: duplicate {col} {dup.iloc[0]!r}")
    return Roster(frame[["id", "role", *ATTRIBUTES]].reset_index(drop=True), frame[["id", "name", "email"]])
