"""`motif-lite run`: same frames as the diffusers pipeline, helpful help, and user mistakes as one-line errors
(exit code 2, no traceback, no output file)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf_helpers import write_test_gguf
from help_text import examples, help_text, wide_lines
from video_frames import diffusers_frames

from motif_lite import cli, pipeline
from motif_lite.cli import run_request as run_command
from motif_lite.progress import ProgressBars
from motif_lite.request import GenerationRequest
from motif_lite.shell_syntax import quoted_text

PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> tuple[Path, object]:
    return shared_checkpoint  # (root, reference): read only, as conftest's shared_checkpoint says


def run_args(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        "run",
        *("-m", str(root), "-p", PROMPT, "-n", NEGATIVE, "-o", str(output)),
        *("-W", "48", "-H", "32", "--steps", "2", "-s", "7"),
        *("--dtype", "fp32", "--device", "cpu", "--kernels", "torch"),
        *extra,
    ]


def assert_user_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_run_equals_reference_pipeline_and_normalizes_frames(checkpoint, tmp_path, capsys):
    root, reference = checkpoint
    code = cli.main(run_args(root, tmp_path / "fox_%03d.png", "--video-frames", "10"))  # -> 9 frames
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--video-frames (in Python frames) 10 is not 4k+1; using 9" in captured.err and "seed: 7" in captured.err
    assert "denoise" in captured.err and "s/step" in captured.out and "output:" in captured.out
    assert "\nran on: cpu, float32\n" in captured.out  # a CPU run prints no plan: only this says where and how
    ours = np.stack([np.asarray(PIL.Image.open(tmp_path / f"fox_{i:03d}.png")) for i in range(9)])
    size = dict(width=48, height=32, frames=9, steps=2)
    expected = diffusers_frames(reference, size, 7, prompt=PROMPT, negative_prompt=NEGATIVE)
    assert expected.std() > 10 and np.abs(ours.astype(int) - expected.astype(int)).max() <= 1


def test_a_plan_streaming_a_bf16_transformer_names_the_gguf_that_keeps_it_whole(tmp_path, capsys, monkeypatch):
    # An 8 GB card's default run (free memory / 1.08 = 6.67 GiB) streams blocks of the bf16 transformer; nothing said
    # that --gguf Q4_K_M keeps it whole. The note's figures are the plan that command gets, and the host memory it
    # saves is the figure docs/memory.md ("On a 6-8 GB GPU") gives for an 8 GB card.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # the built-in sizes
    monkeypatch.chdir(
        tmp_path
    )  # the default output goes to the current folder, which may be read-only (a checkout of another user's)
    args = ["run", "-p", "a fox", "--device", "cuda", "--vram", "6.67", "--dry-run"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    streamed = re.search(r"transformer blocks: (\d+) of 36", captured.out).group(1)
    said = (
        r"note: the transformer in bfloat16 does not fit whole: (\d+) of its 36 blocks stream from host memory at "
        r"every forward\. --gguf Q4_K_M \(4-bit weights, a third of the bytes\) keeps it whole on the GPU: "
        r"est\. peak (\S+ GiB) allocated, and (\S+ GiB) less host memory"
    )
    note = re.search(said, captured.err)
    assert note is not None, captured.err
    assert note.group(1) == streamed
    memory_doc = " ".join((Path(__file__).resolve().parent.parent / "docs/memory.md").read_text().split())
    assert f"(on an 8 GB card: the transformer whole on the GPU, and {note.group(3)} less host memory)" in memory_doc
    assert cli.main([*args, "--gguf", "Q4_K_M"]) == 0  # what the note says is what that command plans
    suggested = capsys.readouterr()
    assert "transformer blocks: none" in suggested.out and f"device peak {note.group(2)} allocated" in suggested.out
    assert "does not fit whole" not in suggested.err
    assert cli.main([*args[:-2], "80", "--dry-run"]) == 0  # nothing streamed: nothing to say
    assert "does not fit whole" not in capsys.readouterr().err
    assert cli.main([*args[:-2], "5", "--dry-run", "--quantize", "Q8_0"]) == 0  # streamed, but quantized already
    assert "does not fit whole" not in capsys.readouterr().err
    assert cli.main([*args[:-2], "4", "--dry-run"]) == 0  # all 36 stream with Q4_K_M too: nothing gained
    assert "does not fit whole" not in capsys.readouterr().err


def test_dry_run_prints_the_plan_without_loading(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("--dry-run loaded the model"))
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--dry-run", "--vram", "0.52"])
    out = capsys.readouterr().out
    assert code == 0 and "Memory plan for 48x32x121" in out and "budget 0.52 GiB" in out and "text encoder:" in out
    assert "host peak" in out
    assert list(tmp_path.iterdir()) == []
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--dry-run", "--vram", "0.01"])
    assert_user_error(capsys, code, "error: 48x32x121 needs at least")
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--dry-run", "--ram", "0.1"])
    assert_user_error(capsys, code, "GiB of host memory, but --ram is 0.10 GiB")
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--dry-run", "--ram", "0.1G"])
    assert_user_error(capsys, code, "GiB of host memory, but --ram is 0.10 GiB")


@pytest.mark.parametrize("prompt", ["", "  "])
def test_an_empty_prompt_is_told_what_p_takes(tmp_path, capsys, monkeypatch, prompt):
    # The request's own "prompt is empty" said nothing of a script's unset variable or of what to give.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    code = cli.main(["run", "-m", str(tmp_path), "-p", prompt, "-o", str(tmp_path / "fox.mp4")])
    assert_user_error(capsys, code, 'error: the prompt is empty (-p "$PROMPT" with PROMPT unset?): -p takes what the '
                      'video shows, e.g. -p "a red fox runs through snow"; an empty prompt is taken only with a '
                      "first frame (-i or --extend), which it then animates with no text")  # fmt: skip


def test_an_empty_prompt_with_a_first_frame_animates_it_and_says_so(checkpoint, tmp_path, capsys, monkeypatch):
    # It was refused with -i too, where diffusers takes "" ("animate this image", a condition the model was trained
    # on); taken, it is said, as an unset $PROMPT gives it too.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("--dry-run loaded the model"))
    PIL.Image.new("RGB", (48, 32), "red").save(tmp_path / "first.png")
    argv = ["run", "-m", str(checkpoint[0]), "-i", str(tmp_path / "first.png"), "-o", str(tmp_path / "fox.mp4"),
            "-W", "48", "-H", "32", "--device", "cpu"]  # fmt: skip
    code = cli.main([*argv, "-p", "", "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert 'note: the prompt is empty (-p "$PROMPT" with PROMPT unset?): the video animates the first frame with no ' \
        "text" in err  # fmt: skip
    assert out.startswith("prompt: '' (empty: the first frame moves with no text)\n"), out
    # Without -p, the error says how to ask for no text.
    assert_user_error(capsys, cli.main(argv), 'error: a prompt is required: -p "what the video shows" (only --dry-run '
                      'and --settings-from run without one); -p "" animates the first frame with no text')  # fmt: skip


def test_an_empty_prompt_with_a_clip_to_extend_is_taken_as_with_an_image(checkpoint, tmp_path, capsys, monkeypatch):
    # --extend starts from a frame too (the clip's last): the run's early check must take "" there as -i does, not
    # refuse it before the request, which takes it, is made.
    from motif_lite.io.video import write_video

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("--dry-run loaded the model"))
    clip = write_video(np.zeros((5, 32, 48, 3), np.uint8), tmp_path / "clip.mp4", 24)
    code = cli.main(["run", "-m", str(checkpoint[0]), "--extend", str(clip), "-p", "", "-o", str(tmp_path / "on.mp4"),
                     "--device", "cpu", "--dry-run"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert 'note: the prompt is empty (-p "$PROMPT" with PROMPT unset?): the video animates the first frame' in err


@pytest.mark.parametrize("flag", ["--vram", "--ram"])
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8", 8.0),
        ("8G", 8.0),
        ("8gb", 8.0),
        ("7.5 GiB", 7.5),
        ("8000MB", 8000 / 1024),
        ("512 MiB", 0.5),
        ("1024m", 1.0),
    ],
)
def test_memory_budgets_take_a_gib_suffix(flag, text, value):
    assert getattr(cli.build_parser().parse_args(["run", flag, text]), flag[2:]) == value


def test_help_lists_every_flag(capsys):
    # It looked for 21 names anywhere in both helps: a flag hidden from `run --help` (help=SUPPRESS) passed when
    # another flag's help named it (--kernels in --attention's), and flags added later were never looked for.
    with pytest.raises(SystemExit) as top:
        cli.main(["--help"])
    top_help = capsys.readouterr().out
    with pytest.raises(SystemExit) as run:
        cli.main(["run", "--help"])
    run_help = capsys.readouterr().out
    assert top.value.code == 0 and run.value.code == 0
    # Each flag entry: "  -p PROMPT, --prompt PROMPT  help...", its flags before the first run of spaces.
    entries = [re.split(r"\s{2,}", line.strip())[0] for line in run_help.splitlines() if line.startswith("  -")]
    listed = {part.split()[0] for entry in entries for part in entry.split(", ")}
    run_parser = cli.build_parser().parse_known_args(["run"])[0].command_parser
    flags = {flag for action in run_parser._actions for flag in action.option_strings}
    assert len(flags) > 40 and flags <= listed, sorted(flags - listed)
    assert "motif-lite run --gguf Q4_K_M" in top_help + run_help and "1280x736" in top_help + run_help


def test_the_prompts_help_names_every_way_to_run_without_one(capsys):
    # It said "required, except for --dry-run": a new user with a stopped run's file or a video's settings gave
    # -p again, which --resume refuses ("leave out --prompt") and --settings-from takes over the file's.
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    words = " ".join(capsys.readouterr().out.split())  # the help as one line: its wrapping is argparse's
    prompt = words.split("-p PROMPT, --prompt PROMPT ", 1)[1].split(" -n NEGATIVE_PROMPT", 1)[0]
    assert all(flag in prompt for flag in ("--dry-run", "--resume", "--settings-from")), prompt


def test_the_images_help_says_it_is_stretched_not_cropped(capsys):
    # It said only "first frame for image-to-video": ComfyUI's Wan nodes crop the image to the video's shape, so a
    # user from there expected a crop, and got a stretched first frame.
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    words = " ".join(capsys.readouterr().out.split())
    image = words.split("--init-img IMAGE ", 1)[1].split(" --extend CLIP", 1)[0]
    assert "stretched where its shape differs, never cropped or padded" in image, image


@pytest.mark.parametrize("command", [None, "run", "decode", "check", "verify", "serve", "quantize"])
def test_every_commands_help_fits_the_docs_width_and_its_examples_parse(capsys, monkeypatch, command):
    # run's guidance paragraph was one line of 207 columns, serve's key example 116: the raw formatter (kept for
    # the examples) does not wrap what it is given.
    from motif_lite.quantize import cli as quantizer

    if command == "quantize":  # a program of its own
        main, parser, program = quantizer.main, quantizer.build_parser(), "python -m motif_lite.quantize"
    else:
        main, parser, program = cli.main, cli.build_parser(), "motif-lite"
    out = help_text(capsys, monkeypatch, main, [command] if command not in (None, "quantize") else [])
    assert not wide_lines(out), wide_lines(out)
    found = examples(out, program)
    assert found, out
    for example in found:
        args = parser.parse_args(example)
        assert command in (None, "quantize") or args.command == command, example


def test_every_generation_flag_reaches_the_request():
    """Each flag sets its own field (distinct values, so a swapped or dropped flag shows); left out, the settings a
    checkpoint decides stay None."""
    flags = [
        *("-p", "fox", "-n", "neg", "-i", "first.png", "-W", "64", "-H", "48", "--video-frames", "17"),
        *("--fps", "12.5", "--steps", "7", "--guidance", "cfg", "--cfg-scale", "3.5", "--apg-eta", "0.25"),
        *("--apg-norm-threshold", "9", "--apg-momentum", "0.3", "--flow-shift", "5", "--sampling-method", "dpm++2m"),
        *("-s", "11", "-o", "fox.webm"),
    ]
    request = run_command.request_from_args(cli.build_parser().parse_args(["run", *flags]))
    assert request == GenerationRequest(
        prompt="fox", negative_prompt="neg", image="first.png", width=64, height=48, frames=17, fps=12.5, steps=7,
        guidance="cfg", cfg_scale=3.5, apg_eta=0.25, apg_norm_threshold=9.0, apg_momentum=0.3, flow_shift=5.0,
        sampler="dpm++2m", seed=11, output="fox.webm",
    )  # fmt: skip
    plain = run_command.request_from_args(cli.build_parser().parse_args(["run", "-p", "fox"]))
    assert plain == GenerationRequest("fox", seed=-1, output="output.mp4")


def test_no_command_prints_help(capsys):
    assert cli.main([]) == cli.EXIT_USER_ERROR
    out = capsys.readouterr().out
    assert "run" in out and "check" in out


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (
            ("-W", "1000"),
            ("error: -W/--width (in Python width) 1000 is not a multiple of 16; nearest valid width: 992 or 1008",),
        ),
        (("-o", "/no/such/dir/fox.mp4"), ("error: output directory /no/such/dir does not exist",)),
        (("-o", "fox.avi"), ("error: unsupported output format '.avi'",)),
        (("-i", "/no/such/first.png"), ("error: input image not found: /no/such/first.png",)),
        (("--steps", "0"), ("error: --steps must be an integer from 1 to 1000",)),
        # The request's settings by run's flag (they said "frames", "cfg scale"), and the Python field beside it.
        (("--video-frames", "0"), ("error: --video-frames (in Python frames) must be a positive integer, got 0",)),
        (("--cfg-scale", "200"), ("error: --cfg-scale must be a number from 0 to 100",)),
        # Several problems: one message, headed by the line that "error:" starts (its second line lacked it).
        (
            ("-W", "1000", "-H", "730", "-o", "fox.avi"),
            (
                "error: 3 settings are invalid:\n  -W/--width (in Python width) 1000",
                "\n  -H/--height (in Python height) 730",
                "\n  unsupported output",
            ),
        ),
    ],
)
def test_bad_settings_fail_before_loading(tmp_path, capsys, monkeypatch, extra, needles):
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    args = run_args(tmp_path / "no-model", tmp_path / "fox.mp4")
    code = cli.main([*args, *extra])
    assert_user_error(capsys, code, *needles)
    assert not (tmp_path / "fox.mp4").exists()


@pytest.mark.parametrize("flag", ["--vram", "--ram"])
@pytest.mark.parametrize("vram", ["-1", "0", "nan", "inf", "lots", "8TB", "0MB", "MB"])
def test_vram_must_be_a_positive_number(capsys, flag, vram):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", flag, vram])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{flag}: must be a number of GiB > 0, got {vram}" in err


@pytest.mark.parametrize("seed", ["random", "randomize", "42.5", ""])
def test_a_seed_that_is_no_whole_number_is_told_that_minus_one_is_random(capsys, seed):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", "--seed", seed])
    err = capsys.readouterr().err
    hint = f"-s/--seed: must be a whole number from 0 to 4294967295, or -1 for a random seed, got {seed!r}"
    assert exit_info.value.code == 2 and hint in err, err


@pytest.mark.parametrize(
    ("command", "flag", "value", "said"),
    [
        # argparse said "invalid int value: '1280x720'": the size in one value, as other tools and the server take it
        ("run", "-W", "1280x720", "-W/--width: takes one side in pixels: the size 1280x720 is -W 1280 -H 720"),
        ("verify", "-H", "832*480", "-H/--height: takes one side in pixels: the size 832*480 is -W 832 -H 480"),
        # ffmpeg's separators, as --size's hint takes them (`split_size`, one rule for both)
        ("run", "-W", "1280,720", "-W/--width: takes one side in pixels: the size 1280,720 is -W 1280 -H 720"),
        ("run", "-H", "1280:720", "-H/--height: takes one side in pixels: the size 1280:720 is -W 1280 -H 720"),
        ("run", "-H", "720p", "-H/--height: takes pixels: 720p is -H 720, and -W 1280 makes it 16:9"),
        ("run", "--video-frames", "5s", "--video-frames: counts frames, not seconds: 5 s at 24 fps is --video-frames "
         "121 (4k+1 frames; --fps sets the rate)"),
        ("verify", "--video-frames", "0.5 sec", "counts frames, not seconds: 0.5 s at 24 fps is --video-frames 13"),
        # a length written with an exponent was "must be a whole number"; one past any video got a count to try that
        # the run refused in turn, and one of 400 digits (inf) an OverflowError's traceback
        ("run", "--video-frames", "1e3s", "counts frames, not seconds: 1000 s at 24 fps is --video-frames 24001 "),
        ("run", "--video-frames", "1e30s", "counts frames, not seconds: 1e+30 s at 24 fps is more frames than a "
         "video may have (4,194,301 at most, at the smallest size)"),
        ("run", "--video-frames", "1" + "0" * 400 + "s", "counts frames, not seconds: inf s at 24 fps is more frames"),
        ("run", "--steps", "20.5", "--steps: must be a whole number, got '20.5'"),
        ("run", "-W", "wide", "-W/--width: must be a whole number, got 'wide'"),
        # a decimal comma, as German or French write 7.5: argparse said "invalid float value: '7,5'"
        ("run", "--cfg-scale", "7,5", "--cfg-scale: takes a decimal point, not a comma: 7.5"),
        ("run", "--flow-shift", "0,5", "--flow-shift: takes a decimal point, not a comma: 0.5"),
        ("run", "--fps", "fast", "--fps: must be a number, got 'fast'"),
    ],
)  # fmt: skip
def test_numbers_written_as_other_tools_write_them_get_the_flags_they_mean(capsys, command, flag, value, said):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "-p", "x", flag, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and said in err and "invalid" not in err, err


@pytest.mark.parametrize(
    "flags",
    [["--fps", "16", "--video-frames", "5s"], ["--video-frames", "5s", "--fps", "16"]],
)
def test_a_length_in_seconds_is_counted_at_the_runs_fps_as_the_seconds_hint_counts_it(capsys, flags):
    # --video-frames 5s was counted at 24 fps whatever --fps said (121: 7.5 s at 16 fps), while --seconds 5 was
    # counted at the run's --fps (81): one length, two answers.
    answers = []
    for given in [flags, ["--fps", "16", "--seconds", "5"]]:
        with pytest.raises(SystemExit):
            cli.main(["run", "-p", "x", *given])
        answers.append(capsys.readouterr().err)
    assert "counts frames, not seconds: 5 s at 16 fps is --video-frames 81 (" in answers[0], answers[0]
    assert "5 s at 16 fps is --video-frames 81 (" in answers[1], answers[1]


@pytest.mark.parametrize("layer", ["--extend", "--settings-from"])
def test_a_length_in_seconds_is_not_counted_at_24_fps_where_a_clip_or_file_sets_the_rate(capsys, tmp_path, layer):
    # Without --fps the run plays at the clip's (--extend) or the file's (--settings-from) rate, read after the
    # flags are parsed: 5 s of a 12 fps clip was "--video-frames 121", 10 s at its rate. With --fps the count is
    # that rate's.
    from motif_lite.io.video import write_video

    clip = write_video(np.zeros((5, 32, 32, 3), np.uint8), tmp_path / "clip12.mp4", 12)
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", layer, str(clip), "--video-frames", "5s"])
    err = capsys.readouterr().err
    assert "121" not in err and "at 24 fps" not in err, err
    kind = "clip" if layer == "--extend" else "file"
    assert f"counts frames, not seconds: the run plays at the rate of the {kind} clip12.mp4, read later: " in err
    assert "give a number of frames (4k+1), or add --fps R to have 5 s counted at R fps" in err, err
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", layer, str(clip), "--fps", "12", "--video-frames", "5s"])
    assert "5 s at 12 fps is --video-frames 61 (" in capsys.readouterr().err


@pytest.mark.parametrize("layer", ["--extend", "--settings-from"])
@pytest.mark.parametrize("length", [["--video-frames", "5s"], ["--seconds", "5"], ["--duration=5"]])
def test_every_length_in_seconds_waits_for_the_rate_a_clip_or_file_sets(capsys, tmp_path, layer, length):
    # --video-frames 5s waited for the clip's or file's rate, while other tools' --seconds 5 and --duration 5 were
    # counted at 24 fps ("--video-frames 121", wrong for a 30 fps clip): two copies of one rule.
    source = tmp_path / "clip30fps.mp4"
    source.write_bytes(b"")  # the name is all the answer reads: the rate is read after the flags
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "fox", layer, str(source), *length])
    err = capsys.readouterr().err
    assert "121" not in err and "24 fps" not in err, err
    assert "the run plays at the rate of the " in err and "clip30fps.mp4, read later: give a number of frames" in err


@pytest.mark.parametrize(
    "command", [["run", "-p", "x", "--dry-run", "--device", "cuda"], ["decode", "x.latents.safetensors"]]
)
def test_a_vram_no_gpu_holds_is_refused_with_the_mib_meant(capsys, command):
    # --vram 8192 (MiB meant, as nvidia-smi counts) was planned for 8192 GiB, "everything on the GPU", without a word
    # in a dry run for a GPU on another machine, which docs/memory.md suggests for planning an 8 GB card's run.
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--vram", "8192"])
    said = "argument --vram: is in GiB, and 8192 GiB is more than any GPU holds; for 8192 MiB give --vram 8192MB (8.00"
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and said in err, err
    with pytest.raises(SystemExit):
        cli.main([*command, "--vram", "2048GB"])
    assert "2048 GiB is more than any GPU holds\n" in capsys.readouterr().err  # a unit given: no MiB meant


@pytest.mark.parametrize("seed", ["4294967296", "-5"])
def test_a_seed_out_of_range_is_refused_in_the_words_of_a_seed_that_is_no_number(capsys, seed, tmp_path, monkeypatch):
    # argparse refuses a word, the request a number out of range: one wording for both, not two.
    monkeypatch.chdir(
        tmp_path
    )  # the default output goes to the current folder, which may be read-only (a checkout of another user's)
    assert cli.main(["run", "-p", "x", "--seed", seed, "--dry-run"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"error: --seed must be a whole number from 0 to 4294967295, or -1 for a random seed, got {seed}" in err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "-p", "x", "--frames", "9"], "(--frames: did you mean --video-frames?)"),  # ComfyUI/diffusers
        (["run", "-p", "x", "--num_frames=9"], "(--num_frames=9: did you mean --video-frames?)"),
        (["run", "-p", "x", "--guidance-scale", "5"], "(--guidance-scale: did you mean --cfg-scale?)"),
        (["run", "-p", "x", "--vide-frames", "9"], "(--vide-frames: did you mean --video-frames?)"),  # a typo
        (["run", "-p", "x", "--Steps", "3"], "(--Steps: did you mean --steps?)"),
        (["run", "-p", "x", "--VRAM", "8"], "(--VRAM: did you mean --vram?)"),  # too short for a typo match
        (["run", "-p", "x", "--num-frame", "9"], "(--num-frame: did you mean --video-frames?)"),  # a typo of diffusers'
        (["run", "-p", "x", "--guidance_scal", "5"], "(--guidance_scal: did you mean --cfg-scale?)"),
        (["run", "a", "red", "fox"], '(a prompt goes after -p, in quotes: -p "a red fox")'),
        # a path without its flag (diffusers' from_pretrained(path), ffmpeg's output last): was taken for a prompt
        (["run", "-p", "a fox", "fox.mp4"], "(fox.mp4: the output goes after -o: -o fox.mp4)"),
        (
            ["run", "-p", "a fox", "q4.gguf", "fast"],
            "(q4.gguf: a GGUF file goes after --gguf: --gguf q4.gguf; a "
            'prompt goes after -p, in quotes: -p "a fox fast")',
        ),  # fmt: skip
        (["run", "fox.latents.safetensors"], "(fox.latents.safetensors: a stopped run's latents go after --resume: "),
        (["check", "my model.gguf"], "(my model.gguf: a GGUF file goes after --gguf: --gguf 'my model.gguf')"),
        (["decode", "fox.latents.safetensors", "fox.webm"], "(fox.webm: the output goes after -o: -o fox.webm)"),
        (["run", "-p", "a", "red", "fox"], '(a prompt goes after -p, in quotes: -p "a red fox")'),
        (["verify", "--frames", "9"], "(--frames: did you mean --video-frames?)"),
        (["verify", "--dry-run"], "(--dry-run: verify has no dry run: motif-lite check with the same -m and files "),
        (["serve", "--listen", "0.0.0.0"], "(--listen: did you mean --host?)"),  # ComfyUI's server flag
        (["run", "-p", "x", "--t5xxl", "t5.safetensors"], "(--t5xxl: did you mean --text-encoder?)"),  # sd.cpp's
        # memory switches (ComfyUI's, sd.cpp's, Wan2GP's): the plan is automatic; --vram takes a number of GiB
        (["run", "-p", "x", "--offload-to-cpu"], "(--offload-to-cpu: memory is planned here, not switched: a run"),
        (["run", "-p", "x", "--novram"], "(--novram: memory is planned here"),  # was "did you mean --vram?"
        # sd.cpp's three memory switches, typed together, got the same sentence three times: one line names them all
        (
            ["run", "-p", "x", "--offload-to-cpu", "--vae-tiling", "--clip-on-cpu"],
            "(--offload-to-cpu, --vae-tiling, --clip-on-cpu: memory is planned here, not switched: a run",
        ),
        (["run", "-p", "x", "--t5xxl", "t5.gguf", "--clip", "c"], "(--t5xxl, --clip: did you mean --text-encoder?)"),
        (["run", "-p", "x", "--color"], "(--color: nothing is colored here: notes, warnings and errors are plain"),
        (["run", "-p", "x", "--lora-apply-mode", "auto"], "(--lora-apply-mode: there is no switch: a LoRA is merged"),
        (["run", "-p", "x", "--prediction", "flow"], "(--prediction: the prediction type is the model's own: "),
        (["run", "-p", "x", "--low_vram"], "(--low_vram: memory is planned here"),
        # AUTOMATIC1111's and Forge's --medvram was "did you mean --vram?", which takes a number of GiB
        (["run", "-p", "x", "--medvram"], "(--medvram: memory is planned here"),
        (["run", "-p", "x", "--enable_vae_tiling"], "(--enable_vae_tiling: memory is planned here"),  # diffusers'
        (["run", "-p", "x", "--enable-model-cpu-offload"], "(--enable-model-cpu-offload: memory is planned here"),
        (["run", "-p", "x", "--profile", "4"], "(--profile: memory is planned here"),  # Wan2GP's: was no hint
        (["run", "-p", "x", "--reserve-vram", "1"], "--vram GiB plans for a smaller budget (what the run may use, not"),
        (["serve", "--lowvram"], "fit the GPU's free memory (--dry-run prints the plan); --vram GiB plans for a"),
        (["run", "-p", "x", "--use-sage-attention"], "(--use-sage-attention: did you mean --attention?)"),
        (["run", "-p", "x", "--xformers"], "(--xformers: did you mean --attention-backend?)"),  # diffusers users'
        # FlashAttention switches (llama.cpp's -fa/--flash-attn, sd.cpp's --fa): a value of --attention-backend,
        # named with the flag's values (--fa and --vram-budget had no hint at all)
        *[
            (["run", "-p", "x", flag], f"({flag}: FlashAttention is --attention-backend flash (torch's) or fa3 ")
            for flag in ("--fa", "-fa", "--flash-attn", "--flash_attention", "--diffusion-fa", "--use-flash-attention")
        ],
        (["serve", "--fa"], "the flag takes auto|sdpa|flash|cudnn|efficient|triton|fa3, and auto (the default) "),
        (["run", "-p", "x", "--vram-budget", "6"], "(--vram-budget: did you mean --vram?)"),
        (["run", "-p", "x", "--gpu-memory", "6"], "(--gpu-memory: did you mean --vram?)"),  # text-generation-webui's
        (["decode", "x.latents.safetensors", "--GPU_Memory=6"], "(--GPU_Memory=6: did you mean --vram?)"),
        (["run", "-p", "x", "--torch-compile"], "(--torch-compile: did you mean --compile?)"),
        # Wan2GP's, ComfyUI's: another threshold, so not a plain "did you mean"
        (["run", "-p", "x", "--teacache", "0.2"], "(--teacache: the step cache here is --step-cache THRESHOLD"),
        (["run", "-p", "x", "--MagCache", "0.1"], "MagCache's thresholds measure other quantities, don't carry"),
        (["run", "-p", "x", "--fp8_e4m3fn_unet"], "(--fp8_e4m3fn_unet: 8-bit weights come from a GGUF file"),
        (["run", "-p", "x", "--fp8"], "8-bit attention is --attention int8)"),  # was "did you mean --fps?"
        (["run", "-p", "x", "--sequential-cpu-offload"], "(--sequential-cpu-offload: memory is planned here"),
        (["run", "-p", "x", "--tiled"], "(--tiled: memory is planned here"),
        (["run", "-p", "x", "--sage"], "(--sage: did you mean --attention?)"),
        (["run", "-p", "x", "--plan"], "(--plan: did you mean --dry-run?)"),
        (["run", "--version"], "(--version: the version is motif-lite --version)"),
        (["serve", "--Version"], "(--Version: the version is motif-lite --version)"),
        (["run", "-p", "x", "--cache-threshold", "0.1"], "(--cache-threshold: did you mean --step-cache?)"),
        (["run", "-p", "x", "--scheduler", "karras"], "(--scheduler: a karras schedule is not offered: Motif samples"),
        (["run", "-p", "x", "--schedule=karras"], "the flow-matching schedule, which --flow-shift shapes; the sampler"),
        (["run", "-p", "x", "--Scheduler", "karras"], "(--Scheduler: a karras schedule is not offered"),
        (["run", "-p", "x", "--scheduler"], "(--scheduler: sigma schedules such as karras are not offered"),
        (["run", "-p", "x", "--type", "q8_0"], "(--type: the transformer is quantized as it loads with --quantize"),
        (["serve", "--quantize", "Q8_0"], "(--quantize: a server loads its transformer once, from a GGUF file"),
        (["serve", "--type", "q8_0"], "(--type: a server loads its transformer once, from a GGUF file"),
        (["check", "--type", "q8_0"], "(--type: this command reads quantized weights from a GGUF file: --gguf"),
        (["verify", "-p", "x", "--quantize", "Q8_0"], "(--quantize: this command reads quantized weights from a"),
        (["serve", "--text-encoder-quantize", "Q8_0"], "(--text-encoder-quantize: this command loads a quantized text"),
        (["check", "--text_encoder_quantize", "Q8_0"], "(--text_encoder_quantize: this command loads a quantized text"),
        (["verify", "-p", "x", "--text-encoder-quantize", "Q8_0"], "(--text-encoder-quantize: this command loads a"),
        (
            ["run", "-p", "x", "--text-encoder-quantise", "Q8_0"],
            "(--text-encoder-quantise: did you mean --text-encoder-",
        ),
        # run's own flag spelled with underscores (decode gets the hint of the run's settings, below)
        (
            ["run", "-p", "x", "--text_encoder_quantize", "Q8_0"],
            "(--text_encoder_quantize: did you mean --text-encoder-quantize?)",
        ),
        (["run", "-p", "x", "--quality", "9"], "(--quality: the video's quality is --crf N, the encoder's constant"),
        (["decode", "f", "--bitrate=8M"], "(--bitrate=8M: the video's quality is --crf N"),
        # decode's own flag in capitals is a misspelling of it, not one of run's left to run
        (["decode", "f", "--Dtype", "fp32"], "(--Dtype: did you mean --dtype?)"),
        (["run", "-p", "x", "--video-quality", "9"], "(--video-quality: the video's quality is --crf N"),
        (["check", "--quality", "9"], "unrecognized arguments: --quality 9\n"),  # check writes no video: no --crf
        (["check", "--lora", "x.safetensors"], "(--lora: this command takes no LoRA (LoRAs change the transformer); "),
        (["decode", "f", "-y"], "(-y: a file named with -o is replaced, no switch needed; without -o an existing"),
        (["run", "-p", "x", "--overwrite"], "(--overwrite: a file named with -o is replaced, no switch needed; "),
        (["decode", "f", "--force"], "(--force: a file named with -o is replaced"),  # the quantizer's switch
        (["decode", "f", "--Lora=x"], "a dry run checks one against it without generating: motif-lite run -p "),
        # run's settings given to decode: the run's are in the file (one hint for them all)
        (["decode", "f", "--fps", "12"], "(--fps: decode makes the video of the latents a run sampled: its prompt,"),
        (["decode", "f", "-p", "x", "--Steps=3"], "(-p, --Steps=3: decode makes the video of the latents a run"),
        (["decode", "f", "--gguf", "Q8_0"], "and no transformer runs; it takes -o, --crf, -m, --vae, --dtype, "),
        (["decode", "f", "--text-encoder-quantize", "Q8_0"], "(--text-encoder-quantize: decode makes the video of"),
        (["serve", "--lora", "x", "--bogus"], "unrecognized arguments: --bogus\n"),  # serve takes --lora
        # other tools' LoRA settings: sd.cpp's folder of prompt-tag LoRAs, diffusers' lora_scale, the server's folder
        (
            ["run", "-p", "x", "--lora-model-dir", "loras"],
            "(--lora-model-dir: each LoRA is given with its file and "
            "strength: --lora DIR/NAME.safetensors:0.8 (repeatable); a <lora:NAME:0.8> tag in the prompt is read as",
        ),
        (["run", "-p", "x", "--lora-dir", "loras"], "--lora-dir is the server's folder of LoRAs jobs may name"),
        (
            ["run", "-p", "x", "--lora", "a", "--lora_scale", "0.8"],
            "(--lora_scale: a LoRA's strength goes after its file: --lora FILE:0.8)",
        ),
        (["run", "-p", "x", "--lora-strength=0.8"], "(--lora-strength=0.8: a LoRA's strength goes after its file"),
        (["check", "--lora-scale", "0.8"], "unrecognized arguments: --lora-scale 0.8\n"),  # check takes no LoRA
        (["serve", "--Lora", "x"], "(--Lora: did you mean --lora?)"),  # serve's own --lora, misspelled
        (["check", "--frames", "9"], "unrecognized arguments: --frames 9\n"),  # check has no frames: no guess
        # run's settings given to check: it plans the official default run (one hint for them all)
        (["check", "--steps", "4", "-W", "64"], "(--steps, -W: check takes only the files' flags (-m, --gguf, "),
        (["check", "--vram=6"], "and plans the official default run; your run's settings, files and memory plan, "),
        (["check", "--ram", "8"], "(--ram: check takes only the files' flags (-m, --gguf, "),  # a plan's setting too
        (
            ["check", "--Video-Frames", "9"],
            "without loading anything: motif-lite run with the same flags and --dry-run)",
        ),
        (["check", "--scheduler", "karras"], "unrecognized arguments: --scheduler karras\n"),  # no --flow-shift
        (["run", "-p", "x", "--bogus"], "unrecognized arguments: --bogus\n"),
        (["run", "-p", "x", "--num-videos", "3"], "(--num-videos: did you mean --batch-count?)"),
        # diffusers' call argument (was no hint)
        (["run", "-p", "x", "--num_videos_per_prompt", "2"], "(--num_videos_per_prompt: did you mean --batch-count?)"),
        (["run", "-p", "x", "--batch-size", "3"], "(--batch-size: did you mean --batch-count?)"),
        (["run", "-p", "x", "--count", "2"], "(--count: did you mean --batch-count?)"),  # was --output (a typo match)
        # a length in seconds: the frames at the run's fps, 4k+1 (2 s at 24 fps is 48 frames, then 49)
        (
            ["run", "-p", "x", "--seconds", "2"],
            "(--seconds: the length is --video-frames here: 2 s at 24 fps is --video-frames 49 (4k+1 frames; "
            "--fps sets the rate))",
        ),  # fmt: skip
        (["run", "-p", "x", "--fps", "16", "--duration=5"], "5 s at 16 fps is --video-frames 81 (4k+1 frames"),
        (["run", "-p", "x", "--duration", "long"], "(--duration: the length is --video-frames here: a length is "),
        (["run", "-p", "x", "--seconds", "3.1"], "3.1 s at 24 fps is --video-frames 77 ("),  # 18.6 groups: 19
        (["run", "-p", "x", "--seconds", "0"], "(--seconds: the length is --video-frames here: a length is a number "),
        # a length past any video: no frame count the run would refuse in turn (was --video-frames 24000...993)
        (["run", "-p", "x", "--seconds", "1e30"], "1e+30 s at 24 fps is more frames than a video may have ("),
        # one WIDTHxHEIGHT value (the server's size, Wan's 1280*720): the two flags for it
        (["run", "-p", "x", "--size", "1280x720"], "(--size: the size is two flags here: -W 1280 -H 720)"),
        (["run", "-p", "x", "--size=832*480"], "(--size=832*480: the size is two flags here: -W 832 -H 480)"),
        # a video's lines, as -H 720p reads them (was only the generic line)
        (["run", "-p", "x", "--resolution", "720p"], "(--resolution: the size is two flags here: -W 1280 -H 720)"),
        (["run", "-p", "x", "--size", "720p"], "(--size: the size is two flags here: -W 1280 -H 720)"),
        (["run", "-p", "x", "--resolution", "big"], "-W WIDTH -H HEIGHT (multiples of 16, e.g. -W 1280 -H 736))"),
        # a prompt kept in a file: there is no flag for it
        (
            ["run", "--prompt-file", "my prompt.txt"],
            "(--prompt-file: -p takes the prompt's text: read it from the file with "
            """-p "$(cat 'my prompt.txt')" (several prompts: one run each""",
        ),
        # an output folder: -o takes the file, folder and all (was "did you mean --output?", a file)
        (
            ["run", "-p", "x", "--output-dir", "renders"],
            "(--output-dir: -o names the video's file, its folder "
            "included: -o renders/fox.mp4 (the folder must exist))",
        ),
        (["decode", "f", "--outdir"], "(--outdir: -o names the video's file, its folder included: -o DIR/fox.mp4"),
        # Wan2.1's generate.py, stable-diffusion.cpp's previews and threads
        (["run", "-p", "x", "--sample_shift", "5"], "(--sample_shift: did you mean --flow-shift?)"),  # was no hint
        (["run", "-p", "x", "--sample_guide_scale", "5"], "(--sample_guide_scale: did you mean --cfg-scale?)"),
        (["run", "-p", "x", "--base_seed", "3"], "(--base_seed: did you mean --seed?)"),
        # ComfyUI's Video Combine and KSamplerAdvanced widgets (were no hint)
        (["run", "-p", "x", "--frame_rate", "16"], "(--frame_rate: did you mean --fps?)"),
        (["run", "-p", "x", "--framerate", "16"], "(--framerate: did you mean --fps?)"),
        (["run", "-p", "x", "--noise_seed", "3"], "(--noise_seed: did you mean --seed?)"),
        # ComfyUI's loader widgets (UNETLoader, VAELoader, CLIPLoader, LoraLoaderModelOnly) and others (were no hint)
        (["run", "-p", "x", "--unet_name", "m.safetensors"], "(--unet_name: did you mean --diffusion-model?)"),
        (["run", "-p", "x", "--vae_name", "v.safetensors"], "(--vae_name: did you mean --vae?)"),
        (["run", "-p", "x", "--clip_name", "t.safetensors"], "(--clip_name: did you mean --text-encoder?)"),
        (["run", "-p", "x", "--lora_name", "l.safetensors"], "(--lora_name: did you mean --lora?)"),
        (["run", "-p", "x", "--start_image", "f.png"], "(--start_image: did you mean --image?)"),
        (["run", "--positive", "a fox"], "(--positive: did you mean --prompt?)"),
        (["run", "-p", "x", "--filename_prefix", "fox"], "(--filename_prefix: did you mean --output?)"),
        (["run", "-p", "x", "--weight_dtype", "fp8_e4m3fn"], "(--weight_dtype: 8-bit weights come from a GGUF file"),
        (["run", "-p", "x", "--ckpt_name", "m.safetensors"], "(--ckpt_name: a checkpoint folder in the official"),
        # stable-diffusion.cpp's memory and device options (were no hint)
        (["run", "-p", "x", "--max-vram", "6"], "(--max-vram: did you mean --vram?)"),
        (["run", "-p", "x", "--stream-layers"], "(--stream-layers: memory is planned here, not switched"),
        (["run", "-p", "x", "--auto-fit"], "(--auto-fit: memory is planned here, not switched"),
        (["run", "-p", "x", "--params-backend", "cpu"], "(--params-backend: memory is planned here, not switched"),
        (["run", "-p", "x", "--backend", "cuda0"], "(--backend: one GPU is --device cuda:N (cuda:0 the first)"),
        (["run", "-p", "x", "--list-devices"], "(--list-devices: motif-lite check lists the GPUs (cuda:0, cuda:1"),
        (["run", "-p", "x", "--frame_num", "81"], "(--frame_num: did you mean --video-frames?)"),
        (["run", "-p", "x", "--save_file", "x.mp4"], "(--save_file: did you mean --output?)"),
        (["run", "-p", "x", "--preview-path", "p.png"], "(--preview-path: did you mean --preview?)"),
        (["run", "-p", "x", "-t", "4"], "(-t: torch picks its CPU threads itself (one per core); OMP_NUM_THREADS=N"),
        (["run", "-p", "x", "--threads", "4"], "(--threads: torch picks its CPU threads itself (one per core)"),
        (["run", "-p", "x", "--preview-interval", "5"], "(--preview-interval: did you mean --preview-every?)"),
        (["run", "-p", "x", "--save_path", "x.mp4"], "(--save_path: did you mean --output?)"),
        (["run", "-p", "x", "--output_path", "x.mp4"], "(--output_path: did you mean --output?)"),
        (["run", "-p", "x", "--res", "832x480"], "(--res: the size is two flags here: -W 832 -H 480)"),
        # close spellings that sent users to the wrong flag ("did you mean --cfg-scale?" for skip-layer guidance,
        # --gpus for a GPU's index, --sampling-method for the noise's generator)
        (["run", "-p", "x", "--slg-scale", "2"], "(--slg-scale: skip-layer guidance is not offered: the guidance here"),
        (["run", "-p", "x", "--guidance_rescale", "0.7"], "(--guidance_rescale: CFG rescale is not offered; APG"),
        (["run", "-p", "x", "--gpu", "0"], "(--gpu: one GPU is --device cuda:N (cuda:0 the first); several, --gpus N)"),
        (["run", "-p", "x", "--sampler-rng", "cpu"], "(--sampler-rng: the noise is drawn on the CPU, so a seed"),
        # flags of stable-diffusion.cpp, AUTOMATIC1111 and Wan's generate.py that got no hint at all
        (["run", "-p", "x", "--fp16"], "(--fp16: the compute type is --dtype bf16, fp16 or fp32"),
        (["serve", "--cpu"], "(--cpu: the CPU is --device cpu)"),
        (["run", "-p", "x", "--force-fp16"], "(--force-fp16: the compute type is --dtype bf16, fp16"),  # ComfyUI's
        # other GPUs' switches: "--mps: did you mean --fps?" sent Mac users to the frame rate
        (["run", "-p", "x", "--mps"], "(--mps: there is no switch per GPU kind: an AMD GPU is --device cuda under"),
        (["serve", "--directml"], "(--directml: there is no switch per GPU kind"),
        (["run", "-p", "x", "--rocm"], "(--rocm: there is no switch per GPU kind"),
        (["run", "-p", "x", "--vae-tile-size", "32x32"], "(--vae-tile-size: memory is planned here, not switched"),
        (["run", "-p", "x", "--offload_model", "True"], "(--offload_model: memory is planned here, not switched"),
        (
            ["run", "-p", "x", "--cache-mode", "easycache"],
            "(--cache-mode: stable-diffusion.cpp's cache modes are not here; the step cache here is --step-cache",
        ),
        (["run", "-p", "x", "--clip-skip", "2"], "(--clip-skip: there are no CLIP layers to skip"),
        (["run", "-p", "x", "--control-net", "c.safetensors"], "(--control-net: no ControlNet or reference images"),
        (["run", "-p", "x", "--upscale-model", "u.pth"], "(--upscale-model: no upscaler: make the video at the size"),
        (["run", "-p", "x", "-v"], "(-v: there are no log levels: warnings and notes go to stderr"),
        (["check", "--verbose"], "(--verbose: there are no log levels"),
        (["run", "-p", "x", "--ckpt", "m.safetensors"], "(--ckpt: a checkpoint folder in the official layout is -m"),
        # an output folder in other spelling; one followed by another unknown flag, which is not its value
        (["run", "-p", "x", "--Output_Dir", "renders"], "included: -o renders/fox.mp4 (the folder must exist))"),
        (
            ["run", "-p", "x", "--output-dir", "--bogus"],
            "(--output-dir: -o names the video's file, its folder included: -o DIR/fox.mp4 (the folder must exist))",
        ),
        # stable-diffusion.cpp's video options with no counterpart here: what Motif-Video does instead (they had no
        # hint, or a wrong one: --tae was "did you mean --vae?")
        (["run", "-p", "x", "--clip_vision", "c.safetensors"], "(--clip_vision: the image encoder (SigLIP) is part of"),
        (["run", "-p", "x", "--tae", "t.safetensors"], "(--tae: no tiny autoencoder is used: the VAE decodes the"),
        (["run", "-p", "x", "--end-img", "e.png"], "(--end-img: only the first frame can be given (-i IMAGE)"),
        (["run", "-p", "x", "--strength", "0.5"], "(--strength: there is no strength: -i IMAGE is the video's first"),
        # ComfyUI's denoise at its default, 1.0, is every run's: was "there is no strength"
        (["run", "-p", "x", "--denoise", "1.0"], "(--denoise: 1.0 is a full denoise from pure noise, which every run"),
        (["run", "-p", "x", "--denoise=1"], "(--denoise=1: 1 is a full denoise from pure noise, which every run does"),
        (["run", "-p", "x", "--denoise", "0.6"], "(--denoise: there is no strength: -i IMAGE is the video's first"),
        (["run", "-p", "x", "--eta", "0"], "(--eta: the samplers here add no noise between steps, so they take no eta"),
        (["run", "-p", "x", "--rng", "cuda"], "(--rng: the noise is drawn on the CPU, so a seed gives the same noise"),
        (["run", "-p", "x", "--moe-boundary", "0.9"], "(--moe-boundary: Motif-Video has one transformer: Wan 2.2's"),
        (["run", "-p", "x", "--batch", "2"], "(--batch: did you mean --batch-count?)"),
        # more of stable-diffusion.cpp's options that got no hint (--img-cfg-scale a wrong one: --cfg-scale)
        (["run", "-p", "x", "--mask", "m.png"], "(--mask: there is no inpainting mask: -i IMAGE is the video's first"),
        (["run", "-p", "x", "--embd-dir", "e"], "(--embd-dir: textual-inversion embeddings are not taken: the text"),
        (["run", "-p", "x", "--photo-maker", "p"], "(--photo-maker: PhotoMaker is not offered: to keep a person's"),
        (["run", "-p", "x", "--vace-strength", "1"], "(--vace-strength: Wan's VACE (a video guided by control frames)"),
        (["run", "-p", "x", "--sigmas", "1,0.5,0"], "(--sigmas: custom sigmas are not taken: the schedule is flow"),
        (["run", "-p", "x", "--tf32"], "(--tf32: there is no TF32 switch: TF32 changes only float32 arithmetic"),
        (["check", "--mmap"], "(--mmap: no switch needed: the weight files are always memory-mapped"),
        (["decode", "f", "--vae-conv-direct"], "(--vae-conv-direct: ggml's direct convolution has no counterpart"),
        (
            ["run", "-p", "x", "--diffusion-conv-direct"],
            "(--diffusion-conv-direct: ggml's direct convolution has no "
            "counterpart: the transformer's one convolution, its patch embedding, runs torch's (cuDNN on a GPU))",
        ),
        (["run", "-p", "x", "--img-cfg-scale", "2"], "(--img-cfg-scale: there is no separate image guidance: image-"),
        # check's dry run (it is one), ComfyUI's server flags (no hint before)
        (["check", "--dry-run"], "(--dry-run: check is one already: it reads no weights and downloads nothing; a run"),
        (["serve", "--output-directory", "out"], "(--output-directory: the server keeps each job's video in its data"),
        (["run", "-p", "x", "--output-directory", "out"], "(--output-directory: -o names the video's file, its folder"),
        (["serve", "--enable-cors-header"], "(--enable-cors-header: browser pages of other origins are allowed with "),
        # a strength after a space, as other tools take it: it was "a prompt goes after -p ... -p "x 0.8""
        (
            ["run", "-p", "x", "--lora", "style.safetensors", "0.8"],
            "(0.8: a LoRA's strength goes after its file and a colon: --lora style.safetensors:0.8)",
        ),
        (
            ["serve", "--lora=style.safetensors", "0.5"],
            "(0.5: a LoRA's strength goes after its file and a colon: --lora style.safetensors:0.5)",
        ),
    ],
)
def test_unknown_arguments_name_the_flag_meant(capsys, argv, hint):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"motif-lite {argv[0]}: error: " in err and hint in err, err
    assert f"usage: motif-lite {argv[0]}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "-p", "x", "-w", "832", "-h", "480"], "-w 832: the width is -W 832 (a capital W, as the height is "),
        (["run", "-p", "x", "-W", "832", "-h", "480"], "-h 480: -h is the help flag; the height is -H 480 (a capital"),
        (["run", "-h480", "-p", "x"], "-h480: -h is the help flag; the height is -H 480"),
        (["verify", "-m", "tiny", "-w=64"], "-w=64: the width is -W 64"),
    ],
)
def test_a_size_in_lower_case_is_an_error_not_the_help(capsys, argv, said):
    # `-h 480` printed run's help and ended with exit code 0: a script's run made no video and reported no error.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and f"motif-lite {argv[0]}: error: {said}" in captured.err, captured.err
    assert "Generate a video" not in captured.out + captured.err  # no help text


def test_a_lone_h_is_still_the_help_and_a_prompt_of_it_a_prompt(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-h"])
    assert exit_info.value.code == 0 and "Generate a video" in capsys.readouterr().out
    assert cli.command_hints.lowercase_size_flag(["run", "-p", "-h", "480"], cli.build_parser()) is None


@pytest.mark.parametrize(
    "argv, wanted",
    [
        # a ComfyUI user types --preview as an on/off switch
        (["run", "-p", "x", "--preview", "-o", "x.mp4"], "--preview: expected one argument: --preview FILE (while "),
        (["run", "-p", "x", "--lora"], "--lora: expected one argument: --lora FILE[:STRENGTH] (a LoRA for the "),
        (["serve", "--port"], "--port: expected one argument: --port PORT (port (0 = any free port, printed; "),
        # its help led with "APG: ", "lossy: " and "output: ", whose one word said nothing
        (["run", "-p", "x", "--apg-eta"], "--apg-eta: expected one argument: --apg-eta APG_ETA (the weight APG "),
        (["run", "-p", "x", "--step-cache"], "--step-cache THRESHOLD (reuse most of the transformer on steps "),
        (["decode", "x.latents.safetensors", "-o"], "--output OUTPUT (the video file, .mp4 .mkv .mov .webm "),
    ],
)
def test_a_flag_without_its_value_is_told_what_value_it_takes(capsys, argv, wanted):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"motif-lite {argv[0]}: error: argument " in err and wanted in err, err
    assert f"usage: motif-lite {argv[0]}" in err and "Traceback" not in err


def _every_flag_with_a_value() -> list[tuple[str, str, str]]:
    """(command, flag, its help as --help prints it) for each flag that takes a value, of every command of
    motif-lite and of the quantizer; hidden ones (no help) left out."""
    import argparse

    from motif_lite.quantize.cli import build_parser as quantizer_parser

    top = cli.build_parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    parsers = {"motif-lite": top, **{f"motif-lite {name}": p for name, p in commands.items()}}
    parsers["python -m motif_lite.quantize"] = quantizer_parser()
    return [
        (command, action.option_strings[-1], parser._expanded_help(action))
        for command, parser in parsers.items()
        for action in parser._actions
        if action.option_strings and action.nargs != 0 and action.help not in (None, argparse.SUPPRESS)
    ]


def test_every_flags_help_leads_with_a_clause_that_names_its_value():
    # The clause is what "expected one argument" quotes: each help starts with the words that say what the value
    # is, up to its first '; ' or ': '. Not one word ("APG", "output", "port", "lossy"), not the whole of a long
    # help (--sp, --dtype, --quantize ran on to their end).
    from motif_lite.flag_spelling import first_clause

    flags = _every_flag_with_a_value()
    assert len(flags) > 80  # every command's (a parser not read would pass this test)
    unclear = {
        f"{command} {flag}": clause
        for command, flag, help_text in flags
        if len((clause := first_clause(help_text)).split()) < 3 or len(clause) > 140
    }
    assert not unclear, unclear


def test_the_size_and_kernel_flags_help_says_the_unit_and_what_auto_does():
    # -H said "height, multiple of 16" beside -W's "width in pixels", verify's -W/-H only "width (default 256)", and
    # --kernels "kernel backend (default auto)" without what auto picks.
    helps = {(command, flag): text for command, flag, text in _every_flag_with_a_value()}
    for command in ("motif-lite run", "motif-lite verify"):
        for flag in ("--width", "--height"):
            assert "in pixels, multiple of 16" in helps[command, flag], (command, flag, helps[command, flag])
    for command in ("motif-lite run", "motif-lite serve"):
        kernels = helps[command, "--kernels"]
        assert "auto runs our Triton kernels on an NVIDIA GPU" in kernels, kernels


def test_the_first_clause_ends_at_the_first_semicolon_or_colon_outside_parentheses():
    from motif_lite.flag_spelling import first_clause

    assert (
        first_clause("frames, 4k+1 (others are rounded; default 121)")
        == "frames, 4k+1 (others are rounded; default 121)"
    )
    assert first_clause("host memory budget: refuse before loading; more") == "host memory budget"
    assert first_clause("guidance scale; 1 = none") == "guidance scale"  # however short: the help leads with it
    long = "the weight APG gives the guidance update's part parallel to the prediction, 0 to 1"
    assert first_clause(f"{long}; more") == long  # a comma does not end it, however long the clause
    assert first_clause("a:b (c: d), e") == "a:b (c: d), e"  # a colon without a space after it either
    assert first_clause(None) == "" and first_clause("==SUPPRESS==") == ""


@pytest.mark.parametrize("command", ["run", "check", "verify", "serve"])
def test_a_checkpoint_folder_without_its_flag_is_told_to_go_after_m(tmp_path, capsys, command):
    root = str(tmp_path)
    with pytest.raises(SystemExit):
        cli.main([command, root])
    err = capsys.readouterr().err
    assert f"({root}: a checkpoint folder goes after -m: -m {root})" in err, err
    assert "a prompt goes after -p" not in err  # what run and verify said: -p "/path/to/checkpoint"


@pytest.mark.parametrize("model", ["nope.gguf", "models/motif-Q4_K_M.GGUF"])
def test_a_gguf_path_given_to_m_is_told_to_go_after_gguf(tmp_path, capsys, monkeypatch, model):
    # stable-diffusion.cpp's `-m model.gguf`: a mistyped or missing one said only "no such checkpoint directory".
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "-m", model, "-p", PROMPT, "--dry-run"])
    assert_user_error(capsys, code, f"a .gguf file goes after --gguf, not -m: pass it as --gguf {model}")


@pytest.mark.parametrize("output", ["out.jpg", "out.bmp"])
def test_a_still_image_output_names_the_png_sequence_once(tmp_path, capsys, monkeypatch, output):
    # "use PNG: out_%03d.png; or ..., or out_%03d.png for a PNG per frame": the same name twice in one sentence.
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "-m", str(tmp_path), "-p", PROMPT, "-o", output])
    err = assert_user_error(capsys, code, "use PNG, lossless: out_%03d.png (out.png for a one-frame video); or a video")
    assert err.count("out_%03d.png") == 1, err


def test_another_models_gguf_given_as_diffusion_model_names_that_flag(checkpoint, tmp_path, capsys, monkeypatch):
    # It was told what motif-lite expects "for --gguf", a flag this user never typed.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad file"))
    rows = np.zeros((2, 64), np.float32)
    llama = write_test_gguf(tmp_path / "llama-Q8_0.gguf", {"token_embd.weight": (rows, Q.F32, rows.shape)}, "llama")
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--diffusion-model", str(llama)])
    assert_user_error(capsys, code, "(the Motif-Video transformer, for --gguf or --diffusion-model)")


def test_a_prompts_word_that_names_a_folder_here_stays_part_of_the_prompt(tmp_path, capsys, monkeypatch):
    (tmp_path / "snow").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a", "fox", "in", "snow"])
    err = capsys.readouterr().err
    assert '(a prompt goes after -p, in quotes: -p "a fox in snow")' in err and "-m snow" not in err, err


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        ("generate", "is run: motif-lite run -p"),
        ("download", "hf download command"),
        ("version", "the version is a flag: motif-lite --version"),  # not "did you mean verify"
    ],
)
def test_other_tools_command_names_get_ours(capsys, command, hint):
    assert cli.main([command, "-p", "x"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"motif-lite: error: there is no '{command}' command; ") and hint in err, err


def test_help_as_a_command_shows_that_commands_help(capsys, monkeypatch):
    # `motif-lite help run` (pip's, git's and cargo's way) was an error that sent the user to `run --help`.
    monkeypatch.setenv("COLUMNS", "80")  # the usage line below, on one line (argparse wraps to the terminal)
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    run_help = capsys.readouterr().out
    assert cli.main(["help", "run"]) == 0
    assert capsys.readouterr().out == run_help
    assert cli.main(["help"]) == 0
    assert capsys.readouterr().out.startswith("usage: motif-lite [-h] [--version] COMMAND ...")
    assert cli.main(["help", "rnu"]) == cli.EXIT_USER_ERROR
    # The line meant is the help one: `motif-lite run` alone would start a run (here: ask for a prompt).
    assert capsys.readouterr().err.strip().endswith("there is no 'rnu' command: did you mean motif-lite help run")
    assert cli.main(["help", "foo"]) == cli.EXIT_USER_ERROR
    assert "the commands are run, decode, check, verify, serve" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "not_said"),
    [
        (["check", "--dry-run"], "verify has no dry run"),  # check has none either, and is no verify
        (["decode", "a.latents.safetensors", "b.latents.safetensors"], "--resume"),  # decode has no --resume
        (["run", "-p", "x", "./no/such/folder"], "goes after -m"),  # no folder there: not said as a checkpoint
        (["check", "--size", "1280x720"], "-W 1280"),  # check takes no size: no flags of run's to give it
    ],
)
def test_a_hint_is_given_only_to_the_command_it_fits(capsys, argv, not_said):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unrecognized arguments" in err and not_said not in err, err


# The one hint decode and check give for the flags of run they leave to it.
LEFT_TO_RUN = {"decode": "decode makes the video of the latents a run sampled", "check": "check takes only the files'"}


@pytest.mark.parametrize(
    "argv",
    [  # a hand-kept list of run's flags had left these out: "unrecognized arguments" with no hint
        ["decode", "f", "--apg-eta", "0.5"],
        ["decode", "f", "--preview", "p.png"],
        ["decode", "f", "--attention", "int8"],
        ["decode", "f", "--compile"],
        ["check", "--apg-momentum", "0.5"],
        ["check", "--step-cache", "0.1"],
    ],
)
def test_decode_and_check_leave_every_flag_of_run_they_lack_to_run(capsys, argv):
    with pytest.raises(SystemExit):
        cli.main(argv)
    flag = next(word for word in argv[1:] if word.startswith("-"))
    assert f"({flag}: {LEFT_TO_RUN[argv[0]]}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["decode", "check"])
def test_no_flag_of_run_gets_a_bare_unrecognized_arguments_from_decode_or_check(capsys, command):
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    run_flags, own_flags = (set(commands[name]._option_string_actions) for name in ("run", command))
    for flag in sorted(run_flags - own_flags):
        with pytest.raises(SystemExit):
            cli.main([command, *(["f"] if command == "decode" else []), flag])
        err = capsys.readouterr().err
        assert f"unrecognized arguments: {flag} (" in err, err  # this hint, or the flag's own (-y, --lora)


@pytest.mark.parametrize("seconds", ["nan", "inf", "--seconds=inf"])
def test_a_length_in_seconds_of_no_frame_count_gets_the_hint_without_one(capsys, seconds):
    # --seconds nan was a ValueError's traceback, --seconds inf an OverflowError's (no frame count is either)
    argv = ["run", "-p", "x", *([seconds] if seconds.startswith("--") else ["--seconds", seconds])]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    flag = argv[3]
    counted = "inf s at 24 fps is more frames than a video may have" if "inf" in argv[-1] else "a length is a number"
    hint = f"({flag}: the length is --video-frames here: {counted}"
    assert exit_info.value.code == 2 and hint in capsys.readouterr().err


def test_a_name_in_two_entries_of_the_other_tools_advice_is_refused():
    from motif_lite.cli.foreign_flags import _by_name

    assert _by_name([(("--a", "-A"), "--steps", "one")]) == {"--a": ("--steps", "one"), "-A": ("--steps", "one")}
    with pytest.raises(ValueError, match="--a has two entries"):
        _by_name([(("--a",), "--steps", "one"), (("--b", "--a"), "--fps", "two")])


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["chek", "-m", "my ckpt"], "motif-lite check -m 'my ckpt'"),
        (["verfiy"], "motif-lite verify"),
        (["Run", "-p", "x"], "motif-lite run -p x"),
        (["server", "--port", "8001"], "motif-lite serve --port 8001"),
        (["VERIFY"], "motif-lite verify"),  # caps lock: no letter in common with "verify" as typed
    ],
)
def test_a_misspelled_command_gets_the_command_line_meant(capsys, argv, meant):
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"motif-lite: error: there is no '{argv[0]}' command: did you mean {meant}\n"


def test_a_command_like_no_other_gets_the_list_of_commands(capsys):
    with pytest.raises(SystemExit):
        cli.main(["xyz"])
    assert "invalid choice: 'xyz' (choose from 'run', 'decode', 'check', 'verify', 'serve')" in capsys.readouterr().err


def test_the_top_level_help_has_examples_and_names_the_quantizer(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "examples:\n  motif-lite run -p" in out and "python -m motif_lite.quantize CHECKPOINT -o" in out


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_python_warnings_are_lines_of_their_own_above_the_progress_bar(capsys):
    # A kernel that falls back mid-run warns while the denoise bar is drawn: Python's own display would write
    # "path:line: RuntimeWarning: ..." and the source line into the bar's line.
    from motif_lite.cli import _warnings_to_stderr

    shown = warnings.showwarning
    progress = ProgressBars()
    with _warnings_to_stderr():
        progress("denoise", 1, 4)
        fallback = "motif-lite: Triton rms_norm falls back to torch: the kernel failed"
        warnings.warn(fallback, RuntimeWarning, stacklevel=1)
        warnings.warn_explicit("an old flag", DeprecationWarning, "/site-packages/torch/x.py", 12)
        ours = str(Path(cli.__file__).parent.parent / "pipeline.py")  # our own warning, without the prefix
        warnings.warn_explicit("batch_guidance=True does not fit", UserWarning, ours, 700)
        # A kernel's or the quantizer's warning is ours too, wherever its folder is (a checkout's editable install
        # has them at the top level, beside motif_lite/).
        kernel = str(Path(importlib.util.find_spec("motif_lite.kernels").origin).parent / "attention.py")
        warnings.warn_explicit("int8 attention needs sm_80", UserWarning, kernel, 9)
        progress("denoise", 2, 4)
    progress.close()
    lines = re.split(r"[\r\n]", capsys.readouterr().err)
    assert "warning: Triton rms_norm falls back to torch: the kernel failed" in lines, lines
    assert "warning: DeprecationWarning: an old flag (/site-packages/torch/x.py:12)" in lines, lines
    assert "warning: batch_guidance=True does not fit" in lines, lines
    assert "warning: int8 attention needs sm_80" in lines, lines
    assert not any("warnings.warn" in line for line in lines) and warnings.showwarning is shown  # put back


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_a_warning_from_a_package_named_like_ours_is_not_taken_for_ours(capsys):
    # Our folders are matched whole: a plugin installed beside us as motif_lite_extras/ (or kernels_old/ beside a
    # checkout's kernels/) starts with the same letters, and its warning must keep its category and place.
    from motif_lite.cli import _warnings_to_stderr

    package = Path(cli.__file__).parent.parent
    kernels = Path(importlib.util.find_spec("motif_lite.kernels").origin).parent
    plugin = str(package.with_name(package.name + "_extras") / "hooks.py")
    old_kernels = str(kernels.with_name(kernels.name + "_old") / "attention.py")
    with _warnings_to_stderr():
        warnings.warn_explicit("a plugin's own", UserWarning, plugin, 3)
        warnings.warn_explicit("an old kernel's own", UserWarning, old_kernels, 4)
    lines = capsys.readouterr().err.splitlines()
    assert f"warning: UserWarning: a plugin's own ({plugin}:3)" in lines, lines
    assert f"warning: UserWarning: an old kernel's own ({old_kernels}:4)" in lines, lines


def show_a_run(progress: ProgressBars, steps: int = 50) -> None:
    progress("encode", 2, 2)
    for done in range(steps + 1):
        progress("denoise", done, steps)
    progress("decode", 0, 4)
    progress("decode", 4, 4)


def test_progress_in_a_log_is_whole_lines_at_a_sensible_rate(monkeypatch):
    # `nohup motif-lite run ... > run.log 2>&1`: tqdm redrew each bar with carriage returns, one line per stage
    # holding every update, which grep, less and journald show garbled. A log gets a stage's first and last line,
    # and one between at most every 30 s (TQDM_MININTERVAL if set); TQDM_DISABLE=1 writes none.
    log = io.StringIO()
    show_a_run(ProgressBars(file=log))
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 5, lines
    assert lines[1].startswith("denoise:   0%|") and re.match(r"denoise: 100%\|.*\| 50/50 \[", lines[2]), lines
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    show_a_run(every_update := ProgressBars(file=io.StringIO()))
    assert len(every_update.file.getvalue().splitlines()) == 1 + 51 + 2
    monkeypatch.setenv("TQDM_DISABLE", "1")
    show_a_run(silent := ProgressBars(file=io.StringIO()))
    assert silent.file.getvalue() == ""


def test_progress_in_a_log_says_where_a_stopped_stage_got(monkeypatch):
    log = io.StringIO()
    progress = ProgressBars(file=log)
    for done in range(4):
        progress("denoise", done, 10)
    progress.close()  # stopped after step 3
    assert [line.split("|")[0] for line in log.getvalue().splitlines()] == ["denoise:   0%", "denoise:  30%"]


def test_a_resumed_runs_denoise_bar_starts_at_its_step_and_times_only_the_steps_it_samples(monkeypatch):
    # `motif-lite run --resume` after step 30 of 40: the bar starts at 30/40, and its rate and time left come from
    # the steps this run samples (1 s each here), not from 35 steps in 5 s.
    from motif_lite import progress as progress_module

    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setenv("TQDM_MININTERVAL", "0")
    progress = ProgressBars(file=io.StringIO())
    progress("encode", 2, 2)
    for done in range(30, 36):
        progress("denoise", done, 40)
        clock[0] += 1.0
    lines = progress.file.getvalue().splitlines()
    assert lines[1].startswith("denoise:  75%|") and "| 30/40 [" in lines[1], lines
    assert re.search(r"\| 35/40 \[00:05<00:05, +1\.00step/s\]$", lines[-1]), lines


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_terminal_or_a_notebook_stays_a_bar_drawn_in_place(monkeypatch):
    show_a_run(in_a_terminal := ProgressBars(file=Terminal()))
    assert "\r" in in_a_terminal.file.getvalue()
    # A Jupyter kernel's stderr is no terminal, but its cells show tqdm's bars in place (widgets with ipywidgets).
    kernel = SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", SimpleNamespace(get_ipython=lambda: kernel))
    show_a_run(in_a_notebook := ProgressBars(file=io.StringIO()))
    assert "\r" in in_a_notebook.file.getvalue()


@pytest.mark.parametrize(
    "twice",
    [
        ["-p", "a red fox", "-p", "a blue bird"],
        ["-n", "blurry", "--negative-prompt", "x"],
        ["-i", "first.png", "--init-img", "last.png"],  # taken for a first and a last frame: last.png became the first
        ["--extend", "a.mp4", "--extend", "b.mp4"],
    ],
)
def test_a_flag_given_twice_with_another_value_is_refused(tmp_path, capsys, monkeypatch, twice):
    # argparse kept the last value silently: a second -p ran the blue bird alone.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", *twice, "--dry-run", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"given twice, as {twice[1]!r} and then {twice[3]!r}: give it once" in err, err
    if twice[0] == "-i":
        assert "(one run starts from one image, its first frame; a last frame is not offered)" in err, err


def test_a_long_prompt_given_twice_is_cut_in_the_message(tmp_path, capsys):
    long = "a red fox runs through deep snow at dawn, slow motion"  # 53 characters: cut to 40 with the dots
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", long, "-p", "x", "--dry-run", "-o", str(tmp_path / "a.mp4")])
    assert "given twice, as 'a red fox runs through deep snow at d...' and then 'x'" in capsys.readouterr().err


def test_the_same_prompt_twice_is_harmless_and_other_flags_are_overridden(checkpoint, tmp_path, capsys):
    # Wrappers and aliases override a flag they set by giving it again: the last one wins there.
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "-p", PROMPT, "-W", "64", "--dry-run"])
    assert code == 0 and "64x32, 121 frames" in capsys.readouterr().out


def test_a_dry_run_shows_the_prompt_cut_when_long(checkpoint, tmp_path, capsys):
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--dry-run"])
    assert code == 0 and f"prompt: {quoted_text(PROMPT)}" in capsys.readouterr().out.splitlines()
    long = "a red fox runs through deep snow under a pale winter sky " * 5
    args = run_args(checkpoint[0], tmp_path / "fox.mp4")
    args[args.index(PROMPT)] = long
    assert cli.main([*args, "--dry-run"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("prompt: ")]
    assert line.startswith("prompt: 'a red fox runs") and line.endswith(f"... ({len(long)} characters)")
    assert len(line) < len(long)


def test_an_apg_eta_above_1_runs_as_in_the_reference_and_the_help_says_the_usual_range(checkpoint, tmp_path, capsys):
    # diffusers' APG takes any eta: refusing 2 would keep the reference's results out of reach. --help said "(0..1)".
    code = cli.main([*run_args(checkpoint[0], tmp_path / "fox.mp4"), "--apg-eta", "2", "--dry-run"])
    (guidance,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  guidance")]
    assert code == 0 and "eta 2," in guidance and guidance.split()[1] == "flag"
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "usually 0..1, above 1 amplifies it (default: the guider's, else 1)" in help_text
    assert "default: the guider's, else 0.1)" in help_text and "(0..1)" not in help_text


def _batch_stopped_at_the_encode_after(
    written: Path, checkpoint, tmp_path, monkeypatch, videos: int, seed: tuple[str, ...] = ("-s", "2")
) -> list[str]:
    """A `-b videos` batch (seed 2 on, or as `seed`'s flags say) stopped by Ctrl-C as the video after `written` starts
    encoding. -> its command."""

    def stop_in_that_encode(self, stage, done, total):
        if stage == "encode" and written.exists():
            raise KeyboardInterrupt

    bars = ProgressBars.__call__
    monkeypatch.setattr(ProgressBars, "__call__", stop_in_that_encode)
    args = run_args(checkpoint[0], tmp_path / "fox.mp4", "--video-frames", "1", "--steps", "1", "-b", str(videos))
    assert cli.main([*args, *seed]) == cli.EXIT_INTERRUPTED
    monkeypatch.setattr(ProgressBars, "__call__", bars)  # a rerun goes on unstopped
    return args


def test_a_stopped_batch_whose_seeds_were_drawn_names_the_seed_that_goes_on_with_it(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # Without -s, "the same command again" drew new seeds and made every finished video again, replacing them.
    args = _batch_stopped_at_the_encode_after(
        tmp_path / "fox-1.mp4", checkpoint, tmp_path, monkeypatch, 3, seed=("-s", "-1")
    )
    err = capsys.readouterr().err
    first = int(re.search(rf"finished: {re.escape(str(tmp_path / 'fox-1.mp4'))} \(seed (\d+)\)", err).group(1))
    assert f"; to go on where the batch stopped, run the same command with -s {first}\n" in err, err
    assert cli.main([*args, "-s", str(first)]) == 0
    assert f"skipped {tmp_path / 'fox-1.mp4'}: already made with these settings" in capsys.readouterr().err


def test_a_batch_stopped_before_a_videos_first_step_names_that_video_too(checkpoint, tmp_path, capsys, monkeypatch):
    # Ctrl-C while the second video encoded: the note named only the third, and the second had no file and no state.
    _batch_stopped_at_the_encode_after(tmp_path / "fox-1.mp4", checkpoint, tmp_path, monkeypatch, videos=3)
    err = capsys.readouterr().err
    second, third = tmp_path / "fox-2.mp4", tmp_path / "fox-3.mp4"
    assert f"note: started, nothing saved: {second} (seed 3); run it again as an ordinary run of the same command " \
           f"with -b 1 -s 3 -o {second}" in err, err  # fmt: skip
    assert f"not started: {third} (seed 4)" in err
    assert not list(tmp_path.glob("*.latents.safetensors")) and not second.exists()


def test_a_stopped_batch_names_the_videos_it_finished(checkpoint, tmp_path, capsys, monkeypatch):
    # Ctrl-C in the third video: the notes named the videos to make again, not those written, and the user could
    # only tell finished files from the one being written by their names.
    _batch_stopped_at_the_encode_after(tmp_path / "fox-2.mp4", checkpoint, tmp_path, monkeypatch, videos=4)
    err = capsys.readouterr().err
    first, second = tmp_path / "fox-1.mp4", tmp_path / "fox-2.mp4"
    assert f"note: finished: {first} (seed 2), {second} (seed 3)\n" in err, err
    assert f"not started: {tmp_path / 'fox-4.mp4'} (seed 5)" in err and "batch done" not in err


def test_a_long_stopped_batch_lists_the_ends_of_its_unstarted_videos_with_their_count(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # Every unstarted video was listed: `-b 10000` stopped early wrote a 258 kB "not started:" line, while its
    # "finished:" line listed only the ends.
    _batch_stopped_at_the_encode_after(tmp_path / "fox-1.mp4", checkpoint, tmp_path, monkeypatch, videos=12)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "not started" in line]
    first_three = ", ".join(f"{tmp_path / f'fox-{n}.mp4'} (seed {n + 1})" for n in (3, 4, 5))
    assert f"not started (10): {first_three}, ..., {tmp_path / 'fox-12.mp4'} (seed 13); each is" in line, line
    assert "fox-6.mp4" not in line


def test_the_notes_of_a_stopped_batch_come_after_its_progress_bar_is_closed(checkpoint, tmp_path, capsys, monkeypatch):
    # They were printed while the bar was open, then the bar closed: on a terminal the first note ran on from the
    # bar's line ("denoise:   0%| ... ?step/s]note: started, nothing saved: ...").
    def stop_in_the_second_encode(self, stage, done, total):
        if stage == "encode" and (tmp_path / "fox-1.mp4").exists():
            self.stage = stage  # an open bar, as the real one would have
            raise KeyboardInterrupt

    def close(self):
        if self.stage is not None:
            print("<bar closed>", file=sys.stderr)
        self.stage = None

    monkeypatch.setattr(ProgressBars, "__call__", stop_in_the_second_encode)
    monkeypatch.setattr(ProgressBars, "close", close)
    args = run_args(checkpoint[0], tmp_path / "fox.mp4", "--video-frames", "1", "--steps", "1", "-b", "3")
    assert cli.main([*args, "-s", "2"]) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "<bar closed>\nnote: finished: " in err, err  # the first of the notes


def test_a_single_video_stopped_before_its_first_step_gets_no_batch_note(checkpoint, tmp_path, capsys, monkeypatch):
    # The note with "-b 1 -s SEED -o FILE" is for the videos of a batch: a run of one is run again as it was.
    def stop_in_the_encode(self, stage, done, total):
        if stage == "encode":
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBars, "__call__", stop_in_the_encode)
    args = run_args(checkpoint[0], tmp_path / "fox.mp4", "--video-frames", "1", "--steps", "1")
    assert cli.main(args) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "nothing saved" not in err and "-b 1" not in err, err


def test_truncated_negative_prompt_is_named_in_one_warning_line(checkpoint, tmp_path, capsys):
    # The tiny tokenizer reads ~1 token per character: 600 characters are over the 512-token limit.
    args = run_args(checkpoint[0], tmp_path / "fox.gif", "--video-frames", "1", "--steps", "1")
    args[args.index(NEGATIVE)] = "blurry " * 86
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "tokens" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: negative prompt is "), err  # not again at encode
    assert "reads up to '... blurry blurry" in warnings[0] and "drops the last" in warnings[0] and ".py" not in err


def test_a_long_negative_prompt_is_not_said_where_guidance_is_off(checkpoint, tmp_path, capsys):
    # --cfg-scale 0 (the official guider: no guidance) encodes no negative prompt: nothing of it is cut, so nothing is
    # said of it.
    args = run_args(checkpoint[0], tmp_path / "fox.gif", "--video-frames", "1", "--cfg-scale", "0", "--dry-run")
    args[args.index(NEGATIVE)] = "blurry " * 86
    assert cli.main(args) == 0
    assert "negative prompt is" not in capsys.readouterr().err
    args[args.index("--cfg-scale") + 1] = "5"  # guided: said
    assert cli.main(args) == 0
    assert "warning: negative prompt is " in capsys.readouterr().err


def test_a_damaged_tokenizer_leaves_a_long_prompt_to_the_encode(checkpoint, tmp_path, capsys):
    # The prompt is measured before the load where the tokenizer can be read; a damaged one is no traceback there.
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / "tokenizer" / "tokenizer.json").write_text('{"model": ')
    args = run_args(root, tmp_path / "fox.gif", "--video-frames", "1", "--dry-run")
    args[args.index("-p") + 1] = "a red fox runs " * 40
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err and "tokens, over" not in err, err


def test_a_prompt_over_the_limit_is_said_before_the_weights_load(checkpoint, tmp_path, capsys, monkeypatch):
    # It was said as the prompt was encoded, after the model had loaded (minutes at full size).
    from motif_lite import pipeline
    from motif_lite.errors import MotifLiteError

    def stop_here(*args, **kwargs):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(pipeline, "load_pipeline", stop_here)
    args = run_args(checkpoint[0], tmp_path / "fox.gif", "--video-frames", "1", "--steps", "1")
    args[args.index("-p") + 1] = "a red fox runs " * 34 + "through deep snow at dusk"  # 535 characters
    assert cli.main(args) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    said = "warning: prompt is 536 tokens, over the text encoder's limit of 512: it reads up to '... red fox runs a "
    said += "red fox runs t'"
    assert said in err and " and drops the last 24; shorten the prompt to keep them" in err, err
    assert err.index(said) < err.index("error: stop here"), err
    assert cli.main([*args, "--dry-run"]) == 0
    assert said in capsys.readouterr().err  # where a prompt is checked before a run


def test_a_negative_prompt_the_guidance_does_not_read_is_not_said_cut(checkpoint, tmp_path, capsys):
    # APG at scale 0 (its original formulation: no guidance) never encodes the negative prompt, yet the warning
    # before the load said it would be cut: it counted any guidance as reading it.
    args = run_args(checkpoint[0], tmp_path / "fox.gif", "--dry-run")
    args[args.index(NEGATIVE)] = "blurry " * 86
    assert cli.main(args) == 0
    assert "warning: negative prompt is 603 tokens" in capsys.readouterr().err
    assert cli.main([*args, "--cfg-scale", "0"]) == 0
    assert "negative prompt is" not in capsys.readouterr().err


def test_unreadable_image(tmp_path, capsys):
    (tmp_path / "first.png").write_bytes(b"\x89PNG but not really")
    code = cli.main([*run_args(tmp_path, tmp_path / "fox.mp4"), "-i", str(tmp_path / "first.png")])
    assert_user_error(capsys, code, "error: cannot read image", "first.png")


def test_missing_model_file_is_named(checkpoint, tmp_path, capsys):
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    code = cli.main(run_args(root, tmp_path / "fox.mp4"))
    assert_user_error(capsys, code, "error: incomplete checkpoint", "vae/diffusion_pytorch_model.safetensors")
    code = cli.main(run_args(tmp_path / "nowhere", tmp_path / "fox.mp4"))
    assert_user_error(capsys, code, "error: no such checkpoint directory")


def test_bad_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", "--sampling-method", "ddim"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid choice: 'ddim'" in err and "Traceback" not in err


def test_ctrl_c_exits_130_and_leaves_no_video(checkpoint, tmp_path, capsys, monkeypatch):
    real = ProgressBars.__call__

    def interrupt_in_decode(self, stage, done, total):
        real(self, stage, done, total)
        if stage == "decode" and done == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressBars, "__call__", interrupt_in_decode)
    code = cli.main(run_args(checkpoint[0], tmp_path / "fox.mp4", "--video-frames", "5", "--steps", "1"))
    err = capsys.readouterr().err
    assert code == cli.EXIT_INTERRUPTED and "interrupted" in err and "Traceback" not in err
    latents = tmp_path / "fox.latents.safetensors"  # no partial video; the latents, to decode later
    assert list(tmp_path.iterdir()) == [latents] and f"motif-lite decode {latents}" in err


def test_console_script_reports_errors_without_traceback(tmp_path):
    # A real process, as a user runs it: the exit code comes from main's return value.
    command = [sys.executable, "-m", "motif_lite.cli"]
    args = ["run", "-p", "x", "-W", "1000", "-o", str(tmp_path / "a.mp4")]
    result = subprocess.run([*command, *args], capture_output=True, text=True, cwd=tmp_path)
    assert (
        result.returncode == 2
        and "error: -W/--width (in Python width) 1000" in result.stderr
        and "Traceback" not in result.stderr
    )


@pytest.mark.parametrize("where", ["-o", "-o folder", "-i", "-m", "decode"])
def test_a_name_too_long_for_the_file_system_is_a_user_error(checkpoint, tmp_path, capsys, where):
    # A script's -o "$prompt.mp4" with a long prompt: the file system refuses a name over 255 bytes, before any work.
    long = "a red fox runs through the snow " * 10  # 320 bytes
    args = {
        "-o": run_args(checkpoint[0], tmp_path / f"{long}.mp4"),
        "-o folder": run_args(checkpoint[0], tmp_path / long / "fox.mp4"),
        "-i": run_args(checkpoint[0], tmp_path / "fox.mp4", "-i", str(tmp_path / f"{long}.png")),
        "-m": run_args(tmp_path / long, tmp_path / "fox.mp4"),
        "decode": ["decode", str(tmp_path / f"{long}.latents.safetensors")],
    }[where]
    code = cli.main(args)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert "error: a file name is too long for this file system" in err and "that name is 3" in err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied", "fox.mp4"), OSError(28, "No space")])
def test_other_os_errors_than_a_name_too_long_keep_their_traceback(monkeypatch, capsys, error):
    """Only the file system's refusal of a long name, and a path under a folder this user may not enter (not so
    here: the folder of fox.mp4 may be entered), are the user's to fix in one line: another OSError reaching `main`
    is a bug (a failure some check should have named), told as "a file name is too long" it would mislead."""
    from motif_lite.cli import check

    def fails(args):
        raise error

    monkeypatch.setattr(check, "main", fails)  # `check`'s handler, as `build_parser` registers it
    with pytest.raises(OSError) as raised:
        cli.main(["check"])
    assert raised.value is error and "too long" not in capsys.readouterr().err


def test_every_dtype_name_has_a_torch_dtype():
    from motif_lite.choices import DTYPE_NAMES
    from motif_lite.dtypes import torch_dtype

    assert [torch_dtype(name) for name in DTYPE_NAMES] == [torch.bfloat16, torch.float16, torch.float32]


@pytest.mark.parametrize("command", ["run", "serve", "decode", "verify"])
def test_dtype_takes_torchs_and_other_tools_names_of_the_same_dtypes(command):
    # Users come with torch's names (float16, bfloat16) or numpy's (half, float): the same dtypes, taken as such.
    from motif_lite.choices import DTYPE_ALIASES
    from motif_lite.dtypes import torch_dtype

    parse = cli.build_parser().parse_args
    extra = ["latents.safetensors"] if command == "decode" else []
    for alias, name in [*DTYPE_ALIASES.items(), ("BF16", "bf16"), ("torch.float16", "fp16")]:
        assert parse([command, *extra, "--dtype", alias]).dtype == name
        torch_name = alias.lower().removeprefix("torch.")
        assert not hasattr(torch, torch_name) or getattr(torch, torch_name) == torch_dtype(name)  # torch.half, ...
    with pytest.raises(SystemExit):
        parse([command, *extra, "--dtype", "fp8"])


@pytest.mark.parametrize("command", ["run", "serve"])
def test_every_choice_flag_takes_any_letter_case(command):
    # --dtype BF16, --guidance APG and --sampling-method Euler were taken, --kernels Torch and --attention INT8 not.
    parse = cli.build_parser().parse_args
    args = parse(
        [command, "--kernels", "Torch", "--attention", "INT8", "--dtype", "BF16", "--attention-backend", "SDPA"]
    )
    assert (args.kernels, args.attention, args.dtype, args.attention_backend) == ("torch", "int8", "bf16", "sdpa")
    if command == "run":
        args = parse([command, "--guidance", "APG", "--sampling-method", "Euler"])
        assert (args.guidance, args.sampling_method) == ("apg", "euler")


FINISHED_THEN_CTRL_C = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, also under a parent that ignores it
from motif_lite import cli
cli.main = lambda argv=None: 0  # the command finished: the video is written
real_exit = sys.exit
def exiting(code):  # a Ctrl-C on the way out, as while Python tears torch down
    signal.raise_signal(signal.SIGINT)
    real_exit(code)
sys.exit = exiting
cli.entry()
"""


def test_a_ctrl_c_after_the_command_finished_keeps_its_exit_status():
    # A finished run once exited 130 without a word: the Ctrl-C landed after the video was written.
    done = subprocess.run([sys.executable, "-c", FINISHED_THEN_CTRL_C], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "KeyboardInterrupt" not in done.stderr, (done.returncode, done.stderr)


def dry_run_command(checkpoint: Path, prompt: str) -> list[str]:
    """`motif-lite run --dry-run` as its own process: what a script starts (stdout not a terminal)."""
    size = ["-W", "48", "-H", "32", "--video-frames", "5", "--device", "cpu"]
    return [sys.executable, "-m", "motif_lite", "run", "-m", str(checkpoint), "-p", prompt, *size, "--dry-run"]


def test_a_prompt_that_stdouts_encoding_lacks_is_printed_escaped(checkpoint, tmp_path):
    # Under an ASCII or Latin-1 locale (or Windows' cp1252) printing the summary's prompt failed after the video was
    # written: a traceback and exit code 1 for a finished run. It is written as Python writes stderr: escaped.
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    command = dry_run_command(checkpoint[0], "un renard \u2014 caf\xe9 \u72d0")
    # cwd: the default output goes to the current folder, which may be read-only (a checkout of another user's)
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prompt: 'un renard \\u2014 caf\\xe9 \\u72d0'" in done.stdout


def test_a_reader_that_went_away_ends_the_command_with_141_and_no_traceback(checkpoint, tmp_path):
    # `motif-lite run ... | head -1`: the last write to the closed pipe (at Python's exit, stdout being buffered)
    # printed "Exception ignored ... BrokenPipeError" and exited with 120, or a traceback and 1 mid-run.
    process = subprocess.Popen(  # cwd: the default output's folder, which must be writable
        dry_run_command(checkpoint[0], "a fox"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    process.stdout.close()  # the reader is gone before the command writes anything
    err = process.stderr.read()
    assert process.wait(timeout=120) == cli.EXIT_OUTPUT_CLOSED == 141
    assert "BrokenPipeError" not in err and "Traceback" not in err, err


class ClosedPipe(io.StringIO):
    """A stream whose reader went away (`motif-lite run ... 2>&1 | head -3`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_run_whose_log_reader_went_away_stops_with_141(checkpoint, tmp_path, monkeypatch, capsys):
    # The first line on a closed stderr raised BrokenPipeError out of the command: a traceback nobody could read
    # and exit code 1. It stops as the program a shell would see killed by SIGPIPE.
    monkeypatch.setattr(sys, "stderr", ClosedPipe())
    assert cli.main(run_args(checkpoint[0], tmp_path / "fox.mp4")) == cli.EXIT_OUTPUT_CLOSED
    assert not any(tmp_path.iterdir())


class HungUp(io.StringIO):
    """A terminal that hung up (the SSH session dropped)."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")


def test_lines_for_a_stderr_whose_reader_went_away_go_to_the_terminal(tmp_path, monkeypatch):
    # Ctrl-C in `motif-lite run ... 2>&1 | tee run.log` stops tee too: the warning naming the kept state and the
    # --resume command went to the closed pipe, and the terminal showed nothing.
    terminal = tmp_path / "tty"
    terminal.touch()
    monkeypatch.setattr(cli, "CONTROLLING_TERMINAL", str(terminal))
    monkeypatch.setattr(sys, "stderr", ClosedPipe())
    cli._say_above_bars("warning: sampling stopped after step 3 of 9; its state is saved in fox.latents.safetensors")
    cli._say("interrupted")
    said = "warning: sampling stopped after step 3 of 9; its state is saved in fox.latents.safetensors\ninterrupted\n"
    assert terminal.read_text() == said
    monkeypatch.setattr(sys, "stderr", HungUp())  # a terminal that hung up: nowhere to say it, and no error
    cli._say("interrupted")
    assert terminal.read_text() == said
    monkeypatch.setattr(sys, "stderr", ClosedPipe())
    monkeypatch.setattr(cli, "CONTROLLING_TERMINAL", str(tmp_path / "none"))  # no terminal (cron): no error either
    cli._say("interrupted")


def test_help_and_version_do_not_import_torch():
    # --help must answer at once: building the parser may not pull in torch (seconds to import).
    code = "import sys; from motif_lite.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
    version = subprocess.run([sys.executable, "-m", "motif_lite", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("motif-lite ")


def test_the_default_output_never_replaces_an_earlier_video(checkpoint, tmp_path, capsys, monkeypatch):
    # Without -o, an existing output.mp4 stays and the next free name is written (and said); -o replaces.
    monkeypatch.chdir(tmp_path)
    args = [a for a in run_args(checkpoint[0], Path("unused")) if a not in ("-o", "unused")]
    args += ["--video-frames", "1", "--steps", "1"]
    (tmp_path / "output.mp4").write_bytes(b"an earlier video")
    (tmp_path / "output-2.mp4").write_bytes(b"another one")
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "output.mp4 exists: writing output-3.mp4 instead" in err
    assert (tmp_path / "output.mp4").read_bytes() == b"an earlier video"
    assert (tmp_path / "output-2.mp4").read_bytes() == b"another one"
    assert (tmp_path / "output-3.mp4").stat().st_size > 1000
    assert cli.main([*args, "-o", "output.mp4"]) == 0
    assert (tmp_path / "output.mp4").stat().st_size > 1000  # named with -o: replaced
    assert "exists" not in capsys.readouterr().err


@pytest.mark.parametrize(("count", "first", "second"), [
    ("1", ["output.mp4"], ["output-2.mp4"]),
    ("2", ["output-1.mp4", "output-2.mp4"], ["output-2-1.mp4", "output-2-2.mp4"]),
])  # fmt: skip
def test_runs_started_at_the_same_moment_take_different_default_names(tmp_path, monkeypatch, count, first, second):
    # Two runs of a script (`&`, `xargs -P`) both chose output.mp4 (nothing was there yet) and the one that finished
    # last replaced the other's video. A run now claims its names as it chooses them (an empty file, created
    # exclusively); a dry run writes nothing.
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", count])

    def outputs(claim: bool) -> list[str]:
        requests, _ = run_command.resolve_requests(args, run_command.request_from_args(args), claim=claim)
        return [Path(r.output).name for r in requests]

    assert outputs(claim=False) == first and not any(tmp_path.iterdir())
    assert outputs(claim=True) == first and outputs(claim=True) == second
    assert all((tmp_path / name).stat().st_size == 0 for name in first + second)


def test_a_second_run_given_the_same_o_is_refused_while_the_first_writes_it(checkpoint, tmp_path, capsys, monkeypatch):
    # Two runs with one -o (a script's `&`) both ran, and the last to finish replaced the other's video. The first
    # run's claim (here one made in this process, as a run holds it) refuses the second before anything loads.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.output_claims import claim_named_output, release_named_claims

    def stop_here(*args, **kwargs):
        raise MotifLiteError("stop here")

    monkeypatch.setattr(pipeline, "load_pipeline", stop_here)
    output = tmp_path / "fox.mp4"
    claim_named_output(output)  # the first run, writing fox.mp4
    err = assert_user_error(capsys, cli.main(run_args(checkpoint[0], output)), f"another run (process {os.getpid()})")
    assert f"is writing {output}: give this run another -o" in err and "stop here" not in err, err
    release_named_claims([output])  # the first run ended: the name is free, and the run goes on to load
    assert_user_error(capsys, cli.main(run_args(checkpoint[0], output)), "stop here")
    assert not any(tmp_path.iterdir())  # its own claim released as it ended


@pytest.mark.parametrize("output", ["fox.mp4", "f_%03d.png"])
def test_a_claim_of_an_o_left_by_a_killed_run_is_taken_over(tmp_path, output):
    # A run killed outright (kill -9) cannot remove its claim: a process no longer running holds no name.
    import socket

    from motif_lite.errors import MotifLiteError
    from motif_lite.io.output_claims import WRITING_PREFIX, claim_named_output, release_named_claims

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = tmp_path / f"{WRITING_PREFIX}{output}"
    marker.write_text(f"{int(gone.stdout)} {socket.gethostname()}\n")
    claim_named_output(tmp_path / output)
    assert marker.read_text().split() == [str(os.getpid()), socket.gethostname()]
    with pytest.raises(MotifLiteError, match="another run"):  # this process's claim is no stale one
        claim_named_output(tmp_path / output)
    release_named_claims([tmp_path / output])
    assert not marker.exists()


def test_named_claims_hold_the_names_inside_and_free_them_however_it_ends(tmp_path):
    # decode's -o and the --gpus launcher's share this: a claim left by an error would refuse every later run.
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.output_claims import WRITING_PREFIX, named_claims

    outputs = [tmp_path / "fox.mp4", tmp_path / "fox-2.mp4"]
    markers = [tmp_path / f"{WRITING_PREFIX}{o.name}" for o in outputs]
    with pytest.raises(ValueError, match="stopped"), named_claims(outputs, "decode"):
        assert all(m.exists() for m in markers)
        with pytest.raises(MotifLiteError, match="give this decode another -o"), named_claims(outputs[1:], "decode"):
            pytest.fail("claimed a name already held")
        assert markers[1].exists()  # the refused claim freed nothing of the one that holds the name
        raise ValueError("stopped")
    assert not any(m.exists() for m in markers)


def test_a_run_that_fails_frees_the_default_name_it_claimed(checkpoint, tmp_path, capsys, monkeypatch):
    # The claim (an empty output.mp4) must not outlive a run that wrote no video: the next run would take
    # output-2.mp4, beside an empty output.mp4.
    monkeypatch.chdir(tmp_path)
    args = [a for a in run_args(checkpoint[0], Path("unused")) if a not in ("-o", "unused")]
    assert_user_error(capsys, cli.main([*args, "--lora", "missing.safetensors"]), "LoRA file not found")
    assert not any(tmp_path.iterdir())


def test_a_dry_run_says_which_free_name_a_run_would_write(checkpoint, tmp_path, capsys, monkeypatch):
    # It said "output.mp4 exists: writing output-2.mp4 instead" although a dry run writes nothing.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output.mp4").write_bytes(b"an earlier video")
    assert cli.main(["run", "-m", str(checkpoint[0]), "--dry-run", "--device", "cpu", "-W", "48", "-H", "32"]) == 0
    err = capsys.readouterr().err
    assert "note: output.mp4 exists: a run would write output-2.mp4 instead" in err and "writing" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.mp4"]


def test_batch_count_makes_videos_with_consecutive_seeds_from_one_load(checkpoint, tmp_path, capsys, monkeypatch):
    # -b 2: seeds 7 and 8, files numbered before the frame number; the second video is the one -s 8 makes alone.
    loads = []
    load = pipeline.load_pipeline
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: loads.append(1) or load(*a, **kw))
    args = run_args(checkpoint[0], tmp_path / "out_%03d.png", "--video-frames", "1", "--steps", "1")
    assert cli.main([*args, "-b", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.count("done: ") == 2 and out.count("settings (flag: given by you") == 1  # the table leads, once
    assert "seeds: 7, 8" in err and f"video 2 of 2: seed 8, {tmp_path / 'out-2_%03d.png'}" in err
    assert len(loads) == 1
    # After a night of summaries, one line that says what the batch made (on stderr: stdout still ends in output:).
    files = f"{tmp_path / 'out-1_%03d.png'}, {tmp_path / 'out-2_%03d.png'}"
    assert re.search(rf"^batch done: 2 videos in 0:\d\d:\d\d \(h:mm:ss, the load included\): {re.escape(files)}$",
                     err, re.MULTILINE), err  # fmt: skip
    assert out.splitlines()[-1].startswith("output: ")
    # From the second video on, how long the done ones took and the time left at that pace: when the night ends.
    assert f"video 1 of 2: seed 7, {tmp_path / 'out-1_%03d.png'}\n" in err
    pace = r"\(1 done in 0:\d\d:\d\d, about 0:\d\d:\d\d left at that pace\)"
    assert re.search(rf"^video 2 of 2: .*out-2_%03d\.png {pace}$", err, re.MULTILINE), err
    batch = [np.asarray(PIL.Image.open(tmp_path / f"out-{i}_000.png")) for i in (1, 2)]
    alone = tmp_path / "alone"
    alone.mkdir()
    seed_8 = [a if a != "7" else "8" for a in run_args(checkpoint[0], alone / "out_%03d.png")]
    assert cli.main([*seed_8, "--video-frames", "1", "--steps", "1"]) == 0
    assert np.array_equal(batch[1], np.asarray(PIL.Image.open(alone / "out_000.png")))
    assert not np.array_equal(batch[0], batch[1])  # another seed, another video


@pytest.mark.parametrize("prompt", ["prompt.txt", "@prompt.txt"])
def test_a_prompt_that_names_a_file_gets_a_note(checkpoint, tmp_path, capsys, monkeypatch, prompt):
    # -p prompt.txt and -p @prompt.txt were taken as the text without a word: a note says how to read the file.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompt.txt").write_text("a red fox runs through snow")
    args = ["run", "-m", str(checkpoint[0]), "--dry-run", "--device", "cpu", "-W", "48", "-H", "32", "-o", "a.mp4"]
    assert cli.main([*args, "-p", prompt]) == 0
    err = capsys.readouterr().err
    note = f"note: the prompt is the text '{prompt}'; to read a prompt from a file use -p "
    assert note + '"$(cat prompt.txt)"' in err
    assert cli.main([*args, "-p", "a red fox", "-n", "prompt.txt"]) == 0  # the same for -n; a plain prompt: none
    err = capsys.readouterr().err
    assert "the prompt is the text" not in err
    assert "note: the negative prompt is the text 'prompt.txt'; to read a negative prompt from a file use -n" in err


def test_a_size_given_on_one_side_names_the_other_side_that_keeps_the_shape(checkpoint, tmp_path, capsys, monkeypatch):
    # `-W 832` alone made 832x736 without a word (the default height), where other tools' "keep proportions" or the
    # README's `-W 832 -H 480` taught the user to expect 832x480.
    monkeypatch.chdir(tmp_path)
    args = ["run", "-m", str(checkpoint[0]), "-p", PROMPT, "--dry-run", "--device", "cpu", "--video-frames", "9"]
    assert cli.main([*args, "-W", "832"]) == 0
    err = capsys.readouterr().err  # 832 * 736 / 1280 = 478.4, and 480 is the nearest multiple of 16
    assert "note: -W 832 is given without -H, so -H is the default 736 (832x736); -H 480 keeps the official shape" \
        " (1280x736) at that width" in err, err  # fmt: skip
    # In image-to-video the image's shape, upright: a phone photo stored 120x80 and tagged "turn 90 degrees" is 80x120.
    photo = PIL.Image.new("RGB", (120, 80), (200, 90, 40))
    exif = photo.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to show
    photo.save(tmp_path / "photo.jpg", exif=exif)
    assert cli.main([*args, "-H", "480", "-i", "photo.jpg"]) == 0
    err = capsys.readouterr().err  # 480 * 80 / 120 = 320
    assert "note: -H 480 is given without -W, so -W is the default 1280 (1280x480); -W 320 keeps the image's shape" \
        " (80x120) at that height" in err, err  # fmt: skip
    # The stretch note states the stretch without its own size of the image's shape: that one changed both sides
    # (-W 640 -H 960 here), a second fix beside the one that keeps the -H given.
    stretched = "note: the image is 80x120 (aspect 0.67) and is stretched to 1280x480 (aspect 2.67), as the reference"
    assert f"{stretched} pipeline does\n" in err and "keeps its shape" not in err, err
    # Neither side given: no note, also where the image's shape is not the default size's.
    for both_or_fitting in (["-W", "832", "-H", "480"], ["-W", "1280"], [], ["-i", "photo.jpg"]):
        assert cli.main([*args, *both_or_fitting]) == 0
        assert "is given without" not in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["--mode", "-M"])
def test_stable_diffusion_cpp_mode_is_not_read_as_model(capsys, mode):
    # sd.cpp's -M/--mode: --mode was expanded to --model ("error: no such checkpoint directory: vid_gen").
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", mode, "vid_gen", "--dry-run"])
    err = capsys.readouterr().err
    assert (
        exit_info.value.code == 2 and f"unrecognized arguments: {mode} vid_gen ({mode}: stable-diffusion.cpp's " in err
    )
    assert "motif-lite run makes a video" in err and "checkpoint" not in err


@pytest.mark.parametrize(
    "command", [["run", "-p", "fox", "--neg", "x"], ["decode", "x.latents.safetensors", "--dev", "cpu"]]
)
def test_abbreviated_flags_are_not_expanded(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(command)
    assert exit_info.value.code == 2 and f"unrecognized arguments: {' '.join(command[-2:])}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--gguf", "Q4_K_M", "-p", "a fox", "-o", "fox.mp4"], ["-m", "tiny", "-p", "a fox"], ["--model=tiny", "-p", "x"]],
)
def test_run_flags_without_the_command_say_the_command(capsys, argv):
    # sd.cpp's `sd` takes flags alone: argparse answered "argument COMMAND: invalid choice: 'Q4_K_M'".
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == f"motif-lite: error: the command comes first: did you mean motif-lite run {shlex.join(argv)}\n"


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["-M", "vid_gen", "--diffusion-model", "m.gguf", "-p", "a fox"], "run --diffusion-model m.gguf -p 'a fox'"),
        (["--mode=vid_gen", "-p", "a fox", "--cfg-scale", "5"], "run -p 'a fox' --cfg-scale 5"),
        (["--mode", "img_gen"], "run"),
    ],
)
def test_sd_cpps_mode_first_says_the_run_command(capsys, argv, meant):
    # sd.cpp's `sd -M vid_gen ...` typed as motif-lite: argparse answered "invalid choice: 'vid_gen'".
    assert cli.main(argv) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    said = "motif-lite: error: stable-diffusion.cpp's mode is the command here: did you mean motif-lite"
    assert err == f"{said} {meant}\n"


