"""The forty-third mutation pass's tests (docs/testing.md) of io/image.py, devices.py, keeping.py, progress.py and
io/gguf_source.py: behaviours no test reached, each failing with the mutant that showed the gap."""

from __future__ import annotations

import io
import subprocess
import sys
import time

import numpy as np
import PIL.ExifTags
import PIL.Image
import PIL.ImageOps
import pytest
import torch

from motif_lite.choices import GGUF_REPO
from motif_lite.devices import absent_gpu, is_here
from motif_lite.dtypes import text_encoder_dtype
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.io import gguf_source, latents_saving
from motif_lite.io.gguf_source import (
    cached_variant,
    is_gguf_repo,
    not_a_gguf,
    partial_gguf_problem,
    single_gguf,
)
from motif_lite.io.image import TINY_IMAGE_SIDE, enlargement_notes, preprocess_image, read_image, upright_size
from motif_lite.io.latents import SavedLatents
from motif_lite.io.latents_saving import LatentsFile
from motif_lite.keeping import StateSaver, keep
from motif_lite.progress import ProgressBars
from motif_lite.sampling import SamplingState


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_image_is_used_as_pillow_turns_it_for_every_exif_orientation(tmp_path, orientation):
    # Pillow's exif_transpose is the oracle: orientations 5 to 8 turn a quarter, 2 to 4 flip or turn a half, 1 keeps.
    path = tmp_path / f"photo-{orientation}.png"
    exif = PIL.Image.Exif()
    exif[PIL.ExifTags.Base.Orientation] = orientation
    pixels = np.arange(20 * 40 * 3, dtype=np.uint8).reshape(20, 40, 3)  # no symmetry: each turn shows
    PIL.Image.fromarray(pixels).save(path, exif=exif)
    with PIL.Image.open(path) as image:
        shown = PIL.ImageOps.exif_transpose(image)
        shown.load()
    used, notes = read_image(path)
    assert upright_size(path) == used.size == shown.size
    assert np.array_equal(np.asarray(used), np.asarray(shown.convert("RGB")))
    assert any("EXIF orientation" in note for note in notes) == (orientation != 1)


def test_an_image_a_side_below_the_tiny_limit_is_noted_and_one_at_it_is_not():
    side = TINY_IMAGE_SIDE
    assert enlargement_notes((side, side), 1280, 736) == []
    assert len(enlargement_notes((side - 1, side), 1280, 736)) == 1


def test_a_tiny_image_enlarged_in_one_direction_only_is_noted():
    # A 2000x10 strip is wider than the video but is stretched 70-fold in height: still a blur.
    assert len(enlargement_notes((2000, 10), 1280, 736)) == 1
    assert len(enlargement_notes((10, 2000), 1280, 736)) == 1
    assert enlargement_notes((2000, 10), 1280, 8) == []  # not enlarged at all: nothing to say


@pytest.mark.parametrize(("height", "width"), [(16, 0), (16, -8), (0, 16)])
def test_a_frame_size_without_pixels_is_refused_on_either_side(height, width):
    with pytest.raises(ConfigError, match="image size must be positive"):
        preprocess_image(PIL.Image.new("RGB", (8, 8)), height, width)


def test_a_32_bit_integer_grayscale_image_of_16_bit_levels_keeps_its_mid_gray(tmp_path):
    # A TIFF of mode "I" (32-bit integers) holding 16-bit levels: half of 65535 is mid-gray, not white.
    path = tmp_path / "gray.tif"
    PIL.Image.fromarray(np.full((4, 4), 32768, dtype=np.int32), "I").save(path)
    with PIL.Image.open(path) as stored:
        assert stored.mode == "I"
    used, _ = read_image(path)
    assert np.abs(np.asarray(used).astype(int) - 128).max() <= 1


def test_the_text_encoder_runs_in_bf16_in_a_float16_run_and_in_the_run_s_dtype_otherwise():
    # Gemma 3's activations overflow float16 (docs): only a float16 run's encoder changes dtype.
    assert text_encoder_dtype(torch.float16) == torch.bfloat16
    for dtype in (torch.float32, torch.bfloat16):
        assert text_encoder_dtype(dtype) == dtype
    assert text_encoder_dtype(torch.float16, given=torch.float16) == torch.float16


