"""A simulated annotator panel that works through the real Label Studio API.

Each annotator has an accuracy; a seeded share of them are much weaker. A wrong answer prefers a
class of the same polarity (confusing Fear with Tension is likelier than with Excitation), as human
raters do. The truth comes from the manifest's `true_label` column when there is one (the demo
corpus carries it), else from a hash of the video id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq

from annotation.allocation import crosscheck_group
from annotation.labelstudio.client import LabelStudio
from annotation.workflow import load_annotators, load_projects
from emotions_data.layout import DatasetLayout
from emotions_data.schema import Stage
from emotions_data.taxonomy import Taxonomy


@dataclass(frozen=True)
class PanelSettings:
    accuracy: float = 0.85
    weak_fraction: float = 0.15  # share of annotators who are much worse
    weak_accuracy: float = 0.35
    expert_accuracy: float = 0.97
    same_polarity: float = 0.7  # share of wrong answers that stay within the true class's polarity
    unsure_rate: float = 0.05
    lead_time_s: tuple[float, float] = (4.0, 40.0)


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:16], 16))


def panel_accuracy(annotator_ids: list[str], settings: PanelSettings, seed: int) -> dict[str, float]:
    """annotator id -> probability of a correct answer; a seeded `weak_fraction` of them get `weak_accuracy`."""
    order = sorted(annotator_ids)
    n_weak = round(settings.weak_fraction * len(order))
    weak = set(_rng("weak", seed).permutation(order)[:n_weak]) if n_weak else set()
    return {a: settings.weak_accuracy if a in weak else settings.accuracy for a in order}


def simulated_label(truth: str, accuracy: float, taxonomy: Taxonomy, rng: np.random.Generator, same: float) -> str:
    """`truth` with probability `accuracy`, else a wrong class: one of the same polarity with probability `same`."""
    if rng.random() < accuracy:
        return truth
    others = [c for c in taxonomy.classes if c != truth]
    close = [c for c in others if taxonomy.polarity.get(c) == taxonomy.polarity.get(truth)]
    pool = close if close and rng.random() < same else [c for c in others if c not in close] or others
    return str(rng.choice(pool))


@dataclass
class SimulationReport:
    posted: int = 0
    accuracy: dict[str, float] = field(default_factory=dict)  # the panel's true accuracies
    weak: list[str] = field(default_factory=list)


def truth_of(layout: DatasetLayout, taxonomy: Taxonomy) -> dict[str, str]:
    """video_id -> the class the panel takes as true: the manifest's `true_label`, else one chosen by a hash."""
    table = pq.read_table(layout.videos_manifest)
    ids = table["video_id"].to_pylist()
    given = table["true_label"].to_pylist() if "true_label" in table.column_names else [None] * len(ids)
    return {
        vid: lab
        if lab in taxonomy.classes
        else taxonomy.classes[int(hashlib.sha256(vid.encode()).hexdigest(), 16) % len(taxonomy.classes)]
        for vid, lab in zip(ids, given, strict=True)
    }


def simulate(
    layout: DatasetLayout,
    stage: Stage | str,
    client: LabelStudio,
    taxonomy: Taxonomy,
    *,
    votes_per_item: int = 3,
    settings: PanelSettings | None = None,
    seed: int = 0,
) -> SimulationReport:
    """Fill every task of `stage` (a Stage or its value) up to its vote count with the simulated panel's answers.
    Raises ValueError for an unknown stage or a project without an active annotator to simulate."""
    try:
        stage = Stage(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r}") from None
    settings = settings or PanelSettings()
    people = load_annotators(layout)
    crowd = people[(people["role"] == "annotator")]
    accuracy = panel_accuracy(list(crowd["annotator_id"]), settings, seed)
    accuracy |= {a: settings.expert_accuracy for a in people.loc[people["role"] == "expert", "annotator_id"]}
    user_of = dict(zip(people["annotator_id"], people["ls_user_id"], strict=True))
    active = people[people["active"]]
    groups = sorted(crowd["group"].dropna().unique())
    truth = truth_of(layout, taxonomy)
    voted: dict[str, set[str]] = {}
    if layout.votes.exists():
        for vid, ann in (
            pq.read_table(layout.votes, columns=["video_id", "annotator_id"]).to_pandas().itertuples(index=False)
        ):
            voted.setdefault(vid, set()).add(ann)
    report = SimulationReport(
        accuracy=accuracy, weak=sorted(a for a, p in accuracy.items() if p == settings.weak_accuracy)
    )
    for key, project in sorted(load_projects(layout).items()):
        if project["stage"] != stage:
            continue
        if stage == Stage.EXPERT:
            panel, k = sorted(active.loc[active["role"] == "expert", "annotator_id"]), 1
        elif stage == Stage.RELABEL:  # fresh eyes: any active annotator who has not seen the item yet
            panel = sorted(active.loc[active["role"] == "annotator", "annotator_id"])
            k = int(client.project(project["id"])["maximum_annotations"])
        else:
            by = project["items_of"] if stage == Stage.LABEL else crosscheck_group(project["items_of"], groups)
            panel, k = sorted(active.loc[active["group"] == by, "annotator_id"]), votes_per_item
        if not panel:
            raise ValueError(f"project {key}: no active annotator to simulate")
        for task in client.tasks(project["id"]):
            vid = task["data"].get("video_id")
            done = {int(u) for u in task.get("annotators") or []}
            if stage == Stage.RELABEL:  # a new pair of eyes: nobody who already voted on the item in any stage
                done |= {int(user_of[a]) for a in voted.get(vid, ())}
            free = [a for a in panel if int(user_of[a]) not in done]
            need = max(0, k - int(task.get("total_annotations") or 0))
            rng = _rng(seed, stage, vid)
            for ann in rng.permutation(free)[:need]:
                label = simulated_label(truth[vid], accuracy[ann], taxonomy, rng, settings.same_polarity)
                lead = float(rng.uniform(*settings.lead_time_s))
                client.annotate(task["id"], label, int(user_of[ann]), unsure=bool(rng.random() < settings.unsure_rate),
                                lead_time_s=round(lead, 2))  # fmt: skip
                report.posted += 1
    return report
