"""A full disk where the output goes (a small cloud volume, a network share) must not lose hours of sampling: a
run's latents then go to motif-lite's cache folder, and when no place takes them the message names each place,
why, and the space they need. Tiny checkpoint, CPU."""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

import pytest
import torch

from motif_lite import cli, load_pipeline
from motif_lite.cli.resume import earlier_runs
from motif_lite.io import latents as latents_io
from motif_lite.io import latents_saving
from motif_lite.io.latents import read_latents
from motif_lite.io.latents_saving import fallback_folder
from motif_lite.request import GenerationRequest

SIZE = dict(width=48, height=32, frames=9, steps=4, seed=3)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    pipe.save_state_every = float("inf")
    return pipe


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return fallback_folder()


def full_disk_in(monkeypatch, *folders: Path) -> list:
    """Saving latents fails in `folders` as on a full disk; elsewhere it works. -> the latents saves tried."""
    save, tried = latents_saving.save_latents, []

    def save_unless_full(saved, path):
        tried.append(saved)
        if path.parent in folders:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(saved, path)

    monkeypatch.setattr(latents_saving, "save_latents", save_unless_full)
    return tried


def stop_at(step: int):
    def on_progress(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == step:
            raise KeyboardInterrupt

    return on_progress


def stopped_run(pipe, out: Path, caplog) -> str:
    """Stop a run of `out`/fox.mp4 after step 2; -> what it logged."""
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(GenerationRequest("a red fox", output=out / "fox.mp4", **SIZE), on_progress=stop_at(2))
    return caplog.text


def test_a_full_output_disk_keeps_the_state_in_the_cache_folder(pipe, tmp_path, cache, monkeypatch, caplog):
    out = tmp_path / "videos"
    out.mkdir()
    full_disk_in(monkeypatch, out)
    monkeypatch.setattr(pipe, "latents_fallback", cache)
    said = stopped_run(pipe, out, caplog)
    kept = cache / "fox.latents.safetensors"
    assert list(out.iterdir()) == []
    assert read_latents(kept).progress == (2, 4)
    assert f"its state is saved in {kept} ({out / 'fox.latents.safetensors'} could not be written: No space" in said
    assert f"motif-lite run --resume {kept}" in said
    # A new run of the same output names it, as it names a file beside the output.
    request, _ = GenerationRequest("a red fox", output=out / "fox.mp4", **SIZE).resolve()
    assert any(f"motif-lite run --resume {kept}" in note for note in earlier_runs([request]))


def test_when_no_place_takes_the_state_the_message_names_each_and_the_size(pipe, tmp_path, cache, monkeypatch, caplog):
    out = tmp_path / "videos"
    out.mkdir()
    monkeypatch.setattr(pipe, "latents_fallback", cache)
    tried = full_disk_in(monkeypatch, out, cache)
    said = stopped_run(pipe, out, caplog)
    assert list(out.iterdir()) == [] and not any(cache.iterdir())
    assert f"could not be saved to {out / 'fox.latents.safetensors'} (No space left on device, " in said
    assert f"nor to {cache / 'fox.latents.safetensors'} (No space left on device, " in said
    monkeypatch.undo()
    size = latents_io.save_latents(tried[-1], tmp_path / "room.latents.safetensors").stat().st_size  # the real file
    needed = float(re.search(r"they need ([\d.]+) kB", said).group(1)) * 1e3
    assert abs(needed - size) < 0.02 * size, (needed, size)


def run_stopped_on_a_full_disk(checkpoint, tmp_path, capsys, monkeypatch, step: int, *flags: str) -> str:
    """`motif-lite run` of videos/fox.mp4 on a disk that is full, stopped by Ctrl-C after `step`; -> its stderr."""
    out = tmp_path / "videos"
    out.mkdir()
    full_disk_in(monkeypatch, out)

    def stop(self, stage, done, total):
        if stage == "denoise" and done == step:
            raise KeyboardInterrupt

    monkeypatch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
    size = ["-W", "48", "-H", "32", "--video-frames", "9", "--dtype", "fp32"]
    code = cli.main(["run", "-m", str(checkpoint), "-p", "a red fox", *size, *flags, "-o", str(out / "fox.mp4"),
                     "--device", "cpu", "--kernels", "torch", "--yes"])  # fmt: skip
    assert code == cli.EXIT_INTERRUPTED
    return capsys.readouterr().err


def test_run_keeps_a_stopped_run_in_the_cache_when_the_output_disk_is_full(
    checkpoint, tmp_path, cache, capsys, monkeypatch
):
    err = run_stopped_on_a_full_disk(checkpoint, tmp_path, capsys, monkeypatch, 2, "--steps", "4", "-s", "3")
    assert read_latents(cache / "fox.latents.safetensors").progress == (2, 4)
    assert f"motif-lite run --resume {cache / 'fox.latents.safetensors'}" in err


def test_periodic_saves_that_move_to_the_cache_say_so_once(pipe, tmp_path, cache, monkeypatch, caplog):
    out = tmp_path / "videos"
    out.mkdir()
    full_disk_in(monkeypatch, out)
    monkeypatch.setattr(pipe, "latents_fallback", cache)
    monkeypatch.setattr(pipe, "save_state_every", 0.0)
    with caplog.at_level(logging.WARNING, "motif_lite"):
        pipe.generate(GenerationRequest("a red fox", output=out / "fox.mp4", **SIZE))
    moved = [r.getMessage() for r in caplog.records if "the run's state is kept in" in r.getMessage()]
    assert len(moved) == 1 and str(cache / "fox.latents.safetensors") in moved[0], moved
    assert [p.name for p in out.iterdir()] == ["fox.mp4"] and not any(cache.iterdir())  # done: removed


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "free that much space"),
        (Exception("Error while serializing: I/O error: Disk quota exceeded (os error 122)"), "free that much space"),
        # safetensors' own error, as a file size limit (ulimit -f) gives it: free space would not help
        (
            Exception("Error while serializing: I/O error: File too large (os error 27)"),
            "raise the file size limit where it is set: ulimit -f unlimited in the shell that starts motif-lite, "
            "LimitFSIZE=infinity for a systemd service, or the container's fsize ulimit",
        ),
        (OSError(errno.EACCES, "Permission denied"), "a folder this process can write"),
    ],
    ids=["full", "quota", "size-limit", "denied"],
)
def test_the_advice_fits_why_the_save_failed(tmp_path, monkeypatch, error, advice):
    def failing(saved, path):
        raise error

    monkeypatch.setattr(latents_saving, "save_latents", failing)
    saved = latents_io.SavedLatents(torch.zeros(1, 16, 2, 4, 4), tmp_path / "fox.mp4", 32, 32, 5, 24.0, "float32")
    with pytest.raises(latents_saving.LatentsSaveError) as caught:
        latents_saving.LatentsFile(tmp_path / "fox.mp4").save(saved)
    assert advice in str(caught.value) and "(os error" not in str(caught.value), str(caught.value)