def test_the_gpu_numbered_as_many_as_there_are_is_absent(monkeypatch):
    # CUDA numbers a machine's GPUs from 0: on one with a single GPU, cuda:1 is none of them.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert absent_gpu(torch.device("cuda:0")) is None and is_here(torch.device("cuda:0"))
    assert "only 1 CUDA device(s) here" in absent_gpu(torch.device("cuda:1"))
    assert not is_here(torch.device("cuda:1"))


def test_a_resumed_run_s_progress_rate_counts_only_the_steps_this_run_made(monkeypatch):
    # Resumed after step 30 of 50, one step in 10 s: 10 s a step, not 31 steps in 10 s.
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    log = io.StringIO()
    progress = ProgressBars(file=log)
    progress("denoise", 30, 50)
    now[0] += 10.0
    progress("denoise", 31, 50)
    last = log.getvalue().splitlines()[-1]
    assert "31/50" in last and "10.00s/step" in last


def test_a_log_gets_a_stage_s_last_line_when_its_last_step_is_done_not_when_the_next_stage_starts(monkeypatch):
    # `tail -f` on a log shows that sampling ended while the decode (or anything before it) is still under way.
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    log = io.StringIO()
    progress = ProgressBars(file=log)
    for done in range(4):
        progress("denoise", done, 3)
    assert "3/3" in log.getvalue().splitlines()[-1]


def test_a_log_without_an_encoding_gets_the_ascii_bar():
    log = io.StringIO()  # its encoding is None: nothing says block characters fit
    progress = ProgressBars(file=log)
    progress("denoise", 0, 4)
    progress("denoise", 4, 4)
    assert "#" in log.getvalue() and "\u2588" not in log.getvalue()


