"""`motif-lite run --settings-from FILE`: a video made again from the settings a motif-lite output file stores, each
flag given winning over them; the reader of those settings in every format motif-lite writes, and its errors.
Tiny checkpoint, CPU."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite import cli
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.cli.run_request import request_from_args, resolve_requests
from motif_lite.cli.settings_from import settings_from_args
from motif_lite.io.settings_file import SettingsFileError, ffmetadata_value, read_settings
from motif_lite.io.staging import FIRST_FRAME_NUMBERS
from motif_lite.io.video import write_video
from motif_lite.pipeline.metadata import (
    guidance_config_of,
    jsonable,
    request_fields_of,
    stored_unguided,
    unknown_stored_choices,
    unknown_stored_keys,
)
from motif_lite.request import GenerationRequest
from motif_lite.settings import Given, resolve_settings
from motif_lite.version import VERSION

SIZE = ["-W", "32", "-H", "32", "--video-frames", "5", "--steps", "2"]
FP32 = ["--dtype", "fp32"]  # the model's flags are this command's, never the file's: given again


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", *args, "--device", "cpu", "--kernels", "torch", "--yes"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def frames_of(path: Path) -> np.ndarray:
    """A video's frames as [F, H, W, 3], from PNG frames (out_000.png ...) or through ffmpeg."""
    if path.suffix == ".png":
        files = sorted(path.parent.glob(path.name.replace("000", "*")))
        return np.stack([np.asarray(PIL.Image.open(file)) for file in files])
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


@pytest.fixture(scope="module")
def made(checkpoint, tmp_path_factory) -> Path:
    """The first frame of a 5-frame video of the tiny checkpoint, in PNG frames."""
    folder = tmp_path_factory.mktemp("made")
    flags = ["-p", "a red fox", "-n", "blurry", "-s", "5", "--cfg-scale", "4", *SIZE, *FP32]
    code = cli.main(["run", "-m", str(checkpoint), *flags, "-o", str(folder / "a_%03d.png"), "--device", "cpu",
                     "--kernels", "torch", "--yes"])  # fmt: skip
    assert code == 0
    return folder / "a_000.png"


def parsed(*argv: str):
    """`motif-lite run`'s flags as the command parses them, with the command line they came from."""
    args = cli.build_parser().parse_args(["run", *argv])
    args.argv = ["run", *argv]
    return args


def written(folder: Path, values: dict, name: str = "made.webp") -> Path:
    """A two-frame file written by motif-lite's own writer, storing `values`."""
    return write_video(np.zeros((2, 16, 16, 3), np.uint8), folder / name, 24, values)


# ------------------------------------------------------------------------------ the same video again


def test_the_same_settings_make_the_same_video_through_png_and_mp4(checkpoint, made, tmp_path, capsys):
    again = tmp_path / "b.mp4"
    code, out, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(made), "-o", str(again))
    assert code == 0, err
    assert "settings from a_000.png" in err and "seed 5" in err
    assert "  steps        file       2  (a_000.png)" in out
    # From the mp4's settings (read with ffmpeg) back to PNG frames: the first video's, bit for bit.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(again),
                           "-o", str(tmp_path / "c_%03d.png"))  # fmt: skip
    assert code == 0, err
    assert np.array_equal(frames_of(tmp_path / "c_000.png"), frames_of(made))


def test_a_flag_wins_over_the_file(checkpoint, made, tmp_path, capsys):
    code, out, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(made), "-s", "6",
                             "-o", str(tmp_path / "d_%03d.png"))  # fmt: skip
    assert code == 0, err
    assert "your flags instead of the file's: --seed" in err and "seed: 6" in err
    assert not np.array_equal(frames_of(tmp_path / "d_000.png"), frames_of(made))


def test_flags_and_the_file_make_the_request(made):
    args = parsed("--settings-from", str(made), "--steps", "3", "-W", "48")
    settings_from_args(args)
    request = request_from_args(args)
    assert (request.prompt, request.negative_prompt, request.seed) == ("a red fox", "blurry", 5)
    assert (request.width, request.height, request.frames, request.steps) == (48, 32, 5, 3)
    assert (request.guidance, request.cfg_scale, request.apg_momentum) == ("apg", 4.0, pytest.approx(0.1))
    assert request.sampler == "euler" and request.flow_shift == 15


def test_flags_without_the_command_line_are_refused_not_lost_to_the_file(made):
    # Which flags were given comes from the command line (`args.argv`): without it every flag would look unset, and
    # the file's 2 steps would silently replace the --steps 3 typed.
    args = cli.build_parser().parse_args(["run", "--settings-from", str(made), "--steps", "3"])
    with pytest.raises(ValueError, match="needs args.argv"):
        settings_from_args(args)
    assert args.steps == 3


def test_a_batch_starts_at_the_files_seed(made, tmp_path):
    args = parsed("--settings-from", str(made), "-b", "2", "-o", str(tmp_path / "fox.mp4"))
    settings_from_args(args)
    requests, _ = resolve_requests(args, request_from_args(args))
    assert [(r.seed, r.output.name) for r in requests] == [(5, "fox-1.mp4"), (6, "fox-2.mp4")]


def test_the_command_line_is_parsed_once_for_all_that_ask_which_flags_it_gave(made, monkeypatch):
    # --settings-from and the note for a size given on one side each ask which flags were typed: one parse answers.
    from motif_lite.cli import run_flags

    args = parsed("--settings-from", str(made), "-W", "64")
    parses = []
    real_add = run_flags.add_run_flags
    monkeypatch.setattr(run_flags, "add_run_flags", lambda parser: parses.append(parser) or real_add(parser))
    settings_from_args(args)
    resolve_requests(args, request_from_args(args))
    assert len(parses) == 1


def test_seed_minus_one_draws_a_new_seed(made):
    args = parsed("--settings-from", str(made), "-s", "-1")
    settings_from_args(args)
    assert args.seed == -1  # the random seed, drawn as for any run