def test_sd_cpps_convert_mode_says_the_quantizer(capsys):
    assert cli.main(["-M", "convert", "-m", "x.safetensors", "-o", "x.gguf", "--type", "q8_0"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("motif-lite: error: stable-diffusion.cpp's -M convert: the GGUF quantizer is a program of")
    assert "python -m motif_lite.quantize SRC -o OUT.gguf" in err


def test_top_level_flags_are_not_taken_for_run_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("motif-lite ")


LINUX_PSEUDO_FILE_SYSTEMS = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux's /proc and /sys")


@LINUX_PSEUDO_FILE_SYSTEMS
@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (["-o", "/sys/x.mp4"], "output directory /sys is not writable"),
        (["-o", "/proc/x.mp4", "--dry-run"], "output directory /proc is not writable"),
        (["--preview", "/sys/p.webp"], "preview folder /sys is not writable"),
    ],
)
def test_an_output_folder_no_file_can_be_created_in_is_refused_before_loading(
    checkpoint, tmp_path, capsys, monkeypatch, flags, refused
):
    # As root (permission bits pass) the run sampled and decoded, then ffmpeg failed and the latents were lost too;
    # --dry-run -o /proc/x.mp4 passed.
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded before the check"))
    args = run_args(checkpoint[0], tmp_path / "v.mp4")  # a later -o wins
    assert cli.main([*args, *flags]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"error: {refused}: no file can be created there (" in err and "write to another folder" in err


def test_a_run_removes_the_partial_file_a_killed_run_left_of_its_output(checkpoint, tmp_path, capsys):
    # A `kill -9` while writing k.mp4 left .partial-PID-k.mp4 (hidden); the next run to k.mp4 said nothing of it.
    ended = subprocess.Popen(["true"])
    ended.wait()
    running = subprocess.Popen(["sleep", "60"])
    try:
        for pid in (ended.pid, running.pid):
            (tmp_path / f".partial-{pid}-k.mp4").write_bytes(b"half a video")
        assert cli.main(run_args(checkpoint[0], tmp_path / "k.mp4", "--video-frames", "1", "--steps", "1")) == 0
    finally:
        running.kill()
        running.wait()
    assert f"warning: removed .partial-{ended.pid}-k.mp4 from {tmp_path}: the partial output of an earlier " in (
        capsys.readouterr().err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".partial-{running.pid}-k.mp4", "k.mp4"]  # a live one stays


def test_a_name_too_long_is_measured_in_bytes_and_cut_short():
    import errno
    import os

    from motif_lite.paths import name_too_long

    accents, folder = "é" * 140 + ".mp4", "x" * 200  # 284 bytes in 144 characters; 200 bytes
    said = name_too_long(OSError(errno.ENAMETOOLONG, "File name too long", f"/videos/{folder}/{accents}"))
    assert f"/videos/{folder}/{'é' * 40}...{accents[-12:]} (that name is 284 bytes;" in said
    said = name_too_long(OSError(errno.ENAMETOOLONG, "File name too long", os.fsencode(f"/videos/{folder}")))
    assert f"file system: /videos/{'x' * 40}...{'x' * 12} (that name is 200 bytes;" in said  # a name given as bytes
    said = name_too_long(OSError(errno.ENAMETOOLONG, "File name too long"))
    assert said == "a file name is too long for this file system (File name too long): give shorter names"


def test_a_commands_kernel_cache_folder_is_its_own(monkeypatch, tmp_path):
    # run points TRITON_CACHE_DIR at a folder it can write when the user's cannot be (cli/kernel_cache.py) and left
    # it so: a script calling cli.main, and every test after, compiled into the run's fallback folder.
    import os

    from motif_lite.cli import run as run_command

    def sets_the_cache(args):
        os.environ["TRITON_CACHE_DIR"] = str(tmp_path / "fallback")
        return 0

    monkeypatch.setattr(run_command, "main", sets_the_cache)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "mine"))
    assert cli.main(["run", "-p", "a fox"]) == 0
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "mine")
    monkeypatch.delenv("TRITON_CACHE_DIR")
    assert cli.main(["run", "-p", "a fox"]) == 0 and "TRITON_CACHE_DIR" not in os.environ


