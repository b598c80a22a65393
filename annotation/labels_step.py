"""The labels step (I/O): the dataset's counted votes become `manifests/labels.parquet` (with per-item agreement),
`manifests/needs_expert.parquet` (ties, for the expert stage) and `manifests/agreement.json` (the agreement report
over the counted crowd votes). The three are committed together (`storage.file_group`): a reader never sees an item
both decided and waiting for the expert. Releases and cards read these files as data; they never compute agreement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from annotation.agreement import AgreementReport, agreement_report
from annotation.labels import final_labels
from annotation.outside_votes import check_against_dataset, read_outside_votes
from annotation.votes import counted_votes, crowd_votes, read_votes
from emotions_data.layout import DatasetLayout
from emotions_data.release import votes_digest
from emotions_data.schema import LABELS_DIGEST_KEY, LABELS_VOTES_KEY, OWN_VOTES
from emotions_data.storage import file_group, recover_commits
from emotions_data.taxonomy import Taxonomy


@dataclass(frozen=True)
class LabelsOutcome:
    """What the labels step wrote. `n_votes` counts every vote in the table, `n_counted` those of annotators
    not dropped after a consistency evaluation; `agreement` is None when no item has two counted crowd votes
    (agreement is undefined then, and no `agreement.json` is written)."""

    labels: pa.Table  # LABELS_SCHEMA
    needs_expert: pa.Table  # NEEDS_EXPERT_SCHEMA
    n_votes: int
    n_counted: int
    agreement: AgreementReport | None


def decide_labels(
    layout: DatasetLayout,
    taxonomy: Taxonomy,
    method: str = "majority",
    votes: Path | None = None,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    leave_out_unknown: bool = False,
    pseudonymise: bool = False,
    notes: list[str] | None = None,
) -> LabelsOutcome:
    """Read the vote table (`votes`, default `manifests/votes.parquet`), keep the counted votes (dropped
    annotators' votes stay on record but do not count), decide final labels with `method` (`majority` or
    `dawid-skene`; expert votes are final) and write the three outputs together, all or none. The agreement report
    covers the counted non-expert votes with `n_bootstrap` resamples over items (none when no item has two of
    them). A table from outside (`votes` other than the dataset's own) is read and checked as an import is
    (`outside_votes.read_outside_votes`, `check_against_dataset` with `leave_out_unknown` and `pseudonymise`; a
    dataset without a videos manifest yet has its votes' videos unchecked). `labels.parquet` records the table
    (`LABELS_VOTES_KEY`) and the digest of its counted votes (`release.votes_digest`, `LABELS_DIGEST_KEY`): a
    release, whose `votes` column and card come from the dataset's own table, refuses labels decided from another
    table or from votes that changed since. Lines for the user are appended to `notes`. Raises ValueError for an
    unusable vote table or an unknown method; nothing is written then."""
    recover_commits(layout.root)  # a pull killed mid-commit is finished before its vote table is read
    outside = votes is not None and Path(votes).resolve() != layout.votes.resolve()
    if outside:
        read = read_outside_votes(votes, taxonomy, notes=notes)
        checked = check_against_dataset(
            layout, read, leave_out_unknown=leave_out_unknown, pseudonymise=pseudonymise, require_videos=False
        )
        frame = checked.votes
    else:
        frame = read_votes(layout.votes, taxonomy, notes=notes)
    counted = counted_votes(layout, frame)
    result = final_labels(counted, taxonomy, method)
    crowd = crowd_votes(counted)
    pairable = not crowd.empty and crowd.groupby("video_id").size().max() >= 2
    report = agreement_report(crowd, list(taxonomy.classes), n_bootstrap=n_bootstrap, seed=seed) if pairable else None
    with file_group(layout.root) as group:
        source = str(Path(votes).resolve()) if outside else OWN_VOTES
        metadata = {**result.labels.schema.metadata, LABELS_VOTES_KEY: source.encode(),
                    LABELS_DIGEST_KEY: votes_digest(counted).encode()}  # fmt: skip
        labels = result.labels.replace_schema_metadata(metadata)
        group.write_table(layout.labels, labels)
        group.write_table(layout.needs_expert, result.needs_expert)
        if report is None:
            group.remove(layout.agreement_report)  # a report of other votes would be read as this one
        else:
            group.write_bytes(layout.agreement_report, json.dumps(report.to_dict(), indent=1).encode())
    return LabelsOutcome(labels, result.needs_expert, len(frame), len(counted), report)


def label_counts(outcome: LabelsOutcome) -> pd.DataFrame:
    """Decided items per label (rows) and `decided_by` (columns)."""
    return outcome.labels.to_pandas().groupby(["label", "decided_by"]).size().unstack(fill_value=0)