def test_another_guidance_method_drops_the_files_apg_parameters(made):
    args = parsed("--settings-from", str(made), "--guidance", "cfg")
    settings_from_args(args)
    request = request_from_args(args)
    assert (request.guidance, request.cfg_scale, request.apg_eta, request.apg_momentum) == ("cfg", 4.0, None, None)


def taken_and_replaced(note: str) -> tuple[list[str], str]:
    """The settings a "settings from FILE" note names as the file's, and the flags it names as replacing them."""
    taken, _, replaced = note.partition("; your flags instead of the file's: ")
    return taken.split(": ", 1)[1].split(", "), replaced


def test_another_guidance_method_is_named_as_the_flags_not_the_files(made):
    # An APG file's method replaced by --guidance cfg: the file gives the scale only, and the note says so.
    recalled = settings_from_args(parsed("--settings-from", str(made), "--guidance", "cfg"))
    taken, replaced = taken_and_replaced(recalled.notes[0])
    assert replaced == "--guidance"
    assert "guidance scale" in taken and "guidance" not in taken and "APG parameters" not in taken
    # Its own method given again: the file's scale and APG parameters still ran.
    recalled = settings_from_args(parsed("--settings-from", str(made), "--guidance", "apg"))
    taken, replaced = taken_and_replaced(recalled.notes[0])
    assert replaced == "--guidance" and {"guidance scale", "APG parameters"} <= set(taken)
    # The method from the file, the scale from a flag: the guidance row stays the file's (its method, APG's values).
    recalled = settings_from_args(parsed("--settings-from", str(made), "--cfg-scale", "5"))
    taken, replaced = taken_and_replaced(recalled.notes[0])
    assert replaced == "--cfg-scale" and "guidance" in taken


def test_a_guidance_flag_guides_over_an_unguided_file(made, tmp_path):
    values = {**read_settings(made).values, "guidance_config": None}
    unguided = written(tmp_path, values)
    args = parsed("--settings-from", str(unguided))
    settings_from_args(args)
    assert (args.guidance, args.cfg_scale) == ("cfg", 1.0)  # classic CFG at its no-op scale: unguided
    args = parsed("--settings-from", str(unguided), "--apg-eta", "0")
    settings_from_args(args)
    assert args.guidance is None and args.cfg_scale is None and args.apg_eta == 0.0


def resolved_from(checkpoint: Path, file: Path):
    """The settings `run -m checkpoint --settings-from file` resolves, with the file as the source it is."""
    args = parsed("--settings-from", str(file))
    recalled = settings_from_args(args)
    files = {field: file.name for field in recalled.taken}
    return recalled, resolve_settings(request_from_args(args), CheckpointConfigs.read(checkpoint), given=Given(
        files=files))  # fmt: skip


@pytest.mark.parametrize("scale", [1.0, None], ids=["scale 1", "unguided"])
def test_the_files_guidance_is_the_one_that_ran_on_the_official_guider(checkpoint, made, tmp_path, scale):
    # The official guider's original formulation still guides at scale 1 (as diffusers does): a file made at 1 gave
    # cfg_scale 1, which switched guidance off, so its video was made again unguided; an unguided file must stay so.
    stored = read_settings(made).values
    config = None if scale is None else {**stored["guidance_config"], "scale": scale}
    file = written(tmp_path, {**stored, "guidance_config": config})
    _, settings = resolved_from(checkpoint, file)
    assert jsonable({"guidance": guidance_config_of(settings.guidance.value)}) == {"guidance": config}
    assert not [note for note in settings.notes if "still guides" in note]  # the file's scale, not the user's 1


def test_what_the_file_cannot_set_is_named_where_the_checkpoint_differs(checkpoint, made, tmp_path, capsys, no_weights):
    # A request field carries the guidance method, scale and APG parameters: the guider's rescale, window and norm
    # dims, and the sampler's sigma spacing, were the new checkpoint's while the table said "file" for both rows.
    stored = read_settings(made).values
    config = {**stored["guidance_config"], "guidance_rescale": 0.5, "start": 0.25, "norm_dims": None}
    schedule = {"train_timesteps": 1000, "shift_terminal": None, "spacing": "karras"}
    file = written(tmp_path, {**stored, "guidance_config": config, "schedule": schedule})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(file), "--dry-run")
    assert code == 0, err
    assert (
        "made.webp's settings differ from this checkpoint's where the file cannot set them (this run takes the "
        "checkpoint's): guidance guidance_rescale 0.5 -> 0.0, norm_dims null -> [-1, -2, -4], start 0.25 -> 0.0; "
        'sampler spacing "karras" -> null; its video differs from the file\'s'
    ) in " ".join(err.split()), err
    # The same file on its own settings, and a flag that replaces the file's guidance: nothing to say.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(made), "--dry-run")
    assert code == 0 and "cannot set them" not in err, err
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(file), "--cfg-scale", "5",
                           "--sampling-method", "dpm++2m", "--dry-run")  # fmt: skip
    assert code == 0 and "cannot set them" not in err, err
    # Another method than the file's, by its flag, is the user's guidance: it was said as the checkpoint's
    # ('guidance method "APGConfig" -> "CFGConfig"'), as if the file could not set it.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(made), "--guidance", "cfg",
                           "--dry-run")  # fmt: skip
    assert code == 0 and "cannot set them" not in err, err
    # Each by its own flag: a sampler flag leaves the file's guidance compared, a scale flag the file's sampler.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(file),
                           "--sampling-method", "dpm++2m", "--dry-run")  # fmt: skip
    err = " ".join(err.split())
    assert code == 0 and "guidance guidance_rescale 0.5 -> 0.0" in err and "sampler spacing" not in err, err
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(file), "--cfg-scale", "5",
                           "--dry-run")  # fmt: skip
    err = " ".join(err.split())
    assert code == 0 and 'sampler spacing "karras" -> null' in err and "guidance_rescale" not in err, err