def test_a_command_sets_the_allocator_config_for_itself_only(monkeypatch, tmp_path, capsys, allocator_config_seen):
    # run, decode and serve set PYTORCH_CUDA_ALLOC_CONF (torch reads it as CUDA starts) and left it set: a script or
    # a test that called cli.main got the command's allocator setting for its own CUDA use after, and so did every
    # test after one that ran a command. It is the command's while it runs, then as it was.
    import os

    refused = ["run", "-m", str(tmp_path / "no-model"), "-p", "fox", "--device", "cpu", "-o", str(tmp_path / "a.mp4")]
    assert cli.main(refused) == cli.EXIT_USER_ERROR
    assert allocator_config_seen == ["expandable_segments:True"] and cli.ALLOCATOR_CONFIG not in os.environ
    monkeypatch.setenv(cli.ALLOCATOR_CONFIG, "backend:native")  # the user's own, which the command keeps
    assert cli.main(refused) == cli.EXIT_USER_ERROR
    assert allocator_config_seen[-1] == os.environ[cli.ALLOCATOR_CONFIG] == "backend:native"
    assert "error: " in capsys.readouterr().err


def test_names_claimed_by_a_run_that_is_refused_or_moves_on_are_freed(tmp_path, monkeypatch, capsys):
    # A run refused after choosing its names (a --preview that never comes) left its empty claimed output.mp4: the
    # next run wrote output-2.mp4. A batch that finds one of its names taken moves on whole, leaving none claimed.
    monkeypatch.chdir(tmp_path)
    refused = ["run", "-p", "fox", "--video-frames", "5", "--steps", "2", "--preview", "p.mp4", "--preview-every", "5"]
    assert_user_error(capsys, cli.main(refused), "--preview-every 5 is not below --steps 2")
    assert not any(tmp_path.iterdir())
    (tmp_path / "output-2.mp4").write_bytes(b"an earlier video")
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", "2"])
    requests, notes = run_command.resolve_requests(args, run_command.request_from_args(args), claim=True)
    assert [Path(r.output).name for r in requests] == ["output-2-1.mp4", "output-2-2.mp4"]
    assert not (tmp_path / "output-1.mp4").exists() and any("output-2.mp4 exists" in note for note in notes)


