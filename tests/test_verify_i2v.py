"""`motif-lite verify -i IMAGE` on the tiny checkpoint in float32: both image-to-video pipelines match at every stage
(the first frame's SigLIP embeddings and conditioning latents included); a setting of ours forced wrong on the image
path is named at its stage; an image run would refuse is refused the same way, before anything loads."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("diffusers")
from motif_lite import cli  # noqa: E402

SMALL = ["-W", "48", "-H", "32", "--video-frames", "9", "--steps", "2", "-n", "blurry, static", "--device", "cpu"]
STAGES = ("text", "image", "conditioning", "transformer", "guidance", "vae", "frames")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("first") / "first.png"
    pixels = np.random.default_rng(4).integers(0, 256, (37, 53, 3), dtype=np.uint8)  # resized by both sides
    PIL.Image.fromarray(pixels).save(path)
    return path


def run_verify(capsys, *args: str) -> tuple[int, list[str], str]:
    code = cli.main(["verify", *args, *SMALL])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out.splitlines(), captured.err


def stage_lines(lines: list[str]) -> dict[str, str]:
    return {line.split()[0]: line for line in lines if line.split() and line.split()[0] in STAGES}


def test_image_to_video_matches_at_every_stage(checkpoint, first_frame, capsys):
    code, lines, err = run_verify(capsys, "-m", str(checkpoint), "-i", str(first_frame))
    stages = stage_lines(lines)
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert "MotifVideoImage2VideoPipeline" in lines[0] and f"first frame {first_frame}" in lines[0]
    assert list(stages) == list(STAGES) and all(" match " in line for line in stages.values())
    progress = [line for line in err.splitlines() if line.startswith("verify: stage")]
    assert progress[:3] == [
        "verify: stage 1/7 text: match; next: image",
        "verify: stage 2/7 image: match; next: conditioning",
        "verify: stage 3/7 conditioning: match; next: transformer",
    ], progress


@pytest.mark.parametrize(
    ("force", "stage"),
    [
        ("image_mean_shift=0.5", "image"),  # SigLIP's normalization: the embeddings differ, the latents do not
        ("latents_mean_shift=0.5", "conditioning"),  # the first frame's latents are normalized with it
    ],
)
def test_a_setting_forced_wrong_on_the_image_path_is_named_at_its_stage(checkpoint, first_frame, capsys, force, stage):
    code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", str(first_frame), "--force", force)
    stages = stage_lines(lines)
    assert code == 1 and lines[-1] == f"verdict: mismatch at {stage}", lines
    assert "MISMATCH" in stages[stage] and "MISMATCH" in stages["frames"]
    assert all(" match " in stages[earlier] for earlier in STAGES[: STAGES.index(stage)])


def refusal(capsys, command: list[str]) -> str:
    assert cli.main(command) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "Traceback" not in err and "loading" not in err, err
    return err


@pytest.mark.parametrize("flag", ["-i", "--image", "--init-img"])
def test_an_image_run_refuses_is_refused_the_same_way_before_anything_loads(checkpoint, tmp_path, capsys, flag):
    (tmp_path / "notes.png").write_text("not an image")
    for image in (tmp_path / "nothere.png", tmp_path / "notes.png"):
        run = refusal(capsys, ["run", "-m", str(checkpoint), "-p", "a fox", "-i", str(image), "--dry-run", *SMALL])
        assert refusal(capsys, ["verify", "-m", str(checkpoint), flag, str(image), *SMALL]) == run


def test_forcing_the_image_path_without_an_image_is_refused_before_anything_loads(checkpoint, capsys):
    err = refusal(capsys, ["verify", "-m", str(checkpoint), "--force", "image_mean_shift=0.5", *SMALL])
    assert "give one with -i FILE" in err


def test_a_checkpoint_without_the_image_preprocessor_is_refused_before_anything_loads(
    checkpoint, first_frame, tmp_path, capsys
):
    root = shutil.copytree(checkpoint, tmp_path / "ckpt")
    shutil.rmtree(root / "feature_extractor")
    index = json.loads((root / "model_index.json").read_text())
    index.pop("feature_extractor", None)
    (root / "model_index.json").write_text(json.dumps(index))
    err = refusal(capsys, ["verify", "-m", str(root), "-i", str(first_frame), *SMALL])
    assert "no feature_extractor/preprocessor_config.json" in err and "verify without -i" in err


def test_a_damaged_vae_encoder_gives_a_verdict_at_conditioning_that_blames_the_file(first_frame, tmp_path, capsys):
    # Our pipeline stops at the first frame's latents (NaN); the stage says so beside the reference's, not a
    # traceback: both read the same damaged file.
    from safetensors.torch import load_file, save_file
    from tiny_pipeline import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path)
    (file,) = (tmp_path / "vae").glob("*.safetensors")
    weights = load_file(file)
    weights["encoder.conv_in.bias"] = torch.full_like(weights["encoder.conv_in.bias"], math.nan)
    save_file(weights, file, metadata={"format": "pt"})
    code, lines, _ = run_verify(capsys, "-m", str(tmp_path), "-i", str(first_frame))
    stages = stage_lines(lines)
    assert code == 1 and list(stages) == list(STAGES), lines
    assert lines[-1] == (
        "verdict: inf/NaN at conditioning, in the reference too: both sides read the same files, so the VAE's weight "
        "file is likely damaged (not motif-lite): download it again"
    ), lines[-1]
    assert "ours: the VAE's latents of the first frame hold inf or NaN" in stages["conditioning"]
    assert all(" match " in stages[name] for name in ("text", "image", "vae")), lines
    # the reference's NaN latents are both transformers' input: inf/NaN on both sides there, after the verdict's stage
    assert all("inf/NaN on both sides" in stages[name] for name in ("transformer", "guidance")), lines


def test_the_reference_runs_the_shared_siglip_tower_with_our_encoder_on_the_device(
    checkpoint, first_frame, capsys, monkeypatch
):
    # On a GPU the reference hands the tower pixels on cuda, while our pipeline keeps the encoder (which holds the
    # tower) on the CPU between uses: each of the reference's calls must find it placed. On the CPU the placement is
    # seen through the encoder's own `to` / `offload`; our side's calls (encode_image) place it their own way.
    from transformers import SiglipVisionModel

    from motif_lite.encoders.text import TextEncoder

    state = {"placed": False, "ours": False}
    to, offload, encode_image = TextEncoder.to, TextEncoder.offload, TextEncoder.encode_image

    def placing(self, device):
        state["placed"] = True
        return to(self, device)

    def offloading(self):
        state["placed"] = False
        return offload(self)

    def ours_encoding(self, images):
        state["ours"] = True
        try:
            return encode_image(self, images)
        finally:
            state["ours"] = False

    monkeypatch.setattr(TextEncoder, "to", placing)
    monkeypatch.setattr(TextEncoder, "offload", offloading)
    monkeypatch.setattr(TextEncoder, "encode_image", ours_encoding)
    reference_calls = []

    def record(module, args):
        if isinstance(module, SiglipVisionModel) and not state["ours"]:
            reference_calls.append(state["placed"])

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", str(first_frame))
    finally:
        handle.remove()
    assert code == 0, lines
    # image, conditioning, frames: the tower runs once in each, always on the device
    assert len(reference_calls) >= 3 and all(reference_calls), reference_calls
    assert not state["placed"]  # and the encoder is back on the CPU after


def test_a_broken_image_projection_of_ours_is_named_at_the_transformer_stage(checkpoint, first_frame, capsys):
    # Both transformers get the reference's first-frame latents, mask and image embeddings there: our image
    # projection's output doubled (a bug on our image path alone) differs at that stage, not only at frames.
    from motif_lite.model.layers import ImageProjection

    def doubled(module, args, output):
        return output * 2 if isinstance(module, ImageProjection) else None

    handle = torch.nn.modules.module.register_module_forward_hook(doubled)
    try:
        code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", str(first_frame))
    finally:
        handle.remove()
    stages = stage_lines(lines)
    assert code == 1 and lines[-1] == "verdict: mismatch at transformer", lines
    assert all(" match " in stages[name] for name in ("text", "image", "conditioning")), lines


def test_a_first_frame_under_the_home_folder_given_with_a_tilde_is_read_by_both_sides(
    checkpoint, first_frame, capsys, monkeypatch
):
    # A quoted `~/x.png` reaches us unexpanded: run reads it, and diffusers' load_image would take it for a URL.
    monkeypatch.setenv("HOME", str(first_frame.parent))
    code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", f"~/{first_frame.name}")
    assert code == 0 and lines[-1] == "verdict: match", lines
    assert f"first frame {first_frame}" in lines[0]


def test_a_first_frame_in_a_folder_named_tilde_here_is_that_file_not_one_in_the_home_folder(
    checkpoint, first_frame, tmp_path, capsys, monkeypatch
):
    # `./~/x.png` is what run reads: the folder named ~ in the working folder; a Path of it drops the `./`.
    here = tmp_path / "here"
    (here / "~").mkdir(parents=True)
    shutil.copy(first_frame, here / "~" / first_frame.name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no such file there
    monkeypatch.chdir(here)
    code, lines, err = run_verify(capsys, "-m", str(checkpoint), "-i", f"./~/{first_frame.name}")
    assert code == 0 and lines[-1] == "verdict: match", (lines, err)


def test_image_to_video_in_float16_compares_instead_of_failing(checkpoint, first_frame, capsys):
    # The borrowed text encoder keeps bfloat16 in a float16 run; diffusers alone would give its float16 transformer
    # float16 image embeddings, as our pipeline casts them: the reference's image projection gets them so too.
    code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", str(first_frame), "--dtype", "fp16")
    assert list(stage_lines(lines)) == list(STAGES), lines
    assert code == 0 and lines[-1] == "verdict: match", lines


def test_a_16_bit_image_that_the_two_sides_read_differently_is_said_to_be_expected(checkpoint, tmp_path, capsys):
    # Mid-gray in 16 bits: motif-lite scales it to 8 bits, diffusers' load_image (Pillow's convert) clips it to white.
    path = tmp_path / "gray16.png"
    levels = np.random.default_rng(5).integers(20000, 40000, (32, 48), dtype=np.uint16)
    PIL.Image.fromarray(levels).save(path)
    assert PIL.Image.open(path).mode.startswith("I")
    code, lines, _ = run_verify(capsys, "-m", str(checkpoint), "-i", str(path))
    assert code == 1 and lines[-1] == "verdict: mismatch at image", lines
    assert "diffusers' load_image clips it at 255" in stage_lines(lines)["image"], lines


def test_a_model_index_that_does_not_list_the_image_preprocessor_is_refused_before_anything_loads(
    checkpoint, first_frame, tmp_path, capsys
):
    # The folder is there (a run reads it), but diffusers loads only what model_index.json lists.
    root = shutil.copytree(checkpoint, tmp_path / "ckpt")
    index = json.loads((root / "model_index.json").read_text())
    del index["feature_extractor"]
    (root / "model_index.json").write_text(json.dumps(index))
    err = refusal(capsys, ["verify", "-m", str(root), "-i", str(first_frame), *SMALL])
    assert "does not list feature_extractor" in err and "verify without -i" in err


def test_a_model_index_that_lists_the_image_preprocessor_as_null_is_refused_before_anything_loads(
    checkpoint, first_frame, tmp_path, capsys
):
    # `[null, null]`: listed, but diffusers then loads no preprocessor, and its first-frame reader would be None.
    root = shutil.copytree(checkpoint, tmp_path / "ckpt")
    index = json.loads((root / "model_index.json").read_text())
    index["feature_extractor"] = [None, None]
    (root / "model_index.json").write_text(json.dumps(index))
    err = refusal(capsys, ["verify", "-m", str(root), "-i", str(first_frame), *SMALL])
    assert "does not list feature_extractor" in err and "verify without -i" in err


def test_a_second_first_frame_is_refused_as_run_refuses_it(checkpoint, first_frame, tmp_path, capsys):
    other = shutil.copy(first_frame, tmp_path / "other.png")
    with pytest.raises(SystemExit) as exit_:  # argparse's refusal, as for run
        cli.main(["verify", "-m", str(checkpoint), "-i", str(first_frame), "-i", str(other), *SMALL])
    err = capsys.readouterr().err
    assert exit_.value.code == cli.EXIT_USER_ERROR and "Traceback" not in err and "loading" not in err
    assert "given twice" in err and "give it once (one verify compares image-to-video from one image" in err, err


def test_a_clip_or_sequence_given_to_i_is_refused_without_advice_to_use_a_flag_verify_lacks(
    checkpoint, tmp_path, capsys
):
    # run's refusals advise --extend, which verify does not have; the rest of their advice stands.
    clips = clips_given_as_images(tmp_path)
    for kind, kept in (("sequence", "give one frame, e.g. its last"), ("video", "ffmpeg -sseof -1")):
        err = refusal(capsys, ["verify", "-m", str(checkpoint), "-i", str(clips[kind]), *SMALL])
        assert kept in err and "--extend" not in err, err


def test_a_damaged_vision_tower_is_not_blamed_on_the_conditioning_stage(first_frame, tmp_path, capsys):
    # Our encode stops at the NaN SigLIP embeddings, before the VAE: the conditioning stage says it is an earlier
    # stage's, and the verdict names the image stage.
    from safetensors.torch import load_file, save_file
    from tiny_pipeline import make_tiny_checkpoint

    make_tiny_checkpoint(tmp_path)
    (file,) = (tmp_path / "text_encoder").glob("*.safetensors")
    weights = load_file(file)
    weights["vision_tower.post_layernorm.bias"] = torch.full_like(weights["vision_tower.post_layernorm.bias"], math.nan)
    save_file(weights, file, metadata={"format": "pt"})
    code, lines, _ = run_verify(capsys, "-m", str(tmp_path), "-i", str(first_frame))
    stages = stage_lines(lines)
    assert code == 1 and lines[-1].startswith("verdict: inf/NaN at image, in the reference too"), lines
    assert "ours: the image encoder's embeddings of the first frame hold inf or NaN" in stages["conditioning"]
    assert "(an earlier stage's output, not this stage's)" in stages["conditioning"], stages["conditioning"]


def clips_given_as_images(folder: Path) -> dict[str, Path]:
    """A two-frame PNG sequence's pattern and a video file (its ISO media header alone), each given to -i."""
    for i in range(2):
        PIL.Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(folder / f"seq_{i:03d}.png")
    (folder / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64))
    return {"sequence": folder / "seq_%03d.png", "video": folder / "clip.mp4"}


