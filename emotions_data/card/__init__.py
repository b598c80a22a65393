"""The dataset card of a release: an HF-style README (YAML header + datasheet), Croissant JSON-LD with its
Responsible-AI fields, and PNG plots, all generated from one `CardMetadata`.

One module per part: `metadata` (`CardMetadata`, and `build_metadata`, which reads a written release folder,
docs/reference/release-format.md, and the counted vote table), `readme`, `croissant` and `plots` (pure: metadata in,
text or bytes out), `baseline_section` (the section `emotions evaluate` adds), `text` (how numbers and tables are
printed).
This module writes the files: `card_files`, `write_card` (atomically) and `card_writer` (the release's card step;
the release copies its files into `data_cards/<name>-<version>/` with the release's own commit), with the "Label
validation" section when `emotions validate` judged the labels as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from emotions_data.card.croissant import croissant_jsonld
from emotions_data.card.metadata import CardMetadata, build_metadata
from emotions_data.card.plots import render_plots
from emotions_data.card.readme import render_readme
from emotions_data.layout import DatasetLayout
from emotions_data.storage import write_bytes_atomic
from emotions_data.suspects import current_validation, render_validation_section

__all__ = ["CardMetadata", "build_metadata", "card_files", "card_writer", "write_card"]

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def card_files(meta: CardMetadata) -> dict[str, bytes]:
    """Every file of the card, relative path -> bytes: `README.md`, `croissant.json` (2-space indent, UTF-8,
    trailing newline) and `plots/<name>.png`. Raises ValueError if README or Croissant text would contain anything
    that looks like an e-mail address (a contact column that slipped into the votes or a description)."""
    plots = render_plots(meta)
    files = {
        "README.md": render_readme(meta, list(plots)).encode(),
        "croissant.json": (json.dumps(croissant_jsonld(meta), indent=2, ensure_ascii=False) + "\n").encode(),
        **{f"plots/{name}.png": data for name, data in plots.items()},
    }
    for name in ("README.md", "croissant.json"):
        found = EMAIL.search(files[name].decode())
        if found:
            raise ValueError(f"dataset card {name} would contain an e-mail address ({found.group(0)!r})")
    return files


def write_card(meta: CardMetadata, release_dir: Path, out_dirs: list[Path]) -> list[Path]:
    """Write README.md, croissant.json and plots/*.png into the release folder and copy them into each of
    `out_dirs` (e.g. data_cards/<name>-<version>/); atomic writes. Returns every path written. Raises ValueError
    (nothing written) as `card_files` does."""
    files = card_files(meta)
    written = []
    for folder in [Path(release_dir), *map(Path, out_dirs)]:
        for rel, data in files.items():
            write_bytes_atomic(folder / rel, data)
            written.append(folder / rel)
    return written


def card_writer(layout: DatasetLayout) -> Callable[[Path, pd.DataFrame | None], list[Path]]:
    """The card step `write_release` calls on its staging folder: metadata from the release, the given
    counted votes and the labels step's agreement report (`manifests/agreement.json`, when written), then the
    card in the release; it returns the card's files, which `write_release` copies into
    `data_cards/<name>-<version>/` in the same commit as the release. Raises ValueError naming `agreement.json`
    when it is not a JSON object."""

    def write(release_dir: Path, votes: pd.DataFrame | None) -> list[Path]:
        report = layout.agreement_report
        agreement = _read_agreement(report) if report.exists() else None
        meta = build_metadata(release_dir, votes, agreement=agreement)
        written = write_card(meta, release_dir, [])
        validation = current_validation(layout)
        if validation is not None:  # only a validation of the labels as they are now
            readme = Path(release_dir) / "README.md"
            readme.write_text(_before_licence(readme.read_text(), render_validation_section(validation)))
        return written

    return write


def _before_licence(readme: str, section: str) -> str:
    anchor = "## Distribution and licence"
    head, found, tail = readme.partition(anchor)
    return head + section + "\n" + found + tail if found else readme.rstrip("\n") + "\n\n" + section


def _read_agreement(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc}); re-run 'emotions labels'") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object; re-run 'emotions labels'")
    return data