@pytest.mark.parametrize("count", ["1", "2"])
def test_names_a_run_claims_are_not_called_earlier_videos(tmp_path, monkeypatch, count):
    # The claimed names are there once claimed: the note "output-1.mp4 exists: writing ... instead" is for earlier
    # videos only.
    monkeypatch.chdir(tmp_path)
    args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", "-b", count])
    _, notes = run_command.resolve_requests(args, run_command.request_from_args(args), claim=True)
    assert not any("exist" in note for note in notes), notes


def test_a_video_named_with_o_that_is_there_is_said_to_be_replaced_before_the_run(tmp_path, monkeypatch):
    # -o replaces a file, as stable-diffusion.cpp and ffmpeg -y do; ComfyUI never does, and the earlier video was
    # lost without a word. Said before any work, while it can still be moved.
    monkeypatch.chdir(tmp_path)
    for name in ("fox.mp4", "f_000.png", "b-1.mp4", "b-2.mp4", "output.mp4"):
        (tmp_path / name).write_bytes(b"an earlier video")
    (tmp_path / "claimed.mp4").touch()  # an empty file: the name another run claimed, no video

    def notes_of(*flags: str) -> list[str]:
        args = cli.build_parser().parse_args(["run", "-p", "fox", "--video-frames", "5", *flags])
        return run_command.resolve_requests(args, run_command.request_from_args(args))[1]

    said = "fox.mp4 is there already: this run replaces it when its video is done (give -o another name to keep it)"
    assert said in notes_of("-o", "fox.mp4")
    assert "fox.mp4 is there already: a run would replace it when" in " ".join(notes_of("-o", "fox.mp4", "--dry-run"))
    assert "f_%03d.png (f_000.png ...) is there already: this run replaces it" in " ".join(notes_of("-o", "f_%03d.png"))
    # A batch goes on where a stopped run of it stopped: a file that holds its video already is skipped.
    batch = ("b-1.mp4 and 1 other are there already: this run skips each that holds its video already (made with "
             "these settings, as checked once the model is loaded) and replaces the others as their videos are done "
             "(give -o another")  # fmt: skip
    assert batch in " ".join(notes_of("-o", "b.mp4", "-b", "3", "-s", "2"))
    assert "b-1.mp4 and 1 other are there already: a run would skip each" in " ".join(
        notes_of("-o", "b.mp4", "-b", "3", "-s", "2", "--dry-run")
    )
    # Drawn seeds are new ones: it skips none, and says how a stopped batch goes on.
    drawn = (
        "b-1.mp4 and 1 other are there already: this run replaces them as their videos are done; its seeds are "
        "drawn (no -s): to go on where a stopped batch stopped, run it with -s and that batch's first seed"
    )
    assert drawn in " ".join(notes_of("-o", "b.mp4", "-b", "3"))
    for flags in (["-o", "claimed.mp4"], ["-o", "new.mp4"], []):  # without -o: output-2.mp4, said otherwise
        assert not any("there already" in note for note in notes_of(*flags)), flags


