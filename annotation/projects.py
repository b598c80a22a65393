"""The dataset's Label Studio projects (`manifests/ls_projects.json`): one per stage and annotator, with its items.

Independence by construction: annotators never see each other's votes because every annotator has a Label Studio
project of their own per stage, holding only the items allocated to them (`maximum_annotations` 1, no other
annotator's annotations, predictions or history shown; `annotation.stage_plan` decides who gets which items).

How an annotator finds their project (the browser test and `emotions annotate credentials` rely on this):
log in with the login and password from the credentials file (`<id lower-cased>@annotators.invalid`), then open
the project titled `<dataset> · <stage> · <annotator id> · group <G>` (e.g. `demo · label · A1 · group A`;
cross-checks add `(items of B)`; `demo · expert · EX`; the dataset's name is shortened so the title fits Label
Studio's 50 characters, the rest never), and work through "Label All Tasks". Its key in
`manifests/ls_projects.json` is `<stage>/<items' group>/<annotator id>` (`relabel/<annotator's group>/<id>`,
`expert/<id>`), which also holds its Label Studio id. Label Studio Community still lists every project to every
account: opening another annotator's project shows their votes, and a vote cast there is reported and never
counted (see docs/admin/vote-integrity.md).
"""

from __future__ import annotations

import json

from emotions_data.layout import DatasetLayout
from emotions_data.schema import Stage
from emotions_data.storage import write_bytes_atomic

TITLE_MAX = 50  # Label Studio refuses longer project titles


def load_projects(layout: DatasetLayout) -> dict[str, dict]:
    """Project key ("label/A", "expert", ...) -> its Label Studio project id, title, stage and `items_of` group;
    empty before the first push."""
    path = layout.ls_projects
    return json.loads(path.read_text()) if path.exists() else {}


def save_projects(layout: DatasetLayout, projects: dict[str, dict]) -> None:
    """Write the project list (project key -> its record, as `load_projects` reads it) atomically."""
    write_bytes_atomic(layout.ls_projects, json.dumps(projects, indent=2, sort_keys=True).encode())


def project_title(annotator: str, stage: Stage, detail: str, dataset: str) -> str:
    """`<dataset> · <stage> · <annotator>[ · <detail>]`, the dataset's name shortened so the title fits Label
    Studio's 50 characters: the stage and the annotator's own id are never cut, so they find their project."""
    tail = " · ".join(p for p in (str(stage), annotator, detail) if p)
    room = TITLE_MAX - len(tail) - 3
    return f"{dataset[:room]} · {tail}" if room >= 4 else tail[:TITLE_MAX]
