"""`emotions import-official`: an already-labelled dataset into our manifests.

Two layouts:
* the eMotions authors' release (read by `emotions_data.official_format.discover`, which owns that layout);
* a plain folder per class (VideoEmotion-8, Ekman-6 style) with a taxonomy file.

The videos go through the normal ingest (probe, filters, duplicates, normalisation); the labels
become `labels.parquet` (decided_by `official`); the published split (of the videos ingest kept) becomes
the `official` variant in `splits.parquet`, which `emotions split` keeps beside its own variants. The
JSON's `validation` subset is read as the test split when it has no `testing` subset: the authors' code
evaluates on it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from emotions_data.ingest import IngestReport, ingest
from emotions_data.layout import DatasetLayout
from emotions_data.official_format import OfficialLayout, discover
from emotions_data.schema import LABELS_SCHEMA, SPLITS_SCHEMA
from emotions_data.settings import IngestSettings
from emotions_data.sources import InputItem
from emotions_data.split_step import LABELS_DIGEST_KEY, labels_digest
from emotions_data.storage import file_group, recover_commits
from emotions_data.taxonomy import Taxonomy

OFFICIAL = "official"  # the variant the published split becomes


def labels_at_risk(layout: DatasetLayout, new_rows: list[dict]) -> pd.DataFrame:
    """The dataset's existing final labels that writing `new_rows` (LABELS_SCHEMA rows) would change or drop:
    every row whose (video_id, label, decided_by) is not among the new rows. Empty when there is no labels file
    or when the new rows keep every existing decision (a re-run of the same import)."""
    if not layout.labels.exists():
        return pd.DataFrame(columns=["video_id", "label", "decided_by"])
    old = pd.read_parquet(layout.labels, columns=["video_id", "label", "decided_by"])
    new = {(r["video_id"], r["label"], r["decided_by"]) for r in new_rows}
    keep = [(v, lab, by) in new for v, lab, by in zip(old["video_id"], old["label"], old["decided_by"], strict=True)]
    return old[~pd.Series(keep, index=old.index, dtype=bool)]


def _ok_digest(layout: DatasetLayout, ok: set[str]) -> str:
    """`labels_digest` of the dataset's final labels of the `ok` videos, as `emotions split` records it."""
    labels = pd.read_parquet(layout.labels, columns=["video_id", "label"])
    return labels_digest(labels[labels["video_id"].isin(ok)])


def import_official(
    root: Path,
    out: Path,
    taxonomy: Taxonomy,
    settings: IngestSettings | None = None,
    *,
    replace_labels: bool = False,
    fold: int | None = None,
    **ingest_args: object,
) -> tuple[IngestReport, OfficialLayout]:
    """Ingest the official layout under `root` into the dataset folder `out`, with labels and split (of `fold`,
    default 1, when the layout ships several).

    The published labels replace `labels.parquet` and the published split becomes the `official` variant of
    `splits.parquet`; the other variants are kept, unless labels they were built from were replaced (then they and
    `splits.json`, the record of how they were made, go). Labels and splits are committed together.

    Raises ValueError, before anything is fetched or written, when `out` already holds final labels that the
    import would change or drop (decided by the annotation workflow, or another import) unless `replace_labels`
    is set; the message names the file and what would be lost."""
    found = discover(root, taxonomy, fold)
    layout = DatasetLayout(out)
    recover_commits(layout.root)
    rows = [
        {"video_id": vid, "label": lab, "polarity": taxonomy.polarity.get(lab), "confidence": 1.0, "n_votes": 0,
         "decided_by": OFFICIAL}
        for vid, lab in sorted(found.labels.items())
    ]  # fmt: skip
    at_risk = labels_at_risk(layout, rows)
    if len(at_risk) and not replace_labels:
        kinds = ", ".join(f"{n} {by}" for by, n in at_risk["decided_by"].value_counts().sort_index().items())
        raise ValueError(
            f"{layout.labels}: the import would replace or drop {len(at_risk)} existing final label(s) ({kinds}); "
            "nothing was changed: import into another --out, or pass --replace-labels to replace them"
        )
    items = [
        InputItem(vid, str(path.resolve()), "file", platform="local", extra={"official_label": found.labels[vid]})
        for vid, path in sorted(found.videos.items())
    ]
    report = ingest(items, out, settings, **ingest_args)  # type: ignore[arg-type]
    kept = set(
        pd.read_parquet(layout.videos_manifest, columns=["video_id", "status"]).query("status == 'ok'")["video_id"]
    )
    published = {vid: split for vid, split in found.splits.items() if vid in kept}  # ingest may reject some
    frame = pd.DataFrame({"video_id": list(published), "variant": OFFICIAL, "split": list(published.values())})
    digest: str | None = labels_digest(
        pd.DataFrame([r for r in rows if r["video_id"] in kept], columns=["video_id", "label"])
    )
    if layout.splits.exists() and at_risk.empty:  # our variants stay beside the published one
        written = pq.read_table(layout.splits)
        ours = written.to_pandas()
        ours = ours[ours["variant"] != OFFICIAL][SPLITS_SCHEMA.names]
        frame = pd.concat([ours, frame], ignore_index=True)
        recorded = (written.schema.metadata or {}).get(LABELS_DIGEST_KEY)
        if recorded is None and len(ours):
            digest = None  # made from labels nobody recorded: the import cannot vouch for them either
        elif recorded is not None and (not layout.labels.exists() or recorded.decode() != _ok_digest(layout, kept)):
            digest = recorded.decode()  # they were stale already: the import must not make them look fresh
    # Labels and splits change together: a release never pairs the new labels with splits made from the old ones.
    with file_group(layout.root) as group:
        group.write_table(layout.labels, pa.Table.from_pylist(rows, schema=LABELS_SCHEMA))
        if len(frame):
            table = pa.Table.from_pandas(frame, schema=SPLITS_SCHEMA, preserve_index=False)
            if digest is not None:
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), LABELS_DIGEST_KEY: digest})
            group.write_table(layout.splits, table)
        elif layout.splits.exists() and not at_risk.empty:  # no published split; ours were made from old labels
            group.remove(layout.splits)
        if not at_risk.empty:  # the record of how our (dropped) variants were made
            group.remove(layout.split_settings)
    return report, found