def test_tqdm_disable_in_capitals_silences_the_log_as_it_does_tqdm(monkeypatch):
    # tqdm, which reads its environment when it is imported, takes "True" as it takes "1".
    monkeypatch.setenv("TQDM_DISABLE", "True")
    tqdm_bar = subprocess.run(
        [sys.executable, "-c", "import io, tqdm; print(tqdm.tqdm(total=1, file=io.StringIO()).disable)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tqdm_bar.stdout.strip() == "True"
    log = io.StringIO()
    progress = ProgressBars(file=log)
    progress("denoise", 0, 2)
    progress("denoise", 2, 2)
    progress.close()
    assert log.getvalue() == ""


def test_progress_to_a_closed_stream_with_bars_turned_off_does_not_stop_the_run(monkeypatch):
    # A closed stream's isatty raises ValueError: it is no terminal, and TQDM_DISABLE=1 writes nothing to it.
    monkeypatch.setenv("TQDM_DISABLE", "1")
    closed = io.StringIO()
    closed.close()
    progress = ProgressBars(file=closed)
    progress("denoise", 0, 2)
    progress("denoise", 2, 2)
    progress.close()


def saver_of(tmp_path, every: float = 0.0, start: SamplingState | None = None, to_saved=None, path=None) -> StateSaver:
    """A StateSaver of a 4-step run of tmp_path/out.mp4 that saves at every step it may (`every` 0 s)."""
    output = tmp_path / "out.mp4"

    def saved_of(state: SamplingState) -> SavedLatents:
        return SavedLatents(state.latents, output, 32, 32, 5, 24.0, "float32", progress=(state.done, 4))

    return StateSaver(LatentsFile(output, path), to_saved or saved_of, every=every, steps=4, start=start)


def state_after(done: int, nan: bool = False) -> SamplingState:
    latents = torch.zeros(1, 16, 2, 4, 4)
    latents[0, 0, 0, 0, 0] = float("nan") if nan else 0.0  # one value is enough to spoil the rest
    return SamplingState(done, latents)


def test_the_state_after_the_last_step_is_not_written_the_decode_comes_next(tmp_path):
    saver = saver_of(tmp_path)
    saver(state_after(3))
    assert saver.keeper.kept.progress == (3, 4)
    saver(state_after(4))
    assert saver.keeper.kept.progress == (3, 4)


def test_a_state_holding_nan_is_not_written_during_sampling(tmp_path):
    saver = saver_of(tmp_path)
    saver(state_after(1))
    saver(state_after(2, nan=True))
    assert saver.keeper.kept.progress == (1, 4)


def test_a_save_that_fails_during_sampling_is_said_once(tmp_path, caplog):
    def fails(state: SamplingState) -> SavedLatents:
        raise OSError("the disk went away")

    saver = saver_of(tmp_path, to_saved=fails)
    for done in (1, 2, 3):
        saver(state_after(done))
    assert sum("the disk went away" in record.getMessage() for record in caplog.records) == 1


def test_a_resumed_run_that_made_steps_saves_its_last_not_where_it_began(tmp_path):
    saver = saver_of(tmp_path, every=3600.0, start=state_after(1))
    saver(state_after(3))
    assert "after step 3 of 4" in saver.save_on_failure()


def test_a_failed_save_names_the_file_this_run_saves_to_not_the_default_beside_the_output(tmp_path, caplog):
    def fails(state: SamplingState) -> SavedLatents:
        raise OSError("the disk went away")

    resumed = tmp_path / "resumed-from.latents"  # a resumed run saves over the file it resumed from
    saver_of(tmp_path, to_saved=fails, path=resumed)(state_after(1))
    assert f"could not be saved to {resumed}" in caplog.text


def test_a_second_ctrl_c_says_the_file_holds_the_state_an_earlier_save_kept(tmp_path, monkeypatch, caplog):
    saver = saver_of(tmp_path)
    saver(state_after(2))

    def interrupted(saved, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(latents_saving, "save_latents", interrupted)
    with pytest.raises(KeyboardInterrupt):
        keep(saver.keeper, saver.to_saved(state_after(3)))
    assert "holds the state after step 2 of 4, from an earlier save" in caplog.text


def test_a_quantizer_s_partial_file_of_an_output_named_in_capitals_is_known(tmp_path):
    partial = tmp_path / "MOTIF-Q4_K_M.GGUF.tmp"  # the partial file of -o MOTIF-Q4_K_M.GGUF
    partial.write_bytes(b"GGUF")
    problem, fix = partial_gguf_problem(partial, "Motif-Technologies/Motif-Video-2B")
    assert "partial file of a quantizer run" in problem and fix.endswith(str(tmp_path / "MOTIF-Q4_K_M.GGUF"))


def test_a_folder_of_two_gguf_files_is_refused_not_read_as_its_first(tmp_path):
    for name in ("motif-video-2b-Q4_K_M.gguf", "motif-video-2b-Q8_0.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match="must hold exactly one .gguf file"):
        single_gguf(tmp_path)


def test_a_variant_two_cached_files_carry_is_not_taken_from_the_cache(tmp_path, monkeypatch):
    # Which of the two the user meant is not known.
    for name in ("motif-video-2b-Q4_K_M.gguf", "text_encoder/t5gemma2-Q4_K_M.gguf"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"GGUF")
    monkeypatch.setattr(gguf_source, "cached_snapshot", lambda repo: tmp_path)
    assert cached_variant("Q4_K_M") is None


def test_a_gguf_is_known_by_its_name_or_by_its_first_bytes(tmp_path):
    assert not not_a_gguf(tmp_path / "gone.gguf")  # not there: its name alone says it
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(b"GGUF" + bytes(12))
    assert not not_a_gguf(renamed)
    video = tmp_path / "clip.mp4"
    video.write_bytes(bytes(16))
    assert not_a_gguf(video)


def test_the_official_gguf_repo_is_known_in_any_letter_case():
    # Hub repo ids are case-insensitive: the Hub serves the same repo to either spelling.
    assert is_gguf_repo(GGUF_REPO.lower()) and is_gguf_repo(GGUF_REPO.upper())


def test_a_gguf_folder_inside_a_cache_folder_is_read(tmp_path):
    # Only the .cache/ that `hf download --local-dir` leaves inside the folder is skipped, not a folder under ~/.cache.
    folder = tmp_path / ".cache" / "models"
    folder.mkdir(parents=True)
    (folder / "motif-video-2b-Q8_0.gguf").write_bytes(b"GGUF")
    assert single_gguf(folder) == folder / "motif-video-2b-Q8_0.gguf"
