"""The files of a `motif-lite run -b N` batch without -o."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from motif_lite import cli
from motif_lite.cli import run_request
from motif_lite.shell_syntax import quoted


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


def _run_batch(root: Path, folder: Path, *flags: str) -> int:
    """`run -b 4 -o fox.mp4` (seeds 2 to 5) of the tiny checkpoint into `folder`, with `flags`."""
    folder.mkdir(exist_ok=True)
    return cli.main([
        "run", "-m", str(root), "-p", "a red fox runs through snow", "-o", str(folder / "fox.mp4"),
        "-W", "48", "-H", "32", "--video-frames", "1", "--steps", "1", "-s", "2", "-b", "4",
        "--dtype", "fp32", "--device", "cpu", "--kernels", "torch", *flags,
    ])  # fmt: skip


def test_a_stopped_batch_run_again_makes_only_the_videos_it_had_not_made(shared_checkpoint, tmp_path, monkeypatch,
                                                                         capsys):  # fmt: skip
    # A night's batch stopped after its second video: the same command again made all four anew. Now it skips the
    # files that hold their video already and makes the others, the same files as a batch that never stopped.
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.progress import ProgressBars

    root = shared_checkpoint[0]
    assert _run_batch(root, tmp_path / "whole") == 0
    whole = {name: (tmp_path / "whole" / name).read_bytes() for name in ("fox-1.mp4", "fox-2.mp4", "fox-3.mp4",
                                                                          "fox-4.mp4")}  # fmt: skip
    stopped = tmp_path / "stopped"

    def stop_after_the_second(self, stage, done, total):  # Ctrl-C as the third video starts
        if stage == "encode" and (stopped / "fox-2.mp4").exists():
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ProgressBars, "__call__", stop_after_the_second)
        assert _run_batch(root, stopped) == cli.EXIT_INTERRUPTED
    assert sorted(p.name for p in stopped.glob("*.mp4")) == ["fox-1.mp4", "fox-2.mp4"]
    capsys.readouterr()
    made = []
    generate = MotifVideoPipeline.generate
    monkeypatch.setattr(MotifVideoPipeline, "generate", lambda self, r, *a, **kw: made.append(Path(r.output).name)
                        or generate(self, r, *a, **kw))  # fmt: skip
    assert _run_batch(root, stopped) == 0
    err = capsys.readouterr().err
    assert made == ["fox-3.mp4", "fox-4.mp4"], made
    assert f"skipped {stopped / 'fox-1.mp4'}: already made with these settings\n" in err, err
    assert f"skipped {stopped / 'fox-2.mp4'}: already made with these settings\n" in err
    assert f"video 3 of 4: seed 4, {stopped / 'fox-3.mp4'}\n" in err  # the pace counts the videos this run makes
    assert "batch done: 4 videos in " in err and "; 2 of them made before, by an earlier run): " in err
    assert {name: (stopped / name).read_bytes() for name in whole} == whole
    # A file there with other settings (another seed's video under fox-2's name) is made again, as before.
    (stopped / "fox-2.mp4").write_bytes(whole["fox-1.mp4"])
    made.clear()
    assert _run_batch(root, stopped) == 0
    assert made == ["fox-2.mp4"] and (stopped / "fox-2.mp4").read_bytes() == whole["fox-2.mp4"]
    # Said before the model loads: which files are there, and that each is skipped or replaced.
    assert (
        "fox-1.mp4 and 3 others are there already: this run skips each that holds its video already (made with "
        "these settings, as checked once the model is loaded) and replaces the others"
    ) in capsys.readouterr().err
    for name in ("fox-1.mp4", "fox-3.mp4", "fox-4.mp4"):  # one file there: the note for it
        (stopped / name).unlink()
    args = cli.build_parser().parse_args(["run", "-p", "fox", "-b", "4", "-s", "2", "-o", str(stopped / "fox.mp4")])
    _, notes = run_request.resolve_requests(args, run_request.request_from_args(args))
    assert (
        f"{stopped / 'fox-2.mp4'} is there already: this run skips it if it holds its video already (made with "
        "these settings, as checked once the model is loaded) and replaces it otherwise when its video is done "
        "(give -o another name to keep it)"
    ) in notes, notes


def test_a_batch_run_again_after_an_upgrade_says_which_version_made_its_files(
    shared_checkpoint, tmp_path, monkeypatch, capsys
):
    # After any upgrade a stopped batch's rerun replaced every finished video, and nothing said why.
    from motif_lite.pipeline import metadata
    from motif_lite.version import VERSION

    assert _run_batch(shared_checkpoint[0], tmp_path) == 0
    capsys.readouterr()
    monkeypatch.setattr(metadata, "VERSION", VERSION + ".post1")  # the version an upgrade stores
    assert _run_batch(shared_checkpoint[0], tmp_path) == 0
    err = capsys.readouterr().err
    assert (
        f"note: {tmp_path / 'fox-1.mp4'} was made with these settings by motif-lite {VERSION}: this run, of "
        f"{VERSION}.post1, makes it again (a stored version that differs is made again)\n"
    ) in err, err
    assert err.count("was made with these settings by motif-lite") == 4 and "skipped" not in err


def test_a_batch_whose_int8_attention_fell_back_is_skipped_when_run_again(shared_checkpoint, tmp_path, capsys):
    # On the CPU --attention int8 falls back to exact attention: its files record "exact", and the same command
    # again compared that with the "int8" it asked for and made every video anew. The skip compares what was asked.
    from motif_lite.io.settings_file import read_settings

    flags = ("--attention", "int8")
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    model = read_settings(tmp_path / "fox-1.mp4").values["model"]
    assert (model["attention"], model["attention_asked"]) == ("exact", "int8")  # the record says what ran
    capsys.readouterr()
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    err = capsys.readouterr().err
    assert err.count("already made with these settings") == 4, err
    assert _run_batch(shared_checkpoint[0], tmp_path) == 0  # exact attention asked: not the files' request
    assert "already made with these settings" not in capsys.readouterr().err


@pytest.mark.parametrize("output", ["fox.mp4", "fox_%03d.png"])
def test_a_batch_run_again_prints_an_output_line_for_each_video_it_skips(shared_checkpoint, tmp_path, capsys, output):
    # A script takes a batch's files from its `output:` lines: the same command run again (after a stop, as the
    # docs advise) skipped the finished videos without one, so the script saw none of them on stdout. Each is said
    # as the run that made it said it (a PNG sequence's with its first and last frame files).
    flags = ("-b", "2", "--video-frames", "5", "-o", str(tmp_path / output))
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    first = [line for line in capsys.readouterr().out.splitlines() if line.startswith("output: ")]
    assert len(first) == 2 and "fox-2" in first[1], first
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    out, err = capsys.readouterr()
    assert err.count("already made with these settings") == 2, err
    assert [line for line in out.splitlines() if line.startswith("output: ")] == first, out


def test_a_batch_run_again_with_crf_says_the_files_it_skips_keep_their_own(shared_checkpoint, tmp_path, capsys):
    # No file stores its --crf: the same batch run again at another --crf skipped the files of the first as made
    # "with these settings" and gave their output: lines, the user's new quality applied to none, without a word.
    assert _run_batch(shared_checkpoint[0], tmp_path, "-b", "2", "--crf", "40") == 0
    capsys.readouterr()
    assert _run_batch(shared_checkpoint[0], tmp_path, "-b", "2", "--crf", "10") == 0
    err = capsys.readouterr().err
    assert err.count("already made with these settings") == 2, err
    # The files are named, with the command that deletes them (it named none, and a batch's are many)
    files = [quoted(str(tmp_path / name)) for name in ("fox-1.mp4", "fox-2.mp4")]
    note = (
        f"note: a video does not store its --crf: the 2 files skipped ({', '.join(files)}) keep the quality an earlier "
        f"run encoded; delete them first to encode at --crf 10: rm {' '.join(files)}\n"
    )
    assert note in err, err
    assert _run_batch(shared_checkpoint[0], tmp_path, "-b", "2") == 0  # no --crf given: nothing to say
    assert "--crf" not in capsys.readouterr().err
    subprocess.run(["sh", "-c", "rm " + " ".join(files)], check=True)  # the command as pasted
    assert not any((tmp_path / name).exists() for name in ("fox-1.mp4", "fox-2.mp4"))


def test_a_png_sequence_of_a_batch_killed_as_its_frames_moved_into_place_is_made_again(
    shared_checkpoint, tmp_path, capsys
):
    # A run killed while it moved a sequence's frames into place leaves its first frames, which hold the settings:
    # the same command again skipped that video as made, with its last frames missing.
    flags = ("-b", "2", "--video-frames", "5", "-o", str(tmp_path / "fox_%03d.png"))
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    frames = sorted(tmp_path.glob("fox-2_*.png"))
    assert len(frames) == 5, frames
    last = frames[-1].read_bytes()
    frames[-1].unlink()
    capsys.readouterr()
    assert _run_batch(shared_checkpoint[0], tmp_path, *flags) == 0
    err = capsys.readouterr().err
    assert f"skipped {tmp_path / 'fox-1_%03d.png'}: already made" in err, err
    assert "fox-2_%03d.png: already made" not in err, err
    assert frames[-1].read_bytes() == last  # made again, whole


def test_the_crf_note_of_a_long_batch_names_its_files_by_their_ends_without_a_command():
    # A batch of thousands: the note names the files as the batch's other lines do (first three, "...", last) and
    # points to their output: lines, not a command as long as the batch.
    from types import SimpleNamespace

    from motif_lite.cli.batch_notes import LISTED_AT_MOST
    from motif_lite.cli.run_videos import _crf_note

    skipped = [SimpleNamespace(output=Path(f"my videos/fox-{n}.mp4")) for n in range(1, LISTED_AT_MOST + 2)]
    files = [quoted(str(video.output)) for video in skipped]
    assert _crf_note(skipped, 10) == (
        f"note: a video does not store its --crf: the {len(skipped)} files skipped ({', '.join(files[:3])}, ..., "
        f"{files[-1]}) keep the quality an earlier run encoded; delete them first to encode at --crf 10 (their "
        "output: lines above name each)"
    )
    assert "rm " in _crf_note(skipped[:LISTED_AT_MOST], 10)
