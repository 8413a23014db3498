"""The files of a `motif-lite run -b N` batch without -o."""

from __future__ import annotations

from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.cli import run_request


def batch_outputs(folder: Path, monkeypatch, *flags: str) -> tuple[list[str], list[str]]:
    """(the names of the batch's files, the notes) of `run -b 3` without -o, in `folder`."""
    monkeypatch.chdir(folder)
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", "3", "-s", "1", *flags])
    requests, notes = run_request.resolve_requests(args, run_request.request_from_args(args))
    return [Path(r.output).name for r in requests], notes


def test_a_batch_without_o_is_numbered_after_the_default_name(tmp_path, monkeypatch):
    assert batch_outputs(tmp_path, monkeypatch)[0] == ["output-1.mp4", "output-2.mp4", "output-3.mp4"]


@pytest.mark.parametrize(
    ("there", "names", "said"),
    [(["output-1.mp4"], ["output-2-1.mp4", "output-2-2.mp4", "output-2-3.mp4"], "output-1.mp4 exists: "),
     (["output-1.mp4", "output-2.mp4", "output-3.mp4", "output-2-2.mp4"],
      ["output-3-1.mp4", "output-3-2.mp4", "output-3-3.mp4"], "output-1.mp4 and 2 others exist: ")],
)  # fmt: skip
def test_a_second_batch_without_o_keeps_its_files_under_one_name(tmp_path, monkeypatch, there, names, said):
    # Each video picked its own free name: output-1-2.mp4, then output-2-2.mp4 (or output-2.mp4 where free) beside it.
    for name in there:
        (tmp_path / name).touch()
    outputs, notes = batch_outputs(tmp_path, monkeypatch)
    assert outputs == names and not any((tmp_path / name).exists() for name in names)
    (note,) = [note for note in notes if "exist" in note]
    assert note.endswith(f"writing {names[0]} ... {names[-1]} instead (-o names the files and replaces them)")
    assert note.startswith(said), note
    outputs, notes = batch_outputs(tmp_path, monkeypatch, "--dry-run")
    assert outputs == names and any(f"a run would write {names[0]} ... {names[-1]}" in note for note in notes)


def test_a_batch_with_o_replaces_its_files(tmp_path, monkeypatch):
    # -o names the files: as for one video, they are replaced, not renamed.
    (tmp_path / "fox-1.mp4").touch()
    outputs, notes = batch_outputs(tmp_path, monkeypatch, "-o", "fox.mp4")
    assert outputs == ["fox-1.mp4", "fox-2.mp4", "fox-3.mp4"] and not any("exist" in note for note in notes)


def test_a_batch_from_the_last_seed_goes_on_from_seed_0(tmp_path, monkeypatch):
    # Seeds are 32-bit: the video after seed 4294967295 has seed 0, as the generator takes it.
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", "3", "-s", "4294967295"])
    requests, _ = run_request.resolve_requests(args, run_request.request_from_args(args))
    assert [r.seed for r in requests] == [4294967295, 0, 1]
