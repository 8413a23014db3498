"""Where a run's latents file goes and what is said about it, on `LatentsFile` and the notes alone (no model): the
move to the cache folder when the output's disk is full, the file of another output already there, the sizes and
free space the message gives, the writer a note names, the second Ctrl-C's message, and the model paths `--resume`
checks. Tiny tensors, no pipeline."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import shutil
import signal
import socket
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from motif_lite.cli import build_parser
from motif_lite.cli.resume import _check_still_there, earlier_runs, goes_on_with_resume, kept_anywhere, kept_state
from motif_lite.io import latents as latents_io
from motif_lite.io import latents_saving
from motif_lite.io.latents import SavedLatents, read_latents, save_latents
from motif_lite.io.latents_saving import LatentsFile, LatentsSaveError, still_running
from motif_lite.keeping import keep
from motif_lite.request import RequestError
from motif_lite.stopping import Terminated

Usage = namedtuple("Usage", "total used free")


def stopped_state(output: Path, shape=(1, 16, 2, 4, 4), done: int = 2) -> SavedLatents:
    """The saved state of a run of `output` stopped after step `done` of 4."""
    return SavedLatents(torch.zeros(shape), output, 32, 32, 5, 24.0, "float32", progress=(done, 4))


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return latents_saving.fallback_folder()


def full_disk_in(monkeypatch, *folders: Path) -> None:
    """Saving latents fails in `folders` as on a full disk (or a quota) from now on; elsewhere it works."""
    save = latents_saving.save_latents

    def save_unless_full(saved, path):
        if path.parent in folders:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(saved, path)

    monkeypatch.setattr(latents_saving, "save_latents", save_unless_full)


def test_a_move_to_the_cache_removes_the_runs_older_state_beside_the_output(out, cache, monkeypatch):
    # The output's disk fills during the run: the periodic save beside the output is superseded by the one in the
    # cache, and removed (its space is wanted; a resume of it would go back steps).
    keeper = LatentsFile(out / "fox.mp4", fallback=cache)
    assert keeper.save(stopped_state(out / "fox.mp4", done=1)) == out / "fox.latents.safetensors"
    full_disk_in(monkeypatch, out)
    assert keeper.save(stopped_state(out / "fox.mp4", done=2)) == cache / "fox.latents.safetensors"
    assert list(out.iterdir()) == [] and keeper.moved.startswith(f"{out / 'fox.latents.safetensors'} could not be")
    # Later saves stay in the cache; when the cache's disk fills too, the error names the cache's file alone (not
    # another file of the cache tried in its place).
    assert keeper.save(stopped_state(out / "fox.mp4", done=3)) == cache / "fox.latents.safetensors"
    full_disk_in(monkeypatch, cache)
    with pytest.raises(LatentsSaveError) as error:
        keeper.save(stopped_state(out / "fox.mp4", done=4))
    assert f"could not be saved to {cache / 'fox.latents.safetensors'} (No space" in str(error.value)
    assert "nor to" not in str(error.value) and [p.name for p in cache.iterdir()] == ["fox.latents.safetensors"]
    assert read_latents(cache / "fox.latents.safetensors").progress == (3, 4)


def test_the_state_of_another_output_in_the_cache_is_kept_and_this_runs_is_found(out, cache, tmp_path, monkeypatch):
    # Two stopped runs of fox.mp4 in different folders, both on full disks: the second must not replace the first's
    # state in the cache, and the notes of a new run (and a batch's "nothing saved") must find each run's own file.
    other = tmp_path / "other" / "fox.mp4"
    cache.mkdir(parents=True)
    save_latents(stopped_state(other, done=3), cache / "fox.latents.safetensors")
    full_disk_in(monkeypatch, out)
    kept = LatentsFile(out / "fox.mp4", fallback=cache).save(stopped_state(out / "fox.mp4", done=1))
    assert kept != cache / "fox.latents.safetensors" and kept.parent == cache
    assert read_latents(cache / "fox.latents.safetensors").progress == (3, 4)
    assert kept_anywhere(out / "fox.latents.safetensors", out / "fox.mp4")
    (note,) = earlier_runs([SimpleNamespace(output=out / "fox.mp4")])
    assert note.startswith(f"{kept} holds an earlier run of {out / 'fox.mp4'} that stopped after step 1 of 4")
    monkeypatch.chdir(out)  # -o fox.mp4, as typed: the file (which stores it absolute) is still that output's
    assert kept_anywhere(Path("fox.latents.safetensors"), "fox.mp4")
    assert len(earlier_runs([SimpleNamespace(output="fox.mp4")])) == 1
    # A third output of that name has nothing kept anywhere: neither file is its.
    third = tmp_path / "third" / "fox.mp4"
    assert not kept_anywhere(third.with_name("fox.latents.safetensors"), third)
    assert earlier_runs([SimpleNamespace(output=third)]) == []


def test_the_state_in_the_cache_is_found_for_another_spelling_of_its_output(out, cache, tmp_path, monkeypatch):
    # The file stores the output resolved to an absolute path; a run given it through a symlinked folder, or with
    # `..` in it, was told of no earlier run: the two were compared made absolute, not resolved.
    cache.mkdir(parents=True)
    save_latents(stopped_state(out / "fox.mp4", done=3), cache / "fox.latents.safetensors")
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    for spelled in (tmp_path / "link" / "fox.mp4", Path("videos/../videos/fox.mp4"), Path("link/../videos/fox.mp4")):
        assert kept_anywhere(spelled.with_name("fox.latents.safetensors"), spelled), spelled
    # `..` after a link goes up from the link's target, as the file system takes it: here that is another file.
    (out / "deeper").mkdir()
    (tmp_path / "down").symlink_to(out / "deeper", target_is_directory=True)
    elsewhere = Path("down/../../fox.mp4")  # out/deeper/../../fox.mp4: tmp_path/fox.mp4
    assert not kept_anywhere(elsewhere.with_name("fox.latents.safetensors"), elsewhere)


def test_two_spellings_of_one_output_are_the_same_output(tmp_path, monkeypatch):
    from motif_lite.request.output_names import same_output

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    assert same_output("link/fox_{seed}.mp4", tmp_path / "real" / "fox_{seed}.mp4")  # neither written yet
    assert same_output("fox.mp4", "a/../fox.mp4") and same_output("./fox.mp4", tmp_path / "fox.mp4")
    assert not same_output("link/../fox.mp4", "real/fox.mp4") and not same_output("fox.mp4", "real/fox.mp4")


def test_an_output_folder_in_a_symlink_loop_is_named_missing_without_a_traceback(tmp_path, monkeypatch, capsys):
    # `loopa` -> `loopb` -> `loopa`: Path.resolve raises RuntimeError on such a loop (Python 3.11), and every run
    # compares its output with same_output before the output's folder is checked: `run -o loopa/fox.mp4` ended in
    # a traceback. The folder is one that cannot be written into, as the check says of a missing one.
    from motif_lite import cli

    (tmp_path / "loopb").symlink_to("loopa")
    (tmp_path / "loopa").symlink_to("loopb")
    monkeypatch.chdir(tmp_path)
    status = cli.main(["run", "-m", str(tmp_path / "no-model"), "-p", "fox", "-o", "loopa/fox.mp4"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USER_ERROR and "output directory loopa does not exist" in err, err


def test_a_batchs_notes_list_the_fallback_folder_once(out, cache, monkeypatch):
    # `run -b 10000` searched the fallback folder with a glob per output before its first question (seconds before
    # the CPU run's refusal): the folder is listed once for the whole batch, and each output's state is still found
    # there, under its own name or the numbered one another output's file made it take.
    cache.mkdir(parents=True)
    outputs = [out / f"fox-{i}.mp4" for i in range(1, 51)]
    save_latents(stopped_state(outputs[6], done=3), cache / "fox-7.latents.safetensors")
    save_latents(stopped_state(outputs[9], done=1), cache / "fox-10.latents-2.safetensors")
    save_latents(stopped_state(out / "other" / "fox-1.mp4"), cache / "fox-1.latents.safetensors")  # not this one's
    listed = []
    for name in ("scandir", "listdir"):  # a glob lists with os.scandir
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path=".", real=real: listed.append(path) or real(path))
    notes = earlier_runs([SimpleNamespace(output=output) for output in outputs])
    assert [Path(path) for path in listed if not isinstance(path, int)].count(cache) == 1
    assert [note.split(" holds ")[0] for note in notes] == [
        str(cache / "fox-7.latents.safetensors"),
        str(cache / "fox-10.latents-2.safetensors"),
    ]


def test_the_message_gives_the_free_space_and_the_size_in_megabytes(out, cache, monkeypatch):
    # Sizes of a real run's state are MB: said in decimal MB (as df -H and the download's GB), computed from the
    # file it would have written, and the free space of each folder tried (not its disk's total).
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(10**12, 10**12 - 1_500_000, 1_500_000))
    full_disk_in(monkeypatch, out, cache)
    saved = stopped_state(out / "fox.mp4", shape=(1, 16, 3, 128, 128))
    with pytest.raises(LatentsSaveError) as error:
        LatentsFile(out / "fox.mp4", fallback=cache).save(saved)
    message = str(error.value)
    assert message.count("No space left on device, 1.5 MB free there)") == 2, message
    monkeypatch.undo()
    size = save_latents(saved, out / "room.latents.safetensors").stat().st_size
    assert f"they need {size / 1e6:.1f} MB: free that much space" in message, (message, size)


def test_a_quota_is_a_full_disk_too(tmp_path, monkeypatch):
    # EDQUOT (a cluster's per-user quota): freeing space is what helps, as for ENOSPC.
    def over_quota(saved, path):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")

    monkeypatch.setattr(latents_saving, "save_latents", over_quota)
    with pytest.raises(LatentsSaveError, match="free that much space, or give the output another folder"):
        LatentsFile(tmp_path / "fox.mp4").save(stopped_state(tmp_path / "fox.mp4"))


def test_when_no_place_takes_the_state_the_warning_is_that_message_itself(out, cache, monkeypatch):
    # The message that names each place is said as it is, not wrapped in another "could not be saved" with the
    # exception's class name.
    full_disk_in(monkeypatch, out, cache)
    said = keep(LatentsFile(out / "fox.mp4", fallback=cache), stopped_state(out / "fox.mp4"))
    assert said.startswith(f"the latents could not be saved to {out / 'fox.latents.safetensors'} (No space"), said
    assert "LatentsSaveError" not in said


def test_a_run_that_saved_nothing_deletes_no_file_another_run_saved_there_since(out, monkeypatch):
    # Every save of this run failed (its disk was full; the run goes on with a warning): the name it meant to use
    # is another run's file by the time this video is written, and stays.
    keeper = LatentsFile(out / "fox.mp4")
    full_disk_in(monkeypatch, out)
    with pytest.raises(LatentsSaveError):
        keeper.save(stopped_state(out / "fox.mp4"))
    save_latents(stopped_state(out / "fox.mp4", done=3), out / "fox.latents.safetensors")  # the other run's
    keeper.remove()
    assert read_latents(out / "fox.latents.safetensors").progress == (3, 4)


def test_the_writer_is_a_process_of_this_machine_other_than_this_one(tmp_path):
    # `still_running` names a writer that runs here: this process's parent does; this process itself is not
    # "another run", and the same process ID on another host says nothing of this machine.
    saved = stopped_state(tmp_path / "fox.mp4")
    here = socket.gethostname()
    assert still_running(replace_writer(saved, os.getppid(), here)) == os.getppid()
    assert still_running(replace_writer(saved, os.getpid(), here)) is None
    assert still_running(replace_writer(saved, os.getppid(), here + "-elsewhere")) is None


def replace_writer(saved: SavedLatents, pid: int, host: str) -> SavedLatents:
    from dataclasses import replace

    return replace(saved, writer={"pid": pid, "host": host})


def test_a_garbled_writer_reads_as_none(tmp_path):
    # A file whose writer entry is not a {"pid", "host"} mapping (edited by hand, another tool) still reads and
    # resumes: the note on a running writer is left out, rather than a crash on `writer.get`.
    import json

    from safetensors.torch import save_file

    saved = stopped_state(tmp_path / "fox.mp4")
    info = {**saved.info(), "writer": "pid 1234"}
    save_file({latents_io.TENSOR_NAME: saved.latents}, str(tmp_path / "fox.latents.safetensors"),
              metadata={latents_io.FORMAT_KEY: json.dumps(info)})  # fmt: skip
    read = read_latents(tmp_path / "fox.latents.safetensors")
    assert read.writer is None and still_running(read) is None


@pytest.mark.parametrize("resumed", [False, True], ids=["first-save", "resumed-file"])
def test_a_second_ctrl_c_at_the_first_save_says_what_is_there(tmp_path, monkeypatch, caplog, resumed):
    # Ctrl-C during the run's first save: nothing is kept, or the file the run resumed from is as it was.
    given = tmp_path / "fox.latents.safetensors" if resumed else None
    if resumed:
        save_latents(stopped_state(tmp_path / "fox.mp4", done=1), given)

    def ctrl_c(saved, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(latents_saving, "save_latents", ctrl_c)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        keep(LatentsFile(tmp_path / "fox.mp4", given), stopped_state(tmp_path / "fox.mp4"))
    left = f"{given} is as it was when this run began" if resumed else "nothing is kept"
    assert caplog.text.rstrip().endswith(f"a second Ctrl-C stopped the save: {left}"), caplog.text


def test_a_stop_signal_at_a_save_is_named_as_that_signal(tmp_path, monkeypatch, caplog):
    # A scheduler's SIGTERM (a KeyboardInterrupt too) landing in the save a run's error began was "a second Ctrl-C".
    def terminated(saved, path):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(latents_saving, "save_latents", terminated)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(Terminated):
        keep(LatentsFile(tmp_path / "fox.mp4", None), stopped_state(tmp_path / "fox.mp4"))
    assert caplog.text.rstrip().endswith("SIGTERM stopped the save: nothing is kept"), caplog.text


def test_resume_checks_the_model_paths_that_are_paths(tmp_path):
    # A Hub repo id is no path; a folder with a colon in its name keeps the colon (only the last one is the
    # strength's); each flag is named as it is typed.
    _check_still_there("model", "Motif-Technologies/Motif-Video-2B")
    style = tmp_path / "run:2" / "style.safetensors"
    style.parent.mkdir()
    style.write_bytes(b"a lora")
    _check_still_there("lora", [f"{style}:0.8"])
    with pytest.raises(RequestError, match=re.escape(f"had --text-encoder-gguf {tmp_path / 'te.gguf'}, which is")):
        _check_still_there("text_encoder_gguf", str(tmp_path / "te.gguf"))


def test_the_cache_folder_is_the_one_the_docs_name(tmp_path, monkeypatch):
    # docs/usage.md and run --help tell users to look in $XDG_CACHE_HOME/motif-lite/latents (~/.cache/...).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert latents_saving.fallback_folder() == tmp_path / "motif-lite" / "latents"


def _resume_help() -> str:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return next(a.help for a in commands.choices["run"]._actions if "--resume" in a.option_strings)


@pytest.mark.parametrize("xdg", [True, False])
def test_run_help_names_the_cache_folder_the_code_uses(tmp_path, monkeypatch, xdg):
    # run --help once said ~/.cache/motif-lite/latents even where XDG_CACHE_HOME moves the cache: the first folder
    # it names that the environment fully expands must be the one a run falls back to.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if xdg:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    else:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    named = [os.path.expanduser(os.path.expandvars(f)) for f in re.findall(r"\S+/motif-lite/latents", _resume_help())]
    expanded = [Path(f) for f in named if "$" not in f]
    assert expanded and expanded[0] == latents_saving.fallback_folder(), (named, latents_saving.fallback_folder())


def test_a_whole_file_with_a_damaged_header_is_not_called_cut_short(tmp_path):
    # Every byte its header asks for is there: the file is damaged, not an unfinished copy.
    path = save_latents(stopped_state(tmp_path / "fox.mp4"), tmp_path / "fox.latents.safetensors")
    path.write_bytes(path.read_bytes().replace(b'"dtype":"F32"', b'"dtype":"F3X"', 1))
    with pytest.raises(latents_io.LatentsFileError) as error:
        read_latents(path)
    assert "cut short" not in str(error.value) and "a damaged one" in str(error.value), str(error.value)


def test_the_parallel_note_follows_only_a_resume_command_this_run_gave(out):
    # A failed decode keeps denoised latents (advice: motif-lite decode); a resumed run that saved nothing leaves
    # its file as it was (the user's own command, --gpus and all, goes on from it): no note on --resume for either.
    output = out / "fox.mp4"
    denoised = SavedLatents(torch.zeros(1, 16, 2, 4, 4), output, 32, 32, 5, 24.0, "float32")
    assert not goes_on_with_resume(denoised, None)
    assert not goes_on_with_resume(None, None)
    assert goes_on_with_resume(stopped_state(output, done=2), None)
    began = stopped_state(output, done=2)
    assert not goes_on_with_resume(stopped_state(output, done=2), began)
    assert goes_on_with_resume(stopped_state(output, done=3), began)
    # What the run reads back: the file beside the output.
    save_latents(denoised, out / "fox.latents.safetensors")
    assert kept_state(out / "fox.latents.safetensors", output).denoised


@pytest.mark.parametrize("preview_or_input", ["preview", "input"])
def test_a_preview_in_a_symlink_loop_is_named_missing_without_a_traceback(
    tmp_path, monkeypatch, capsys, preview_or_input
):
    # The same loop under --preview: its comparisons with -o and -i (and the video's frames with the preview)
    # resolved both paths and raised RuntimeError, a traceback in place of the missing folder's error.
    from motif_lite import cli

    (tmp_path / "loopb").symlink_to("loopa")
    (tmp_path / "loopa").symlink_to("loopb")
    monkeypatch.chdir(tmp_path)
    args = ["run", "-m", str(tmp_path / "no-model"), "-p", "fox", "-o", "fox.mp4", "--preview", "loopa/p.png"]
    if preview_or_input == "input":
        args = ["run", "-m", str(tmp_path / "no-model"), "-p", "fox", "-o", "fox.mp4", "-i", "loopa/i.png",
                "--preview", "p.png"]  # fmt: skip
    status = cli.main(args)
    err = capsys.readouterr().err
    assert status == cli.EXIT_USER_ERROR and "Traceback" not in err and "RuntimeError" not in err, err
    assert "loopa" in err, err


def test_an_output_spelled_with_a_tilde_is_the_output_at_its_home(tmp_path, monkeypatch):
    # A path quoted in the shell, a config file's or a notebook's reaches us with its `~`: it names the file the
    # shell would have named, as every other output check reads it.
    from motif_lite.request.output_names import same_output

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert same_output("~/fox.mp4", tmp_path / "fox.mp4") and same_output("fox.mp4", "~/fox.mp4")