class ClosedOnFlush(io.StringIO):
    """stdout whose reader went away while its text was still buffered (`motif-lite run ... | head -1`)."""

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_gone_before_the_last_flush_ends_the_command_with_141(monkeypatch, capsys):
    # A pipe's stdout is buffered: the summary may still be there at the end, and its write at Python's exit failed
    # with "Exception ignored ... BrokenPipeError" and exit code 120.
    monkeypatch.setattr(sys, "stdout", ClosedOnFlush())
    assert cli._flushed(0) == cli.EXIT_OUTPUT_CLOSED
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert cli._flushed(3) == 3


def test_progress_in_a_log_without_unicode_is_drawn_in_ascii():
    # A log in an ASCII locale (LANG=C under cron): tqdm's block characters would fail to encode there.
    log = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    show_a_run(ProgressBars(file=log))
    log.seek(0)
    lines = log.read().splitlines()
    assert re.match(r"denoise: 100%\|#+\| 50/50 \[", lines[2]), lines


def test_progress_on_a_terminal_stderr_is_a_bar_and_a_wrong_interval_is_the_default(monkeypatch):
    # Without `file`, the bars go to stderr: a terminal there gets tqdm's bar, not a log's lines.
    monkeypatch.setattr(sys, "stderr", Terminal())
    show_a_run(ProgressBars())
    assert "\r" in sys.stderr.getvalue()
    monkeypatch.setenv("TQDM_MININTERVAL", "soon")  # not a number: the default, a line every 30 s
    show_a_run(progress := ProgressBars(file=io.StringIO()))
    assert len(progress.file.getvalue().splitlines()) == 5