@pytest.mark.parametrize(
    ("kind", "kept"), [("sequence", "give one frame, e.g. its last"), ("video", "ffmpeg -sseof -1")]
)
def test_verifys_refusal_of_a_clip_given_as_its_first_frame_names_no_extend(tmp_path, kind, kept):
    # verify cut run's advice to use --extend out of the refusal with regexes: a rewording of run's message would
    # have left verify advising a flag it lacks. The check now speaks to verify's user (Audience.VERIFY).
    from motif_lite.request import RequestError
    from motif_lite.verify.settings import VerifySettings, resolved

    with pytest.raises(RequestError) as refused:
        resolved(VerifySettings(image=clips_given_as_images(tmp_path)[kind]))
    said = str(refused.value)
    assert "--extend" not in said and "extend=" not in said and kept in said, said


@pytest.mark.parametrize(("kind", "advice"), [("sequence", "in place of -i"), ("video", "instead of -i")])
def test_run_is_still_told_to_go_on_from_a_clip_given_to_i_with_extend(tmp_path, capsys, kind, advice):
    # The advice verify leaves out is run's to give: --extend is how run goes on from a clip.
    clip = clips_given_as_images(tmp_path)[kind]
    assert cli.main(["run", "-p", "x", "-i", str(clip), "--dry-run"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"--extend {clip} {advice}" in err, err


@pytest.mark.parametrize("lacking", ["folder", "listing"])
def test_the_image_processor_refusal_with_a_weight_file_of_yours_names_your_folder_not_the_linked_one(
    checkpoint, first_frame, tmp_path, capsys, lacking
):
    # With --vae FILE the checkpoint is a folder in the cache linking -m's files: verify's refusal named that
    # folder (run's names -m's), where the user's fix is to be made.
    root = shutil.copytree(checkpoint, tmp_path / "ckpt")
    index = json.loads((root / "model_index.json").read_text())
    del index["feature_extractor"]
    (root / "model_index.json").write_text(json.dumps(index))
    if lacking == "folder":
        shutil.rmtree(root / "feature_extractor")
    vae = tmp_path / "my_vae.safetensors"
    shutil.copy(root / "vae" / "diffusion_pytorch_model.safetensors", vae)
    err = refusal(capsys, ["verify", "-m", str(root), "--vae", str(vae), "-i", str(first_frame), *SMALL])
    named = f"{root} has no feature_extractor/" if lacking == "folder" else f"{root / 'model_index.json'} does not"
    assert f"error: {named}" in err, err
