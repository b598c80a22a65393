"""An OSError that reaches the command line (a read-only folder, a full disk, a file it may not read) ends the command
in one line naming the file or folder, exit 1: in the annotation commands, and at the top of the application for any
command that does not catch it."""

from __future__ import annotations

import errno

from typer.testing import CliRunner

from emotions_cli.main import app

runner = CliRunner()


def _raise(exc: OSError):
    def fail(*args, **kwargs):
        raise exc

    return fail


def test_an_annotation_command_names_the_folder_it_could_not_write(tmp_path, monkeypatch):
    import annotation.annotators

    (tmp_path / "ds").mkdir()
    monkeypatch.setattr(annotation.annotators, "set_active", _raise(OSError(errno.EROFS, "Read-only file system")))
    result = runner.invoke(app, ["annotate", "move", str(tmp_path / "ds"), "a1", "--to", "g2"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {tmp_path / 'ds'}: read-only file system (EROFS); finished work is kept: "
                                     "make it writable and run the same command again")  # fmt: skip


def test_an_oserror_no_command_catches_is_one_line_naming_the_file(tmp_path, monkeypatch):
    import annotation.outside_votes

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "x.tmp"))
    monkeypatch.setattr(annotation.outside_votes, "read_outside_votes", _raise(full))
    (tmp_path / "v.csv").write_text("video_id,annotator_id,label\n")
    result = runner.invoke(app, ["agreement", str(tmp_path / "v.csv")])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {tmp_path / 'cache'}: no space left on device (ENOSPC)")
    monkeypatch.setattr(
        annotation.outside_votes, "read_outside_votes", _raise(PermissionError(errno.EACCES, "Permission denied"))
    )
    assert runner.invoke(app, ["agreement", str(tmp_path / "v.csv")]).stderr.strip() == "error: Permission denied"
