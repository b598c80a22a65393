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
import pandas as pd

from annotation.annotators import load_annotators
from annotation.labelstudio.client import LabelStudio
from annotation.projects import load_projects
from annotation.server_record import check_server
from emotions_data.layout import DatasetLayout
from emotions_data.manifest import read_versioned_table
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
    careless: list[str] = field(default_factory=list)  # what the careless annotator did that must not count


def truth_of(layout: DatasetLayout, taxonomy: Taxonomy) -> dict[str, str]:
    """video_id -> the class the panel takes as true: the manifest's `true_label`, else one chosen by a hash."""
    table = read_versioned_table(layout.videos_manifest)
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
    careless: str | None = None,
) -> SimulationReport:
    """Answer every open task of `stage` (a Stage or its value) in each active annotator's own project with the
    simulated panel's answers, posted by the toolkit's admin on the annotator's behalf. `careless` names an annotator
    who also votes a second time on one of their items and once in another annotator's project of the stage (what
    `pull` must report and never count). `votes_per_item` is kept for the command line; each project's items already
    carry their vote count. Raises ValueError for an unknown stage, a careless annotator without a project, or
    another server than the dataset's (its project ids would name someone else's projects)."""
    del votes_per_item  # allocation decided it at push
    try:
        stage = Stage(stage)
    except ValueError:
        raise ValueError(f"unknown stage {stage!r}") from None
    settings = settings or PanelSettings()
    check_server(layout, client)
    people = load_annotators(layout)
    crowd = people[(people["role"] == "annotator")]
    accuracy = panel_accuracy(list(crowd["annotator_id"]), settings, seed)
    accuracy |= {a: settings.expert_accuracy for a in people.loc[people["role"] == "expert", "annotator_id"]}
    user_of = dict(zip(people["annotator_id"], people["ls_user_id"], strict=True))
    active = set(people.loc[people["active"], "annotator_id"])
    truth = truth_of(layout, taxonomy)
    report = SimulationReport(
        accuracy=accuracy, weak=sorted(a for a, p in accuracy.items() if p == settings.weak_accuracy)
    )
    projects = {k: p for k, p in sorted(load_projects(layout).items()) if p["stage"] == stage and p.get("annotator")}
    for project in projects.values():
        ann = project["annotator"]
        if ann not in active:
            continue
        for task in client.tasks(project["id"]):
            vid = task["data"].get("video_id")
            if vid not in (project.get("videos") or {}):
                continue
            if int(task.get("total_annotations") or 0) > 0 and any(  # someone else's stray vote blocks nothing
                int(a.get("completed_by") or -1) == int(user_of[ann]) for a in client.annotations(task["id"])
            ):
                continue
            rng = _rng(seed, stage, vid, ann, task["data"].get("round") or 1)
            label = simulated_label(truth[vid], accuracy[ann], taxonomy, rng, settings.same_polarity)
            lead = float(rng.uniform(*settings.lead_time_s))
            client.annotate(task["id"], label, int(user_of[ann]), unsure=bool(rng.random() < settings.unsure_rate),
                            lead_time_s=round(lead, 2))  # fmt: skip
            report.posted += 1
    if careless is not None:
        if pd.isna(user_of.get(careless)):
            raise ValueError(f"careless annotator {careless!r}: not on the roster with a Label Studio account")
        report.careless = _careless(client, projects, careless, int(user_of[careless]), taxonomy, seed)
    return report


def _careless(
    client: LabelStudio, projects: dict[str, dict], who: str, user_id: int, taxonomy: Taxonomy, seed: int
) -> list[str]:
    """A careless annotator's slips: a second vote on one of their own items, a vote in someone else's project."""
    own = [k for k, p in projects.items() if p["annotator"] == who]
    other = [k for k, p in projects.items() if p["annotator"] != who]
    if not own or not other:
        raise ValueError(f"{who} has no project in this stage, or nobody else has one")
    rng = _rng("careless", seed, who)
    done = []
    slips = ((own[0], "a second vote on their own item", 2), (other[0], "a vote in another's project", 1))
    for key, what, enough in slips:
        task = min(client.tasks(projects[key]["id"]), key=lambda t: t["id"])
        label = str(rng.choice(list(taxonomy.classes)))
        mine = [a for a in client.annotations(task["id"]) if int(a.get("completed_by") or -1) == user_id]
        if len(mine) < enough:  # a rerun slips no further
            client.annotate(task["id"], label, user_id, lead_time_s=1.0)
        done.append(f"{who}: {what} ({task['data'].get('video_id')} in {key})")
    return done
