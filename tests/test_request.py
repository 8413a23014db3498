"""The bounds of `GenerationRequest.resolve()` on values that would otherwise run and fail late, or never end: too
many steps, prompts far longer than the model reads, frame rates no file format stores, guidance and shift that
overflow, and sizes too large to allocate. Each is refused before any model is loaded, naming its range and why;
the values at each end of a range are taken. (Other checks of the request: tests/test_pipeline.py.)"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import math
import pickle
import re
import time
from typing import NoReturn
from unittest import mock

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from motif_lite.errors import Audience
from motif_lite.io.video import write_video
from motif_lite.request import (
    API_FIELDS,
    MAX_PROMPT_CHARS,
    MAX_STEPS,
    MAX_VIDEO_TOKENS,
    RUN_FLAGS,
    TEMPORAL_FACTOR,
    GenerationRequest,
    RequestError,
    UnknownFieldError,
    extended_frames,
    frames_for_seconds,
)

SMALL = dict(width=64, height=64, frames=9)
# The text fields as messages name them: the prompt is "prompt" to everyone; the negative prompt is run's flag.
TEXT_NAMES = [("prompt", "prompt"), ("negative_prompt", "--negative-prompt")]


def refused(tmp_path, audience: Audience = Audience.RUN_OR_PYTHON, **fields) -> RequestError:
    request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **SMALL, **fields})
    with pytest.raises(RequestError) as error:
        request.resolve(audience=audience)
    return error.value


def resolves(tmp_path, **fields) -> GenerationRequest:
    request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **SMALL, **fields})
    return request.resolve()[0]


def test_steps_are_bounded_by_the_schedulers_training_timesteps(tmp_path):
    # 10**38 steps failed after the encode in np.linspace (a raw ValueError); 10**8 held a server's worker for good.
    for steps in (10**38, 100_000_000, MAX_STEPS + 1):
        error = refused(tmp_path, steps=steps)
        assert error.fields == ("steps",)
        assert str(error) == f"--steps must be an integer from 1 to 1000 (the official setting is 50), got {steps}"
    assert resolves(tmp_path, steps=MAX_STEPS).steps == MAX_STEPS


@pytest.mark.parametrize(("field", "name"), TEXT_NAMES)
def test_a_prompt_far_longer_than_the_model_reads_is_refused_at_once(tmp_path, field, name):
    # A 20 MB prompt was queued by the server, tokenized for minutes at 4.7 GB, and sent back by every listing.
    started = time.perf_counter()
    error = refused(tmp_path, **{field: "fox " * 5_000_000})
    assert time.perf_counter() - started < 5  # counted, not tokenized
    assert error.fields == (field,)
    assert str(error) == (
        f"{name} is 20,000,000 characters, over the 20,000 taken: the model reads only its first 512 tokens (about "
        "2,000 characters of English); shorten it"
    )
    assert "20,001 characters" in str(refused(tmp_path, **{field: "x" * (MAX_PROMPT_CHARS + 1)}))
    resolves(tmp_path, **{field: "x" * MAX_PROMPT_CHARS})


@pytest.mark.parametrize(("field", "name"), TEXT_NAMES)
def test_a_prompt_with_bytes_that_are_not_utf8_is_refused_at_once(tmp_path, field, name):
    # Python keeps an undecodable byte of argv as a lone surrogate; the tokenizer would refuse it after loading.
    error = refused(tmp_path, **{field: "a \udcff fox"})
    assert error.fields == (field,) and str(error).startswith(f"{name} holds bytes that are not UTF-8 text")
    resolves(tmp_path, **{field: "un renard roux, 狐狸"})


@pytest.mark.parametrize("fps", [1e308, 1000.5, 0.0009])
def test_frame_rates_no_format_stores_are_refused(tmp_path, fps):
    # --fps 1e308 sampled the whole video and then failed in ffmpeg's write.
    error = refused(tmp_path, fps=fps)
    assert error.fields == ("fps",)
    assert str(error) == (
        "--fps must be a number from 0.001 to 1000 (a frame every 1000 s to one every millisecond, the finest "
        f"WebM and WebP store), got {fps:g}"
    )
    assert refused(tmp_path, fps=fps, output=tmp_path / "fox.gif").fields == ("fps",)  # one message, not the GIF's too


@pytest.mark.parametrize("fps", [0.001, 1000.0])
@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".webp"])
def test_both_ends_of_the_frame_rate_range_write_a_readable_file(tmp_path, fps, suffix):
    assert resolves(tmp_path, fps=fps, output=tmp_path / f"fox{suffix}").fps == fps
    frames = np.repeat(np.arange(0, 250, 50, dtype=np.uint8), 16 * 16 * 3).reshape(5, 16, 16, 3)
    path = write_video(frames, tmp_path / f"fox{suffix}", fps)
    if suffix == ".webp":
        import PIL.Image

        with PIL.Image.open(path) as image:
            assert image.n_frames == 5
        return
    reader = imageio_ffmpeg.read_frames(str(path))
    next(reader)  # the metadata
    assert len(list(reader)) == 5


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cfg_scale", 1e308, "--cfg-scale must be a number from 0 to 100 (ComfyUI's range; the official "
         "scale is 8, and far larger ones overflow to inf/NaN), got 1e+308"),
        ("cfg_scale", 100.5, "--cfg-scale must be a number from 0 to 100"),
        ("flow_shift", 1e-300, "--flow-shift must be a number from 0.01 to 100 (100 is ComfyUI's top; its 0 gives "
         "no schedule; the official shift is 15, 8 for image-to-video, and extreme ones overflow to inf/NaN), "
         "got 1e-300"),
        ("flow_shift", 1e300, "--flow-shift must be a number from 0.01 to 100"),
    ],
)  # fmt: skip
def test_guidance_scale_and_shift_that_overflow_are_refused(tmp_path, field, value, message):
    # They ran into inf/NaN latents, with a message that blamed the weight files or a LoRA.
    error = refused(tmp_path, **{field: value})
    assert error.fields == (field,) and str(error).startswith(message)


def test_the_ends_of_the_guidance_and_shift_ranges_are_taken(tmp_path):
    request = resolves(tmp_path, cfg_scale=100, flow_shift=0.01)
    assert (request.cfg_scale, request.flow_shift) == (100, 0.01)
    assert resolves(tmp_path, cfg_scale=0, flow_shift=100).flow_shift == 100


@pytest.mark.parametrize(
    ("size", "field"),
    [
        (dict(width=10**9, height=736, frames=121), "width"),  # a typo: it failed to allocate 96 GB of noise
        (dict(width=1280, height=10**400, frames=121), "height"),  # no float holds it
        (dict(width=64, height=64, frames=10**7), "frames"),
        (dict(width=4096, height=4096, frames=125), "height"),  # further over the official 736 than 1280
    ],
)
def test_a_video_of_too_many_tokens_is_refused_naming_what_is_over(tmp_path, size, field):
    error = refused(tmp_path, **size)
    assert error.fields == (field,)
    assert "transformer tokens, over the 1,048,576 a video may have (9 times the official 1280x736x121" in str(error)
    assert str(error).endswith("make the video smaller or shorter")


def test_a_size_off_the_grid_and_too_large_is_told_both(tmp_path):
    # Was told only the nearest valid sides (100000x100000), which were then refused for their tokens.
    error = refused(tmp_path, width=99999, height=99999, frames=5)
    assert error.fields == ("width", "height", "height")  # the height is further over the official 736
    assert "nearest valid width: 100000" in str(error) and "transformer tokens, over the 1,048,576" in str(error)
    assert refused(tmp_path, width=1000, height=736, frames=5).fields == ("width",)  # small: the grid alone


def test_a_whole_size_given_to_one_side_says_the_two_keywords(tmp_path):
    # Were "width must be a positive integer, got '1280x720'": the size written as other tools write it.
    error = refused(tmp_path, width="1280x720")
    assert error.fields == ("width",)
    said = "-W/--width (in Python width) takes one side in pixels, got '1280x720': that size is width=1280, height=720"
    assert str(error) == said
    assert "that size is width=848, height=480" in str(refused(tmp_path, height="480p"))
    no_size = "-W/--width (in Python width) must be a positive integer, got '64'"
    assert str(refused(tmp_path, width="64")) == no_size


def test_the_largest_videos_people_ask_for_are_taken(tmp_path):
    for size in (dict(width=3840, height=2176, frames=121), dict(width=1280, height=736, frames=721)):
        request = resolves(tmp_path, **size)
        assert (request.width // 16) * (request.height // 16) * ((request.frames - 1) // 4 + 1) <= MAX_VIDEO_TOKENS


def test_a_cuda_generator_as_the_seed_says_its_noise_is_not_ours(tmp_path):
    # It said "the noise is drawn from a CPU generator seeded with it, as diffusers draws it from a fresh CPU
    # generator", where diffusers drew this seed's noise on the GPU: another video. A stand-in (no GPU here).
    generator = mock.Mock(spec=torch.Generator, device=torch.device("cuda"))
    generator.initial_seed.return_value = 3
    differs = "(this cuda generator's draw differs: the video will not be the one diffusers made with it)"
    assert str(refused(tmp_path, seed=generator)).endswith(differs)
    with pytest.raises(TypeError, match=re.escape(differs)):
        GenerationRequest("a fox", generator=generator)
    assert "differs" not in str(refused(tmp_path, seed=torch.Generator().manual_seed(3)))


def test_a_torch_generator_as_the_seed_says_how_to_give_its_seed(tmp_path):
    # diffusers' users pass generator=torch.Generator().manual_seed(N); the seed is that N, said as the line to give.
    error = refused(tmp_path, seed=torch.Generator().manual_seed(3))
    assert error.fields == ("seed",)
    assert str(error).startswith("seed takes a number, not a generator: give seed=3, the seed it was made with")
    assert "generator" not in str(refused(tmp_path, seed="3"))


@pytest.mark.parametrize(
    ("keywords", "said"),
    [
        (dict(num_frames=121), "GenerationRequest has no field num_frames: give frames=121 instead"),
        (dict(num_inference_steps=30), "GenerationRequest has no field num_inference_steps: give steps=30 instead"),
        (dict(guidance_scale=5.0), "GenerationRequest has no field guidance_scale: give cfg_scale=5.0 instead"),
        (dict(sampler_name="euler"), "GenerationRequest has no field sampler_name: give sampler='euler' instead"),
        # Wan2.1's names, known to run's hints only: difflib said "give steps=5" for both
        (dict(sample_shift=5), "GenerationRequest has no field sample_shift: give flow_shift=5 instead"),
        (dict(sample_solver=5), "GenerationRequest has no field sample_solver: give sampler=5 instead"),
        (dict(frmaes=9), "GenerationRequest has no field frmaes: give frames=9 instead"),  # a typo: the closest
        (dict(num_frame=9), "GenerationRequest has no field num_frame: give frames=9 instead"),  # close to another's
        # closer to another tool's name than to any field: the field that name stands for (not guidance=)
        (dict(guidance_scal=5), "GenerationRequest has no field guidance_scal: give cfg_scale=5 instead"),
        (dict(generator=torch.Generator().manual_seed(7)), "GenerationRequest has no field generator: give seed=7, "),
        (dict(output_type="np"), "GenerationRequest has no field output_type: give output='fox.mp4'"),
        (dict(zzz=1), "GenerationRequest has no field zzz; its fields are prompt, negative_prompt, width, height,"),
        # far from every name (ComfyUI's CLIP skip): the fields, not a guess at one (flow_shift)
        (dict(clip_skip=2), "GenerationRequest has no field clip_skip; its fields are prompt, negative_prompt, width,"),
        # diffusers' img2img strength is closest in spelling to ComfyUI's length: it was "give frames=0.8 instead"
        (dict(strength=0.8), "GenerationRequest has no field strength: there is no denoising strength: an image= is"),
    ],
)
def test_a_keyword_of_another_tool_names_the_field_to_give(keywords, said):
    # Before: Python's own "GenerationRequest.__init__() got an unexpected keyword argument 'num_frames'".
    with pytest.raises(UnknownFieldError) as error:
        GenerationRequest("a fox", **keywords)
    assert str(error.value).startswith(said) and "\n" not in str(error.value)
    assert isinstance(error.value, TypeError)  # as Python's own was: code that caught that still catches it


def test_each_keyword_with_no_field_is_named_at_once():
    # A call ported from diffusers has several: each gets its line, not one per try.
    with pytest.raises(UnknownFieldError) as error:
        GenerationRequest("a fox", num_frames=121, guidance_scale=5.0, width=640)
    assert str(error.value).splitlines() == [
        "GenerationRequest has no field num_frames: give frames=121 instead",
        "GenerationRequest has no field guidance_scale: give cfg_scale=5.0 instead",
    ]


@pytest.mark.parametrize(("field", "name"), TEXT_NAMES)
def test_a_list_of_prompts_says_one_request_per_prompt(tmp_path, field, name):
    # diffusers takes prompt=["a fox", "a cat"], a video each; it was "prompt must be a string, got list".
    error = refused(tmp_path, **{field: ["a fox", "a cat"]})
    assert error.fields == (field,)
    assert str(error) == f"{name} must be a string, got a list: a request makes one video, so make one request " \
        "per prompt (in Python each with its own output)"  # fmt: skip


def test_a_negative_prompt_of_none_says_both_meanings_it_may_have(tmp_path):
    # diffusers' negative_prompt=None is no negative prompt; here it said "must be a string, got NoneType".
    error = refused(tmp_path, negative_prompt=None)
    assert error.fields == ("negative_prompt",)
    assert str(error) == (
        "negative_prompt=None is not taken: leave it out for the official negative prompt (the default here), or give "
        'negative_prompt="" for none, which is what diffusers\' None means'
    )


def test_the_request_keeps_its_fields_signature_for_help_and_editors():
    # The keywords are checked by __new__: help(), inspect and notebooks must still show the fields, not (*args,
    # **kwargs); copies, pickles and dataclasses.replace construct it as before.
    parameters = inspect.signature(GenerationRequest).parameters
    assert list(parameters) == [item.name for item in dataclasses.fields(GenerationRequest)]
    request = GenerationRequest("a fox", frames=9)
    assert pickle.loads(pickle.dumps(request)) == request == copy.copy(request)
    assert dataclasses.replace(request, steps=3).steps == 3
    with pytest.raises(UnknownFieldError, match="give frames=5 instead"):
        dataclasses.replace(request, num_frames=5)


def test_a_wrong_value_is_named_as_each_user_typed_it(tmp_path):
    # They said "frames", "cfg scale", "sampler": neither run's flag (--video-frames, --cfg-scale, --sampling-method)
    # nor, on the server, its field (num_frames, guidance_scale, sampling_method).
    # The sides said "width", which is neither run's -W/--width nor the server's size.
    wrong = dict(width=1000, height=0, negative_prompt=3, frames=0, fps=0, steps=0, guidance="pag", cfg_scale=-1,
                 apg_eta=-1, apg_norm_threshold=-1, apg_momentum=math.nan, flow_shift=0, sampler="ddim",
                 seed=-5)  # fmt: skip
    assert set(wrong) == set(RUN_FLAGS)
    error = refused(tmp_path, **wrong)
    assert sorted(error.fields) == sorted(wrong)
    heading, *lines = str(error).splitlines()
    assert heading == f"{len(wrong)} settings are invalid:"
    for field, line in zip(error.fields, lines, strict=True):
        # Run's flag, and the Python field only where it is named otherwise: not "--steps (in Python steps)".
        named = RUN_FLAGS[field] if field in SAME_NAMES else f"{RUN_FLAGS[field]} (in Python {field})"
        assert line.startswith((f"  {named} ", f"  unknown {named} ")) and line.count(" Python ") <= 1, line
    assert set(RUN_FLAGS) - SAME_NAMES == {"width", "height", "frames", "sampler"}  # -W/--width, --video-frames
    # To a server's client (Audience.API), each line names the API's field and no flag or keyword: a side as the size
    # field holds both.
    error = refused(tmp_path, Audience.API, **wrong)
    heading, *lines = str(error).splitlines()
    assert heading == f"{len(wrong)} settings are invalid:"
    for field, line in zip(error.fields, lines, strict=True):
        named = "size 1000x0: its " + field if field in ("width", "height") else API_FIELDS[field]
        assert line.startswith((f"  {named} ", f"  unknown {named} ")), line
        assert "--" not in line and "Python" not in line, line
    assert lines[error.fields.index("height")] == "  size 1000x0: its height must be a positive integer"


# The settings whose run flag is the Python field's name, with dashes: their messages name the flag alone.
SAME_NAMES = {"negative_prompt", "fps", "steps", "guidance", "cfg_scale", "apg_eta", "apg_norm_threshold",
              "apg_momentum", "flow_shift", "seed"}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "wrong", "accepted"),
    [
        ("fps", -1, "a number from 0.001 to 1000 ("),
        ("fps", "fast", "a number from 0.001 to 1000 ("),
        ("steps", 0, "an integer from 1 to 1000 (the official setting is 50)"),
        ("steps", 2.5, "an integer from 1 to 1000 ("),
        ("cfg_scale", -1, "a number from 0 to 100 ("),
        ("apg_eta", -1, "a finite number >= 0"),
        ("apg_norm_threshold", math.inf, "a finite number >= 0"),
        ("apg_momentum", math.nan, "a finite number"),
        ("flow_shift", 0, "a number from 0.01 to 100 ("),
    ],
)
def test_a_wrong_number_is_told_the_whole_range_it_may_take(tmp_path, field, wrong, accepted):
    # A negative fps or cfg scale was told "> 0" or ">= 0", then refused again for a value over the top.
    error = refused(tmp_path, **{field: wrong})
    assert str(error).startswith(f"{RUN_FLAGS[field]} must be {accepted}"), str(error)
    assert str(error).endswith(f", got {wrong!r}")


def test_the_flag_named_for_each_field_is_the_one_run_fills_it_with():
    from motif_lite.cli import build_parser
    from motif_lite.cli.run_request import request_from_args

    run = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    dests = {option: action.dest for action in run._actions for option in action.option_strings}
    for field, flag in RUN_FLAGS.items():
        given = object()
        long_flag = flag.split("/")[-1]  # -W/--width: the long one
        args = argparse.Namespace(**{**vars(run.parse_args(["-p", "x"])), dests[long_flag]: given})
        assert getattr(request_from_args(args), field) is given, (field, flag)


def test_each_fields_run_flag_and_dest_are_those_of_runs_parser():
    # --settings-from and --resume set a field through its flag's dest; the server's messages name its flag.
    from motif_lite.cli import build_parser
    from motif_lite.request import run_dest, run_flag

    run = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    for field in dataclasses.fields(GenerationRequest):
        assert run._option_string_actions[run_flag(field.name)].dest == run_dest(field.name), field.name


def beyond_training(tmp_path, **fields) -> list[str]:
    request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **fields})
    return [note for note in request.resolve()[1] if "trained" in note]


def test_a_video_longer_or_larger_than_any_the_model_was_trained_on_is_noted(tmp_path):
    # The official size and length, and the same pixels upright, run without a word; one frame or pixel past them
    # is noted with what to do instead (the model was trained up to 1280x736 with 121 frames).
    assert beyond_training(tmp_path) == [] and beyond_training(tmp_path, width=736, height=1280) == []
    longer = beyond_training(tmp_path, frames=125)
    assert len(longer) == 1 and longer[0].startswith("125 frames is longer than the model was trained to make (121")
    # The way to a longer video, as `motif-lite run` and the Python API each take it.
    assert longer[0].endswith("motif-lite run --extend CLIP -p 'what happens next' (in Python extend=CLIP)")
    larger = beyond_training(tmp_path, width=1280, height=752)
    assert len(larger) == 1 and larger[0].startswith("1280x752 is more pixels than the model was trained at")
    assert len(beyond_training(tmp_path, width=1472, height=832, frames=161)) == 2
    # The frames made, not those asked for: 122 is made as 121 (nothing to note), 123 as 125.
    assert beyond_training(tmp_path, frames=122) == []
    assert beyond_training(tmp_path, frames=123)[0].startswith("125 frames is longer")


def test_a_new_part_longer_than_the_model_makes_well_is_told_to_chain_again(tmp_path):
    # A user extending already was told to "go on from them: motif-lite run --extend CLIP", which they were doing.
    from motif_lite.io.clip import read_clip

    clip = write_video(np.zeros((5, 32, 48, 3), dtype=np.uint8), tmp_path / "clip.mp4", 24.0)
    request = GenerationRequest(prompt="a fox", extend=str(clip), width=48, height=32, frames=125,
                                output=tmp_path / "longer.mp4")  # fmt: skip
    notes = [note for note in request.resolve(read_clip(clip))[1] if "trained" in note]
    assert len(notes) == 1 and notes[0].startswith("125 frames is longer than the model was trained to make (121")
    assert notes[0].endswith("give this part --video-frames 121 (in Python frames=121) at most, and extend the longer "
                             "video again"), notes  # fmt: skip


def test_a_prompt_mostly_in_another_script_than_latin_is_noted(tmp_path):
    # The training captions were English only. Wan's workflows (trained on Chinese too) come with Chinese prompts
    # and a Chinese negative prompt: each is named with its language; Latin-script text is not told apart.
    def language_notes(**fields) -> list[str]:
        request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **fields})
        return [note for note in request.resolve()[1] if "English captions" in note]

    assert language_notes() == []  # the official negative prompt is English
    for prompt in ("un renard roux court dans la neige", "ein roter Fuchs läuft durch den Schnee", "ａ ｆｏｘ"):
        assert language_notes(prompt=prompt) == [], prompt
    assert language_notes(prompt="a red fox runs through the snow, 红狐") == []  # a few words of another script
    assert language_notes(prompt="a fox 1280x720, 60 fps!") == []  # digits, spaces and signs are no script
    # "Mostly" is more than half of the letters (spaces not counted): half is not enough, one more is.
    assert language_notes(prompt="ab 가나") == []
    assert language_notes(prompt="ab 가나다")[0].startswith("the prompt is mostly in Korean")
    for prompt, language in [
        ("一只红狐狸在雪地里奔跑", "Chinese"),
        ("눈 속을 달리는 붉은 여우", "Korean"),
        ("雪の中を走る赤いキツネ", "Japanese"),
        ("赤い狐が雪原を走る", "Japanese"),  # more kanji than kana: still Japanese
        ("アニメ スタイル キツネ", "Japanese"),  # katakana alone
        ("눈 속을 달리는 붉은 여우, 雪狐", "Korean"),  # a few Chinese characters (hanja): the script most letters use
        ("рыжая лиса бежит по снегу", "Cyrillic script"),
    ]:
        (note,) = language_notes(prompt=prompt)
        assert note.startswith(f"the prompt is mostly in {language}: the model was trained on English captions"), note
    (note,) = language_notes(negative_prompt="色调艳丽，过曝，静态，细节模糊不清，字幕")  # Wan's, as copied
    assert note.startswith("the negative prompt is mostly in Chinese") and note.endswith("what it knows best")


def test_a_prompt_file_lines_bom_and_windows_line_end_are_noted(tmp_path):
    # `while IFS= read -r prompt` over a file saved on Windows keeps its BOM and each line's "\r", which the text
    # encoder reads as characters: another video than the prompt's as typed. Said, never removed.
    def line_notes(**fields) -> list[str]:
        request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **fields})
        resolved, notes = request.resolve()
        assert resolved.prompt == request.prompt  # the prompt as given
        return [note for note in notes if "byte-order mark" in note or "carriage return" in note]

    assert line_notes() == [] and line_notes(prompt="a fox\r\nin snow") == []  # a web form's two lines
    (bom,) = line_notes(prompt="\ufeffa fox")
    assert bom.startswith("the prompt starts with U+FEFF, a byte-order mark") and "UTF-8 without BOM" in bom
    (crlf,) = line_notes(prompt="a fox\r")
    assert crlf.startswith("the prompt ends with a carriage return (\\r: a Windows line end, CRLF")
    assert crlf.endswith("(tr -d '\\r' < prompts.txt, or prompt=${prompt%$'\\r'} in a shell loop)")
    assert len(line_notes(prompt="\ufeffa fox\r")) == 2  # the first line of such a file
    (negative,) = line_notes(negative_prompt="blurry\r")
    assert negative.startswith("the negative prompt ends with a carriage return")


def test_other_tools_prompt_syntax_is_noted_as_read_as_text(tmp_path):
    # ComfyUI's and A1111's weights and A1111's LoRA tags reach the text encoder as text here (as in diffusers).
    def syntax_notes(**fields) -> list[str]:
        request = GenerationRequest(**{"prompt": "a fox", "output": tmp_path / "fox.mp4", **fields})
        return [note for note in request.resolve()[1] if "syntax" in note or "LoRA tag" in note]

    assert syntax_notes() == []  # the official negative prompt has none
    for plain in ("a fox (seen from afar) runs", "a fox, aspect (16:9)", "(a fox: 2 of them)", "a <b>fox</b>",
                  "a fox (see below:)"):  # fmt: skip
        assert syntax_notes(prompt=plain) == [], plain
    for weighted in ("(red fox:1.3)", "((masterpiece))", "(fox: -0.5)", "(fox:1.3 )"):
        (note,) = syntax_notes(prompt=f"a {weighted} runs through snow")
        assert note.startswith(f"the prompt has {weighted!r}, ComfyUI's and A1111's weighting syntax"), note
    (note,) = syntax_notes(prompt="a fox <lora:snowy_style:0.8>")
    assert "A1111's LoRA tag" in note and "--lora snowy_style.safetensors:0.8" in note
    assert note.endswith("A1111's LoRA tag, which is read as text here: to apply it, give "
                         "--lora snowy_style.safetensors:0.8 (docs/usage.md, \"LoRA adapters\")")  # fmt: skip
    assert "--lora snow.safetensors (" in syntax_notes(prompt="a fox <LoRA:snow>")[0]  # no strength: none given
    # Spaces around the name are no part of a file's name: the flag names the file without them.
    assert "give --lora snow.safetensors:0.8 (" in syntax_notes(prompt="a fox <lora: snow :0.8>")[0]
    # A1111 reads the strength as a number: negative, with spaces around it.
    for tag, flag in (("<lora:snow:-0.5>", "snow.safetensors:-0.5"), ("<lora:snow: 0.8 >", "snow.safetensors:0.8")):
        assert f"--lora {flag} (" in syntax_notes(prompt=f"a fox {tag}")[0], tag
    # Every tag, as the flags that apply them (a name with a space quoted for the shell), in one note.
    (note,) = syntax_notes(prompt="a fox <lora:snow:0.8> <lora:my style:-1>")
    assert "'<lora:snow:0.8>', '<lora:my style:-1>', A1111's LoRA tags, which are read as text" in note
    assert "to apply them, give --lora snow.safetensors:0.8 --lora 'my style.safetensors:-1' (" in note
    both = syntax_notes(negative_prompt="(blurry:1.4), <lora:bad:1>")
    assert len(both) == 2 and all(note.startswith("the negative prompt has") for note in both)


@pytest.mark.parametrize("clip_frames", [None, 1, 2, 81])
@pytest.mark.parametrize("frames", [1, 5, 49])
def test_extended_frames_counts_the_shared_frame_once(frames, clip_frames):
    """An extended video holds the clip's frames, then the run's but its first, which is the clip's last frame: the
    count is that of the frames so joined, and a run that extends nothing holds only its own."""
    clip = [f"clip {i}" for i in range(clip_frames or 0)]
    run = [clip[-1] if clip else "new 0"] + [f"new {i}" for i in range(1, frames)]
    joined = clip + run[1:] if clip else run
    assert extended_frames(frames, clip_frames) == len(joined)


def test_the_size_and_the_rest_are_given_by_name():
    # diffusers' positional order is (prompt, negative_prompt, height, width): taken in ours (width, height) it
    # would quietly turn a landscape video into a portrait one.
    # Said with the fields to give, the values read as diffusers means them (Python said only "takes from 2 to 3
    # positional arguments"); still a TypeError, as Python's own was.
    with pytest.raises(TypeError, match=r"by position .*: give them by name: width=832, height=480$"):
        GenerationRequest("a fox", "", 480, 832)
    with pytest.raises(TypeError, match=r"width=832, height=480, frames=121, steps=50 \(and 1 more value, "):
        GenerationRequest("a fox", "", 480, 832, 121, 50, None)
    request = GenerationRequest("a fox", "blurry", width=832, height=480)
    assert (request.negative_prompt, request.width, request.height) == ("blurry", 832, 480)


def test_a_length_in_seconds_is_one_frame_count_for_the_api_and_for_runs_hint():
    # The API counted `seconds` as round(s * fps) + 1, then to the nearest 4k+1 (a tie up): "4.75" -> 117; run's
    # hint for `--video-frames 4.75s` as Python's round(s * fps / 4) (a tie to even): 113. The hint counts at the
    # run's own --fps, so every rate is compared.
    from motif_lite.cli.flag_numbers import frame_count
    from motif_lite.cli.run_inputs import refuse_seconds
    from motif_lite.server.schema import parse_create

    class Refusing(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise argparse.ArgumentTypeError(message)

    def hinted(seconds: str, fps: int) -> int:
        args = argparse.Namespace(video_frames=frame_count(f"{seconds}s"), fps=fps)
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            refuse_seconds(Refusing(), args)
        return int(re.search(r"is --video-frames (\d+) ", str(refused.value))[1])

    for fps in (24, 16, 30):
        for hundredths in range(10, 1001, 5):
            seconds = f"{hundredths / 100:g}"
            api = parse_create({"prompt": "x", "seconds": seconds, "fps": fps}, None, from_form=False)
            frames = api.request_fields["frames"]
            assert frames % TEMPORAL_FACTOR == 1 and frames == frames_for_seconds(float(seconds), fps)
            assert frames == hinted(seconds, fps), (seconds, fps)
            if (counted := round(float(seconds) * fps, 6)).is_integer():  # as that many + 1 num_frames resolve
                asked = GenerationRequest("x", frames=int(counted) + 1, seed=1, output="o.mp4")
                assert frames == asked.resolve()[0].frames, (seconds, fps)


def test_a_stretch_note_offers_no_size_when_the_nearest_that_keeps_the_shape_is_the_videos_own():
    # A 100x108 image for a 64x64 video (7% apart): of the sizes one step of 16 around, no larger, 64x64 keeps the
    # image's shape best, and "-W 64 -H 64 keeps its shape" would offer the size the user gave.
    from motif_lite.errors import Audience
    from motif_lite.request.size_checks import stretch_note, stretch_words

    assert stretch_note((100, 108), 64, 64, Audience.FLAGS) == [stretch_words((100, 108), 64, 64)]
    assert stretch_note((100, 150), 64, 64, Audience.FLAGS)[0].endswith("keeps its shape")  # a size that does


@pytest.mark.parametrize(
    ("fields", "message", "got"),
    [
        (dict(seed=True), "seed must be a whole number", "got true"),
        (dict(steps=False), "steps must be an integer", "got false"),
        (dict(frames=True), "num_frames must be a positive integer", "got true"),
        (dict(cfg_scale=True), "guidance_scale must be a number", "got true"),
        (dict(fps=["24"]), "fps must be a number", 'got ["24"]'),
        (dict(seed={"value": 3}), "seed must be a whole number", 'got {"value": 3}'),
        (dict(prompt=5), "prompt must be a string", "got a number"),
        (dict(negative_prompt=True), "negative_prompt must be a string", "got true or false"),
    ],
)
def test_a_wrong_value_is_shown_to_a_server_client_as_its_json_wrote_it(fields, message, got):
    # A client of the server sent JSON: it was told "got True", "got {'value': 3}" or "got int", Python's words for
    # its `true`, `{"value": 3}` and number. Python's callers and run are still told Python's.
    request = GenerationRequest(**{"prompt": "a fox", **fields})
    with pytest.raises(RequestError) as api:
        request.resolve(audience=Audience.API)
    assert str(api.value).startswith(message) and str(api.value).endswith(got), str(api.value)
    with pytest.raises(RequestError) as python:
        request.resolve()
    value = next(iter(fields.values()))
    named = type(value).__name__ if "must be a string" in message else repr(value)
    assert str(python.value).endswith(f"got {named}"), str(python.value)


@pytest.mark.parametrize(
    ("body", "message", "got"),
    [
        ('{"loras": {"style.safetensors": 0.8}}', "loras must be a list", 'got {"style.safetensors": 0.8}'),
        ('{"loras": true}', "loras must be a list", "got true"),
        ('{"loras": [{"name": "style.safetensors", "strength": null}]}', "LoRA strength must be", "got null"),
        ('{"loras": [{"name": "style.safetensors", "strength": true}]}', "LoRA strength must be", "got true"),
        (
            '{"loras": [{"name": ["style.safetensors"]}]}',
            "a LoRA is named by its file name",
            'got ["style.safetensors"]',
        ),
        ('{"extend": {"id": "video_0"}}', "extend must be the id", 'got {"id": "video_0"}'),
        ('{"size": {"width": 1280, "height": 736}}', "size must be", 'got {"width": 1280, "height": 736}'),
        ('{"size": true}', "size must be", "got true"),
    ],
)
def test_a_wrong_loras_extend_or_size_is_shown_to_a_server_client_as_its_json_wrote_it(body, message, got):
    # The server's own checks of these fields said Python's words for what a JSON body held ("got {'style...': 0.8}",
    # "got True", "got None"), where the request's checks of the other fields say JSON's.
    import json

    from motif_lite.server.schema import ApiError, parse_create

    with pytest.raises(ApiError) as refused:
        parse_create({"prompt": "a fox", **json.loads(body)}, None, from_form=False)
    assert refused.value.message.startswith(message) and refused.value.message.endswith(got), refused.value.message


def test_a_wrong_json_value_is_shown_with_its_own_letters_and_cut_to_the_length_of_others():
    # A server's client is shown its JSON as it wrote it: `{"名前": 3}`, not json's escapes `{"\u540d\u524d": 3}`;
    # and a long one (a list of 40 numbers for fps) is cut to the 60 characters every shown value is cut to.
    import json

    request = GenerationRequest(prompt="a fox", seed={"名前": 3})
    with pytest.raises(RequestError) as named:
        request.resolve(audience=Audience.API)
    assert str(named.value).endswith('got {"名前": 3}'), str(named.value)
    sent = list(range(40))
    with pytest.raises(RequestError) as long:
        GenerationRequest(prompt="a fox", fps=sent).resolve(audience=Audience.API)
    written = json.dumps(sent)
    got = str(long.value).rpartition("got ")[2]
    assert len(written) > 60 and got == written[:57] + "...", got


def test_a_prompt_of_spaces_alone_is_empty_for_text_to_video(tmp_path):
    # Spaces and a newline are what `-p "$PROMPT "` or a template gives with the variable unset: no text either.
    error = refused(tmp_path, prompt=" \n\t ")
    assert error.fields == ("prompt",) and str(error).startswith("prompt is empty: text-to-video needs"), str(error)


def test_an_alias_or_another_spelling_of_a_sampler_is_no_unknown_choice():
    # A settings file spelled the sampler as ComfyUI does, or by an alias: this version has it, so it is not one
    # of a newer version's to refuse.
    from motif_lite.request.field_checks import unknown_choices

    assert unknown_choices({"sampler": "DPMPP_2M", "guidance": "CFG"}) == {}
    assert unknown_choices({"sampler": "uni_pc_bh2"}) == {}
    assert unknown_choices({"sampler": "dpm++3m", "guidance": "cfg"}) == {"sampler": "dpm++3m"}


def test_a_length_of_exactly_the_most_frames_is_countable_and_one_step_more_is_not():
    from motif_lite.request import MOST_FRAMES, countable_frames

    # At 1 fps a length of n seconds is n + 1 frames: the longest video any request may have is a length, not refused.
    assert countable_frames(MOST_FRAMES - 1, 1) == MOST_FRAMES
    assert countable_frames(MOST_FRAMES - 1 + 4, 1) is None  # the next 4k+1 count
