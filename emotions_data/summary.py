"""A run's report (`manifests/ingest_summary.json`): counts per status and reason, media seconds, throughput and
the settings it ran with, secrets left out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from emotions_data.settings import IngestSettings
from emotions_data.stages import FETCH


@dataclass
class IngestReport:
    """What `ingest` returns and writes to `manifests/ingest_summary.json`."""

    n_inputs: int
    n_processed: dict[str, int]  # per stage, this run
    elapsed_s: float
    status_counts: dict[str, int]
    reason_counts: dict[str, dict[str, int]]  # status -> reason -> count, for the non-ok rows
    media_seconds: float  # total duration of ok media
    swept_temporaries: int = 0
    settings: dict | None = None  # the ingest settings of the run, secrets left out
    refused_inputs: list[str] = field(default_factory=list)  # folder entries left out, each `PATH: why`

    @property
    def throughput(self) -> float:
        """Input items per second of this run (fetch stage)."""
        return self.n_processed.get(FETCH, 0) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> str:
        """The report as indented JSON, with the throughput added."""
        return json.dumps({**asdict(self), "throughput_items_per_s": round(self.throughput, 3)}, indent=2)


def public_settings(settings: IngestSettings) -> dict:
    """The settings as a plain dict, without the secrets (cookies file, proxy)."""
    values = asdict(settings)
    for secret in ("cookies_file", "proxy"):
        values["download"].pop(secret, None)
    return values


def summarise(table: pa.Table, processed: dict[str, int], elapsed_s: float, swept: int) -> IngestReport:
    """The report of a run whose manifest is `table`: `processed`, the items each stage did in this run;
    `elapsed_s`, its wall seconds; `swept`, the temporaries of killed jobs it removed at start."""
    status = table["status"]
    counts = {row["values"]: row["counts"] for row in pc.value_counts(status).to_pylist()}
    reasons: dict[str, dict[str, int]] = {}
    with_reason = table.select(["status", "reason"]).filter(pc.fill_null(pc.not_equal(table["reason"], ""), False))
    for row in with_reason.group_by(["status", "reason"], use_threads=False).aggregate([([], "count_all")]).to_pylist():
        reasons.setdefault(row["status"], {})[row["reason"]] = row["count_all"]
    ok = pc.and_(pc.equal(status, "ok"), pc.fill_null(pc.not_equal(table["media_duration_s"], 0.0), False))
    durations = table["media_duration_s"].filter(ok).to_pylist()  # summed in row order, as before
    return IngestReport(
        n_inputs=table.num_rows,
        n_processed=processed,
        elapsed_s=round(elapsed_s, 3),
        status_counts=dict(sorted(counts.items())),
        reason_counts={st: dict(sorted(c.items())) for st, c in sorted(reasons.items())},
        media_seconds=round(sum(durations), 3),
        swept_temporaries=swept,
    )
