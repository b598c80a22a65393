"""A release's digests and its check: `SHA256SUMS` inside the release, and the dataset's ledger outside it.

When a release is written, the digest of every file it holds (`SHA256SUMS` included) is recorded beside it in the
dataset (`DatasetLayout.release_record`, committed with the release), where the release's own files cannot
change it. `check_release` compares a release folder with that record, so any changed, missing or extra file is
named, `SHA256SUMS` too; a release copied elsewhere without its dataset is checked against its own `SHA256SUMS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.probe import sha256_file


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 (hex) of every file under `folder` but `SHA256SUMS`: relative POSIX path -> digest, in path
    order."""
    release = ReleaseLayout(Path(folder))
    return {rel: sha256_file(release.root / rel) for rel in release.files() if rel != release.CHECKSUMS}


def sha256sums_text(digests: dict[str, str]) -> str:
    """`SHA256SUMS` in the format `sha256sum -c` reads: `<digest>  <path>` lines, in the order given."""
    return "".join(f"{digest}  {rel}\n" for rel, digest in digests.items())


def ledger_record(folder: Path, version: str) -> bytes:
    """The ledger's record of the written release in `folder` (its `SHA256SUMS` written last): JSON with the
    version, the digest of `SHA256SUMS` and of every file (`SHA256SUMS` included)."""
    release = ReleaseLayout(Path(folder))
    files = {**file_digests(folder), release.CHECKSUMS: sha256_file(release.checksums)}
    record = {"version": version, "sha256sums": files[release.CHECKSUMS], "files": dict(sorted(files.items()))}
    return (json.dumps(record, indent=2) + "\n").encode()


@dataclass
class ReleaseCheck:
    """What `check_release` found: one line per changed, missing or extra file (`changed: data/full/test.parquet`),
    and against what (`against`: the ledger's record, or the release's own SHA256SUMS when `outside` is False)."""

    against: Path
    outside: bool
    problems: list[str] = field(default_factory=list)
    n_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _outside_record(folder: Path) -> Path | None:
    """The ledger record of the release in `folder` when it sits in its dataset (`DATASET/releases/X.Y.Z/`) and
    the dataset recorded it; None otherwise (a copy elsewhere, or a release written before the ledger)."""
    here = folder.resolve()
    if len(here.parents) < 2:
        return None
    layout = DatasetLayout.of_release(here)
    if layout.release(here.name).root != here:  # not DATASET/releases/<version>/
        return None
    record = layout.release_record(here.name)
    return record if record.is_file() else None


def check_release(folder: Path) -> ReleaseCheck:
    """Compare the release in `folder` with the digests recorded outside it when it was written; without such a
    record, with its own `SHA256SUMS` (listed files changed or missing; files it does not list are extra).
    Raises ValueError naming the file when neither can be read."""
    release = ReleaseLayout(Path(folder))
    if not release.root.is_dir():
        raise ValueError(f"{release.root}: not a folder")
    record = _outside_record(release.root)
    if record is not None:
        try:
            expected = dict(json.loads(record.read_text(encoding="utf-8"))["files"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{record}: cannot be read as a release record ({exc})") from None
    else:
        expected = listed_digests(release)
    found = release.files()
    problems = [f"missing: {rel}" for rel in sorted(set(expected) - set(found))]
    problems += [f"extra: {rel}" for rel in found if rel not in expected and rel != release.CHECKSUMS]
    if record is None and release.CHECKSUMS not in found:
        problems.append(f"missing: {release.CHECKSUMS}")
    problems += [
        f"changed: {rel}" for rel in found if rel in expected and sha256_file(release.root / rel) != expected[rel]
    ]
    return ReleaseCheck(record or release.checksums, record is not None, sorted(problems, key=_by_path), len(found))


def _by_path(line: str) -> str:
    return line.partition(": ")[2]


def listed_digests(release: ReleaseLayout) -> dict[str, str]:
    """path -> digest as the release's own SHA256SUMS lists them (empty when it is missing). Raises ValueError
    naming the file and line when a line is not `<sha256>  <path>`."""
    try:
        text = release.checksums.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{release.checksums}: cannot be read ({exc})") from None
    listed = {}
    for n, line in enumerate(text.splitlines(), start=1):
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64:
            raise ValueError(f"{release.checksums}: line {n}: expected '<sha256>  <path>', got {line!r}")
        listed[rel] = digest
    return listed