def test_a_failed_save_that_gives_no_reason_on_a_full_disk_is_said_to_want_space(tmp_path, monkeypatch):
    # The quantizer's rule, now the one rule: a write that failed without the OS's reason (a library's own words,
    # no errno) on a disk with under 1 MiB left failed for want of space. The advice was "a folder this process
    # can write", for a folder it can write.
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9, 4000))

    def failing(saved, path):
        raise Exception("Error while serializing: I/O error: failed to write whole buffer")

    monkeypatch.setattr(latents_saving, "save_latents", failing)
    saved = latents_io.SavedLatents(torch.zeros(1, 16, 2, 4, 4), tmp_path / "fox.mp4", 32, 32, 5, 24.0, "float32")
    with pytest.raises(latents_saving.LatentsSaveError) as caught:
        latents_saving.LatentsFile(tmp_path / "fox.mp4").save(saved)
    assert "4.0 kB free there" in str(caught.value) and "free that much space" in str(caught.value), caught.value


def test_a_stopped_batch_counts_a_state_kept_in_the_cache_as_saved(checkpoint, tmp_path, cache, capsys, monkeypatch):
    flags = ["--steps", "2", "-s", "10", "-b", "2"]
    err = run_stopped_on_a_full_disk(checkpoint, tmp_path, capsys, monkeypatch, 1, *flags)
    assert read_latents(cache / "fox-1.latents.safetensors").progress == (1, 2)
    assert "nothing saved" not in err, err


def test_a_save_into_a_folder_gone_says_the_os_reason_alone(tmp_path):
    # safetensors' own words came through: "No such file or directory (os error 2) at path \".../gone/.tmpvrwozS\"",
    # naming a hidden temporary file the user never made.
    saved = latents_io.SavedLatents(torch.zeros(1, 16, 2, 4, 4), tmp_path / "fox.mp4", 32, 32, 5, 24.0, "float32")
    keeper = latents_saving.LatentsFile(tmp_path / "gone" / "fox.mp4")
    with pytest.raises(latents_saving.LatentsSaveError) as error:
        keeper.save(saved)
    said = str(error.value)
    assert f"saved to {tmp_path / 'gone' / 'fox.latents.safetensors'} (No such file or directory" in said, said
    assert "os error" not in said and ".tmp" not in said, said
