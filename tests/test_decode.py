"""Nothing lost when decoding fails: a run whose decode fails (out of memory, inf/NaN, Ctrl-C) saves its denoised
latents beside the output and says how to decode them; `motif-lite decode` then writes the very frames and
metadata an uninterrupted run writes. Tiny checkpoint, CPU, fp32."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from safetensors.torch import save_file

from motif_lite import cli, decoding, load_pipeline
from motif_lite.config import TransformerConfig
from motif_lite.errors import MotifLiteError
from motif_lite.io.latents import FORMAT_KEY, LatentsFileError, latents_path, read_latents
from motif_lite.numerics import NonFiniteError
from motif_lite.request import GenerationRequest
from motif_lite.runtime.planner import PlannerInputs, plan_decode, plan_memory
from motif_lite.units import memory_size
from motif_lite.vae import WanVAE
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.tiling import VAEMode

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=48, height=32, frames=9, steps=2)
LATENTS = "out.latents.safetensors"  # of out_%03d.png


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture(scope="module")
def uninterrupted(pipe, tmp_path_factory) -> Path:
    """The frames of a run that decoded (seed 3), as a PNG sequence."""
    folder = tmp_path_factory.mktemp("whole")
    pipe.generate(request(folder, seed=3))
    return folder


@pytest.fixture(scope="module")
def saved(pipe, tmp_path_factory) -> Path:
    """The folder of a run with seed 3 whose decode ran out of memory: it holds only the latents file."""
    folder = tmp_path_factory.mktemp("failed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(request(folder, seed=3))
    return folder


def request(folder: Path, name: str = "out_%03d.png", seed: int = 3) -> GenerationRequest:
    return GenerationRequest(PROMPT, NEGATIVE, seed=seed, output=folder / name, **SIZE)


def out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")


def frames(folder: Path, stem: str = "out") -> np.ndarray:
    files = sorted(folder.glob(f"{stem}_*.png"))
    assert len(files) == SIZE["frames"]
    return np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in files])


def comment(folder: Path, stem: str = "out") -> dict:
    with PIL.Image.open(folder / f"{stem}_000.png") as image:
        return json.loads(image.text["comment"])


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def decode_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["decode", *args, "--device", "cpu"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------ a failed decode saves


def test_out_of_memory_in_decode_leaves_the_latents_and_no_video(pipe, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(torch.OutOfMemoryError, match="simulated"):
        pipe.generate(request(tmp_path, "fox.mp4"))
    assert names(tmp_path) == ["fox.latents.safetensors"]  # no partial video
    path = tmp_path / "fox.latents.safetensors"
    assert f"saved in {path}" in caplog.text and f"motif-lite decode {path}" in caplog.text
    saved = read_latents(path)
    assert saved.latents.dtype == torch.float32 and saved.latents.shape == (1, 16, 3, 4, 6)
    assert (saved.width, saved.height, saved.frames, saved.fps, saved.dtype) == (48, 32, 9, 24.0, "float32")
    assert saved.output == tmp_path / "fox.mp4" and saved.video_metadata["seed"] == 3
    assert saved.video_metadata["prompt"] == PROMPT and saved.model == str(pipe.sources.root.resolve())


def test_inf_in_decoded_frames_names_the_latents_in_the_error(pipe, tmp_path, monkeypatch):
    decode_frames = pipe.vae.decode_frames

    def overflowing(*args, **kwargs):
        for pixels in decode_frames(*args, **kwargs):
            yield pixels * torch.inf

    monkeypatch.setattr(pipe.vae, "decode_frames", overflowing)
    with pytest.raises(NonFiniteError) as error:
        pipe.generate(request(tmp_path))
    path = tmp_path / LATENTS
    message = str(error.value)
    assert message.startswith("the decoded frames hold inf or NaN")  # the original error, then the note
    assert f"saved in {path}" in message and f"motif-lite decode {path}" in message
    assert names(tmp_path) == [LATENTS]  # no frame of the PNG sequence


def test_a_png_sequence_that_cannot_be_put_in_place_keeps_the_latents_and_no_frame(pipe, tmp_path, monkeypatch):
    # A frame's move failing midway (a folder or a file in use under its name) used to leave the frames moved so far
    # under their names and the rest hidden until the next run: now nothing, said once, beside the saved latents.
    replace = os.replace

    def failing_third(source, target):
        if Path(target).name == "out_002.png":
            raise OSError(5, "Input/output error")
        return replace(source, target)

    monkeypatch.setattr(os, "replace", failing_third)
    with pytest.raises(MotifLiteError) as error:
        pipe.generate(request(tmp_path))
    message, path = str(error.value), tmp_path / LATENTS
    assert message.startswith(f"{tmp_path / 'out_%03d.png'}: frame out_002.png could not be put in place")
    assert "no frame was kept" in message and f"motif-lite decode {path}" in message
    assert names(tmp_path) == [LATENTS]


def test_a_failed_decode_says_the_python_call_that_makes_the_video(pipe, tmp_path, monkeypatch, caplog):
    # It said only `motif-lite decode FILE`, a command, to a Python caller too: the warning now also gives the
    # Python call, which, run as said (with the file's path for "that file"), writes the video.
    import motif_lite

    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(torch.OutOfMemoryError):
        pipe.generate(request(tmp_path, "fox.mp4"))
    path = tmp_path / "fox.latents.safetensors"
    said = re.search(r"motif-lite decode (\S+) \(in Python: (.*)\)$", caplog.text.strip())
    assert said is not None and said[1] == str(path), caplog.text
    exec(said[2].replace("that file", repr(str(path))), {"motif_lite": motif_lite})
    assert names(tmp_path) == ["fox.latents.safetensors", "fox.mp4"]  # the video, beside the latents it came from


def test_a_second_failure_keeps_the_first_latents(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    for _ in range(2):
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(request(tmp_path, "fox.mp4"))
    assert names(tmp_path) == ["fox.latents-2.safetensors", "fox.latents.safetensors"]


def test_a_failed_save_never_hides_the_decode_error(pipe, tmp_path, monkeypatch, caplog):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    monkeypatch.setattr("motif_lite.io.latents_saving.save_latents", disk_full)
    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(torch.OutOfMemoryError, match="simulated"):
        pipe.generate(request(tmp_path, "fox.mp4"))
    assert "could not be saved" in caplog.text and "No space left on device" in caplog.text
    assert names(tmp_path) == []


def test_ctrl_c_in_decode_stays_ctrl_c_and_saves_the_latents(pipe, tmp_path, caplog):
    def cancel(stage, done, total):
        if stage == "decode" and done == 1:  # one latent frame already written
            raise KeyboardInterrupt

    with caplog.at_level(logging.WARNING, "motif_lite"), pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=cancel)
    assert names(tmp_path) == ["fox.latents.safetensors"]
    assert "motif-lite decode" in caplog.text


def test_a_failure_before_any_step_saves_nothing(pipe, tmp_path):
    def cancel(stage, done, total):
        if stage == "denoise":  # as sampling starts
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(tmp_path, "fox.mp4"), on_progress=cancel)
    assert names(tmp_path) == []  # no step done: nothing worth keeping


def test_keep_latents_false_saves_nothing(pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        pipe.generate(request(tmp_path, "fox.mp4"), keep_latents=False)
    assert names(tmp_path) == []


def test_only_rank_0_of_a_parallel_run_saves(pipe, tmp_path):
    class Rank:  # a parallel run's rank
        def __init__(self, is_main: bool) -> None:
            self.is_main = is_main

    try:
        pipe.parallel = Rank(is_main=False)
        assert pipe._latents_file(request(tmp_path, "fox.mp4"), None, None) is None
        pipe.parallel = Rank(is_main=True)  # negative control
        assert pipe._latents_file(request(tmp_path, "fox.mp4"), None, None) is not None
    finally:
        pipe.parallel = None


def test_latents_file_names():
    assert latents_path("fox.mp4") == Path("fox.latents.safetensors")
    assert latents_path("renders/out_%03d.png") == Path("renders/out.latents.safetensors")
    assert latents_path("shot_%04d_v2.png") == Path("shot_v2.latents.safetensors")
    assert latents_path("%03d.png") == Path("frames.latents.safetensors")


# ------------------------------------------------------------------------------ motif-lite decode


def test_decode_writes_the_frames_and_metadata_of_an_uninterrupted_run(saved, uninterrupted, capsys):
    assert names(saved) == [LATENTS]
    code, out, err = decode_cli(capsys, str(saved / LATENTS))  # -o, -m and the dtype from the file
    assert code == 0, err
    assert f"output: {saved / 'out_%03d.png'} (out_000.png ... out_008.png)" in out  # the files it wrote
    assert "decode" in err  # the progress bar
    expected = frames(uninterrupted)
    assert expected.std() > 10, "degenerate video: the comparison would prove nothing"
    assert np.array_equal(frames(saved), expected)
    assert comment(saved) == comment(uninterrupted)
    (saved / "decoded").mkdir()
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(saved / "decoded" / "out_%03d.png"))
    assert code == 0, err
    assert np.array_equal(frames(saved / "decoded"), expected)


def test_decode_never_replaces_a_video_without_o(saved, tmp_path, capsys):
    folder = tmp_path / "again"
    folder.mkdir()
    (folder / "fox.gif").write_bytes(b"an earlier video")
    latents = read_latents(saved / LATENTS)
    # The same latents, saved for fox.gif in another folder (as a run writing fox.gif would have).
    from motif_lite.io.latents import save_latents

    save_latents(type(latents)(**{**vars(latents), "output": folder / "fox.gif"}), folder / "fox.latents.safetensors")
    code, out, err = decode_cli(capsys, str(folder / "fox.latents.safetensors"))
    assert code == 0, err
    assert f"{folder / 'fox.gif'} exists: writing {folder / 'fox-2.gif'}" in err
    assert (folder / "fox.gif").read_bytes() == b"an earlier video" and (folder / "fox-2.gif").is_file()
    code, _, err = decode_cli(capsys, str(folder / "fox.latents.safetensors"), "--dry-run")  # it said "writing"
    assert code == 0 and f"{folder / 'fox.gif'} exists: a decode would write {folder / 'fox-3.gif'}" in err, err


def latents_for(saved: Path, output: Path) -> Path:
    """The latents of `saved`, saved beside `output` for it (as a run writing `output` would have)."""
    from motif_lite.io.latents import save_latents

    latents = read_latents(saved / LATENTS)
    path = latents_path(output)
    save_latents(type(latents)(**{**vars(latents), "output": output}), path)
    return path


def test_decodes_started_at_the_same_moment_write_different_default_files(saved, tmp_path, capsys, monkeypatch):
    # Both chose fox.gif (nothing was there yet) and the one that finished last replaced the other's video. A decode
    # now claims its default name as it chooses it (an empty file, created exclusively), as a run does.
    latents = latents_for(saved, tmp_path / "fox.gif")
    decode, chosen = decoding.run_decode, []

    def another_decode_starts_meanwhile(job, progress):
        chosen.append(job.output.name)
        if len(chosen) == 1:
            assert cli.main(["decode", str(latents), "--device", "cpu"]) == 0
        return decode(job, progress)

    monkeypatch.setattr(decoding, "run_decode", another_decode_starts_meanwhile)
    code, _, err = decode_cli(capsys, str(latents))
    assert code == 0, err
    assert chosen == ["fox.gif", "fox-2.gif"]
    assert (tmp_path / "fox.gif").stat().st_size > 0 and (tmp_path / "fox-2.gif").stat().st_size > 0


def test_a_decode_given_the_o_another_decode_or_a_run_writes_is_refused_before_any_work(
    saved, tmp_path, capsys, monkeypatch
):
    # Two decodes (or a run and a decode) given one -o both wrote it, and the last to finish replaced the other's
    # video. A decode now claims its -o as a run does (`claim_named_output`): the second is refused in one line.
    from motif_lite.io.output_claims import WRITING_PREFIX, claim_named_output, release_named_claims

    output = tmp_path / "fox.gif"
    refusal = f"another run (process {os.getpid()}) is writing {output}: give this decode another -o"
    decode, second = decoding.run_decode, []

    def another_decode_starts_meanwhile(job, progress):
        second.append(decode_cli(capsys, str(saved / LATENTS), "-o", str(output)))
        return decode(job, progress)

    monkeypatch.setattr(decoding, "run_decode", another_decode_starts_meanwhile)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(output))
    assert code == 0 and len(second) == 1, err
    assert_user_error(second[0][0], second[0][2], refusal)
    assert names(tmp_path) == ["fox.gif"]  # the video; its claim released as the decode ended
    claim_named_output(output)  # a run writing fox.gif (this process holds its claim, as the run's would)
    monkeypatch.setattr(decoding, "load_vae", lambda *args, **kwargs: pytest.fail("loaded the VAE"))
    assert_user_error(*decode_cli(capsys, str(saved / LATENTS), "-o", str(output))[::2], refusal)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(output), "--dry-run")  # claims nothing
    assert code == 0 and (tmp_path / f"{WRITING_PREFIX}fox.gif").exists(), err  # nor frees the run's claim
    release_named_claims([output])
    assert not (tmp_path / f"{WRITING_PREFIX}fox.gif").exists()


@pytest.mark.parametrize(
    "name, said",
    [
        ("fox_{seed}.gif", "has {seed}, which motif-lite does not fill in"),  # another tool's placeholder
        ("fox\r.gif", "holds a carriage return (\\r: a Windows line end"),  # -o "$name.gif", name from a CRLF file
        ("two\nlines.gif", "holds a control character ('\\n')"),  # a line break splits the output: line
    ],
)
def test_a_decode_refuses_the_output_names_a_run_refuses_before_any_work(
    saved, tmp_path, capsys, monkeypatch, name, said
):
    # As `run -o` refuses them (tests/test_scripting.py): a decode wrote the file as named, braces, \r and all.
    monkeypatch.setattr(decoding, "load_vae", lambda *args, **kwargs: pytest.fail("loaded the VAE"))
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / name))
    assert_user_error(code, err, said)
    if "{" in name:  # the way to name it in a script, with decode's flags (it has no -s)
        assert 'instead: -o "$name.mp4"' in err and "-s " not in err, err
    assert list(tmp_path.iterdir()) == []  # no video, nor a claim of its name


@pytest.mark.parametrize("failure", ["before loading", "while decoding"])
def test_a_decode_that_fails_frees_its_default_name(saved, tmp_path, capsys, monkeypatch, failure):
    # The claim (an empty fox.gif) must not outlive a decode that wrote no video: the next one would take fox-2.gif.
    latents = latents_for(saved, tmp_path / "fox.gif")
    if failure == "before loading":
        code, _, err = decode_cli(capsys, str(latents), "--vram", "0.0001")
    else:
        monkeypatch.setattr(decoding, "run_decode", out_of_memory)
        code, _, err = decode_cli(capsys, str(latents))
    assert code != 0 and names(tmp_path) == [latents.name], err
    code, out, err = decode_cli(capsys, str(latents), "--dry-run")  # writes nothing, claims nothing
    assert code == 0 and f"would write: {tmp_path / 'fox.gif'}" in out, err
    assert names(tmp_path) == [latents.name]
    (tmp_path / "fox.gif").touch()  # another decode's claim: this one takes fox-2.gif, and frees that one alone
    monkeypatch.setattr(decoding, "run_decode", out_of_memory)
    code, _, err = decode_cli(capsys, str(latents))
    assert code != 0 and names(tmp_path) == ["fox.gif", latents.name], err


def test_decode_into_a_video_open_in_a_player_writes_beside_it_and_says_so(saved, tmp_path, capsys, monkeypatch):
    """`motif-lite decode -o v.gif` over a file Windows will not replace (open in a player): the video goes to
    v-new.gif, as a run's does, and the `output:` line names that file, not the one left as it was."""
    import os

    replace = os.replace

    def locked(source, target):
        if Path(target).name == "v.gif":
            raise PermissionError(13, "The process cannot access the file", str(target))
        return replace(source, target)

    (tmp_path / "v.gif").write_bytes(b"the earlier video, playing")
    monkeypatch.setattr(os, "replace", locked)
    code, out, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.gif"))
    assert code == 0, err
    assert f"output: {tmp_path / 'v-new.gif'}" in out
    assert (tmp_path / "v.gif").read_bytes() == b"the earlier video, playing" and (tmp_path / "v-new.gif").is_file()


