"""The demo's annotation part: the whole multi-stage workflow on a real Label Studio server, with a
simulated panel (9 annotators in 3 groups, one of them weak, and an expert)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from annotation.agreement import AgreementReport, agreement_report
from annotation.consistency import evaluate_consistency
from annotation.labels import final_labels
from annotation.labelstudio import LabelStudio
from annotation.server import ServerConfig, start, stop
from annotation.simulate import simulate
from annotation.workflow import allocate, counted_votes, pull, push, set_active
from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic, write_table_atomic
from emotions_data.taxonomy import EMOTIONS6

VOTES_PER_ITEM = 3
CONSISTENCY_THRESHOLD = 0.6


def demo_roster() -> str:
    """Nine annotators with the five allocation attributes, plus one expert. Fictitious people."""
    people = [
        ("D01", 1, 96, "BSc", "CN", 0), ("D02", 8, 112, "MSc", "CN", 1), ("D03", 3, 104, "PhD", "US", 0),
        ("D04", 5, 99, "BSc", "US", 1), ("D05", 2, 118, "MSc", "EU", 0), ("D06", 11, 91, "PhD", "EU", 1),
        ("D07", 4, 107, "BSc", "CN", 0), ("D08", 7, 101, "MSc", "US", 1), ("D09", 6, 95, "PhD", "EU", 0),
    ]  # fmt: skip
    lines = ["id,name,email,work_experience,eq_score,education,culture,leadership,role"]
    lines += [
        f"{i},Annotator {i},{i.lower()}@example.org,{y},{s},{e},{c},{lead},annotator" for i, y, s, e, c, lead in people
    ]
    lines.append("DX,Expert,expert@example.org,15,124,PhD,CN,1,expert")
    return "\n".join(lines) + "\n"


@dataclass
class AnnotationDemoReport:
    agreement: AgreementReport
    dropped: list[str]
    label_counts: dict[str, int]
    decided_by: dict[str, int]
    server_url: str


def run_annotation_demo(out: Path, log: Callable[[str], None] = print) -> AnnotationDemoReport:
    layout = DatasetLayout(out)
    roster = out / "demo_source" / "annotators.csv"
    write_bytes_atomic(roster, demo_roster().encode())
    log("starting Label Studio (the first start migrates its database: about half a minute) ...")
    handle = start(ServerConfig(data_dir=(out / ".label-studio").absolute(), port=0), out.absolute())
    try:
        client = LabelStudio(handle.config)
        allocate(layout, roster, n_groups=3, seed=0, client=client)
        for stage in ("label", "crosscheck"):
            push(layout, stage, client, EMOTIONS6, votes_per_item=VOTES_PER_ITEM)
            posted = simulate(layout, stage, client, EMOTIONS6, votes_per_item=VOTES_PER_ITEM, seed=0)
            pulled = pull(layout, client, EMOTIONS6)
            log(f"{stage}: {posted.posted} annotations posted, {pulled.n_votes} votes on record")
        votes = pd.read_parquet(layout.votes)
        consistency = evaluate_consistency(votes, CONSISTENCY_THRESHOLD)
        dropped = list(consistency.annotators.index[consistency.annotators["flagged"]])
        for ann in dropped:
            set_active(layout, ann, False)
        log(f"consistency evaluation: dropped {', '.join(dropped) or 'nobody'} (agreement with the cross-check "
            f"under {CONSISTENCY_THRESHOLD}); weak by design: {', '.join(posted.weak) or 'none'}")  # fmt: skip
        # Multi-stage: the updated groups re-label what the dropped annotators had labelled.
        push(layout, "relabel", client, EMOTIONS6)
        relabelled = simulate(layout, "relabel", client, EMOTIONS6, seed=0).posted
        pull(layout, client, EMOTIONS6)
        log(f"relabel: {relabelled} fresh annotations (by annotators who had not seen the items)")
        counted = counted_votes(layout, pd.read_parquet(layout.votes))
        write_table_atomic(layout.needs_expert, final_labels(counted, EMOTIONS6).needs_expert)
        push(layout, "expert", client, EMOTIONS6, min_agreement=0.5)
        simulate(layout, "expert", client, EMOTIONS6, seed=0)
        pull(layout, client, EMOTIONS6)
        counted = counted_votes(layout, pd.read_parquet(layout.votes))
        result = final_labels(counted, EMOTIONS6)
        write_table_atomic(layout.labels, result.labels)
        write_table_atomic(layout.needs_expert, result.needs_expert)
        crowd = counted[counted["stage"] != "expert"]
        labels = result.labels.to_pandas()
        return AnnotationDemoReport(
            agreement=agreement_report(crowd, list(EMOTIONS6.classes), seed=0),
            dropped=dropped,
            label_counts=labels["label"].value_counts().sort_index().to_dict(),
            decided_by=labels["decided_by"].value_counts().to_dict(),
            server_url=handle.config.url,
        )
    finally:
        stop(handle.config)