def test_the_dry_run_shows_the_file_as_a_source(checkpoint, made, capsys, no_weights):
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(made), "--cfg-scale", "6",
                             "--dry-run")  # fmt: skip
    assert code == 0, err
    assert "prompt: 'a red fox'" in out
    assert "file: a_000.png;" in out
    assert "  size         file       32x32, 5 frames at 24 fps  (a_000.png)" in out
    assert "(--cfg-scale over a_000.png)" in out


def test_a_flag_given_at_the_official_value_shows_as_a_flag(checkpoint, capsys, no_weights):
    # --steps 50 is the official value: typed, it is the user's, and the table says so (it said "default", judging
    # by the value alone); the negative prompt left out stays the default's.
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "-p", "fox", *SIZE[:-2], "--steps", "50", "--dry-run")
    assert code == 0, err
    assert "  steps        flag       50\n" in out
    assert "  negative     default    the official negative prompt\n" in out


# ------------------------------------------------------------------------------ the model


def test_another_model_than_the_files_is_noted(checkpoint, made, tmp_path, capsys, no_weights):
    values = read_settings(made).values
    model = {**values["model"], "gguf": "motif-video-2b-Q4_K_M.gguf", "lora": ["style.safetensors:0.8"]}
    other = written(tmp_path, {**values, "model": model})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(other), "--dry-run")
    assert code == 0, err
    assert (
        "made.webp was made with --gguf motif-video-2b-Q4_K_M.gguf, this run has no --gguf, --diffusion-model or "
        "--quantize" in err
    )
    assert "made.webp was made with --lora style.safetensors:0.8, this run has no --lora" in err
    assert "--dtype" not in err and "--model" not in err  # the same checkpoint and dtype: no note
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(other), "--dry-run")
    assert "made.webp was made with --dtype fp32, this run has --dtype bf16" in err


def test_a_file_from_before_the_model_was_stored_says_so(checkpoint, made, tmp_path, capsys, no_weights):
    # Files of motif-lite before --settings-from (e5579696, 2026-12-02; 79adac1's, made for real, read the same) store
    # the video's settings without a "model" section: which -m, --gguf, --lora and --dtype made them is not known.
    # Made again with other ones, the video differed without a word (a LoRA's video rerun without its --lora); now a
    # note says to give them again.
    values = read_settings(made).values
    older = written(tmp_path, {key: value for key, value in values.items() if key not in ("model", "version")})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(older), "--dry-run")
    assert code == 0, err
    # It stores no version either: the note named "motif-lite unknown" as its maker.
    assert "note: settings from made.webp (made by an older motif-lite, which stored no version): prompt" in err
    assert (
        "note: made.webp was made by an older motif-lite that did not store its model: this run uses its own -m, "
        "--gguf, --lora and --dtype; give the ones that made made.webp to make the same video" in err
    )
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(made), "--dry-run")
    assert code == 0, err
    assert "did not store its model" not in err  # a file that stores it: notes only where they differ


STORED_LORAS = ["a.safetensors:0.5", "b.safetensors:1"]


@pytest.mark.parametrize(
    ("given", "stored", "noted"),
    [
        (["b.safetensors:1", "a.safetensors:0.5"], STORED_LORAS, False),  # another order: the same sum of changes
        # a video made when a file could be given twice (its strengths added; now refused): once at the sum matches
        (
            ["a.safetensors:0.5", "b.safetensors"],
            ["a.safetensors:0.25", "b.safetensors:1", "a.safetensors:0.25"],
            False,
        ),
        (["a.safetensors:0.5"], STORED_LORAS, True),
        (["a.safetensors:0.5", "b.safetensors:0.9"], STORED_LORAS, True),
    ],
    ids=["order", "twice", "one-missing", "other-strength"],
)
def test_loras_are_compared_by_each_files_total_strength(checkpoint, made, tmp_path, capsys, no_weights, given,
                                                         stored, noted):  # fmt: skip
    # Before: the lists were compared as they were written, so the same LoRAs in another order, or a file given
    # twice against once at the sum, were told "its video differs" (LoRAs merge by adding their changes).
    from safetensors.torch import save_file

    for name in ("a", "b"):
        module = "transformer.transformer_blocks.0.attn.to_q"
        tensors = {f"{module}.lora_A.weight": torch.randn(2, 64), f"{module}.lora_B.weight": torch.randn(64, 2)}
        save_file(tensors, tmp_path / f"{name}.safetensors")
    values = read_settings(made).values
    other = written(tmp_path, {**values, "model": {**values["model"], "lora": stored}})
    loras = [arg for lora in given for arg in ("--lora", str(tmp_path / lora))]
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, *loras, "--settings-from", str(other), "--dry-run")
    assert code == 0, err
    assert ("made.webp was made with --lora" in err) == noted, err


@pytest.mark.parametrize(("repo", "noted"), [("Org/{name}", False), ("Org/Other-Model", True)])
def test_a_hub_repo_id_in_the_file_is_the_local_folder_of_its_name(checkpoint, made, tmp_path, capsys, no_weights,
                                                                   repo, noted):  # fmt: skip
    # The model is compared by name: a file made from the Hub's Org/Motif-Video-2B and a run of a local folder
    # Motif-Video-2B (its download) have the same model.
    values = read_settings(made).values
    repo = repo.format(name=checkpoint.name)
    other = written(tmp_path, {**values, "model": {**values["model"], "model": repo}})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(other), "--dry-run")
    assert code == 0, err
    note = f"made.webp was made with --model {repo}, this run has --model {checkpoint.name}: its video differs"
    assert (note in err) == noted, err


# ------------------------------------------------------------------------------ refused, before any work


def assert_user_error(code: int, err: str, *needles: str) -> None:
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_an_image_to_video_file_needs_its_image(checkpoint, made, tmp_path, capsys, no_weights):
    values = {**read_settings(made).values, "image": "cat.png"}
    i2v = written(tmp_path, values)
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(i2v), "--dry-run")
    assert_user_error(code, err, "made.webp was made image-to-video from cat.png", "-i PATH")
    image = tmp_path / "cat.png"
    PIL.Image.new("RGB", (32, 32), "orange").save(image)
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(i2v), "-i", str(image), "--dry-run")
    assert code == 0, err