def test_decode_says_the_latents_file_is_kept(saved, tmp_path, capsys):
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.gif"))
    assert code == 0, err
    assert f"note: the latents stay in {saved / LATENTS}: delete it once" in err and (saved / LATENTS).is_file()


def test_decode_says_what_it_wrote_with_frames_in_words(saved, tmp_path, capsys):
    # The video's frames (not its latent frames), with "frame" in the singular for a single-frame video.
    from motif_lite.io.latents import save_latents

    code, out, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.gif"))
    assert code == 0, err
    assert out.startswith("done: 48x32, 9 frames, seed 3, decoded in "), out
    latents = read_latents(saved / LATENTS)
    one = dataclasses.replace(latents, latents=latents.latents[:, :, :1], frames=1, output=tmp_path / "one.gif")
    save_latents(one, tmp_path / "one.latents.safetensors")
    code, out, err = decode_cli(capsys, str(tmp_path / "one.latents.safetensors"))
    assert code == 0, err
    assert out.startswith("done: 48x32, 1 frame, seed 3, decoded in "), out


def test_decoding_the_latents_of_another_seed_differs(pipe, uninterrupted, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        pipe.generate(request(tmp_path, seed=4))
    monkeypatch.undo()
    code, _, err = decode_cli(capsys, str(tmp_path / LATENTS))
    assert code == 0, err
    assert not np.array_equal(frames(tmp_path), frames(uninterrupted))
    assert comment(tmp_path)["seed"] == 4


def test_decode_plans_the_memory_with_a_budget(saved, uninterrupted, tmp_path, capsys):
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "out_%03d.png"), "--vram", "0.5")
    assert code == 0, err
    assert "Memory plan for decoding 48x32x9: budget 0.50 GiB" in err and "4 frames at a time" in err
    # The run decoded one frame at a time (no plan on the CPU): 4 at once gives the same frames.
    assert np.array_equal(frames(tmp_path), frames(uninterrupted))