def test_the_formats_ffmpeg_writes_are_those_with_an_encoder():
    """choices.FFMPEG_FORMATS (torch-free: what --settings-from reads with ffmpeg) names io.output_formats' encoders."""
    from motif_lite.choices import FFMPEG_FORMATS, VIDEO_EXTENSIONS
    from motif_lite.io import output_formats

    assert sorted(output_formats.FFMPEG) == sorted(FFMPEG_FORMATS)
    assert set(FFMPEG_FORMATS) < set(VIDEO_EXTENSIONS)


def test_settings_from_a_file_whose_int8_attention_fell_back_is_no_other_model_for_int8(tmp_path):
    # The file stores attention "exact" (what ran) and attention_asked "int8": rerunning with --attention int8 on
    # CUDA said "made with --attention exact, this run has int8: its video differs", though it falls back alike.
    import argparse

    from motif_lite.cli.settings_from import Recalled, recalled_model_notes
    from motif_lite.pipeline.metadata import model_flags_of, model_metadata_of

    stored = model_metadata_of(model_flags_of(None, torch.bfloat16, "exact", None))
    recalled = Recalled(tmp_path / "fox.mp4", frozenset(), {**stored, "attention_asked": "int8"}, ())
    args = argparse.Namespace(attention="int8", lora=[], step_cache=None)
    cuda = torch.device("cuda")  # no CUDA call is made: the device's type decides what runs
    assert recalled_model_notes(recalled, args, None, torch.bfloat16, cuda) == []
    # A run asking for exact attention does differ from what the file's run asked for.
    args.attention = "exact"
    [note] = recalled_model_notes(recalled, args, None, torch.bfloat16, cuda)
    assert note.startswith("fox.mp4 was made with --attention int8, this run has ") and "differs" in note, note


