"""Where features meet: a stopped image-to-video run whose image file changed before `--resume`, ... (each test
names the two or three features it combines). Tiny checkpoint, fp32 on the CPU."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from test_resume import assert_user_error, counted_hashes, random_image, request, run_cli, stop_at

from motif_lite import cli, load_pipeline
from motif_lite.io.latents import read_latents
from motif_lite.request import RequestError


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    pipe.save_state_every = float("inf")
    return pipe


@pytest.fixture
def stopped_i2v(pipe, tmp_path) -> tuple[Path, Path]:
    """An image-to-video run stopped after step 1 of 4: its latents file and its image."""
    image = random_image(tmp_path / "first.png", 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, image=image), on_progress=stop_at(1))
    return tmp_path / "fox.latents.safetensors", image


def test_resume_refuses_an_image_file_overwritten_since_and_takes_the_runs_image_with_i(stopped_i2v, capsys):
    stopped, image = stopped_i2v
    kept = shutil.copy(image, image.with_name("kept.png"))
    random_image(image, 1)  # the same name, another picture
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--dry-run")
    assert_user_error(code, err, f"the input image of the run being resumed, {image}, holds another image since the "
                                 "run stopped: give it again with -i FILE")  # fmt: skip
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(image), "--dry-run")
    assert_user_error(code, err, f"{image} is not the image the run being resumed used ({image}, overwritten since)")
    code, _, err = run_cli(capsys, "--resume", str(stopped), "-i", str(kept), "--dry-run")
    assert code == 0, err
    assert f"{image} holds another image since the run stopped: going on with {kept}, the same image" in err


def test_the_api_refuses_to_resume_with_another_image_or_none(pipe, stopped_i2v):
    stopped, image = stopped_i2v
    saved = read_latents(stopped)
    original = request(stopped.parent, image=image)
    random_image(image, 1)
    with pytest.raises(RequestError, match="is not the image the run .* sampled from"):
        pipe.generate(original, resume=saved)
    with pytest.raises(RequestError, match="continues image-to-video sampling, and this request is text-to-video"):
        pipe.generate(dataclasses.replace(original, image=None), resume=saved)


def test_an_image_run_hashes_its_image_once_however_often_it_saves_its_state(pipe, tmp_path, monkeypatch):
    # The image was hashed for the key of its kept encodings, then again at every save of the run's state, and
    # twice going on from one (`generate`'s check, then the key): it is hashed as the request is resolved.
    hashes = counted_hashes(monkeypatch)
    monkeypatch.setattr(pipe, "save_state_every", 0.0)  # a save after every step, and one as it stops
    image = random_image(tmp_path / "first.png", 0)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, image=image), on_progress=stop_at(3))
    assert len(hashes) == 1
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    assert saved.run["image_sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    pipe.kept_encodings.clear()  # the resumed run encodes its image again, as another process would
    pipe.generate(request(tmp_path, image=image), resume=saved)
    assert len(hashes) == 2


@pytest.mark.parametrize(("stopped_after", "said"), [
    (1, "is replaced after steps 2, 3 of 4; the last one stays after the run (this run goes on after step 1)"),
    (3, "previews: none to {preview}: this run goes on after step 3 of 4, past the last step a preview comes after"),
])  # fmt: skip
def test_a_resumed_runs_preview_note_names_only_the_steps_it_samples(pipe, tmp_path, capsys, stopped_after, said):
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path), on_progress=stop_at(stopped_after))
    preview = tmp_path / "now.webp"
    code, _, err = run_cli(capsys, "--resume", str(tmp_path / "fox.latents.safetensors"), "--preview", str(preview),
                           "--preview-every", "1", "--dry-run")  # fmt: skip
    assert code == 0, err
    assert said.format(preview=preview) in err


def test_settings_from_a_video_made_with_a_step_cache_notes_a_run_without_it(checkpoint, tmp_path, capsys):
    # The step cache is lossy: a file that did not keep it would be remade without it, silently another video.
    cached = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", step_cache=0.05)
    video = cached.generate(request(tmp_path, steps=2)).output
    ran = ["--settings-from", str(video), "-m", str(checkpoint), "--dtype", "fp32", "--dry-run"]
    code, _, err = run_cli(capsys, *ran)
    assert code == 0, err
    assert "fox.mp4 was made with --step-cache 0.05, this run has no --step-cache: its video differs" in err
    code, _, err = run_cli(capsys, *ran, "--step-cache", "0.05")
    assert code == 0 and "step-cache" not in err.split("speed:")[0], err


def test_settings_from_a_video_made_with_a_step_cache_of_0_notes_nothing(checkpoint, tmp_path, capsys):
    # A threshold of 0 reuses nothing: the video is the plain run's, which a run without --step-cache makes again.
    exact = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", step_cache=0)
    video = exact.generate(request(tmp_path, steps=2)).output
    ran = ["--settings-from", str(video), "-m", str(checkpoint), "--dtype", "fp32", "--dry-run"]
    code, _, err = run_cli(capsys, *ran)
    assert code == 0 and "step-cache" not in err.split("speed:")[0], err


def test_a_resumed_run_goes_on_with_the_stopped_runs_step_cache(checkpoint, tmp_path, capsys):
    cached = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", step_cache=0.05)
    cached.save_state_every = float("inf")
    with pytest.raises(KeyboardInterrupt):
        cached.generate(request(tmp_path), on_progress=stop_at(1))
    stopped = str(tmp_path / "fox.latents.safetensors")
    code, out, err = run_cli(capsys, "--resume", stopped, "--dry-run")
    assert code == 0 and "step cache 0.05 (lossy)" in out + err, err
    code, out, err = run_cli(capsys, "--resume", stopped, "--step-cache", "0", "--dry-run")
    assert code == 0 and "step cache 0 (exact)" in out + err, err
    assert "the run being resumed had --step-cache 0.05: the rest of the video is sampled with what this" in err


def test_decode_of_a_png_sequence_run_writes_beside_frames_already_there(pipe, tmp_path, capsys, monkeypatch):
    # A failed decode's latents decoded twice: the second decode must not write over the first one's frames.
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with monkeypatch.context() as patch:
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(request(tmp_path, "fox_%03d.png", steps=1))
    latents = str(tmp_path / "fox.latents.safetensors")
    decode = ["decode", latents, "--device", "cpu"]
    assert cli.main(decode) == 0
    first = (tmp_path / "fox_000.png").read_bytes()
    (tmp_path / "fox_000.png").write_bytes(b"kept")  # tells the first decode's frame from a second one
    assert cli.main(decode) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'fox_%03d.png'} exists: writing {tmp_path / 'fox-2_%03d.png'} instead" in err
    assert (tmp_path / "fox_000.png").read_bytes() == b"kept"
    assert (tmp_path / "fox-2_000.png").read_bytes() == first


def test_resume_refuses_a_preview_that_would_replace_the_runs_input_image(stopped_i2v, capsys):
    stopped, image = stopped_i2v
    before = image.read_bytes()
    code, _, err = run_cli(capsys, "--resume", str(stopped), "--preview", str(image))
    assert_user_error(code, err, f"--preview {image} is the input image of the run being resumed: the previews would")
    assert image.read_bytes() == before and stopped.exists()


def test_a_dry_run_of_a_batch_from_a_files_settings_names_each_videos_seed_and_file(pipe, checkpoint, tmp_path, capsys):
    # The seeds start at the file's: without this line they are seen only once the run has loaded.
    video = pipe.generate(request(tmp_path, "fox.webp", seed=41, steps=1)).output
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(video), "-b", "2",
                           "-o", str(tmp_path / "again.mp4"), "--dry-run")  # fmt: skip
    assert code == 0, err
    assert f"note: videos: {tmp_path / 'again-1.mp4'} (seed 41), {tmp_path / 'again-2.mp4'} (seed 42)\n" in err


def test_a_long_batchs_files_and_seeds_are_listed_by_their_ends(checkpoint, tmp_path, capsys):
    # `-b 10000` listed all 10000 files in a dry run's note (169 kB in one line) and all its seeds as the run began.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", "a fox", "-b", "12", "-s", "7", "-o",
                           str(tmp_path / "f.mp4"), "--dry-run")  # fmt: skip
    assert code == 0, err
    files = [f"{tmp_path / f'f-{k}.mp4'} (seed {6 + k})" for k in (1, 2, 3, 12)]
    assert f"note: videos (12): {', '.join(files[:3])}, ..., {files[3]}\n" in err
    assert "f-4.mp4" not in err


def test_a_dry_run_of_a_batch_with_no_seed_names_no_seeds_the_run_would_not_use(checkpoint, tmp_path, capsys):
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", "a fox", "-b", "2", "-o", str(tmp_path / "f.mp4"),
                           "--dry-run")  # fmt: skip
    assert code == 0, err
    assert f"note: videos: {tmp_path / 'f-1.mp4'}, {tmp_path / 'f-2.mp4'} (the run draws their seeds)\n" in err


@pytest.mark.parametrize("moved", [False, True], ids=["in-place", "given-again"])
def test_a_resumed_image_run_hashes_its_image_once(stopped_i2v, tmp_path, capsys, monkeypatch, moved):
    # run --resume hashed the image to check it was the run's (`-i IMAGE` given again for a moved one, or the one
    # still in place), then again as the request was resolved: the checksum the check made is the run's.
    stopped, image = stopped_i2v
    given = ["-i", str(image.rename(tmp_path / "moved.png"))] if moved else []
    hashes = counted_hashes(monkeypatch)
    code, _, err = run_cli(capsys, "--resume", str(stopped), *given)
    assert code == 0, err
    assert len(hashes) == 1
