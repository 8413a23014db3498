"""io/output_claims.py: `release` frees what a run claimed, by the kind of name the run had; claims of other runs
and other machines stay theirs; the numbered names of a frame sequence."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from motif_lite.errors import MotifLiteError
from motif_lite.io.output_claims import (
    WRITING_PREFIX,
    claim,
    claim_named_output,
    numbered_path,
    release,
    written_before,
)


def test_release_frees_the_claims_of_chosen_names_or_of_names_given_with_o(tmp_path: Path) -> None:
    chosen, written, named = tmp_path / "fox.mp4", tmp_path / "fox-2.mp4", tmp_path / "mine.mp4"
    assert claim(chosen) and claim(written)
    written.write_bytes(b"a video")  # a claim the finished video replaced
    claim_named_output(named)
    marker = tmp_path / f"{WRITING_PREFIX}{named.name}"
    release([chosen, written, named], named=False)  # chosen names: the empty files go, videos and -o's claim stay
    assert not chosen.exists() and written.read_bytes() == b"a video" and marker.exists()
    assert claim(chosen)
    release([chosen, named], named=True)  # names given with -o: the hidden claim goes, the output stays
    assert not marker.exists() and chosen.exists()


def test_a_claim_of_another_machine_is_named_not_taken_over(tmp_path: Path) -> None:
    # Its process cannot be asked from here (a shared folder): one whose ID runs nowhere here is no stale claim.
    output = tmp_path / "fox.mp4"
    marker = tmp_path / f"{WRITING_PREFIX}{output.name}"
    marker.write_text("999999999 another-host\n")
    with pytest.raises(MotifLiteError, match="process 999999999 on another-host"):
        claim_named_output(output)
    assert marker.read_text() == "999999999 another-host\n"


def test_releasing_names_leaves_the_claims_other_runs_hold(tmp_path: Path) -> None:
    # A run refused on a name, or a rank of `run --gpus N` whose launcher holds -o, must not free it for a third run.
    output = tmp_path / "fox.mp4"
    marker = tmp_path / f"{WRITING_PREFIX}{output.name}"
    marker.write_text("999999999 another-host\n")
    release([output], named=True)
    assert marker.exists()


def test_a_frame_sequences_number_goes_after_its_name_and_before_its_separator() -> None:
    for name, second in (("frame-%03d.png", "frame-2-%03d.png"), ("shot.%04d.png", "shot-2.%04d.png")):
        assert numbered_path(Path(name), 2) == Path(second), name


def test_a_file_last_written_at_the_very_moment_counts_as_written_before_it(tmp_path: Path) -> None:
    # A file system with whole-second (or FAT's two-second) times gives the claim and the run's last save the same
    # time: that claim is still the stopped run's to take over. One second later is another run's.
    claimed, video = tmp_path / "fox.mp4", tmp_path / "bear.mp4"
    assert claim(claimed)
    video.write_bytes(b"a video")
    moment = 1_700_000_000.0
    for path in (claimed, video):
        os.utime(path, (moment, moment))
    assert written_before(claimed, moment) == 0 and written_before(video, moment) == len(b"a video")
    assert written_before(claimed, moment - 1) is None and written_before(tmp_path / "none.mp4", moment) is None