def test_a_servers_image_to_video_file_asks_for_its_first_frame_by_name_and_checksum(
    checkpoint, made, tmp_path, capsys, no_weights
):
    # A server's job keeps its upload as inputs/ID.png: the file names the image as it was sent, with its SHA-256.
    image = tmp_path / "cat.png"
    PIL.Image.new("RGB", (32, 32), "orange").save(image)
    sha = hashlib.sha256(image.read_bytes()).hexdigest()
    values = {**read_settings(made).values, "image": "first.png", "image_sha256": "ab" * 32}
    assert unknown_stored_keys(values) == []  # a key of this version's
    served = written(tmp_path, values, "served.webp")
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(served), "--dry-run")
    assert_user_error(code, err, f"give the first frame again with -i PATH (first.png, sha256 {'ab' * 32})")
    # Another image given: taken, with a note; the same image, by its checksum: none.
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(served), "-i", str(image), "--dry-run")
    assert code == 0, err
    assert (
        f"note: served.webp was made from the first frame first.png (sha256 {'ab' * 32}), and -i cat.png is another "
        f"file (sha256 {sha}): the video starts from it" in err
    )
    same = written(tmp_path, {**values, "image_sha256": sha}, "same.webp")
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(same), "-i", str(image), "--dry-run")
    assert code == 0 and "is another file" not in err, err


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("missing.mp4", "no such file"),
        ("fox.latents.safetensors", "motif-lite run --resume"),
        ("notes.txt", ".txt is no format motif-lite writes"),
    ],
)
def test_files_without_settings_are_refused(tmp_path, capsys, name, says):
    if name != "missing.mp4":
        (tmp_path / name).write_text("x")
    code, _, err = run_cli(capsys, "--settings-from", str(tmp_path / name))
    assert_user_error(code, err, says)


def test_a_folder_is_told_to_give_one_file(tmp_path, capsys):
    """`--settings-from frames/`: not "no such file"."""
    code, _, err = run_cli(capsys, "--settings-from", str(tmp_path))
    assert_user_error(code, err, f"{tmp_path} is a folder (--settings-from takes", "of a PNG sequence, one frame")
    code, _, err = run_cli(capsys, "--settings-from", str(tmp_path / "fox_%03d.png"))  # a sequence with no frames
    assert_user_error(code, err, "no such file")


@pytest.mark.parametrize("first", [0, 1, FIRST_FRAME_NUMBERS[-1]])
def test_a_png_sequence_pattern_gives_its_first_frames_settings(tmp_path, first):
    # A chain of extensions names each link by its pattern (--extend fox_%03d.png): --settings-from takes the same
    # name (it asked for one of its frames), from the first frame there is, as --extend finds it: other tools (and
    # ffmpeg's image2 muxer) number frames from 1.
    written(tmp_path, {"software": "motif-lite", "prompt": "a fox", "seed": 5}, "made_%03d.png")
    for index in (1, 0):  # the last first: renaming frame 0 to 1 would replace frame 1
        (tmp_path / f"made_{index:03d}.png").rename(tmp_path / f"fox_{first + index:03d}.png")
    stored = read_settings(tmp_path / "fox_%03d.png")
    assert (stored.values["prompt"], stored.values["seed"]) == ("a fox", 5)
    assert stored.file == tmp_path / f"fox_{first:03d}.png"


def test_a_video_of_another_tool_is_refused(tmp_path, capsys):
    path = tmp_path / "other.mp4"
    writer = imageio_ffmpeg.write_frames(str(path), (16, 16))
    writer.send(None)
    writer.send(np.zeros((16, 16, 3), np.uint8).tobytes())
    writer.close()
    code, _, err = run_cli(capsys, "--settings-from", str(path))
    assert_user_error(code, err, "other.mp4 holds no motif-lite settings: another tool made it")


def test_a_broken_video_is_refused(tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    code, _, err = run_cli(capsys, "--settings-from", str(tmp_path / "broken.mp4"))
    assert_user_error(code, err, "cannot read", "as a video")


def test_settings_from_with_resume_is_refused(made, tmp_path, capsys):
    code, _, err = run_cli(capsys, "--settings-from", str(made), "--resume", str(tmp_path / "a.latents.safetensors"))
    assert_user_error(code, err, "give one of them")


def test_settings_of_a_newer_version_take_what_is_known(checkpoint, made, tmp_path, capsys, no_weights):
    newer = written(tmp_path, {**read_settings(made).values, "version": "9.0", "motion_strength": 2})
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(newer), "--dry-run")
    assert code == 0, err
    assert "made.webp was made by motif-lite 9.0" in err and "does not know: motion_strength (left out)" in err
    assert "  steps        file       2  (made.webp)" in out


@pytest.mark.parametrize(
    ("stored", "flag", "choice", "choices"),
    [({"sampler": "dpm++3m"}, "--sampling-method", "unipc", "euler, dpm++2m or unipc"),
     ({"guidance_config": {"method": "PAGConfig", "scale": 3.0}}, "--guidance", "cfg", "apg or cfg")],
)  # fmt: skip
def test_a_sampler_or_guidance_this_version_lacks_is_refused_unless_chosen(
    checkpoint, made, tmp_path, capsys, no_weights, stored, flag, choice, choices
):
    # A newer version's sampler was an "unknown sampler" error that named neither the file nor the way out; a newer
    # guidance method was dropped without a word, and the checkpoint's guidance made another video.
    newer = written(tmp_path, {**read_settings(made).values, "version": "9.0", **stored})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(newer), "--dry-run")
    field = "sampler" if "sampler" in stored else "guidance"
    assert_user_error(code, err, f"made.webp was made with the {field} ")
    assert f"which motif-lite {VERSION} does not have (the file was made by motif-lite 9.0)" in err
    assert f"upgrade motif-lite to make the same video, or choose one with {flag} {choices}\n" in err
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(newer), flag, choice, "--dry-run")
    assert code == 0, err


