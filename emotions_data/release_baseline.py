"""`emotions release record-baseline`: a baseline result recorded in a NEW release version; releases never change.

`emotions evaluate` writes into the run's folder only. Recording its test result copies the release into the next
version (the data and the authors' files byte for byte), adds `baseline/<variant>/` (metrics.json with the
checkpoint named, not located; confusion.csv, confusion.png), rebuilds the card with its "Baseline validation"
section, and commits the new folder, its card's copy and its ledger record together (`storage.file_group`).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from emotions_data import __version__
from emotions_data.card import card_writer
from emotions_data.card.baseline_section import render_baseline_section, with_baseline_section
from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.release import check_version, copy_card_files, verify_release
from emotions_data.release_diff import changes_section_of, with_changes_section
from emotions_data.release_info import RELEASE_INFO_NAME, ReleaseInfo
from emotions_data.release_ledger import file_digests, ledger_record, sha256sums_text
from emotions_data.storage import file_group, recover_commits

#: The files of an evaluation (`baselines.recipes.evaluation_files`) a release records.
RECORDED_FILES = ("metrics.json", "confusion.csv", "confusion.png")
#: Files a new version writes afresh rather than copies: its metadata, its card and its checksums.
_REBUILT = re.compile(rf"^({re.escape(RELEASE_INFO_NAME)}|README\.md|croissant\.json|plots/.*|SHA256SUMS)$")


def next_patch(version: str) -> str:
    """X.Y.Z -> X.Y.(Z+1)."""
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def read_evaluation(folder: Path, info: ReleaseInfo) -> tuple[str, dict[str, bytes]]:
    """The variant and the files to record of one `emotions evaluate` output folder. Raises ValueError naming the
    file: a missing file, metrics that are not JSON, an evaluation of another split than test, of another
    release, of a variant the release lacks or of other classes."""
    folder = Path(folder)
    missing = [name for name in RECORDED_FILES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"{folder / missing[0]}: no such file (not an `emotions evaluate` output folder)")
    path = folder / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        run = metrics["run"]
        released, variant, split, classes = run["release"], run["variant"], run["split"], run["classes"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not the metrics of `emotions evaluate` ({exc})") from None
    if split != "test":
        raise ValueError(f"{path}: an evaluation on {split}; a release records the test evaluation only")
    if released != f"{info.name} {info.version}":
        raise ValueError(f"{path}: an evaluation of release {released!r}, not of {info.name} {info.version}")
    if variant not in info.variants or list(classes) != info.classes:
        raise ValueError(f"{path}: variant {variant!r} or its classes are not those of release {info.version}")
    public = {**metrics, "run": {**run, "checkpoint": Path(str(run.get("checkpoint", ""))).name}}
    files = {name: (folder / name).read_bytes() for name in RECORDED_FILES}
    files["metrics.json"] = (json.dumps(public, indent=2) + "\n").encode()
    return variant, files


def record_baseline(release_dir: Path, evaluations: list[Path], version: str | None = None) -> Path:
    """Write release `version` (default: the next patch version) of the dataset `release_dir` belongs to: a copy
    of `release_dir` with the test evaluations in `evaluations` recorded (`baseline/<variant>/`, the card's
    section; an earlier recorded variant is kept unless evaluated again). Returns the new release folder. The
    source release is only read. Raises ValueError (nothing written): the source does not verify against its
    SHA256SUMS, an evaluation cannot be recorded (`read_evaluation`), the version is not X.Y.Z or exists."""
    source = ReleaseLayout(Path(release_dir).resolve())
    info = ReleaseInfo.from_directory(source.root)
    changed = verify_release(source.root)
    if changed:
        raise ValueError(f"{source.root}: does not verify ({', '.join(changed)}); run 'emotions release verify'")
    if not evaluations:
        raise ValueError("no evaluation folder given (RUN/eval-VARIANT-test of `emotions evaluate`)")
    recorded = dict(read_evaluation(folder, info) for folder in evaluations)
    version = version or next_patch(info.version)
    check_version(version)
    layout = DatasetLayout.of_release(source.root)
    recover_commits(layout.root)
    final = layout.release(version)
    if final.root.exists():
        raise ValueError(f"{final.root}: release {version} exists; versions are never overwritten (pass --version)")
    try:
        with file_group(layout.root) as group:
            tmp = ReleaseLayout(group.path(final.root, replace=False))
            _copy_release(source, tmp, recorded)
            replace(info, version=version, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    toolkit_version=__version__).write_to_directory(tmp.root)  # fmt: skip
            _write_card(layout, tmp, group.path(layout.data_card(info.name, version)), source)
            tmp.checksums.write_text(sha256sums_text(file_digests(tmp.root)))
            group.write_bytes(layout.release_record(version), ledger_record(tmp.root, version))
    except FileExistsError:
        raise ValueError(f"{final.root}: release {version} exists; versions are never overwritten") from None
    return final.root


def _copy_release(source: ReleaseLayout, tmp: ReleaseLayout, recorded: dict[str, dict[str, bytes]]) -> None:
    """Every data and format file of `source` into `tmp` (and earlier baseline results of variants not evaluated
    again), then the new results in `baseline/<variant>/`."""
    tmp.root.mkdir(parents=True)
    baseline = source.baseline.relative_to(source.root).as_posix()
    for rel in source.files():
        variant = rel.split("/")[1] if rel.startswith(f"{baseline}/") and rel.count("/") >= 2 else None
        if _REBUILT.match(rel) or variant in recorded:
            continue
        (tmp.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.root / rel, tmp.root / rel)
    for variant, files in recorded.items():
        (tmp.baseline / variant).mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (tmp.baseline / variant / name).write_bytes(data)


def _write_card(layout: DatasetLayout, tmp: ReleaseLayout, copy: Path, source: ReleaseLayout) -> None:
    """The card of the new version (from its own files, the votes its rows carry and the dataset's agreement
    report) with the baseline section of every recorded variant and the source card's "Changes since" section (the
    data are the source's), in the release and in `copy`."""
    written = card_writer(layout)(tmp.root, None)
    results = {path.parent.name: json.loads(path.read_text()) for path in sorted(tmp.baseline.glob("*/metrics.json"))}
    readme = with_baseline_section(tmp.readme.read_text(), render_baseline_section(results))
    changes = changes_section_of(source.readme.read_text()) if source.readme.is_file() else None
    tmp.readme.write_text(with_changes_section(readme, changes) if changes else readme)
    copy_card_files(written, tmp.root, copy)