@pytest.mark.parametrize("seconds", ["0", "-5"])
def test_a_length_of_no_frame_count_where_a_clip_sets_the_rate_is_not_offered_fps(capsys, seconds):
    # "add --fps R to have 0 s counted at R fps" offers a count that no rate gives: no count is there to have.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", "--extend", "clip30fps.mp4", f"--seconds={seconds}"])
    err = capsys.readouterr().err
    assert "the run plays at the rate of the clip clip30fps.mp4, read later: give a number of frames (4k+1))" in err
    assert "--fps R" not in err, err


def test_only_a_command_with_fps_says_that_fps_sets_the_rate(capsys):
    # verify has no --fps: its count is at the default rate, and naming a flag it refuses would mislead.
    for command, said in [("run", "(4k+1 frames; --fps sets the rate)"), ("verify", "(4k+1 frames)")]:
        with pytest.raises(SystemExit):
            cli.main([command, "--video-frames", "5s"])
        assert f"5 s at 24 fps is --video-frames 121 {said}" in capsys.readouterr().err, command


def test_a_number_after_a_lora_that_has_its_strength_is_not_told_a_second_colon(capsys):
    # `--lora style.safetensors:0.5 0.8` was told `--lora style.safetensors:0.5:0.8`, which --lora then refuses.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "a", "--lora", "style.safetensors:0.5", "0.8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unrecognized arguments: 0.8" in err, err
    assert "strength goes after its file" not in err and ":0.5:0.8" not in err, err


def test_a_prompt_word_after_a_lora_that_float_reads_is_no_strength(capsys):
    # float() takes `infinity`, `nan` and `1_0`: `--lora style.safetensors infinity pool` was told
    # `--lora style.safetensors:infinity`, a prompt's word put after the colon.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a", "--lora", "style.safetensors", "infinity", "pool"])
    err = capsys.readouterr().err
    assert "style.safetensors:infinity" not in err and 'in quotes: -p "a infinity pool"' in err, err


@pytest.mark.parametrize("flag", ["-h", "--steps"])
def test_a_flag_after_a_double_dash_is_told_that_the_double_dash_ends_the_flags(capsys, flag):
    # `run -p x -- --steps 4` was told "(--steps: did you mean --steps?)", the flag it had typed.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", "--", flag, "4"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"({flag}: a flag after --, which ends the flags: leave the -- out)" in err
    assert f"did you mean {flag}?" not in err, err


def test_one_strength_typed_apart_after_two_loras_is_told_for_both(capsys):
    # `--lora a 0.5 --lora b 0.5`: the hints were kept by the number typed, so a's was lost to b's, and a run
    # fixed as told was refused again for a.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a", "--lora", "a.safetensors", "0.5", "--lora", "b.safetensors", "0.5"])
    err = capsys.readouterr().err
    assert (
        "(0.5: a LoRA's strength goes after its file and a colon: --lora a.safetensors:0.5 --lora b.safetensors:0.5)"
        in err
    ), err


def test_a_strength_typed_apart_in_exponent_form_is_told_the_colon(capsys):
    # --lora a.safetensors:1e-3 is taken, but `--lora a.safetensors 1e-3` was told the number is a prompt's word
    # ('a prompt goes after -p, in quotes: -p "a 1e-3"').
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a", "--lora", "a.safetensors", "1e-3"])
    err = capsys.readouterr().err
    assert "(1e-3: a LoRA's strength goes after its file and a colon: --lora a.safetensors:1e-3)" in err, err


def test_a_negative_strength_typed_apart_from_its_lora_is_told_the_colon(capsys):
    # argparse leaves `-1` after a --lora's file as an unknown word that looks like a flag: it got no hint, and the
    # hint of a positive strength typed beside it was dropped too ('unrecognized arguments: 0.5 -1' alone).
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "a", "--lora", "a.safetensors", "0.5", "--lora", "b.safetensors", "-1e-3"])
    err = capsys.readouterr().err
    assert "(0.5: a LoRA's strength goes after its file and a colon: --lora a.safetensors:0.5; " in err, err
    assert "-1e-3: a LoRA's strength goes after its file and a colon: --lora b.safetensors:-1e-3)" in err, err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--lora", "a.safetensors", "-1"])
    assert "(-1: a LoRA's strength goes after its file and a colon: --lora a.safetensors:-1)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "prompt"),
    [
        (["run", "-p", "a", "fox", "0.5", "--lora", "a.safetensors", "0.5"], "a fox 0.5"),
        (["run", "--lora", "a.safetensors", "0.5", "-p", "0.5", "foxes", "0.5"], "0.5 foxes 0.5"),
    ],
)
def test_a_prompt_word_equal_to_a_strength_typed_apart_stays_in_the_prompt(capsys, argv, prompt):
    # Every unrecognized word equal to a strength typed after a --lora's file was taken for it: the prompt hint left
    # the prompt's own 0.5 out (-p "a fox").
    with pytest.raises(SystemExit):
        cli.main(argv)
    err = capsys.readouterr().err
    assert "(0.5: a LoRA's strength goes after its file and a colon: --lora a.safetensors:0.5; " in err, err
    assert f'a prompt goes after -p, in quotes: -p "{prompt}")' in err, err


def test_a_file_given_twice_with_strengths_typed_apart_is_told_both_mistakes_at_once(capsys):
    # The hint gave `--lora a.safetensors:0.5 --lora a.safetensors:0.5`, which --lora then refused as one file
    # given twice: two refusals to fix one command line.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", "--lora", "a.safetensors", "0.5", "--lora=a.safetensors", "0.25"])
    err = capsys.readouterr().err
    assert (
        "--lora a.safetensors:0.5 and --lora a.safetensors:0.25 name the same file, which would apply twice (at 0.5 "
        "+ 0.25); give one --lora with the summed strength: --lora a.safetensors:0.75)"
    ) in err, err
    with pytest.raises(SystemExit):  # each file once: no such advice
        cli.main(["run", "-p", "x", "--lora", "a.safetensors", "0.5", "--lora", "b.safetensors", "0.5"])
    assert "name the same file" not in capsys.readouterr().err


def test_the_hints_and_split_strength_read_a_strength_after_a_colon_one_way(capsys):
    # `has_strength` and `split_strength` read the colon's tail each their own way: `a:inf` had a strength for the
    # first and none for the second. Both now take `strength_after_colon`'s reading; split_strength keeps the finite.
    import math

    from motif_lite.cli.lora_argv import has_strength
    from motif_lite.weights.lora_values import split_strength, strength_after_colon

    for value in ["a:0.5", "a:-1e-3", "a:inf", "a:nan", "a:1e400", "a:1_0", ":0.5", "a", "a:x", "C:\\x.safetensors"]:
        read = strength_after_colon(value)
        assert has_strength(value) == (read is not None and read[0] != ""), value
        assert split_strength(value) == (read if read is not None and math.isfinite(read[1]) else (value, None)), value
    with pytest.raises(SystemExit):  # a value with its strength (--lora refuses inf): no second colon offered
        cli.main(["run", "-p", "x", "--lora", "a.safetensors:inf", "0.5"])
    assert "a.safetensors:inf:0.5" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (["run", "-p", "a fox", "--vram", "8", "GB"], "--vram 8GB"),
        (["run", "-p", "a fox", "--ram=32", "GB"], "--ram 32GB"),
        (["run", "-p", "a fox", "--vram", "7.5", "gib"], "--vram 7.5gib"),
        (["decode", "latents.pt", "--vram", "6", "G"], "--vram 6G"),
    ],
)
def test_a_memory_budgets_unit_typed_apart_is_told_to_join_its_number(capsys, argv, joined):
    # `--vram 8 GB`: the budget was read as 8, and "GB" was put in the prompt by the hint `-p "a fox GB"`.
    from motif_lite.cli.flag_numbers import gib

    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    unit = argv[-1]
    assert exit_info.value.code == 2 and f"{unit}: the unit goes with its number, no space: {joined}" in err, err
    assert "a prompt goes after -p" not in err
    assert gib(joined.split()[1]) == float(argv[-2].split("=")[-1])  # what the hint gives is read as the GiB meant


@pytest.mark.parametrize(("flag", "value", "meant"), [("--vram", "7,5", "7.5"), ("--ram", "15,5GB", "15.5GB")])
def test_a_memory_budget_with_a_decimal_comma_is_told_the_point(capsys, flag, value, meant):
    # `--vram 7,5` said only "must be a number of GiB > 0", where --cfg-scale 7,5 names the decimal point.
    from motif_lite.cli.flag_numbers import gib

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", flag, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{flag}: takes a decimal point, not a comma: {meant}" in err, err
    assert gib(meant) == float(value.replace(",", ".").removesuffix("GB"))


def test_a1111s_tiled_vae_switch_is_told_that_memory_is_planned(capsys):
    # --tiled-vae (AUTOMATIC1111's Tiled VAE, ComfyUI's "VAE Decode (Tiled)") got no hint, where --vae-tiling did.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", "--tiled-vae"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--tiled-vae: memory is planned here, not switched" in err, err


def test_a_strength_typed_apart_beside_a_mistyped_flag_is_told_with_it(capsys):
    # Only the flag was told ("--stpes: did you mean --steps?"); the command fixed as told was refused next for the
    # strength. Told by position: `--stpes 0.5` takes no hint for its 0.5.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", "--lora", "a.safetensors", "-0.5", "--stpes", "0.5"])
    err = capsys.readouterr().err
    assert "--stpes: did you mean --steps?" in err, err
    assert "-0.5: a LoRA's strength goes after its file and a colon: --lora a.safetensors:-0.5)" in err, err
    assert "0.5: a LoRA's strength" not in err.replace("-0.5: a LoRA's strength", ""), err
    with pytest.raises(SystemExit):  # one file twice: said at once too
        cli.main(["run", "-p", "x", "--stpes", "4", "--lora", "a.safetensors", "1", "--lora", "a.safetensors", "-1"])
    assert "their strengths add up to 0, so together they change nothing" in capsys.readouterr().err