def test_the_samplers_and_guidance_of_this_version_are_known(made):
    values = read_settings(made).values
    for sampler in ("euler", "dpm++2m", "unipc", "uni_pc_bh2"):
        assert unknown_stored_choices({**values, "sampler": sampler}) == {}
    assert unknown_stored_choices({**values, "guidance_config": {"method": "CFGConfig"}}) == {}
    assert unknown_stored_choices(values) == {}


@pytest.mark.parametrize(
    "stored",
    [{"sampler": 5}, {"guidance_config": "PAGConfig"}, {"guidance_config": {"scale": 3.0}}, {"guidance_config": None}],
)
def test_a_sampler_or_guidance_that_is_no_name_is_left_to_the_requests_checks(made, stored):
    # Not "a method this version lacks" (nor an AttributeError): what the file holds there is no method at all.
    assert unknown_stored_choices({**read_settings(made).values, **stored}) == {}


# ------------------------------------------------------------------------------ the reader, in every format


@pytest.mark.parametrize("name", ["v.mp4", "v.mkv", "v.mov", "v.webm", "v.gif", "v.webp", "f_%03d.png"])
def test_the_reader_reads_every_format_the_writer_writes(tmp_path, name):
    values = {"software": "motif-lite", "prompt": 'a = b; #c \\ "d"\nnew line', "seed": 3}
    path = written(tmp_path, values, name)
    first = path.parent / (path.name % 0) if "%" in path.name else path
    assert read_settings(first).values == values


def test_a_name_in_capitals_is_read_as_its_format(tmp_path):
    # Windows and cameras write V.MP4: the extension's case does not make it another format.
    values = {"software": "motif-lite", "seed": 3}
    path = written(tmp_path, values, "v.mp4").rename(tmp_path / "V.MP4")
    assert read_settings(path).values == values


def test_ffmetadata_takes_the_files_own_comment_with_its_escapes_undone():
    # A stream's section ("[STREAM]") may carry its own comment: only the global section's is the file's. A value
    # may go on over an escaped newline, which ffmpeg writes for a comment of several lines.
    text = ";FFMETADATA1\ntitle=x\n[STREAM]\ncomment=the stream's\n"
    assert ffmetadata_value(text, "comment") is None
    text = ";FFMETADATA1\ncomment=one\\\ntwo \\= three\nencoder=Lavf\n"
    assert ffmetadata_value(text, "comment") == "one\ntwo = three"


def test_a_comment_that_is_not_motif_lites_is_refused(tmp_path):
    path = tmp_path / "x.png"
    PIL.Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(SettingsFileError, match="holds no motif-lite settings"):
        read_settings(path)
    path = written(tmp_path, {"software": "other", "prompt": "x"}, "y.gif")
    with pytest.raises(SettingsFileError, match="holds no motif-lite settings"):
        read_settings(path)
    assert json.loads(PIL.Image.open(path).info["comment"])["software"] == "other"


def test_an_image_given_to_a_text_to_video_file_takes_the_image_to_video_shift(made, tmp_path):
    image = tmp_path / "cat.png"
    PIL.Image.new("RGB", (32, 32), "orange").save(image)
    args = parsed("--settings-from", str(made), "-i", str(image))
    settings_from_args(args)
    assert args.flow_shift is None  # the file's 15 was text-to-video's: the checkpoint's or the official 8 decides
    assert args.steps == 2 and args.image == str(image)


def test_an_image_to_video_file_keeps_its_shift_when_its_image_is_given(made, tmp_path):
    # Only a text-to-video file's shift is the other kind's: an image-to-video file's is the one its video used.
    image = tmp_path / "cat.png"
    PIL.Image.new("RGB", (32, 32), "orange").save(image)
    i2v = written(tmp_path, {**read_settings(made).values, "image": "cat.png", "flow_shift": 6.0})
    args = parsed("--settings-from", str(i2v), "-i", str(image))
    settings_from_args(args)
    assert args.flow_shift == 6.0


def test_the_files_own_guidance_method_given_again_keeps_its_parameters(made):
    args = parsed("--settings-from", str(made), "--guidance", "apg")
    settings_from_args(args)
    request = request_from_args(args)
    assert (request.guidance, request.cfg_scale, request.apg_momentum) == ("apg", 4.0, pytest.approx(0.1))


def test_apg_without_momentum_is_read_back_as_momentum_off(made):
    # APG stores momentum None when it is off; the flag says off with 0 (None would be "the checkpoint's").
    values = read_settings(made).values
    values = {**values, "guidance_config": {**values["guidance_config"], "momentum": None}}
    assert request_fields_of(values)["apg_momentum"] == 0.0


def test_a_file_from_before_guidance_config_is_unguided_at_a_cfg_scale_of_1_only(made):
    # Before `guidance_config` was stored, a cfg_scale of 1 switched guidance off; a hand-edited `true` is no scale
    # (it equals 1 in Python): it stays the file's value, for the request's own refusal.
    values = {k: v for k, v in read_settings(made).values.items() if k not in ("guidance_config", "guidance")}
    assert stored_unguided({**values, "cfg_scale": 1}) and stored_unguided({**values, "cfg_scale": 1.0})
    assert not stored_unguided({**values, "cfg_scale": True}) and not stored_unguided({**values, "cfg_scale": 5})
    assert request_fields_of({**values, "cfg_scale": 1})["guidance"] == "cfg"
    assert request_fields_of({**values, "cfg_scale": True})["cfg_scale"] is True


def test_a_file_of_this_version_has_no_unknown_keys(made):
    # "schedule" is written only for a run with other schedule options than the official ones (not this one).
    values = read_settings(made).values
    assert unknown_stored_keys(values) == [] and unknown_stored_keys({**values, "schedule": {}}) == []


@pytest.mark.parametrize("guidance", [[1], {"method": [1]}, {"method": 5}])
def test_a_guidance_config_of_the_wrong_json_type_leaves_guidance_open(made, guidance):
    values = {**read_settings(made).values, "guidance_config": guidance}
    assert "guidance" not in request_fields_of(values)


