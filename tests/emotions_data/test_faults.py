"""Faults of the machine told apart from faults of an item (emotions_data.faults), in every form the tools report
them; and every error a worker may send back to the driver survives pickling."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest
import yt_dlp.utils

from emotions_data.download import DownloadFailure
from emotions_data.faults import LocalFault, as_local_fault, local_fault, local_fault_in_text
from emotions_data.normalise import NormaliseError

WORK = Path("/data/ds/.work/downloads/clip")


def _oserror(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), filename)


@pytest.mark.parametrize(
    ("code", "name"),
    [(errno.ENOSPC, "ENOSPC"), (errno.EDQUOT, "EDQUOT"), (errno.EROFS, "EROFS"), (errno.EMFILE, "EMFILE"),
     (errno.ENFILE, "ENFILE")],
)  # fmt: skip
def test_a_full_or_read_only_disk_is_the_machines_wherever_it_happens(code, name):
    for filename in (str(WORK / "original.mp4.part"), "/elsewhere/x", None):
        fault = local_fault(_oserror(code, filename), WORK, ours=[WORK])
        assert isinstance(fault, LocalFault) and f"({name})" in str(fault)
    assert local_fault(_oserror(code, str(WORK / "a.part")), Path("/x")).folder == str(WORK)
    assert local_fault(_oserror(code), Path("/data/ds/media")).folder == "/data/ds/media"


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EIO])
def test_a_permission_error_is_the_machines_only_on_our_own_files(code):
    ours = local_fault(_oserror(code, str(WORK / "original.mp4.part")), WORK, ours=[WORK])
    assert ours is not None and ours.folder == str(WORK)
    assert local_fault(_oserror(code, "/home/user/videos/clip.mp4"), WORK, ours=[WORK]) is None  # a source
    assert local_fault(_oserror(code), WORK, ours=[WORK]) is None  # whose file? not known: the item's
    assert local_fault(_oserror(code), WORK) is not None  # ours=None: every file involved is ours


def test_yt_dlp_wraps_the_os_error_in_its_download_error():
    inner = _oserror(errno.ENOSPC, str(WORK / "original.mp4.part"))
    outer = yt_dlp.utils.DownloadError("ERROR: unable to write data: [Errno 28] No space left on device", None)
    outer.exc_info = (type(inner), inner, None)
    fault = local_fault(outer, WORK, ours=[WORK])
    assert fault is not None and fault.reason == "no space left on device (ENOSPC)"
    try:
        try:
            raise inner
        except OSError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as chained:
        assert local_fault(chained, WORK, ours=[WORK]) is not None


@pytest.mark.parametrize(
    "text",
    [
        "ERROR: unable to write data: [Errno 28] No space left on device",
        "av_interleaved_write_frame(): No space left on device",
        "[out#0/mp4 @ 0x5] Error opening output /data/ds/media/.tmp-1-a.mp4: Read-only file system",
        "Error writing trailer: Disk quota exceeded",
    ],
)
def test_text_only_reports_are_read_too(text):
    assert local_fault_in_text(text, Path("/data/ds/media")) is not None
    assert local_fault(RuntimeError(text), Path("/data/ds/media")) is not None


def test_text_permission_errors_count_only_on_our_paths():
    media = Path("/data/ds/media")
    assert local_fault_in_text("/data/ds/media/.tmp-1-a.mp4: Permission denied", media, ours=[media]) is not None
    assert local_fault_in_text("/home/user/clip.mp4: Permission denied", media, ours=[media]) is None
    assert local_fault_in_text("Invalid data found when processing input", media, ours=[media]) is None


def test_item_errors_are_not_faults():
    for exc in (ValueError("Invalid IPv6 URL"), _oserror(errno.ECONNREFUSED), _oserror(errno.ENOENT, "/x/y"),
                yt_dlp.utils.DownloadError("ERROR: HTTP Error 404: Not Found")):  # fmt: skip
        assert local_fault(exc, WORK, ours=[WORK]) is None


def test_a_missing_tool_is_the_machines():
    fault = local_fault(FileNotFoundError(errno.ENOENT, "No such file or directory", "ffmpeg"), WORK)
    assert fault is not None and str(fault).startswith("ffmpeg: not installed")


def test_any_os_error_on_our_own_files_is_a_fault_naming_the_folder():
    fault = as_local_fault(_oserror(errno.ENAMETOOLONG, "/data/ds/originals/x.mp4"), Path("/data/ds"))
    assert fault.folder == "/data/ds/originals" and "ENAMETOOLONG" in fault.reason


def test_the_one_line_names_the_folder_the_reason_and_what_to_do():
    fault = local_fault(_oserror(errno.ENOSPC, "/data/ds/media/.tmp-a.mp4"), WORK)
    assert str(fault) == (
        "/data/ds/media: no space left on device (ENOSPC); finished work is kept: free some space and run the same "
        "command again"
    )


@pytest.mark.parametrize(
    "exc",
    [
        LocalFault("/data/ds/media", "no space left on device (ENOSPC)", "free some space"),
        DownloadFailure("malformed URL: host 'bad host' contains a space", retryable=False, attempts=2),
        NormaliseError("cannot decode: x", corrupt=True),
    ],
)
def test_errors_cross_process_boundaries_intact(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc) and vars(back) == vars(exc)