def test_the_decode_plan_is_a_runs_decode_stage_without_the_transformer():
    vae, bf16, GiB = WanVAEConfig(), torch.bfloat16, 2**30
    run = plan_memory(PlannerInputs(1280, 736, 121, TransformerConfig(), 4 * GiB, 8 * GiB, vae, vae_dtype=bf16), None)
    alone = plan_decode(1280, 736, 121, vae, None, "cuda", bf16)
    decode = next(stage for stage in run.stages if stage.name == "decode")
    assert alone.vae == VAEMode(frame_by_frame=False)  # the fastest mode
    assert alone.stage.activation_bytes == decode.activation_bytes
    assert alone.stage.weight_bytes == decode.weight_bytes - 4 * GiB  # only the VAE's weights
    tight = plan_decode(1280, 736, 121, vae, 3 * GiB, "cuda", bf16)  # exact bands before tiles, as in a run
    assert tight.vae.bands > 1 and tight.vae.tile is None and tight.stage.peak_bytes <= 3 * GiB
    with pytest.raises(MotifLiteError, match=r"needs at least 2\.\d\d GiB .* or decode on the CPU") as refused:
        plan_decode(1280, 736, 121, vae, GiB, "cuda", bf16)
    # The figure that fits, as a run's refusal names it: that --vram plans the decode.
    vram = re.search(r"Or give it more: --vram (\d+\.\d\d) .*or more, which needs [\d.]+ GiB free", str(refused.value))
    assert plan_decode(1280, 736, 121, vae, int(float(vram.group(1)) * GiB), "cuda", bf16).stage.peak_bytes
    with pytest.raises(MotifLiteError):  # and none under it
        plan_decode(1280, 736, 121, vae, int((float(vram.group(1)) - 0.01) * GiB), "cuda", bf16)


def test_decode_loads_the_vae_alone(saved, tmp_path, capsys, monkeypatch, no_weights):
    # no_weights fails any load through the pipeline's own names (pipeline.recipe imports load_transformer by
    # name); decode's load_vae is motif_lite.decoding's, which it leaves alone. The loader's own name as well.
    monkeypatch.setattr("motif_lite.weights.loader.load_transformer", lambda *a, **k: pytest.fail("decode loaded more"))
    video = tmp_path / "v.gif"
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(video))
    assert code == 0, err
    with PIL.Image.open(video) as image:
        assert image.n_frames == SIZE["frames"]


def test_a_dry_run_checks_and_plans_without_loading_or_downloading(saved, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from motif_lite.io import checkpoint_source, gguf_source, hub

    monkeypatch.setattr(decoding, "load_vae", lambda *a, **k: pytest.fail("a dry run loaded the VAE"))
    output = tmp_path / "fox.webm"
    code, out, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(output), "--vram", "0.5", "--dry-run")
    assert code == 0, err
    assert "Memory plan for decoding 48x32x9: budget 0.50 GiB" in out and f"would write: {output}" in out
    assert "float32 on cpu" in out and list(tmp_path.iterdir()) == []
    code, out, err = decode_cli(capsys, str(saved / LATENTS), "--dry-run")
    assert code == 0 and "no memory plan: on the CPU without --vram" in out
    # The run's output, or a free name beside it where frames are there (an earlier test here decoded into it).
    expected = "out-2_%03d.png" if (saved / "out_000.png").exists() else "out_%03d.png"
    assert f"would write: {saved / expected}" in out
    # A VAE that is not at hand: the download command, never a download (online, with an empty cache).
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for module, name in ((checkpoint_source, "snapshot_download"), (gguf_source, "hf_hub_download"), (hub, "HfApi")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a dry run downloaded"))
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-m", "Motif-Technologies/Motif-Video-2B", "--dry-run")
    assert_user_error(code, err, "hf download Motif-Technologies/Motif-Video-2B")


def test_a_video_named_with_o_that_is_there_is_said_to_be_replaced_before_the_decode(saved, tmp_path, capsys):
    # As run says it (test_cli.py): -o replaces a video that is there, said before the decode (time to move it).
    output = tmp_path / "fox.webm"
    output.write_bytes(b"an earlier video")
    said = f"note: {output} is there already: a decode would replace it when its video is done (give -o another name"
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(output), "--dry-run")
    assert code == 0 and said in err, err
    code, out, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(output))
    assert code == 0 and f"note: {output} is there already: this decode replaces it when its video is done" in err, err
    assert err.index("there already") < err.index(" decode: "), err  # before the decode starts
    assert output.read_bytes() != b"an earlier video"
    empty = tmp_path / "claimed.webm"  # the name another run claimed: no video to keep
    empty.touch()
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(empty), "--dry-run")
    assert code == 0 and "there already" not in err, err


def test_a_dry_run_names_the_vae_file_it_would_use(saved, checkpoint, tmp_path, capsys, monkeypatch):
    # The --vae file given, before the one the run used, and never the folder either is linked into; the dtype in
    # words (float32, not torch.float32).
    from safetensors import safe_open

    monkeypatch.setattr(decoding, "load_vae", lambda *a, **k: pytest.fail("a dry run loaded the VAE"))
    ran_with, given = tmp_path / "ran-with.safetensors", tmp_path / "given.safetensors"
    for copy in (ran_with, given):
        shutil.copy(checkpoint / "vae" / "diffusion_pytorch_model.safetensors", copy)
    latents = tmp_path / LATENTS  # the failed decode's latents, as if its run had --vae ran-with.safetensors
    with safe_open(str(saved / LATENTS), "pt") as file:
        metadata = file.metadata()
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    info = {**json.loads(metadata[FORMAT_KEY]), "vae": str(ran_with)}
    save_file(tensors, str(latents), metadata={**metadata, FORMAT_KEY: json.dumps(info)})
    code, out, err = decode_cli(capsys, str(latents), "--dry-run")
    assert code == 0, err
    assert f"VAE: {ran_with}, float32 on cpu\n" in out
    code, out, err = decode_cli(capsys, str(latents), "--vae", str(given), "--dry-run")
    assert code == 0, err
    assert f"VAE: {given}, float32 on cpu\n" in out