def test_lora_totals_read_the_strength_after_the_last_colon():
    # A file's name may hold a colon (Linux allows it): the strength is what follows the last one.
    from motif_lite.weights.lora_values import lora_totals

    assert lora_totals(["v1:a.safetensors:0.25", "v1:a.safetensors:0.25"]) == {"v1:a.safetensors": 0.5}
    assert lora_totals(["b.safetensors:x", "b.safetensors:x"]) == {"b.safetensors:x": 2.0}  # not ours: as it is


def test_lora_totals_leave_out_a_file_whose_strengths_add_up_to_0():
    # At 0.5 and -0.5 the file changes nothing, as no file does: kept at 0, a resumed run that left it out was told
    # it is sampled with another model than the stopped run's.
    from motif_lite.weights.lora_values import lora_totals

    assert lora_totals(["a.safetensors:0.5", "a.safetensors:-0.5", "b.safetensors:1"]) == lora_totals(["b.safetensors"])
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floats: typed to cancel, and as good as 0
    assert lora_totals(["a.safetensors:0.1", "a.safetensors:0.2", "a.safetensors:-0.3"]) == {}


@pytest.mark.parametrize(
    ("chunks", "said"),
    [
        ({"prompt": "{}", "workflow": "{}"}, "was made by ComfyUI: it keeps its workflow ('workflow' text chunk)"),
        ({"prompt": "{}"}, "was made by ComfyUI: it keeps its workflow ('prompt' text chunk)"),
        ({"parameters": "a fox\nNegative prompt: blurry\nSteps: 20, Seed: 1"}, "was made by the AUTOMATIC1111 web UI"),
    ],
)
def test_a_png_of_comfyui_or_a1111_names_the_tool_and_what_to_do(tmp_path, chunks, said):
    # Such a PNG was "another tool made it" alone: the user had to guess that no tool's settings but motif-lite's
    # are read, and that the prompt is what to take from it.
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    path = tmp_path / "other.png"
    PIL.Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    with pytest.raises(SettingsFileError) as refused:
        read_settings(path)
    message = str(refused.value)
    assert said in message and "Give its prompt with -p and its negative prompt with -n" in message, message
    assert "\n" not in message


def test_a_png_is_opened_once_for_its_settings_and_its_other_tool(tmp_path, monkeypatch):
    # The comment and the other tool's text chunks come from one read of the file (a PNG frame may be large).
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("workflow", "{}")
    path = tmp_path / "comfyui.png"
    PIL.Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *args, **kwargs: opened.append(args[0]) or real_open(*args, **kwargs))
    with pytest.raises(SettingsFileError, match="was made by ComfyUI"):
        read_settings(path)
    assert opened == [path]


def test_a_side_from_the_file_and_the_other_from_a_flag_give_no_one_side_note(checkpoint, made, capsys, no_weights):
    # The note for a size given on one side (`-W 64` alone keeps the default height) counts the sides the file gave
    # as given: the file's 32x32 with -W 128 is 128x32, both sides chosen (not the official shape's 128x80).
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(made), "-W", "128", "--dry-run")
    assert code == 0 and "is given without" not in err, err
    assert "128x32, 5 frames" in out
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "-p", "a red fox", "-W", "128", "--dry-run")  # control
    assert code == 0 and "note: -W 128 is given without -H" in err, err


def test_a_file_whose_model_section_is_no_object_says_the_run_uses_its_own(
    checkpoint, made, tmp_path, capsys, no_weights
):
    # A hand-edited or damaged "model" (here a string) is not used: the run's own weights make the video, as said.
    values = read_settings(made).values
    damaged = written(tmp_path, {**values, "model": "motif-video-2b"})
    code, _, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(damaged), "--dry-run")
    assert code == 0, err
    assert "this run uses its own -m, --gguf, --lora and --dtype" in err, err


def test_an_empty_prompt_the_file_gives_is_not_said_as_an_empty_p(checkpoint, made, tmp_path, capsys, no_weights):
    # An image-to-video made with no text stores prompt "": taken from the file, it is no -p "$PROMPT" left unset.
    image = tmp_path / "cat.png"
    PIL.Image.new("RGB", (32, 32), "orange").save(image)
    i2v = written(tmp_path, {**read_settings(made).values, "image": "cat.png", "prompt": ""})
    code, out, err = run_cli(capsys, "-m", str(checkpoint), "--settings-from", str(i2v), "-i", str(image), "--dry-run")
    assert code == 0, err
    assert "prompt: '' (empty: the first frame moves with no text)" in out, out
    assert "PROMPT unset" not in err, err


DYNAMIC = {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 15.0, "use_dynamic_shifting": True}


def dynamic_notes(file: Path, scheduler: dict, *flags: str) -> list[str]:
    """The notes `run --settings-from file` gives about the file's settings on a checkpoint whose scheduler config is
    `scheduler` (with dynamic shifting: its mu follows the size)."""
    from motif_lite.cli.settings_from import recalled_settings_notes
    from motif_lite.sampling.schedule import dynamic_shift
    from motif_lite.vae.config import WanVAEConfig

    args = parsed("--settings-from", str(file), *flags)
    recalled = settings_from_args(args)
    configs = CheckpointConfigs(scheduler=scheduler, dynamic=dynamic_shift(scheduler), vae=WanVAEConfig())
    settings = resolve_settings(request_from_args(args), configs, given=Given(files=dict.fromkeys(recalled.taken, "f")))
    return recalled_settings_notes(recalled, settings, configs)