def test_a_file_given_twice_after_another_file_is_told_with_its_own_name_and_every_lora_of_it():
    # The summed --lora is the repeated file's, wherever it comes (here after b.safetensors), and each of its
    # --lora values is named, a third too.
    from pathlib import Path

    from motif_lite.cli.common import same_file_refusal

    values = ["b.safetensors:1", "a.safetensors:0.5", "c.safetensors", "a.safetensors:0.25", "a.safetensors:0.25"]
    loras = [(Path(value.split(":")[0]), float(value.partition(":")[2] or 1)) for value in values]
    said = same_file_refusal(values, loras)
    assert said is not None and said.startswith(
        "--lora a.safetensors:0.5, --lora a.safetensors:0.25 and --lora a.safetensors:0.25 name the same file, "
    ), said
    assert said.endswith("give one --lora with the summed strength: --lora a.safetensors:1"), said
    assert same_file_refusal(values[:3], loras[:3]) is None  # each file once


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["run", "-p", "x", "--vram", "8,000MB"], "8000MB"),
        (["run", "-p", "x", "--ram", "16,384 MiB"], "16384MiB"),
        (["serve", "--max-upload-mb", "1,024"], "1024"),
    ],
)
def test_a_size_in_mib_with_a_thousands_separator_is_told_to_leave_it_out(capsys, argv, meant):
    # `--vram 8,000MB` (MiB, as nvidia-smi writes them) was advised the decimal point: 8.000MB, a budget of 8 MiB.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{argv[-2]}: takes no thousands separator: {meant}" in err, err
    from motif_lite.cli.flag_numbers import gib
    from motif_lite.cli.serve_flag_values import positive_mib

    number = float(argv[-1].replace(",", "").removesuffix("MB").removesuffix(" MiB"))
    read = positive_mib(meant) if argv[0] == "serve" else gib(meant) * 1024  # what it advises is the MiB meant
    assert read == number


@pytest.mark.parametrize(("typed", "meant"), [("2,048MB", 2048), ("1,024 MiB", 1024), ("1,5MB", 1.5)])
def test_a_max_upload_mb_typed_with_a_comma_and_a_unit_is_advised_a_value_it_takes(capsys, typed, meant):
    # --max-upload-mb takes a bare number of MiB: `2,048MB` was advised 2048MB, which it refused next.
    from motif_lite.cli.serve_flag_values import positive_mib

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve", "--max-upload-mb", typed])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    advised = re.search(r"--max-upload-mb: takes (?:no thousands separator|a decimal point, not a comma): (\S+)", err)
    assert advised is not None, err
    assert positive_mib(advised[1]) == meant  # pasted, the advice is taken, as the MiB meant


@pytest.mark.parametrize(
    ("argv", "meant"),
    [
        (["run", "-p", "x", "--gpus", "2", "--comm-timeout", "1,800"], "1800"),
        (["run", "-p", "x", "--steps", "1,000"], "1000"),
        (["serve", "--max-queue", "1,000"], "1000"),
    ],
)
def test_seconds_or_a_count_with_a_thousands_separator_is_told_to_leave_it_out(capsys, argv, meant):
    # `--comm-timeout 1,800` was advised the decimal point, 1.800: a wait of 1.8 seconds, not half an hour.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{argv[-2]}: takes no thousands separator: {meant}" in err, err


@pytest.mark.parametrize(
    ("argv", "advice"),
    [
        (["run", "-p", "x", "--vram", "auto"], "leave --vram out to plan for the GPU's free memory"),
        (["run", "-p", "x", "--ram", "auto"], "leave --ram out for no host memory limit"),
        (["decode", "x.latents.safetensors", "--vram", "Auto"], "leave --vram out to plan for the GPU's free memory"),
    ],
)
def test_a_memory_budget_of_auto_is_told_to_leave_the_flag_out(capsys, argv, advice):
    # `--vram auto` said only "must be a number of GiB > 0, got auto", not how to get the budget it meant.
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{argv[-2]}: takes a number of GiB, got {argv[-1]}: {advice}" in err, err


@pytest.mark.parametrize(("first", "second"), [("--lora=FILE", "--lora FILE"), ("--lora=FILE", "--lora=FILE")])
def test_the_strength_hint_and_the_same_file_refusal_read_every_form_of_lora_alike(capsys, first, second):
    # Each of the two hints walked the command line for `--lora FILE` and `--lora=FILE` on its own: a form one of them
    # missed would give a strength hint whose --lora values the other never checked (or a refusal naming others).
    forms = {"--lora=FILE": ["--lora=a.safetensors"], "--lora FILE": ["--lora", "a.safetensors"]}
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", *forms[first], "0.5", *forms[second], "0.5"])
    err = capsys.readouterr().err
    strength_hint = (
        "0.5: a LoRA's strength goes after its file and a colon: --lora a.safetensors:0.5 --lora a.safetensors:0.5"
    )
    assert f"({strength_hint}; " in err, err
    assert "--lora a.safetensors:0.5 and --lora a.safetensors:0.5 name the same file" in err, err


def _comma_advice(capsys, flag: str, value: str) -> list[str]:
    """The values a refused `flag value` advises (each `: VALUE` after "not a comma" or "no thousands separator")."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "-p", "x", flag, value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{flag}: takes a decimal point, not a comma: " in err, err
    return re.findall(r"(?:not a comma|no thousands separator): (\S+)", err)


@pytest.mark.parametrize(
    ("flag", "value", "host_gib", "meant"),
    [
        ("--vram", "8,000", None, [8.0]),  # 8000 GiB is no card: the decimal comma alone
        ("--vram", "1,000GB", None, [1.0, 1000.0]),  # both a budget --vram takes
        ("--ram", "1,536", 64, [1.536]),  # more than this machine's 64 GiB: the decimal comma alone
        ("--ram", "1,536", 2048, [1.536, 1536.0]),  # within a 2 TiB server's memory: both
        ("--ram", "1,536", None, [1.536, 1536.0]),  # this machine's memory unknown: both
    ],
)
def test_a_memory_budget_in_gib_with_a_comma_before_three_digits_is_advised_each_reading_it_can_mean(
    capsys, monkeypatch, flag, value, host_gib, meant
):
    # `--vram 8,000` and `--ram 1,536` were advised the decimal point alone (8.000, 1.536), though a comma before
    # three digits groups thousands in English: a 1536 GiB server's --ram was read as 1.5 GiB.
    from motif_lite.cli.flag_numbers import ram_gib, vram_gib
    from motif_lite.runtime import host_memory

    monkeypatch.setattr(host_memory, "total_ram", lambda: None if host_gib is None else host_gib * 2**30)
    advised = _comma_advice(capsys, flag, value)
    take = vram_gib if flag == "--vram" else ram_gib
    assert [take(each) for each in advised] == meant, advised  # pasted back, each is taken as the GiB it says


@pytest.mark.parametrize("last", [["--lora", "a.safetensors"], ["--lora=a.safetensors"]])
def test_a_file_given_again_last_without_a_strength_is_in_the_same_file_refusal(capsys, last):
    # The --lora walk skipped a `--lora FILE` that ended the command line (and would have skipped a last
    # `--lora=FILE` had it asked for a word after it): the hint's command line was then refused for naming the file
    # twice, a refusal the hint left unsaid.
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", "--lora", "a.safetensors", "0.5", *last])
    err = capsys.readouterr().err
    assert (
        "--lora a.safetensors:0.5 and --lora a.safetensors name the same file, which would apply twice (at 0.5 + 1); "
        "give one --lora with the summed strength: --lora a.safetensors:1.5)"
    ) in err, err


@pytest.mark.parametrize(
    ("flag", "value", "host_gib", "meant"),
    [
        ("--vram", "1,023", None, [1.023, 1023.0]),  # the largest whole --vram taken: both
        ("--vram", "1,024", None, [1.024]),  # --vram refuses 1024 GiB: the decimal comma alone
        ("--ram", "1,536", 1536, [1.536, 1536.0]),  # exactly this machine's memory: both
        ("--vram", "1,000GiB", None, [1.0, 1000.0]),  # the unit spelled GiB, as the flag takes it
        ("--ram", "100,000", None, [100.0, 100000.0]),  # three digits before the comma, the memory unknown
        ("--vram", "0,500", None, [0.5]),  # no thousands are written 0,500: the decimal comma alone
    ],
)
def test_a_comma_budget_at_the_edges_of_what_its_flag_takes_is_advised_each_reading_it_can_mean(
    capsys, monkeypatch, flag, value, host_gib, meant
):
    # The readings at the edges: the largest --vram (1023 GiB) and a --ram of the machine's whole memory are sizes
    # the flag takes, 1024 GiB and a thousands group after a 0 are not; GiB and three leading digits are grouped too.
    from motif_lite.cli.flag_numbers import ram_gib, vram_gib
    from motif_lite.runtime import host_memory

    monkeypatch.setattr(host_memory, "total_ram", lambda: None if host_gib is None else host_gib * 2**30)
    advised = _comma_advice(capsys, flag, value)
    take = vram_gib if flag == "--vram" else ram_gib
    assert [take(each) for each in advised] == meant, advised


def test_latents_that_overflow_while_sampling_end_the_run_with_exit_code_2(checkpoint, tmp_path, capsys, monkeypatch):
    # The exit-code table says what a script may do after each code: an overflow needs a change (the dtype, a LoRA's
    # strength) before another try, as a mistake does, and is said in one line, hours into a run as well.
    from motif_lite.pipeline.step_watch import StepWatch

    watch = StepWatch.__call__  # each step's latents as the loop hands them on, made to overflow
    monkeypatch.setattr(StepWatch, "__call__", lambda self, step, latents: watch(self, step, latents * float("inf")))
    code = cli.main(run_args(checkpoint[0], tmp_path / "fox.mp4"))
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR == 2, err
    assert "\nerror: the latents after step 1 of 2 hold inf or NaN (float32): " in err and "Traceback" not in err, err
    assert not (tmp_path / "fox.mp4").exists()


def _a_folder_another_user_writes_to(base: Path, monkeypatch) -> Path:
    """base/out, where the other user (`another_user`) may write: the output and every cache go there, offline."""
    from huggingface_hub import constants

    out = base / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    for name in ("HOME", "XDG_CACHE_HOME", "HF_HOME", "TRITON_CACHE_DIR"):
        monkeypatch.setenv(name, str(out / name.lower()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(out / "hub"))  # read as huggingface_hub was imported
    return out


# A video the other user writes without ffmpeg: imageio-ffmpeg's binary lies in this Python's install, which that user
# may not reach where it lives in root's home (/root/.pyenv on CI: "ffmpeg not found" before the path's own refusal).
OUTPUT_ANOTHER_USER_WRITES = "fox.webp"


def _cli_as_another_user(argv: list[str]) -> str:
    """The repr of (exit code, stderr) of `motif-lite ARGV` run as another user (`another_user`)."""
    from another_user import as_another_user

    def command() -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = cli.main(argv)
        return code, err.getvalue()

    return as_another_user(command)


READ_PATHS = {  # a path each command reads, under the folder `closed` this user may not enter
    "-i": ["run", "-p", PROMPT, "-i", "{closed}/in/fox.png", "--dry-run"],
    "--extend": ["run", "-p", PROMPT, "--extend", "{closed}/in/fox.mp4", "--dry-run"],
    "-m": ["run", "-p", PROMPT, "-m", "{closed}/in/ckpt", "--dry-run"],
    "-m the folder itself": ["run", "-p", PROMPT, "-m", "{closed}", "--dry-run"],
    "--gguf": ["run", "-p", PROMPT, "--gguf", "{closed}/in/fox.gguf", "--dry-run"],
    "--lora": ["run", "-p", PROMPT, "--lora", "{closed}/in/style.safetensors", "--dry-run"],
    "--resume": ["run", "--resume", "{closed}/in/fox.latents.safetensors"],
    "--settings-from": ["run", "--settings-from", "{closed}/in/fox.mp4", "--dry-run"],
    "decode": ["decode", "{closed}/in/fox.latents.safetensors"],
    "check -m": ["check", "-m", "{closed}/in/ckpt"],
    "verify -m": ["verify", "-m", "{closed}/in/ckpt"],
    "verify -i": ["verify", "-i", "{closed}/in/fox.png"],
    "verify --gguf": ["verify", "--gguf", "{closed}/in/fox.gguf"],
    "serve --lora-dir": ["serve", "--lora-dir", "{closed}/in/loras"],
    "serve --data": ["serve", "--data", "{closed}/in/data"],
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
@pytest.mark.parametrize("family", list(READ_PATHS))
def test_a_path_to_read_under_a_folder_this_process_may_not_enter_is_refused_with_that_folder(
    tmp_path, monkeypatch, family
):
    # Python 3.10-3.13 raise PermissionError from Path.exists, is_dir and resolve under such a folder: each path a
    # command reads (an image, a clip, a checkpoint, a GGUF, a LoRA, latents, a settings file, the server's folders)
    # was a traceback from the first check that looked at it, before anything loaded.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    from another_user import folder_closed_to_others

    with folder_closed_to_others("in") as (base, closed):
        out = _a_folder_another_user_writes_to(base, monkeypatch)
        argv = [arg.format(closed=closed) for arg in READ_PATHS[family]]
        # The extras, imported here: the other user may not read every module they import (`another_user`).
        extras = {
            "serve": ("fastapi", "uvicorn", "python_multipart", "motif_lite.server.app"),
            "verify": ("diffusers",),
        }
        for module in extras.get(argv[0], ()):
            pytest.importorskip(module)
        if argv[0] == "verify":  # verify's reference, which diffusers imports on first use
            import diffusers

            assert diffusers.MotifVideoPipeline is not None
        if argv[0] == "run":
            argv += ["-o", str(out / OUTPUT_ANOTHER_USER_WRITES)]
        said = _cli_as_another_user(argv)
        refusal = f"this process may not enter {closed} (it needs x, search permission there): give this user"
        assert said.startswith(f"({cli.EXIT_USER_ERROR}, ") and "Traceback" not in said, said
        assert re.search(rf"error: ({re.escape(str(closed))}/\S* cannot be reached: )?{re.escape(refusal)}", said), said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
@pytest.mark.parametrize("flag", ["-i", "-m"])
def test_a_path_through_a_link_into_a_folder_this_process_may_not_enter_is_refused_with_that_folder(monkeypatch, flag):
    # A link into such a folder (~/models -> a share's folder closed to this user): the way the path was typed shows
    # no closed folder, the link being no folder seen from here, and the PermissionError stayed a traceback.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    from another_user import folder_closed_to_others

    with folder_closed_to_others("in") as (base, closed):
        out = _a_folder_another_user_writes_to(base, monkeypatch)
        link = base / "link"
        link.symlink_to(closed / "in")
        given = {"-i": link / "fox.png", "-m": link}[flag]
        argv = ["run", "-p", PROMPT, flag, str(given), "-o", str(out / OUTPUT_ANOTHER_USER_WRITES), "--dry-run"]
        said = _cli_as_another_user(argv)
        assert said.startswith(f"({cli.EXIT_USER_ERROR}, ") and "Traceback" not in said, said
        assert f"error: {given} cannot be reached: this process may not enter {closed} (it needs x" in said, said


def test_sd_cpps_mode_first_says_the_run_command_in_our_names(capsys):
    # sd.cpp's Wan command as its README gives it: the line meant kept `-m FILE.gguf` and `--t5xxl`, so that running
    # it was answered "did you mean --text-encoder?", then "pass it as --gguf", one round each.
    argv = ["-M", "vid_gen", "-m", "m.gguf", "--t5xxl", "t.safetensors", "--vae", "v.safetensors", "-p", "a fox"]
    assert cli.main([*argv, "--clip_vision", "c.safetensors", "--offload-to-cpu"]) == cli.EXIT_USER_ERROR
    meant = "run --gguf m.gguf --text-encoder t.safetensors --vae v.safetensors -p 'a fox'"
    said = "motif-lite: error: stable-diffusion.cpp's mode is the command here: did you mean motif-lite"
    # --clip_vision has no name here: run answers it, kept as typed
    assert capsys.readouterr().err == f"{said} {meant} --clip_vision c.safetensors --offload-to-cpu\n"
    # -m of a checkpoint folder stays -m
    assert cli.main(["-M", "vid_gen", "-m", "Motif-Video-2B", "-p", "x"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err == f"{said} run -m Motif-Video-2B -p x\n"


def test_sd_cpps_flags_without_the_command_say_the_run_command_in_our_names(capsys):
    # As sd.cpp's `sd` takes them (no mode: its img_gen): the line meant kept -m FILE.gguf and --t5xxl as typed.
    assert cli.main(["-m", "m.gguf", "--t5xxl", "t.safetensors", "-p", "x"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err == "motif-lite: error: the command comes first: did you mean motif-lite run --gguf m.gguf " + (
        "--text-encoder t.safetensors -p x\n"
    )


def test_a_switch_of_theirs_that_is_a_flag_with_a_value_here_is_not_renamed_in_the_command_meant(capsys):
    # --xformers is --attention-backend NAME here: renamed alone, the line meant would give that flag no value.
    assert cli.main(["-M", "vid_gen", "--xformers", "-p", "x", "--t5xxl=t.safetensors"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.endswith("did you mean motif-lite run --xformers -p x --text-encoder=t.safetensors\n"), err


def test_run_notes_a_frame_pattern_its_last_frame_number_outgrows(checkpoint, tmp_path, capsys):
    dry_run = ["run", "--dry-run", "-m", str(checkpoint[0]), "--device", "cpu", "-p", "fox", "-W", "16", "-H", "16"]
    assert cli.main([*dry_run, "--video-frames", "1001", "-o", str(tmp_path / "f_%03d.png")]) == 0
    said = capsys.readouterr().err
    assert "note: f_%03d.png pads frame numbers to 3 digits, but this video's 1001 frames go up to f_1000.png" in said


@pytest.mark.parametrize(
    ("flags", "refused"),
    [
        (["--diffusion-model", "models"], "the transformer file models is a folder"),
        (["--gguf", "missing.gguf"], "no such GGUF file: missing.gguf"),
        (["--text-encoder-gguf", "missing.gguf"], "no such text encoder GGUF file: missing.gguf"),
        (["--vae", "missing.safetensors", "--dry-run"], "the vae file missing.safetensors does not exist"),
    ],
)
def test_a_wrong_weight_file_flag_is_refused_before_the_note_on_the_output_name(
    checkpoint, tmp_path, capsys, monkeypatch, flags, refused
):
    # Without -o, beside an earlier output.mp4: it said "output.mp4 exists: writing output-2.mp4 instead" (or a dry
    # run's "a run would write"), then refused the weight file: a note about a video the run never made.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output.mp4").write_bytes(b"an earlier video")
    (tmp_path / "models").mkdir()
    args = [a for a in run_args(checkpoint[0], Path("unused")) if a not in ("-o", "unused")]
    err = assert_user_error(capsys, cli.main([*args, *flags]), refused)
    assert "output-2.mp4" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "output.mp4"]