@pytest.mark.parametrize("name", ["fox.webm", "fox.webp", "fox.gif", "fox.mkv", "fox.mov", "fox.avi", "fox.MP4"])
def test_each_kind_of_video_given_for_its_latents_is_named_a_video(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x1aE\xdf\xa3 not latents")
    with pytest.raises(LatentsFileError) as error:
        read_latents(tmp_path / name, command="decode")
    assert str(error.value).startswith(f"{tmp_path / name} is a video, not a latents file: give the ")


def test_a_latents_file_the_system_cannot_read_says_why(tmp_path, monkeypatch):
    # The system's reason (as a user who may not read the file gets it), not "not a safetensors file".
    import errno

    import safetensors

    path = tmp_path / LATENTS
    path.write_bytes(b"latents")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(safetensors, "safe_open", denied)
    with pytest.raises(LatentsFileError, match=r"is not a latents file of motif-lite \(.*\): Permission denied$"):
        read_latents(path, command="decode")


# ------------------------------------------------------------------------------ user mistakes


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def no_vae_load(monkeypatch):
    """Mistakes are reported before any weights load."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the VAE was loaded before the check")

    monkeypatch.setattr(decoding, "load_vae", forbidden)


def test_a_missing_file(tmp_path, capsys, no_vae_load):
    code, _, err = decode_cli(capsys, str(tmp_path / "fox.latents.safetensors"))
    assert_user_error(code, err, "no such latents file")


def test_the_name_of_the_video_a_failed_decode_did_not_write_names_its_latents(saved, tmp_path, capsys, no_vae_load):
    # What the user remembers is the video's name; the run wrote no video there, only the latents beside it.
    shutil.copy(saved / LATENTS, tmp_path / "fox.latents.safetensors")
    code, _, err = decode_cli(capsys, str(tmp_path / "fox.mp4"))
    latents = tmp_path / "fox.latents.safetensors"
    assert_user_error(code, err, f"error: no such latents file: {tmp_path / 'fox.mp4'} (that is the video's name; its "
                      f"latents are in fox.latents.safetensors, beside it: motif-lite decode {latents})")  # fmt: skip
    with pytest.raises(LatentsFileError, match=r"beside it: motif-lite run --resume "):
        read_latents(tmp_path / "fox.mp4", command="resume")
    with pytest.raises(LatentsFileError, match=r"beside it\)$"):  # a reader of any kind: the file alone
        read_latents(tmp_path / "fox.mp4")


def test_a_folder_names_the_latents_files_in_it(tmp_path, capsys, no_vae_load):
    code, _, err = decode_cli(capsys, str(tmp_path))
    assert_user_error(code, err, f"{tmp_path} is a folder: give the .latents.safetensors file (a failed decode of",
                      "in this folder: none")  # fmt: skip
    assert "no such" not in err


def test_a_video_given_for_its_latents_names_the_latents_file(tmp_path, capsys, no_vae_load):
    (tmp_path / "fox.mp4").write_bytes(b"\x00\x00\x00 ftypisom not latents")
    code, _, err = decode_cli(capsys, str(tmp_path / "fox.mp4"))
    assert_user_error(code, err, f"error: {tmp_path / 'fox.mp4'} is a video, not a latents file: give the "
                      ".latents.safetensors file a failed decode saved (fox.latents.safetensors; none is beside it: "
                      "a run removes it once its video is written)")  # fmt: skip
    assert "header" not in err  # safetensors' own words ("header too large") say nothing here
    (tmp_path / "fox.latents.safetensors").write_bytes(b"kept")  # only its name is looked at
    code, _, err = decode_cli(capsys, str(tmp_path / "fox.mp4"))
    assert_user_error(code, err, "a failed decode saved (fox.latents.safetensors; beside it)")


@pytest.mark.parametrize("name", ["frame_000.PNG", "still.jpg", "scan.tif", "scan.TIFF", "photo.avif"])
def test_an_image_given_for_its_latents_is_named_an_image(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x89PNG not latents")
    with pytest.raises(LatentsFileError) as error:
        read_latents(tmp_path / name, command="decode")
    assert str(error.value).startswith(f"{tmp_path / name} is an image, not a latents file: give the ")


@pytest.mark.parametrize(("command", "saved_by"), [("resume", "a stopped run"), (None, "a stopped run or a failed")])
def test_the_reader_names_the_latents_file_of_the_command_that_reads_it(tmp_path, command, saved_by):
    (tmp_path / "full.mp4").write_bytes(b"\x00\x00\x00 ftypisom not latents")
    with pytest.raises(LatentsFileError) as error:
        read_latents(tmp_path / "full.mp4", command=command)
    assert f"give the .latents.safetensors file {saved_by}" in str(error.value)
    assert "(full.latents.safetensors; none is beside it" in str(error.value)


def test_a_file_that_is_not_safetensors_gets_a_short_reason(tmp_path, capsys, no_vae_load):
    (tmp_path / "fox.bin").write_bytes(b"\x00\x00\x00 ftypisom not latents")
    code, _, err = decode_cli(capsys, str(tmp_path / "fox.bin"))
    assert_user_error(code, err, "is not a latents file of motif-lite (a failed decode of", "not a safetensors file")
    assert "header" not in err


def test_a_safetensors_file_that_is_not_latents(checkpoint, capsys, no_vae_load):
    weights = checkpoint / "vae" / "diffusion_pytorch_model.safetensors"
    code, _, err = decode_cli(capsys, str(weights))
    assert_user_error(code, err, f"{weights} is not a latents file of motif-lite")


def test_latents_of_another_format_version(saved, tmp_path, capsys, no_vae_load):
    path = tmp_path / "future.latents.safetensors"
    info = {**read_latents(saved / LATENTS).info(), "version": 99}
    save_file({"latents": torch.zeros(1, 16, 3, 4, 6)}, str(path), metadata={FORMAT_KEY: json.dumps(info)})
    code, _, err = decode_cli(capsys, str(path))
    assert_user_error(code, err, "format version 99", "reads versions 1, 2")


def test_latents_that_do_not_fit_the_vae(saved, tmp_path, capsys, no_vae_load):
    path = tmp_path / "other.latents.safetensors"
    info = read_latents(saved / LATENTS).info()
    save_file({"latents": torch.zeros(1, 48, 3, 4, 6)}, str(path), metadata={FORMAT_KEY: json.dumps(info)})
    code, _, err = decode_cli(capsys, str(path), "-o", str(tmp_path / "v.mp4"))
    assert_user_error(code, err, "the latents have 48 channels, but this VAE takes 16")
    assert "with the checkpoint (-m) or VAE file (--vae) of the run" in err and "in Python" not in err  # decode's flags


def _refusal(audience, **changed) -> str:
    """prepare_decode's refusal of latents of 48x32x9 at 16 fps (`changed`: other fields), in `audience`'s words."""
    from motif_lite.errors import Audience
    from motif_lite.io.latents import SavedLatents

    tmp_path, output, vram_gib = changed.pop("tmp_path"), changed.pop("output"), changed.pop("vram_gib", None)
    fields = {"output": tmp_path / "fox.mp4", "width": 48, "height": 32, "frames": 9, "fps": 16.0, "dtype": "float32"}
    saved = SavedLatents(torch.zeros(1, 16, 3, 4, 6), **{**fields, **changed})
    with pytest.raises(MotifLiteError) as error:
        decoding.prepare_decode(
            saved, output, device="cpu", vram_gib=vram_gib, download=False, audience=Audience[audience]
        )
    return str(error.value)


@pytest.mark.parametrize("audience", ["FLAGS", "RUN_OR_PYTHON"])
def test_prepare_decode_names_the_settings_in_its_audiences_words(tmp_path, audience):
    # motif-lite decode passes Audience.FLAGS: its user was told the Python keywords too ("-o (in Python output=)").
    for i in range(2):
        PIL.Image.new("RGB", (48, 32)).save(tmp_path / f"clip_{i:03d}.png")
    clip = tmp_path / "clip_%03d.png"
    python = audience == "RUN_OR_PYTHON"
    said = {
        "--vram (in Python vram_gib) must be" if python else "--vram must be": {"vram_gib": -1.0},
        "give -o (in Python output=) another name" if python else "give -o another name": {
            "output": clip, "clip": str(clip)
        },
        "give -o (in Python output=) a .webp" if python else "give -o a .webp": {
            "output": tmp_path / "v.gif", "fps": 60.0
        },
        "now with -m or --vae (in Python model= or vae_file=)" if python else "now with -m or --vae)": {
            "output": tmp_path / "v.mp4", "model": str(tmp_path / "gone")
        },
    }  # fmt: skip
    for words, changed in said.items():
        message = _refusal(audience, tmp_path=tmp_path, **{"output": tmp_path / "v.mp4", **changed})
        assert words in message and ("in Python" in message) == python, message


def test_a_bad_output_is_named_before_loading(saved, tmp_path, capsys, no_vae_load):
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.avi"))
    assert_user_error(code, err, "unsupported output format '.avi'")


def test_one_png_for_several_frames_offers_no_frame_count_decode_cannot_take(saved, tmp_path, capsys, no_vae_load):
    # It ended "(or ask for one frame: --video-frames 1)", a flag of run: a decode's frames are its latents'.
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.png"))
    assert_user_error(code, err, "v.png is one image, and this video has 9 frames: for a PNG per frame put a frame-")
    assert "--video-frames" not in err and err.rstrip().endswith("v_%03d.png"), err


def test_a_gif_at_a_frame_rate_it_cannot_play_is_named_before_loading(pipe, tmp_path, capsys, no_vae_load):
    with pytest.MonkeyPatch.context() as patch:  # a 60 fps run whose decode failed
        patch.setattr(pipe.vae, "decode_frames", out_of_memory)
        with pytest.raises(torch.OutOfMemoryError):
            pipe.generate(dataclasses.replace(request(tmp_path, "fast.mp4"), fps=60))
    latents = str(tmp_path / "fast.latents.safetensors")
    code, _, err = decode_cli(capsys, latents, "-o", str(tmp_path / "fast.gif"))
    assert_user_error(code, err, "fps 60 does not fit a GIF", "frame rate: give -o a .webp")
    assert "--fps" not in err and "in Python" not in err  # decode has no such flag, nor a Python keyword


def test_a_decode_too_long_for_a_webp_is_named_before_loading(tmp_path):
    # 129 frames of 6e-5 fps (each frame near the longest a WebP stores) pass its 2^31 ms of running time: said
    # before the VAE loads, not after the whole decode.
    message = _refusal("FLAGS", tmp_path=tmp_path, output=tmp_path / "v.webp", frames=129, fps=6e-5)
    assert message == "129 frames at 6e-05 fps last longer than a WebP can (2^31 ms, 24.9 days): write an .mp4"


def test_a_checkpoint_that_moved_since_the_run(saved, tmp_path, capsys, no_vae_load):
    path = tmp_path / "moved.latents.safetensors"
    info = {**read_latents(saved / LATENTS).info(), "model": str(tmp_path / "gone")}
    save_file({"latents": torch.zeros(1, 16, 3, 4, 6)}, str(path), metadata={FORMAT_KEY: json.dumps(info)})
    code, _, err = decode_cli(capsys, str(path), "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, f"no such checkpoint directory: {tmp_path / 'gone'}", "with -m or --vae")


def test_a_vae_file_of_yours_that_is_missing_is_not_blamed_on_the_latents_file(saved, tmp_path, capsys, no_vae_load):
    missing = tmp_path / "vae.safetensors"
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vae", str(missing), "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, f"error: the vae file {missing} does not exist")
    assert "as the latents file says" not in err  # the run used the checkpoint's VAE: this file is the user's


def test_a_vae_file_of_another_component_is_named_as_run_names_it(saved, checkpoint, tmp_path, capsys, no_vae_load):
    transformer = checkpoint / "transformer" / "diffusion_pytorch_model.safetensors"
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vae", str(transformer), "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, f"error: {transformer} is not the VAE: it holds the transformer's tensors")
    assert "linked" not in err and "unexpected" not in err  # the user's file, not the link made for it


def test_a_truncated_vae_file_of_yours_is_named_not_its_link(saved, checkpoint, tmp_path, capsys, no_vae_load):
    cut = tmp_path / "vae.safetensors"
    cut.write_bytes((checkpoint / "vae" / "diffusion_pytorch_model.safetensors").read_bytes()[:-100])
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vae", str(cut), "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, f"error: {cut}", "it is your file")
    assert "linked" not in err


def test_a_decode_over_the_budget_on_the_cpu_says_what_vram_does_there(saved, tmp_path, capsys, no_vae_load):
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vram", "0.00001", "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, "needs at least", "--vram limits a decode on the CPU too: leave it out there")
    assert "(no limit). Or give it more: --vram 0.0" in err and "free on the GPU" not in err  # the figure, on the CPU
    assert "or decode on the CPU" not in err  # it is on the CPU already
    assert "in Python" not in err  # decode's user gives flags


def test_a_python_decode_over_the_budget_on_the_cpu_names_vram_gib(saved, tmp_path, no_vae_load):
    # prepare_decode told a Python caller, who passed vram_gib=, that "--vram limits a decode on the CPU too".
    latents = read_latents(saved / LATENTS)
    with pytest.raises(MotifLiteError) as error:
        decoding.prepare_decode(latents, tmp_path / "v.gif", device="cpu", vram_gib=0.00001, download=False)
    assert "--vram (in Python vram_gib) limits a decode on the CPU too: leave it out there (no limit). Or give it " \
        "more: --vram 0.0" in str(error.value)  # fmt: skip
    assert re.search(r"Or give it more: --vram ([\d.]+) \(in Python vram_gib=\1\) or more\.$", str(error.value))


@pytest.fixture
def on_a_full_gpu(monkeypatch):
    """A machine with one 8 GiB GPU of which 1 MiB is free: too little for any plan of a decode."""
    monkeypatch.setattr(decoding, "resolve_device", lambda device: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 8 * 2**30))


def test_a_python_decode_over_the_free_memory_names_the_cpu_as_python_gives_it(saved, tmp_path, on_a_full_gpu):
    # The advice named "--device cpu" to a Python caller, whose prepare_decode takes device="cpu".
    with pytest.raises(MotifLiteError) as error:
        decoding.prepare_decode(read_latents(saved / LATENTS), tmp_path / "v.gif", download=False)
    message = str(error.value)
    assert 'free device memory (close other programs using it) or decode on the CPU with --device cpu (in Python ' \
        'device="cpu"). Or give it more: --vram ' in message  # fmt: skip
    assert re.search(r"Or give it more: --vram ([\d.]+) \(in Python vram_gib=\1\) or more, which needs", message)
    # The plan without a budget, as a Python caller leaves it out too (it named --vram alone).
    assert "memory). Without --vram (in Python vram_gib) a run plans for the free memory / " in message


def test_decode_over_the_free_memory_names_the_cpu_by_its_flag(saved, tmp_path, capsys, on_a_full_gpu, no_vae_load):
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, "free device memory (close other programs using it) or decode on the CPU with "
                      "--device cpu. Or give it more: --vram ")  # fmt: skip
    assert "in Python" not in err and "memory). Without --vram a run plans for the free memory / " in err


def test_a_tiny_budget_is_said_in_numbers_that_differ(saved, tmp_path, capsys, no_vae_load):
    # Two decimals of GiB said "needs at least 0.00 GiB ... but the budget is 0.00 GiB".
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vram", "0.001", "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, f"but the budget is {memory_size(int(0.001 * 2**30))}")  # 1.0 MiB
    needed = float(re.search(r"needs at least ([\d.]+) MiB", err).group(1))
    assert needed > 0.001 * 1024 and f"needs at least {memory_size(int(0.001 * 2**30))}" not in err


def test_a_gpu_decode_over_the_vram_given_says_to_give_more(saved, tmp_path, monkeypatch, no_vae_load):
    # The budget is the user's --vram, not the GPU's free memory: more of it, or the CPU, is the way out.
    monkeypatch.setattr(decoding, "resolve_device", lambda device: torch.device("cuda"))  # as on a machine with one
    with pytest.raises(MotifLiteError) as error:
        decoding.prepare_decode(read_latents(saved / LATENTS), tmp_path / "v.gif", device="cuda", vram_gib=0.00001)
    assert "needs at least" in str(error.value)
    assert ': decode on the CPU with --device cpu (in Python device="cpu"). Or give it more: --vram 0.0' in str(
        error.value
    )  # the figure, each setting as a Python caller gives it too


def test_a_gpu_decode_over_the_vram_given_names_the_flags_alone(saved, tmp_path, capsys, monkeypatch, no_vae_load):
    monkeypatch.setattr(decoding, "resolve_device", lambda device: torch.device("cuda"))  # as on a machine with one
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "--vram", "0.00001", "-o", str(tmp_path / "v.gif"))
    assert_user_error(code, err, ": decode on the CPU with --device cpu. Or give it more: --vram 0.0")
    assert "in Python" not in err


def test_a_gpu_decode_takes_a_vram_over_the_gpus_memory_as_run_does(saved, tmp_path, monkeypatch, no_vae_load):
    # decode took any --vram as the budget: --vram 8000 (megabytes meant) on an 8 GiB GPU planned a decode the GPU
    # cannot hold. Now run's rules: the free memory instead, and a --vram whose reserve is over the GPU lowered.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(decoding, "resolve_device", lambda device: torch.device("cuda"))  # as on a machine with one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 8 * 2**30))
    latents = read_latents(saved / LATENTS)
    with pytest.warns(UserWarning, match=r"--vram 8000 GiB \(8192000 MiB\) is more than this GPU's whole memory"):
        job = decoding.prepare_decode(latents, tmp_path / "v.gif", device="cuda", vram_gib=8000, download=False)
    assert job.plan.budget_bytes == int(6 * 2**30 / RESERVED_RATIO)
    with pytest.warns(UserWarning, match="give --vram 7.40 or less"):  # 8000MB: 7.81 GiB, 8.44 GiB reserved
        job = decoding.prepare_decode(latents, tmp_path / "v.gif", device="cuda", vram_gib=7.8125, download=False)
    assert job.plan.budget_bytes == int(8 * 2**30 / RESERVED_RATIO)


def test_decode_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        cli.main(["decode", "--help"])
    out = capsys.readouterr().out
    assert "motif-lite decode fox.latents.safetensors" in out and "--vram" in out and "--vae" in out


# ------------------------------------------------------------------------------ motif-lite run


def run_args(root: Path, output: Path) -> list[str]:
    return [
        "run",
        *("-m", str(root), "-p", PROMPT, "-n", NEGATIVE, "-o", str(output), "-s", "3"),
        *("-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2"),
        *("--dtype", "fp32", "--device", "cpu", "--kernels", "torch"),
    ]


def test_run_out_of_memory_in_decode_says_how_to_decode_without_a_traceback(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(WanVAE, "decode_frames", out_of_memory)
    code = cli.main(run_args(checkpoint, tmp_path / "out_%03d.png"))
    err = capsys.readouterr().err
    assert code == cli.EXIT_OUT_OF_MEMORY and "Traceback" not in err, err
    path = tmp_path / LATENTS
    assert f"warning: the denoised latents are saved in {path}" in err
    assert f"motif-lite decode {path}" in err and "error: out of device memory: CUDA out of memory" in err
    # What to do about it: decode the kept latents alone (the run's --vram advice would sample again).
    assert err.strip().splitlines()[-1].startswith(f"the sampling is done and kept: make the video with motif-lite "
                                                   f"decode {path}, which loads the VAE alone")  # fmt: skip
    assert names(tmp_path) == [LATENTS]


def test_decode_sets_the_allocator_config_as_run_does(monkeypatch, tmp_path, allocator_config_seen):
    # Its memory plan assumes growable allocator segments, as run's does; a value the user set wins.
    missing = ["decode", str(tmp_path / "none.latents.safetensors")]  # refused once the command has started
    assert cli.main(missing) == cli.EXIT_USER_ERROR
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "backend:native")
    assert cli.main(missing) == cli.EXIT_USER_ERROR
    assert allocator_config_seen == ["expandable_segments:True", "backend:native"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /sys")
def test_an_output_folder_no_file_can_be_created_in_is_refused_before_loading(saved, capsys, no_vae_load):
    # Root passes the permission bits of /sys: the decode ran, then ffmpeg failed to write there.
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", "/sys/x.mp4")
    assert_user_error(code, err, "output directory /sys is not writable: no file can be created there (")


@pytest.mark.parametrize("stop", [KeyboardInterrupt, torch.OutOfMemoryError], ids=["ctrl-c", "out-of-memory"])
def test_a_decode_that_stops_says_the_latents_stay(saved, tmp_path, capsys, monkeypatch, stop):
    """SIGTERM, Ctrl-C or out of memory while `decode` writes: the file is untouched and the message says how to
    try again."""

    def stopped(*args, **kwargs):
        raise stop("simulated")

    monkeypatch.setattr("motif_lite.decoding.run_decode", stopped)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"))
    assert code in (cli.EXIT_INTERRUPTED, cli.EXIT_OUT_OF_MEMORY)
    assert f"note: the latents stay in {saved / LATENTS}: decode them again with motif-lite decode" in err
    assert read_latents(saved / LATENTS).denoised and not (tmp_path / "fox.mp4").exists()


def test_a_planned_decode_out_of_memory_names_its_budget_and_the_vram_that_plans_less(
    saved, tmp_path, capsys, monkeypatch
):
    # It said "give a smaller budget (--vram GiB)" without a figure, as a run did.
    from motif_lite.cli.decode import decode_out_of_memory_advice  # before it is replaced below

    monkeypatch.setattr("motif_lite.decoding.run_decode", out_of_memory)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"), "--vram", "0.5")
    assert code == cli.EXIT_OUT_OF_MEMORY and "the decode's memory plan had a budget of 0.50 GiB (--vram)" in err
    assert "give a smaller budget (--vram GiB)" not in err, err  # the advice without figures

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the advice")

    monkeypatch.setattr("motif_lite.cli.decode.decode_out_of_memory_advice", broken)  # the error is said all the same
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"), "--vram", "0.5")
    assert code == cli.EXIT_OUT_OF_MEMORY and "give a smaller budget (--vram GiB)" in err and "latents stay" in err
    # A 720p video's decode (the tiny VAE's): the --vram under its peak, and what that plan does.
    for dtype in (torch.float32, torch.bfloat16):  # planned again as it was planned, in its dtype
        job = decoding.prepare_decode(
            read_latents(saved / LATENTS), tmp_path / "v.mp4", vram_gib=0.5, dtype=dtype, download=False
        )
        assert decoding.replanned(job, 0.5) == job.plan
    job = dataclasses.replace(job, saved=dataclasses.replace(job.saved, width=1280, height=736, frames=121))
    job = dataclasses.replace(job, plan=decoding.replanned(job, 4))
    advice = decode_out_of_memory_advice(job, vram_given=True)
    lower = math.floor((job.plan.stage.peak_bytes - 1) / 2**30 * 100) / 100
    smaller = decoding.replanned(job, lower)
    said = (
        f"--vram {lower:.2f} (just under that peak) plans it in less: est. peak {memory_size(smaller.stage.peak_bytes)}"
    )
    assert f"{said}, {smaller.stage.chunks}" in advice, advice  # what the smaller plan does, not this one
    assert smaller.stage.peak_bytes < job.plan.stage.peak_bytes and smaller.stage.chunks != job.plan.stage.chunks
    # Down the plans to the smallest: no --vram plans less, and the CPU is named.
    while True:
        try:
            job = dataclasses.replace(job, plan=decoding.replanned(job, lower))
        except MotifLiteError:
            break
        lower = math.floor((job.plan.stage.peak_bytes - 1) / 2**30 * 100) / 100
    assert decode_out_of_memory_advice(job, vram_given=True).endswith(
        ". No plan of this decode needs less: decode on the CPU with --device cpu"  # as the planner's advice says it
    )
    # A peak no --vram is under: the CPU, in the same words.
    tiny = dataclasses.replace(job.plan, stage=dataclasses.replace(job.plan.stage, peak_bytes=2**20))
    advice = decode_out_of_memory_advice(dataclasses.replace(job, plan=tiny), vram_given=True)
    assert advice.endswith("or the estimate fell short; decode on the CPU with --device cpu"), advice


def test_a_decode_out_of_memory_on_a_shared_gpu_names_what_others_hold_and_a_vram_that_fits_beside_them(
    saved, tmp_path, monkeypatch
):
    # It said "another program may have taken GPU memory since" and named the --vram just under the peak, which runs
    # out again where other processes now hold more than that leaves; run's advice names what they hold.
    from motif_lite.cli.decode import decode_out_of_memory_advice

    job = decoding.prepare_decode(read_latents(saved / LATENTS), tmp_path / "v.mp4", vram_gib=0.5, download=False)
    job = dataclasses.replace(job, saved=dataclasses.replace(job.saved, width=1280, height=736, frames=121))
    job = dataclasses.replace(job, plan=decoding.replanned(job, 4), device=torch.device("cuda"))
    # An 8 GiB GPU: 1 GiB free; this process's allocator reserves 0.5 GiB of which its tensors hold 0.25 GiB.
    free_now, ours = 2**30, 2**29
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_now, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: ours)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: ours // 2)
    room = free_now + ours  # what a decode started again has beside the other processes
    assert job.plan.stage.peak_bytes * 1.08 > room  # the plan's reserve no longer fits beside them
    advice = decode_out_of_memory_advice(job, vram_given=True)
    assert f"other processes hold {memory_size(8 * 2**30 - free_now - ours)} (nvidia-smi lists them" in advice, advice
    assert f"which leaves a decode {memory_size(room)}: close what holds it" in advice, advice
    named = float(advice.split("--vram ")[1].split(" ")[0])
    assert named * 2**30 * 1.08 <= room < (named + 0.01) * 2**30 * 1.08, advice
    assert f"--vram {named:.2f} (what the GPU has left now / 1.08) plans it in less" in advice, advice
    assert "another program may have taken" not in advice, advice
    # Room enough beside them: the advice is as before, the --vram just under the peak.
    free_now = 7 * 2**30
    advice = decode_out_of_memory_advice(job, vram_given=True)
    assert "other processes hold" not in advice and "(just under that peak) plans it in less" in advice, advice


@pytest.mark.parametrize("left", ["some", "none"])
def test_a_decode_out_of_memory_where_others_left_less_than_its_smallest_plan_says_both_ways_out(
    saved, tmp_path, monkeypatch, left
):
    # It said "close what holds it, or plan for what is left. No plan of this decode needs less: decode on the CPU"
    # where smaller plans exist but none fits what the other processes left, and with nothing left only the CPU; a
    # run's advice says what the smallest plan needs and both ways out.
    from motif_lite.cli.decode import decode_out_of_memory_advice
    from motif_lite.errors import MemoryBudgetError
    from motif_lite.runtime.budget_advice import free_for

    job = decoding.prepare_decode(read_latents(saved / LATENTS), tmp_path / "v.mp4", vram_gib=0.5, download=False)
    job = dataclasses.replace(job, saved=dataclasses.replace(job.saved, width=1280, height=736, frames=121))
    job = dataclasses.replace(job, plan=decoding.replanned(job, 4), device=torch.device("cpu"))
    with pytest.raises(MemoryBudgetError, match="needs at least") as refused:  # the planner's own figure
        decoding.replanned(job, 0.01)
    least = refused.value.smallest_vram_gib
    assert least is not None and f"--vram {least:.2f} (in Python vram_gib={least:.2f}) or more" in str(refused.value)
    smallest_reserve = int(free_for(least) * 2**30)
    assert least is not None and smallest_reserve < job.plan.stage.peak_bytes  # smaller plans than this one exist
    job = dataclasses.replace(job, device=torch.device("cuda"))
    # An 8 GiB GPU whose other processes left this decode half of what its smallest plan needs, or nothing.
    ours = 0 if left == "none" else smallest_reserve // 4
    free_now = 0 if left == "none" else smallest_reserve // 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_now, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: ours)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: ours // 2)
    room = memory_size(free_now + ours)
    advice = decode_out_of_memory_advice(job, vram_given=True)
    assert advice.endswith(
        f"which leaves a decode {room}. What the GPU leaves a decode now ({room}) is under this decode's smallest "
        f"plan, --vram {least:.2f}, which needs {free_for(least):.2f} GiB free: close what holds GPU memory, or "
        "decode on the CPU with --device cpu"
    ), advice
    assert "No plan of this decode needs less" not in advice and "plan for what is left" not in advice, advice


def test_the_note_of_a_stopped_decode_comes_after_its_progress_bar_is_closed(saved, tmp_path, capsys, monkeypatch):
    # It was printed while the bar was open, then the bar closed: on a terminal it ran on from the bar's line.
    from motif_lite.progress import ProgressBars

    def stopped(job, progress):
        progress.stage = "decode"  # an open bar, as the real one would have
        raise KeyboardInterrupt

    def close(self):
        if self.stage is not None:
            print("<bar closed>", file=sys.stderr)
        self.stage = None

    monkeypatch.setattr("motif_lite.decoding.run_decode", stopped)
    monkeypatch.setattr(ProgressBars, "close", close)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_INTERRUPTED and "<bar closed>\nnote: the latents stay in " in err, err


def test_latents_from_another_machine_ask_for_o_when_their_folder_is_not_here(saved, tmp_path, capsys):
    from safetensors import safe_open

    with safe_open(str(saved / LATENTS), "pt") as file:
        metadata = file.metadata()
        tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    elsewhere = tmp_path / "not-here" / "out_%03d.png"
    copied = tmp_path / LATENTS
    info = {**json.loads(metadata[FORMAT_KEY]), "output": str(elsewhere)}
    save_file(tensors, str(copied), metadata={**metadata, FORMAT_KEY: json.dumps(info)})
    code, _, err = decode_cli(capsys, str(copied), "--dry-run")
    assert_user_error(code, err, f"wrote to {elsewhere}, and that folder is not here: give -o for the video")
    code, _, err = decode_cli(capsys, str(copied), "-o", str(tmp_path / "out_%03d.png"), "--dry-run")
    assert code == 0, err


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="POSIX signals")
def test_a_decode_stopped_by_a_hangup_keeps_its_exit_code(saved, tmp_path, capsys, monkeypatch):
    """SIGHUP when the SSH session drops: the terminal takes no more lines, and the note that cannot be written must
    not turn the decode's exit 129 into a traceback's 1."""
    import errno
    import io
    import signal
    import sys

    class HungUpTerminal(io.TextIOBase):
        def write(self, text: str) -> int:
            raise OSError(errno.EIO, "Input/output error")

    def hung_up(*args, **kwargs):
        monkeypatch.setattr(sys, "stderr", HungUpTerminal())
        raise cli.Terminated(signal.SIGHUP)

    monkeypatch.setattr("motif_lite.decoding.run_decode", hung_up)
    code, _, _ = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"))
    assert code == 128 + signal.SIGHUP


def test_an_output_on_a_full_disk_is_refused_before_the_vae_loads(saved, tmp_path, capsys, monkeypatch, no_vae_load):
    # The decode ran to its end (37 s for a small clip on the CPU, minutes at 720p) and failed writing the video.
    full = tmp_path / "full"
    full.mkdir()
    real = shutil.disk_usage

    def usage(path):
        found = real(path)
        return found._replace(free=20_480) if Path(path) == full else found

    monkeypatch.setattr(shutil, "disk_usage", usage)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(full / "fox.webp"))
    assert_user_error(
        code, err, f"the disk of output directory {full} is full (20.5 kB free)", "write the video to another disk (-o)"
    )  # decode's flag alone (it said "-o (in Python output=)"); a Python caller's names both
    with pytest.raises(MotifLiteError, match=r"write the video to another disk \(-o \(in Python output=\)\)"):
        decoding.prepare_decode(read_latents(saved / LATENTS), full / "fox.webp", download=False)
    assert list(full.iterdir()) == []


@pytest.mark.parametrize("budget", [[], ["--vram", "4"]], ids=["no plan", "a plan"])
def test_run_out_of_memory_in_decode_advises_the_decode_not_the_run_again(
    checkpoint, tmp_path, capsys, monkeypatch, budget
):
    # The advice was the run's: "give a smaller budget (--vram GiB)" without a plan, "--vram X gives the next plan"
    # (or "make a smaller video") with one. Followed, the same command again samples the video again, for hours at
    # 720p on a small GPU, while `motif-lite decode` of the kept latents plans the decode alone.
    monkeypatch.setattr(WanVAE, "decode_frames", out_of_memory)
    code = cli.main([*run_args(checkpoint, tmp_path / "fox.mp4"), *budget])
    err = capsys.readouterr().err
    path = tmp_path / "fox.latents.safetensors"
    assert code == cli.EXIT_OUT_OF_MEMORY and read_latents(path).denoised, err
    advice = err.strip().splitlines()[-1]
    assert advice.startswith(f"the sampling is done and kept: make the video with motif-lite decode {path}"), err
    assert "--vram GiB" in advice and "would sample the video again" in advice
    assert "GPU" not in advice and "--device cpu" not in advice  # a CPU run: the GPU's advice reads oddly there
    assert "gives" not in err and "smaller budget" not in err and "smaller video" not in err


def test_an_output_folder_removed_during_the_run_is_named_as_gone(pipe, tmp_path):
    # It said "ffmpeg could not write .../gone/fox.mp4: No such file or directory", which reads as a missing file.
    folder = tmp_path / "gone"
    folder.mkdir()

    def remove_the_folder(stage, done, total):
        if stage == "decode" and done == 1 and folder.exists():  # ffmpeg has the first frames
            shutil.rmtree(folder)

    with pytest.raises(MotifLiteError) as error:
        pipe.generate(request(folder, "fox.mp4"), on_progress=remove_the_folder)
    assert f"could not write {folder / 'fox.mp4'}: its folder {folder} is no longer there" in str(error.value)


def test_a_python_generate_out_of_memory_in_decode_speaks_of_the_same_run_not_a_command(pipe, tmp_path, monkeypatch):
    # The note said "running this command again would sample the video again": a Python caller, who reads the same
    # note on the error, typed no command.
    monkeypatch.setattr(pipe.vae, "decode_frames", out_of_memory)
    with pytest.raises(torch.OutOfMemoryError) as error:
        pipe.generate(request(tmp_path, "fox.mp4"))
    advice = error.value.__notes__[-1]
    assert advice.startswith(f"the sampling is done and kept: make the video with motif-lite decode {tmp_path}"), advice
    assert advice.endswith("the same run again would sample the video again") and "command" not in advice, advice


@pytest.mark.parametrize(
    ("device", "said", "unsaid"),
    [
        ("cuda:0", ["for the GPU memory free then", "--device cpu to use none of the GPU's"], []),
        ("mps", ["less mps memory", "--device cpu to use none of it"], ["GPU memory free", "GPU's"]),
        ("cpu", ["loads the VAE alone", "--vram GiB"], ["GPU", "--device cpu"]),
    ],
)
def test_the_decode_out_of_memory_advice_speaks_of_the_device_the_run_used(device, said, unsaid):
    """It spoke of "the GPU memory free then" and "--device cpu" on every device, though `motif-lite decode` plans
    for free memory only on CUDA, and a CPU run is on the CPU already (revS4 finding 4)."""
    from motif_lite.keeping import advise_decode_out_of_memory

    error = torch.OutOfMemoryError("out of memory (simulated)")
    advise_decode_out_of_memory(error, Path("/videos/fox.latents.safetensors"), torch.device(device))
    advice = error.__notes__[-1]
    assert advice.startswith("the sampling is done and kept: make the video with motif-lite decode /videos/fox.")
    assert advice.endswith("the same run again would sample the video again"), advice
    assert all(words in advice for words in said) and not any(words in advice for words in unsaid), advice


def test_an_unplanned_decode_out_of_memory_is_advised_for_its_device_not_a_gpus_plan(
    saved, tmp_path, capsys, monkeypatch
):
    # Without a memory plan (the CPU, or MPS, without --vram) it was told "the memory plan is made from the GPU's free
    # memory at the start", of a plan and a GPU it did not have; `run --resume` of a finished sampling decodes so too.
    from motif_lite.cli.decode import unplanned_advice

    monkeypatch.setattr("motif_lite.decoding.run_decode", out_of_memory)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_OUT_OF_MEMORY and "Traceback" not in err, err
    assert unplanned_advice(torch.device("cpu")) in err and "GPU's free memory" not in err, err
    assert "no limit): --vram GiB plans it" in err and "latents stay" in err, err
    assert "--device cpu uses none of it" in unplanned_advice(torch.device("mps"))


def test_the_note_after_a_failed_decode_names_the_flags_for_its_device(saved, tmp_path, capsys, monkeypatch):
    # On the CPU it said "--device cpu or --vram GiB for less GPU memory", as on a GPU.
    from motif_lite.cli.decode import _less_memory

    monkeypatch.setattr("motif_lite.decoding.run_decode", out_of_memory)
    code, _, err = decode_cli(capsys, str(saved / LATENTS), "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_OUT_OF_MEMORY and "(-o for another disk, --vram GiB for less memory)" in err, err
    assert "GPU" not in err and "--device cpu" not in err, err
    assert _less_memory(torch.device("cuda", 0)) == "--device cpu or --vram GiB for less GPU memory"
    assert _less_memory(torch.device("mps")) == "--device cpu or --vram GiB for less mps memory"


def test_a_decode_that_finishes_a_resumed_run_says_its_output_last(tmp_path):
    # The run summary's `output:` line is its last, which a script reads; the line on the resumed run comes before
    # it (`run --resume` of a finished sampling), as a resumed run's summary says it.
    from types import SimpleNamespace

    from motif_lite.cli.decode import decoded_lines
    from motif_lite.io.staging import described_output

    saved = SimpleNamespace(video_metadata={"seed": 3}, width=48, height=32, frames=5, fps=24.0)
    job = SimpleNamespace(saved=saved, clip=None, device=torch.device("cpu"), frames=5)
    lines = decoded_lines(job, tmp_path / "fox.mp4", 1.0, "resumed: the decode only")
    assert lines[0].startswith("done: 48x32, 5 frames, seed 3, decoded in 1.0s on cpu"), lines
    assert lines[1:] == ["resumed: the decode only", f"output: {described_output(tmp_path / 'fox.mp4', 5)}"]


def test_a_runs_output_this_process_may_not_read_is_no_video_made(tmp_path, monkeypatch):
    # A file at the run's output that cannot be read (its permissions) tells nothing of the video: not made, as for
    # no file, rather than an OSError out of a later run's look at its earlier runs.
    from types import SimpleNamespace

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("motif_lite.io.settings_file.read_settings", unreadable)
    assert decoding.video_made(SimpleNamespace(output=tmp_path / "fox.mp4", video_metadata={})) is False