def test_a_mu_that_follows_another_size_is_not_said_to_differ(tmp_path):
    # Under dynamic shifting the file's schedule holds its size's mu: at another size (by -W, -H or --video-frames)
    # the mu differs as it must, and the note blamed the checkpoint ("where the file cannot set them").
    from motif_lite.pipeline.metadata import stored_settings
    from motif_lite.sampling.schedule import dynamic_shift
    from motif_lite.settings import latent_tokens
    from motif_lite.vae.config import WanVAEConfig

    request, _ = GenerationRequest("fox", width=64, height=48, frames=9, steps=2, sampler="euler").resolve()
    configs = CheckpointConfigs(scheduler=DYNAMIC, dynamic=dynamic_shift(DYNAMIC), vae=WanVAEConfig())
    file = written(tmp_path, jsonable(stored_settings(request, resolve_settings(request, configs))))
    assert dynamic_notes(file, DYNAMIC) == []
    for flags in (["-W", "128"], ["-H", "96"], ["--video-frames", "17"]):
        assert dynamic_notes(file, DYNAMIC, *flags) == [], flags
    # At the file's own size (taken, or typed again) another mu is the checkpoint's line: said as this run's mu,
    # not as one "at the file's size", which names another size than the run's.
    steeper = {**DYNAMIC, "max_shift": 3.0}
    tokens = latent_tokens(request, configs, resolve_settings(request, configs).transformer.value)
    said = f"mu {configs.dynamic.mu(tokens)!r} -> {dynamic_shift(steeper).mu(tokens)!r}"
    for flags in ([], ["-W", "64"]):
        (note,) = dynamic_notes(file, steeper, *flags)
        assert "cannot set them" in note and f"sampler {said}" in note.replace('"', ""), note
    # Another size on a checkpoint whose line changed: said, with the mu this checkpoint gives at the file's size.
    for flags in (["-W", "128"], ["--video-frames", "17"]):
        (note,) = dynamic_notes(file, steeper, *flags)
        assert said.replace("mu", "mu at the file's size") in note.replace('"', ""), note
    # A file without its size (or not as whole numbers) has no size to compare at: another size says nothing.
    for edit in ({"frames": None}, {"width": 64.0}):
        stored = {**jsonable(stored_settings(request, resolve_settings(request, configs))), **edit}
        edited = written(tmp_path, {k: v for k, v in stored.items() if v is not None}, "edited.webp")
        assert dynamic_notes(edited, DYNAMIC, "-W", "128") == [], edit
    # Another size on a checkpoint that no longer shifts dynamically: still said, with the mu it had.
    (note,) = dynamic_notes(file, {**DYNAMIC, "use_dynamic_shifting": False}, "-W", "128")
    assert 'time_shift "exponential" -> null' in note and "mu " in note, note


def test_strengths_cancel_within_the_rounding_of_the_strengths_that_were_rounded():
    # A tolerance of float precision times the strengths' size took 1e16 and -9999999999999998 (2 apart, both exact
    # floats: nothing rounded) for cancelling, and 1e16, 1 and -1e16 too (the 1 lost in the float sum): a LoRA
    # applied at 2, or 1, was said to change nothing and left out.
    import math
    from fractions import Fraction

    from motif_lite.weights.lora_values import strengths_cancel, summed_strength

    def steps_above(value: float, count: int) -> float:
        for _ in range(count):
            value = math.nextafter(value, math.inf)
        return value

    # typed decimals' residue; a float computed one step off (-0.1 - 0.2); exact opposites however large
    assert (
        strengths_cancel([0.1, 0.2, -0.3]) and strengths_cancel([0.3, -0.1 - 0.2]) and strengths_cancel([1e16, -1e16])
    )
    # the boundary: 0.3 and a float k steps above it, each rounded (a step each): 2 steps cancel, 3 do not
    assert strengths_cancel([0.3, -steps_above(0.3, 2)]) and not strengths_cancel([0.3, -steps_above(0.3, 3)])
    for apart in ([1e16, -9999999999999998.0], [1e16, 1.0, -1e16], [0.3, -steps_above(0.3, 3)]):
        assert not strengths_cancel(apart), apart
        exact = sum(map(Fraction, apart))  # what they add up to without the float additions' rounding
        assert summed_strength(*apart) == float(f"{float(exact):.6g}") != 0, apart
    assert not strengths_cancel([math.inf, -math.inf]) and summed_strength(1e308, 1e308) == math.inf


def test_lora_totals_add_a_files_strengths_exactly_as_the_refusal_sums_them():
    # Two runs' LoRAs are compared by these totals: `a:1e16 a:1 a:-1e16` applies a at 1 (strengths_cancel says so),
    # and its float sum, 0, would have read as the file at strength 0, the same as a run without it.
    from motif_lite.weights.lora_values import lora_totals, summed_strength

    given = ["a.safetensors:1e16", "a.safetensors:1", "a.safetensors:-1e16"]
    assert lora_totals(given) == {"a.safetensors": summed_strength(1e16, 1.0, -1e16)} == {"a.safetensors": 1.0}


def test_a_value_without_a_colon_has_no_strength_even_when_it_reads_as_a_number():
    # The strength is what follows a colon: a file named `0.5` (or `1e3`) given alone is that file at strength 1,
    # not a strength of 0.5 for a file with no name.
    from motif_lite.weights.lora_values import lora_totals, split_strength, strength_after_colon

    for value in ("0.5", "1e3", "inf"):
        assert strength_after_colon(value) is None and split_strength(value) == (value, None), value
    assert lora_totals(["0.5"]) == {"0.5": 1.0}


# ------------------------------------------------------------------------------ where the video was made (ran_on)

# A file made on another machine: another GPU, torch and CUDA than this CPU run's.
OTHER_MACHINE = {"device": "cuda", "device_name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9",
                 "torch": "2.5.1", "cuda": "12.4", "kernels": "triton", "processes": 1}  # fmt: skip


def test_a_video_stores_the_machine_it_was_made_on(made):
    values = read_settings(made).values
    ran_on = values["ran_on"]
    assert (ran_on["device"], ran_on["torch"], ran_on["motif_lite"]) == ("cpu", torch.__version__, VERSION)
    assert (ran_on["kernels"], ran_on["processes"]) == ("torch", 1)  # the run's --kernels torch, in one process
    assert "device_name" not in ran_on and "compute_capability" not in ran_on  # no GPU to name
    assert unknown_stored_keys(values) == []  # a key of this version's, not a newer one's


