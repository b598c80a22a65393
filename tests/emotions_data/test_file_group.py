"""Files committed as a group (`storage.file_group`): all new or all old, a commit interrupted after its journal is
finished by the next reader or writer, an interrupted staging leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from emotions_data import storage
from emotions_data.storage import COMMITS_DIR, FileGroup, file_group, recover_commits


def _state(root) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and COMMITS_DIR not in p.relative_to(root).parts
    }


def _staging(root) -> list[str]:
    folder = root / COMMITS_DIR
    return sorted(p.name for p in folder.iterdir() if p.name != "lock") if folder.exists() else []


@pytest.fixture
def root(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.txt").write_bytes(b"old a")
    (tmp_path / "m" / "b.txt").write_bytes(b"old b")
    (tmp_path / "m" / "gone.txt").write_bytes(b"old gone")
    return tmp_path


def test_a_group_commits_every_file_or_none(root):
    with file_group(root) as group:
        group.write_bytes(root / "m" / "a.txt", b"new a")
        group.write_table(root / "m" / "t.parquet", pa.table({"x": [1, 2]}))
        folder = group.path(root / "cards" / "c-1.0.0")
        (folder / "plots").mkdir(parents=True)
        (folder / "plots" / "p.png").write_bytes(b"png")
        group.remove(root / "m" / "gone.txt")
        group.remove(root / "m" / "never-there.txt")
        assert (root / "m" / "a.txt").read_bytes() == b"old a", "nothing is visible before the commit"
    assert (root / "m" / "a.txt").read_bytes() == b"new a" and (root / "m" / "b.txt").read_bytes() == b"old b"
    assert pq.read_table(root / "m" / "t.parquet")["x"].to_pylist() == [1, 2]
    assert (root / "cards" / "c-1.0.0" / "plots" / "p.png").read_bytes() == b"png"
    assert not (root / "m" / "gone.txt").exists()
    assert _staging(root) == []

    before = _state(root)
    with pytest.raises(RuntimeError, match="boom"):
        with file_group(root) as group:
            group.write_bytes(root / "m" / "a.txt", b"newer a")
            group.remove(root / "m" / "b.txt")
            raise RuntimeError("boom")
    assert _state(root) == before and _staging(root) == []


def test_a_folder_replaces_a_folder_and_replace_false_refuses_an_existing_one(root):
    (root / "cards" / "c").mkdir(parents=True)
    (root / "cards" / "c" / "stale.md").write_text("stale")
    with pytest.raises(FileExistsError), file_group(root) as group:
        group.path(root / "cards" / "c").mkdir()
        group.path(root / "cards" / "d", replace=False).mkdir()
        (root / "cards" / "d").mkdir()  # created meanwhile by someone else
        (root / "cards" / "d" / "theirs").write_text("theirs")
    assert (root / "cards" / "c" / "stale.md").read_text() == "stale", "a refused commit changes nothing"
    assert (root / "cards" / "d" / "theirs").read_text() == "theirs" and _staging(root) == []
    with file_group(root) as group:
        staged = group.path(root / "cards" / "c")
        staged.mkdir()
        (staged / "README.md").write_text("new")
    assert sorted(p.name for p in (root / "cards" / "c").iterdir()) == ["README.md"]


def test_paths_outside_the_root_or_named_twice_are_refused(root):
    with file_group(root) as group:
        with pytest.raises(ValueError, match="not inside"):
            group.path(root.parent / "elsewhere.txt")
        with pytest.raises(ValueError, match="not inside"):
            group.path(root / COMMITS_DIR / "x")
        group.path(root / "m" / "a.txt").write_bytes(b"x")
        with pytest.raises(ValueError, match="named twice"):
            group.remove(root / "m" / ".." / "m" / "a.txt")


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_a_commit_interrupted_after_its_journal_is_finished_by_the_next_reader(root, monkeypatch, fail_at):
    """The journal's rename is the commit point: interrupting any rename after it leaves a journal, and
    `recover_commits` (or the next group) completes the group."""
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 1 + fail_at:  # the journal's rename, then the group's own
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        with file_group(root) as group:
            group.write_bytes(root / "m" / "a.txt", b"new a")
            group.write_bytes(root / "m" / "b.txt", b"new b")
            group.write_bytes(root / "m" / "c.txt", b"new c")
    monkeypatch.setattr(storage.os, "replace", real_replace)
    assert list((root / COMMITS_DIR).glob("*.journal")), "the journal stays for the next reader"
    assert recover_commits(root) == 1 and recover_commits(root) == 0
    assert [(root / "m" / f"{n}.txt").read_bytes() for n in "abc"] == [b"new a", b"new b", b"new c"]
    assert _staging(root) == []


def test_staging_of_a_dead_process_is_swept_and_a_live_groups_is_not(root):
    script = (
        "import os, sys; from pathlib import Path; from emotions_data.storage import FileGroup; "
        "g = FileGroup(Path(sys.argv[1])); g.write_bytes(Path(sys.argv[1]) / 'm' / 'a.txt', b'dead'); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", script, str(root)], check=False)
    assert len(_staging(root)) == 1, "a process killed while staging leaves its staging folder"
    live = FileGroup(root)  # sweeps the dead one's, and its own survives another group's sweep
    assert _staging(root) == [live.id]
    with file_group(root) as other:
        other.write_bytes(root / "m" / "b.txt", b"other")
    assert _staging(root) == [live.id]
    live.write_bytes(root / "m" / "a.txt", b"live")
    live.commit()
    assert (root / "m" / "a.txt").read_bytes() == b"live" and _staging(root) == []


def test_an_unreadable_journal_is_named(root):
    (root / COMMITS_DIR).mkdir()
    (root / COMMITS_DIR / "0123.journal").write_text("{")
    with pytest.raises(ValueError, match=r"0123\.journal: an interrupted commit cannot be finished"):
        recover_commits(root)
