"""io/output_claims.py: `release` frees what a run claimed, by the kind of name the run had."""

from __future__ import annotations

from pathlib import Path

from motif_lite.io.output_claims import WRITING_PREFIX, claim, claim_named_output, release


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
