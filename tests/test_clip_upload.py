"""A video uploaded to extend (`server/clip_upload.py`), without a server: the name it was sent under as the client
sees it in messages, and the byte limit it is saved under. CPU, no model."""

from __future__ import annotations

import hashlib
from io import BytesIO
from pathlib import Path

import pytest

from motif_lite.server.clip_upload import UNNAMED, UploadedClip, save_upload, upload_names
from motif_lite.server.extension import renamed
from motif_lite.server.schema import ApiError

HDR = "/data/inputs/job1.mp4 is HDR: convert it: ffmpeg -i job1.mp4 -vf zscale job1-sdr.mp4"


def said(filename: str | None) -> str:
    """`HDR`, a message about the job's copy of the upload, as the client that sent it as `filename` reads it."""
    names = upload_names(Path("/data/inputs/job1.mp4"), UploadedClip.of(BytesIO(), filename), Path("/data/v.mp4"))
    return renamed(HDR, names)


def test_a_windows_clients_path_is_named_by_its_file_name():
    # A browser on Windows (or curl -F extend=@C:\...) may send the whole path: only the file's name is the client's.
    assert said("C:\\Users\\me\\fox.mov") == "fox.mov is HDR: convert it: ffmpeg -i fox.mov -vf zscale fox-sdr.mp4"
    assert UploadedClip.of(BytesIO(), "../clips/fox.mov").name == "fox.mov"
    assert UploadedClip.of(BytesIO(), "..").name == UNNAMED


def test_an_upload_without_a_name_gets_a_plain_name_in_commands():
    # "the uploaded video" is words, not a file name: the command's output file is named after "clip".
    assert said(None) == "the uploaded video is HDR: convert it: ffmpeg -i the uploaded video -vf zscale clip-sdr.mp4"


def test_a_video_of_exactly_the_limit_is_saved_and_one_byte_more_is_413(tmp_path):
    data = b"v" * 1000
    target = tmp_path / "job1.mp4"
    sha256 = hashlib.sha256(data).hexdigest()
    assert save_upload(UploadedClip.of(BytesIO(data), "fox.mp4"), target, max_bytes=1000) == sha256
    assert target.read_bytes() == data
    with pytest.raises(ApiError) as refused:
        save_upload(UploadedClip.of(BytesIO(data + b"v"), "fox.mp4"), tmp_path / "job2.mp4", max_bytes=1000)
    assert refused.value.status == 413 and "extend: fox.mp4 is larger than this server's limit" in str(refused.value)
