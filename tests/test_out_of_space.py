"""`io.staging.out_of_space`: the one rule by which the quantizer, the video writer and the latents saver tell a
write that failed for want of space (a full disk, a used-up disk quota) from one that failed for another reason."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from motif_lite.io.staging import FULL_DISK_BYTES, os_error_number, out_of_space


def _free(nbytes: int | None):
    """A free-space reader that says `nbytes` for any folder (None: the OS cannot say)."""
    return lambda folder: nbytes


ROOMY = _free(10**12)
FULL = _free(FULL_DISK_BYTES - 1)


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),  # a quota: the disk itself may have terabytes free
        Exception("Error while serializing: I/O error: Disk quota exceeded (os error 122)"),  # safetensors'
        RuntimeError("could not write: [Errno 28] No space left on device"),  # an OSError's text in another error
        Exception("[out#0/mp4] Error muxing a packet: Disk quota exceeded\nConversion failed!"),  # ffmpeg's words
    ],
    ids=["ENOSPC", "EDQUOT", "safetensors", "errno-text", "ffmpeg"],
)
def test_the_os_saying_no_space_or_no_quota_is_out_of_space_whatever_is_free(tmp_path, error):
    assert out_of_space(error, tmp_path, ROOMY)


def test_an_error_raised_from_a_want_of_space_is_out_of_space(tmp_path):
    try:
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("the writer failed") from quota
    except RuntimeError as wrapped:
        assert out_of_space(wrapped, tmp_path, ROOMY)


def test_a_failed_write_that_says_no_reason_is_out_of_space_only_on_a_full_disk(tmp_path):
    short_write = OSError("4096 requested and 3680 written")  # numpy's tofile: no errno
    assert out_of_space(short_write, tmp_path, FULL) and not out_of_space(short_write, tmp_path, ROOMY)
    assert out_of_space(None, tmp_path, FULL) and not out_of_space(None, tmp_path, ROOMY)  # ffmpeg's exit code
    assert not out_of_space(None, tmp_path, _free(None))  # the OS cannot say: no guess
    assert not out_of_space(None, tmp_path, _free(FULL_DISK_BYTES))


def test_another_reason_is_not_out_of_space_however_little_is_free(tmp_path):
    for error in [
        OSError(errno.EACCES, "Permission denied"),
        Exception("Error while serializing: I/O error: File too large (os error 27)"),
    ]:
        assert not out_of_space(error, tmp_path, FULL), error


def test_the_free_space_of_the_folder_given_is_read(tmp_path):
    asked: list[Path] = []
    out_of_space(None, tmp_path, lambda folder: asked.append(folder) or 10**12)
    assert asked == [tmp_path]


def test_the_os_error_number_of_a_wrapped_error_is_read():
    assert os_error_number(Exception("I/O error: File too large (os error 27)")) == errno.EFBIG
    assert os_error_number(OSError(errno.EDQUOT, "x")) == errno.EDQUOT
    assert os_error_number(Exception("no number here")) is None
