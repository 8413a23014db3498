"""The forty-first mutation pass's tests (docs/testing.md) of io/clip.py and io/video.py: behaviours no test
reached, each failing with the mutant that showed the gap."""

from __future__ import annotations

import numpy as np
import pytest

from motif_lite.io.clip import ClipError, read_clip
from motif_lite.io.video import check_output_path, write_video


def test_a_png_pillow_cannot_open_given_as_the_clip_is_told_it_is_one_image(tmp_path):
    # A .png is an image whatever its state (its header cut short here): it gets the advice of -i and of a PNG
    # sequence's pattern, not ffmpeg's "no video that ffmpeg can read".
    (tmp_path / "shot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 20)
    with pytest.raises(ClipError, match="shot.png is one image, not a clip: to start a video from it use -i "):
        read_clip(tmp_path / "shot.png")


def test_a_hash_in_one_images_name_is_kept_when_the_frame_count_is_not_known(tmp_path):
    # write_video checks its output without a frame count: a one-frame video to `take_#1.png` is one image named
    # so (a # is another tool's frame number only where the video has more than one frame, or the name has a %).
    frame = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    assert check_output_path(tmp_path / "take_#1.png")
    assert write_video(frame, tmp_path / "take_#1.png", 24.0).is_file()


def test_writing_a_png_sequence_over_its_last_frame_is_known(tmp_path):
    # A run whose -o pattern would write its last frame over the input image (or a frame of the clip) is refused
    # before the run: every frame's name counts, the last one too.
    from motif_lite.io.video import replaces_file

    assert replaces_file(tmp_path / "f_%03d.png", 3, tmp_path / "f_002.png")
    assert not replaces_file(tmp_path / "f_%03d.png", 3, tmp_path / "f_003.png")


def test_only_a_space_at_the_end_of_an_output_name_is_taken_for_a_paste(tmp_path, monkeypatch):
    # " fox.mp4" ends in no space: refusing it as one that does would say what is not there.
    monkeypatch.chdir(tmp_path)
    assert check_output_path(" fox.gif")
    with pytest.raises(Exception, match="ends in a space"):
        check_output_path("fox.gif ")


def test_one_png_image_for_a_two_frame_video_is_refused_before_the_run(tmp_path):
    # Two frames to out.png was let through here and refused only once the video was made.
    from motif_lite.errors import MotifLiteError

    with pytest.raises(MotifLiteError, match="out.png is one image, and this video has 2 frames"):
        check_output_path(tmp_path / "out.png", 2)
    assert check_output_path(tmp_path / "out.png", 1)