@pytest.mark.parametrize("machine", ["another", "this", "none"])
def test_a_file_made_on_another_machine_gets_one_note_and_gives_no_setting(checkpoint, made, tmp_path, capsys,
                                                                           machine):  # fmt: skip
    values = {key: value for key, value in read_settings(made).values.items() if key != "ran_on"}
    if machine != "none":  # "none": a file from before ran_on was stored
        values["ran_on"] = OTHER_MACHINE if machine == "another" else read_settings(made).values["ran_on"]
    file = written(tmp_path, values)
    code, out, err = run_cli(capsys, "-m", str(checkpoint), *FP32, "--settings-from", str(file), "--dry-run")
    assert code == 0, err
    said = out + err
    note = (f"made.webp was made on cuda (NVIDIA GeForce RTX 4090), torch 2.5.1, CUDA 12.4; this run is on cpu, "
            f"torch {torch.__version__}")  # fmt: skip
    assert said.count(note) == (machine == "another") and said.count("frames may differ") == (machine == "another")
    assert "does not know" not in said  # a record, not a setting: neither taken nor named as unknown
    assert "ran_on" not in settings_from_args(parsed("--settings-from", str(file))).taken


def test_a_run_where_triton_cannot_be_imported_records_the_rest(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # `import triton` raises ImportError
    output = tmp_path / "t_%03d.png"
    code, _, err = run_cli(capsys, "-m", str(checkpoint), "-p", "a fox", *SIZE, *FP32, "-o", str(output))
    assert code == 0, err
    ran_on = read_settings(tmp_path / "t_000.png").values["ran_on"]
    assert "triton" not in ran_on and (ran_on["device"], ran_on["torch"]) == ("cpu", torch.__version__)


def test_a_gpus_record_names_it_and_its_capability_and_a_failing_piece_is_left_out(monkeypatch):
    from motif_lite.ran_on import ran_on_record

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    ran_on = ran_on_record("cuda:0", "triton", 2)
    assert (ran_on["device"], ran_on["device_name"], ran_on["compute_capability"]) == ("cuda", "NVIDIA H200", "9.0")
    assert (ran_on["cuda"], ran_on["kernels"], ran_on["processes"]) == ("12.8", "triton", 2)

    def no_driver(device):
        raise RuntimeError("no CUDA driver")

    monkeypatch.setattr(torch.cuda, "get_device_name", no_driver)
    ran_on = ran_on_record("cuda:0")
    assert "device_name" not in ran_on and ran_on["compute_capability"] == "9.0"


def test_a_note_compares_tritons_version_where_both_runs_ran_its_kernels(monkeypatch):
    # Triton builds the kernels, so its version changes the frames of runs that ran them: it was recorded but not
    # compared. Where either run ran torch's kernels, it changes nothing, and no note names it.
    from motif_lite import ran_on

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(ran_on, "_triton_version", lambda: "3.2.0")
    stored = {**ran_on.ran_on_record("cuda:0", "triton"), "triton": "3.1.0"}  # the same GPU, torch and CUDA
    note = ran_on.other_machine_note("fox.mp4", stored, "cuda:0", "triton")
    assert note is not None and "fox.mp4 was made on cuda (NVIDIA H200), torch " in note, note
    assert "CUDA 12.8, Triton 3.1.0; this run is on " in note and "CUDA 12.8, Triton 3.2.0: its frames" in note, note
    assert "(another GPU, torch, CUDA or Triton rounds otherwise" in note, note
    assert ran_on.other_machine_note("fox.mp4", {**stored, "triton": "3.2.0"}, "cuda:0", "triton") is None
    assert ran_on.other_machine_note("fox.mp4", stored, "cuda:0", "torch") is None  # this run: torch's kernels
    assert ran_on.other_machine_note("fox.mp4", {**stored, "kernels": "torch"}, "cuda:0", "triton") is None
    assert ran_on.other_machine_note("fox.mp4", stored, "cuda:0") is None  # this run's kernels not known
    other_gpu = ran_on.other_machine_note("fox.mp4", {**stored, "device_name": "NVIDIA H100"}, "cuda:0", "torch")
    assert other_gpu is not None and "Triton" not in other_gpu, other_gpu


def test_the_kernels_a_run_runs_are_tritons_where_it_runs_them(monkeypatch):
    from motif_lite.ran_on import kernels_a_run_runs
    from motif_lite.runtime import kernels

    gpu, cpu = torch.device("cuda:0"), torch.device("cpu")
    assert [kernels_a_run_runs(backend, cpu) for backend in ("auto", "torch")] == ["torch", "torch"]
    monkeypatch.setattr(kernels, "triton_unavailable", lambda backend, device: None)
    assert [kernels_a_run_runs(backend, gpu) for backend in ("auto", "triton", "torch")] == [
        "triton",
        "triton",
        "torch",
    ]
    monkeypatch.setattr(kernels, "triton_unavailable", lambda backend, device: "triton cannot be imported")
    assert kernels_a_run_runs("auto", gpu) == "torch"


def test_a_run_on_tritons_kernels_notes_a_file_made_with_another_triton(checkpoint, made, tmp_path, capsys,
                                                                          monkeypatch):  # fmt: skip
    # The command passes the kernels this run runs to the note: here (a CPU) made to be Triton's.
    from motif_lite import ran_on

    monkeypatch.setattr(ran_on, "_triton_version", lambda: "3.2.0")
    values = read_settings(made).values
    file = written(tmp_path, {**values, "ran_on": {**values["ran_on"], "kernels": "triton", "triton": "3.1.0"}})
    dry_run = ["-m", str(checkpoint), *FP32, "--settings-from", str(file), "--dry-run"]
    code, out, err = run_cli(capsys, *dry_run)
    assert code == 0 and "frames may differ" not in out + err, err  # this run: torch's kernels
    monkeypatch.setattr(ran_on, "kernels_a_run_runs", lambda backend, device: "triton")
    code, out, err = run_cli(capsys, *dry_run)
    said = " ".join((out + err).split())
    assert code == 0 and said.count("frames may differ") == 1, err
    assert (
        f"torch {torch.__version__}, Triton 3.1.0; this run is on cpu, torch {torch.__version__}, Triton 3.2.0" in said
    )
