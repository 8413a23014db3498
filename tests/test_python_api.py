"""The Python API as a diffusers user first meets it: the arguments such a user passes (dtype names, a prompt
instead of a request, a PIL image, LoRAs as plain files, ComfyUI's component names) work or fail at once with a
motif-lite error that says what to pass, never a torch traceback from inside the first loader."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("diffusers")

from stopped_runs import stop_after_first_step, stopped_run  # noqa: E402

from motif_lite import load_pipeline, load_transformer  # noqa: E402
from motif_lite.checkpoint import locate_sources  # noqa: E402
from motif_lite.devices import present_accelerator
from motif_lite.dtypes import checked_dtype
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError  # noqa: E402
from motif_lite.io.clip import Clip  # noqa: E402
from motif_lite.memory_plan import plan_generation  # noqa: E402
from motif_lite.pipeline import GenerationResult, MotifVideoPipeline  # noqa: E402
from motif_lite.request import GenerationRequest, RequestError  # noqa: E402
from motif_lite.weights.lora_errors import LoRAError  # noqa: E402
from motif_lite.weights.lora_specs import LoRASpec, lora_specs  # noqa: E402

TINY = dict(width=48, height=32, frames=5, steps=2, seed=3)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def pipe(checkpoint):
    # dtypes by name, as --dtype spells them and as torch does
    return load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", text_encoder_dtype="torch.bfloat16")


def test_dtype_names_load_as_their_torch_dtypes(pipe):
    assert pipe.dtype == torch.float32 and pipe.transformer.x_embedder.proj.weight.dtype == torch.float32
    assert next(pipe.text_encoder.model.parameters()).dtype == torch.bfloat16
    names = ("bf16", "BF16", "bfloat16", "torch.bfloat16", "fp16", "float16", "fp32", "float32", torch.float32)
    expected = [torch.bfloat16] * 4 + [torch.float16] * 2 + [torch.float32] * 3
    assert [checked_dtype(name) for name in names] == expected


@pytest.mark.parametrize("dtype", ["float64", "auto", torch.int8, 16])
def test_other_dtypes_fail_before_any_file_is_read(dtype, tmp_path):
    absent = tmp_path / "no-checkpoint"  # a checkpoint error would mean the dtype was not checked first
    with pytest.raises(ConfigError, match="dtype must be torch.bfloat16, torch.float16 or torch.float32"):
        load_pipeline(absent, dtype=dtype, device="cpu")
    with pytest.raises(ConfigError, match="text_encoder_dtype must be"):
        load_pipeline(absent, dtype=torch.float32, text_encoder_dtype=dtype, device="cpu")
    with pytest.raises(ConfigError, match="dtype must be"):
        load_transformer(absent, dtype=dtype)
    with pytest.raises(ConfigError, match="dtype must be"):
        plan_generation(GenerationRequest("a fox", **TINY), absent, dtype=dtype, device="cpu")


@pytest.mark.parametrize("vram", ["4", True, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_number_is_a_plan_error(vram, checkpoint):
    with pytest.raises(ConfigError, match=r"--vram \(in Python vram_gib\) must be a positive number of GiB"):
        plan_generation(GenerationRequest("a fox", **TINY), checkpoint, device="cpu", vram_gib=vram)


def test_generate_takes_a_request_not_a_prompt(pipe):
    with pytest.raises(
        RequestError, match=r"generate takes a GenerationRequest, got str: .*GenerationRequest\('a fox'"
    ):
        pipe.generate("a fox")


def test_the_pipeline_says_what_it_loaded(pipe, checkpoint):
    # Before: <motif_lite.pipeline.generation.MotifVideoPipeline object at 0x7f...>, in a notebook's output too.
    assert repr(pipe) == (
        f"MotifVideoPipeline(model='{checkpoint}', device='cpu', dtype=torch.float32, attention='exact', plan=None)"
    )
    request, _ = GenerationRequest("x", **TINY).resolve()
    plan = plan_generation(request, checkpoint, dtype="fp32", device="cpu", vram_gib=64)
    planned = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", plan=plan)
    assert repr(planned).endswith("attention='exact', plan='for 48x32x5 within 64.00 GiB')")
    # A plan that streams says how many of the blocks it streams (here all: none resident).
    from motif_lite.pipeline.run_records import _plan_in_brief

    streamed = dataclasses.replace(plan, resident_blocks=0)
    blocks = f"{plan.num_blocks} of {plan.num_blocks} transformer blocks streamed"
    assert plan.num_blocks > 0 and _plan_in_brief(streamed) == f"for 48x32x5 within 64.00 GiB, {blocks}"


def test_a_diffusers_to_moves_nothing_or_says_the_load_pipeline_line(pipe, checkpoint):
    # Before: every pipe.to(...) was an AttributeError, even the habit pipe = load_pipeline(...).to(its own device).
    assert pipe.to("cpu") is pipe and pipe.to(torch.device("cpu"), torch.float32) is pipe
    assert pipe.to(dtype=torch.float32) is pipe
    with pytest.raises(ConfigError) as moved:
        pipe.to("cuda", torch.bfloat16)
    assert str(moved.value) == (
        "this pipeline was loaded on cpu in torch.float32 and is not moved (its memory plan, kernels and attention "
        f"were chosen for them): load it there instead, pipe = load_pipeline(model='{checkpoint}', device='cuda', "
        "dtype=torch.bfloat16)"
    )
    with pytest.raises(ConfigError, match="dtype=torch.float16"):
        pipe.to(torch.float16)
    with pytest.raises(ConfigError, match="'gpu' is no device; give 'cuda', 'cuda:1', 'cpu'"):
        pipe.to("gpu")
    with pytest.raises(ConfigError, match="pipe.to takes a device and a dtype, as diffusers' does, not non_blocking="):
        pipe.to("cpu", non_blocking=True)


@pytest.mark.parametrize("every", [0, True])  # True is an int to Python, but no spacing a caller meant
def test_a_bad_preview_spacing_fails_before_encoding(pipe, tmp_path, every):
    stages = []
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=f"preview_every must be a positive integer, got {every}"):
        pipe.generate(request, on_progress=lambda *stage: stages.append(stage), on_preview=print, preview_every=every)
    assert stages == [] and list(tmp_path.iterdir()) == []


def test_a_preview_spacing_that_makes_no_preview_fails_before_encoding(pipe, tmp_path):
    # Before: generate ran to its end without one call of on_preview (run refuses such a --preview-every), and
    # preview_every without on_preview (run's --preview-every without --preview) was dropped without a word.
    stages = []
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")  # 2 steps
    progress = lambda *stage: stages.append(stage)  # noqa: E731
    with pytest.raises(RequestError, match=r"preview_every=2 is not below the request's steps=2: .*=1 or less$"):
        pipe.generate(request, on_progress=progress, on_preview=print, preview_every=2)
    with pytest.raises(RequestError, match=r"preview_every=1 without on_preview makes no preview: give on_preview="):
        pipe.generate(request, on_progress=progress, preview_every=1)
    assert stages == [] and list(tmp_path.iterdir()) == []
    one_step = GenerationRequest("a fox", **{**TINY, "steps": 1}, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=r"steps=1: .*; give steps=2 or more$"):
        pipe.generate(one_step, on_preview=print, preview_every=1)
    pipe.generate(one_step, on_preview=print)  # the default spacing: none for one step, as a server job may have


def test_a_callback_that_is_not_a_function_fails_before_encoding(pipe, tmp_path):
    # Before: on_progress=5 was a raw TypeError ("'int' object is not callable") once the encode began.
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    for name in ("on_progress", "on_preview"):
        with pytest.raises(RequestError, match=f"{name} must be a function \\(or None\\), got int 5"):
            pipe.generate(request, **{name: 5})
    assert list(tmp_path.iterdir()) == []


def test_a_preview_file_name_as_on_preview_is_told_the_line_that_writes_that_file(pipe, tmp_path):
    # --preview takes a file name; on_preview="now.webp" was only "must be a function", with no way to that file.
    from motif_lite.io.preview import PreviewFile

    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    path = tmp_path / "now.webp"
    with pytest.raises(RequestError, match=r"give on_preview=PreviewFile\('(.+)', fps=6\) \(motif_lite.io") as e:
        pipe.generate(request, on_preview=path, preview_every=1)
    assert list(tmp_path.iterdir()) == []
    preview = PreviewFile(re.search(r"PreviewFile\('(.+?)'", str(e.value)).group(1), fps=6)  # the line, as told
    pipe.generate(request, on_preview=preview, preview_every=1)
    preview.close()
    assert path.is_file()


def test_a_callback_that_cannot_take_its_arguments_fails_before_encoding(pipe, tmp_path):
    # Before: diffusers' callback_on_step_end(pipe, step, timestep, callback_kwargs) given as on_progress was a
    # TypeError from inside the encode; a preview function of one argument one after the first steps had run.
    def on_step_end(pipe, step, timestep, callback_kwargs):
        return callback_kwargs

    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=r"on_progress is called as on_progress\(stage, done, total\), which .*"
                       r"on_step_end\(pipe, step, timestep, callback_kwargs\) cannot take"):  # fmt: skip
        pipe.generate(request, on_progress=on_step_end)
    with pytest.raises(RequestError, match=r"on_preview is called as on_preview\(done, steps, frames\), which"):
        pipe.generate(request, on_preview=lambda frames: None, preview_every=1)
    assert list(tmp_path.iterdir()) == []
    stages = []  # what takes the arguments as they come passes: *args, a callable object, print
    pipe.generate(request, on_progress=lambda *stage: stages.append(stage), on_preview=print, preview_every=1)
    assert stages[0] == ("encode", 0, 2)
    unread = "{}{}{}".format  # a bound built-in method: no signature to read, not checked (slice was: now a class)
    pipe.generate(request, on_progress=unread, on_preview=unread, preview_every=1)


@pytest.mark.parametrize("bars", ["ProgressBars", "tqdm"])
def test_a_progress_class_given_for_its_instance_says_to_make_one(pipe, tmp_path, bars):
    # on_progress=ProgressBars said only that ProgressBars(file) cannot take (stage, done, total); tqdm, which can,
    # was a TypeError from inside tqdm once the encode began.
    import tqdm

    from motif_lite import ProgressBars

    given = {"ProgressBars": ProgressBars, "tqdm": tqdm.tqdm}[bars]
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    said = rf"^on_progress takes a function or an object to call, not the class {bars}: give an instance of it, .*"
    with pytest.raises(RequestError, match=said + r"\(bars: on_progress=ProgressBars\(\), with ProgressBars from "):
        pipe.generate(request, on_progress=given)
    with pytest.raises(RequestError, match=r"^on_preview takes a function or an object to call, not the class .*\)$"):
        pipe.generate(request, on_preview=given, preview_every=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (dict(keep_latents="no"), "keep_latents must be True or False, got str 'no'"),  # was taken as True
        (dict(latents_file=3), r"latents_file must be a file path \(str or Path\).*got int 3"),  # pathlib's TypeError
        # The clip's path as clip= (extend= names it) was an AttributeError from inside the request's checks.
        (
            dict(clip="fox.mp4"),
            r"clip must be the Clip that read_clip\(path\) gives .*GenerationRequest\(extend=path\)",
        ),
        # A key of its own (the server's argument) was a ValueError once the whole video had been sampled.
        (dict(stored_clip={"name": "fox.mp4"}), r"stored_clip takes \{'extend': name, 'extend_sha256': checksum\}"),
        (dict(stored_clip={"extend": None}), r"either or both \(each a str\), or None, got dict \{'extend': None\}"),
        (dict(stored_image={"extend": "fox.png"}), r"stored_image takes \{'image': name, 'image_sha256': checksum\}"),
        (dict(stored_image={"image": 3}), r"either or both \(each a str\), or None, got dict \{'image': 3\}"),
    ],
)
def test_keeping_arguments_of_a_wrong_type_fail_before_encoding(pipe, tmp_path, argument, message):
    stages = []
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    with pytest.raises(RequestError, match=message):
        pipe.generate(request, on_progress=lambda *stage: stages.append(stage), **argument)
    assert stages == [] and list(tmp_path.iterdir()) == []


def test_a_resolved_request_not_made_of_the_request_given_fails_before_encoding(pipe, tmp_path):
    # `resolved` skips the request's checks: it is taken only with the resolved request it holds.
    stages = []
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    resolved = request.resolve_with_inputs()
    said = r"^resolved takes what request.resolve_with_inputs\(clip\) returned, given with the request it holds: "
    for given, other in ((request, resolved), (resolved.request, tuple(resolved)), (resolved.request, "fox")):
        with pytest.raises(RequestError, match=said + rf".*; got {type(other).__name__}$"):
            pipe.generate(given, on_progress=lambda *stage: stages.append(stage), resolved=other)
    # A clip beside it that is not the one it read (none here) would be ignored: generate goes on from resolved's.
    clip = Clip(tmp_path / "other.mp4", frames=9, width=48, height=32, fps=24.0)
    with pytest.raises(RequestError, match=r"^clip is .*other\.mp4, but resolved holds no clip: "):
        pipe.generate(resolved.request, on_progress=lambda *stage: stages.append(stage), resolved=resolved, clip=clip)
    assert stages == [] and list(tmp_path.iterdir()) == []


def test_a_stopped_image_to_video_run_keeps_the_image_as_its_user_knows_it(pipe, tmp_path):
    """`stored_image` (the server's upload, by the name it was sent under and its checksum) is what the video's file
    and a stopped run's latents file say of the first frame; the run resumed under it goes on."""
    from motif_lite.io.settings_file import read_settings

    image = tmp_path / "video_1.png"
    PIL.Image.new("RGB", (48, 32), "orange").save(image)
    stored = {"image": "cat.png", "image_sha256": "ab" * 32}
    request = GenerationRequest("a fox", **TINY, image=image, output=tmp_path / "fox.mp4")

    saved = stopped_run(pipe, request, stored_image=stored)
    assert {key: saved.video_metadata[key] for key in stored} == stored
    pipe.generate(request, resume=saved, stored_image=stored)
    assert {key: read_settings(tmp_path / "fox.mp4").values[key] for key in stored} == stored
    pipe.generate(request)  # without it (motif-lite run): the image's own name, and no checksum
    values = read_settings(tmp_path / "fox.mp4").values
    assert values["image"] == "video_1.png" and "image_sha256" not in values
    # A job a server of the version before stopped (its state without the checksum) resumes under one that keeps it.
    pipe.generate(request, resume=stopped_run(pipe, request), stored_image=stored)
    assert read_settings(tmp_path / "fox.mp4").values["image_sha256"] == "ab" * 32


def test_a_latents_file_given_as_a_path_is_kept_there(pipe, tmp_path):
    (tmp_path / "kept").mkdir()
    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(
            request, on_progress=stop_after_first_step, latents_file=tmp_path / "kept" / "fox.latents.safetensors"
        )
    assert [path.name for path in (tmp_path / "kept").iterdir()] == ["fox.latents.safetensors"]


def test_a_latents_file_in_the_home_folder_is_kept_there(pipe, tmp_path, monkeypatch):
    # As an output's "~" is expanded; before, "~/kept.latents.safetensors" named a folder "~" in the current one.
    home, elsewhere = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)

    request = GenerationRequest("a fox", **TINY, output=tmp_path / "fox.mp4")
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request, on_progress=stop_after_first_step, latents_file="~/kept.latents.safetensors")
    assert [path.name for path in home.iterdir()] == ["kept.latents.safetensors"]
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(width=10**9), "transformer tokens"),  # was torch's allocator error after the encode ("can't allocate")
        (dict(steps=10**38), "--steps must be an integer from 1 to 1000"),  # was numpy's ValueError from the schedule
        (dict(prompt="fox " * 5_000_000), "prompt is 20,000,000 characters"),  # was minutes of tokenizing
    ],
)
def test_values_that_failed_late_fail_before_encoding(pipe, tmp_path, change, message):
    stages = []
    request = GenerationRequest(**{"prompt": "a fox", **TINY, "output": tmp_path / "fox.mp4", **change})
    with pytest.raises(RequestError, match=message):
        pipe.generate(request, on_progress=lambda *stage: stages.append(stage))
    assert stages == [] and list(tmp_path.iterdir()) == []


def test_two_videos_without_an_output_from_one_pipeline_keep_both_files(pipe, tmp_path, monkeypatch):
    # A notebook's second prompt without `output` replaced the first one's output.mp4 and both results named it;
    # motif-lite run never replaces its default name either.
    from motif_lite.io.settings_file import read_settings

    monkeypatch.chdir(tmp_path)
    first = pipe.generate(GenerationRequest("a red fox", **TINY))
    second = pipe.generate(GenerationRequest("a grey wolf", **TINY))
    assert (first.output, second.output) == (Path("output.mp4"), Path("output-2.mp4"))
    assert not any("exists" in note for note in first.notes)
    assert "output.mp4 exists: writing output-2.mp4 instead (output= names the file, and replaces a file there)" in (
        second.notes
    )
    assert read_settings("output.mp4").values["prompt"] == "a red fox"
    assert read_settings("output-2.mp4").values["prompt"] == "a grey wolf"


def test_a_result_shows_as_one_short_line_in_a_notebook():
    # A cell ending in pipe.generate(...) showed the dataclass's repr: ~3,000 characters, the negative prompt twice.
    request = GenerationRequest("a red fox", width=832, height=480, frames=65, steps=25, seed=7, output="fox.mp4")
    result = GenerationResult(Path("fox.mp4"), request, 15.0, {"total": 612.34}, 2**30, None, notes=["a note"])
    assert repr(result) == (
        "GenerationResult(output='fox.mp4': 832x480, 65 frames at 24 fps, seed 7, 25 steps in 612.3 s; 1 note "
        "(.notes); the rest: .request, .settings, .timings, .step_seconds, .peak_rss_bytes, ...)"
    )
    assert request.negative_prompt not in repr(result) and str(result) == repr(result)
    # Without notes it names none; with several, their count; without a total time (a result made by hand), no time.
    quiet = GenerationResult(Path("fox.mp4"), request, 15.0, {"encode": 1.0}, 2**30, None)
    assert "steps; the rest: .request" in repr(quiet) and "note" not in repr(quiet)
    noted = GenerationResult(Path("fox.mp4"), request, 15.0, {}, 2**30, None, notes=["a note", "another"])
    assert "25 steps; 2 notes (.notes); the rest" in repr(noted)
    # One of each is said in the singular (it said "1 steps").
    single = GenerationRequest("a red fox", width=832, height=480, frames=1, steps=1, seed=7, output="f.png")
    one = GenerationResult(Path("f.png"), single, 1.0, {}, 2**30, None)
    assert ": 832x480, 1 frame at 24 fps, seed 7, 1 step; the rest" in repr(one)


def test_other_libraries_ways_of_taking_the_frames_say_where_the_video_is():
    # Were Python's bare "'GenerationResult' object has no attribute 'videos'" and "... is not subscriptable".
    from motif_lite.pipeline.result import OTHER_RESULT_NAMES

    request = GenerationRequest("a red fox", output="fox.mp4")
    result = GenerationResult(Path("fox.mp4"), request, 15.0, {}, None, None)
    assert not any(hasattr(GenerationResult, name) for name in OTHER_RESULT_NAMES)  # else its advice never shows
    for name in ("videos", "images"):
        with pytest.raises(
            AttributeError, match=rf"no attribute '{name}': generate writes the video to result\.output"
        ):
            getattr(result, name)
    with pytest.raises(AttributeError, match=r"no attribute 'video_path': the video file written is result\.output"):
        result.video_path  # noqa: B018
    # diffusers' output[0] and return_dict=False's tuple, indexed or unpacked
    with pytest.raises(TypeError, match=r"not subscriptable: diffusers' output\[0\] is its frames; here generate"):
        result[0]  # noqa: B018
    with pytest.raises(TypeError, match=r"here generate writes the video to result\.output"):
        (frames,) = result


def test_an_output_given_is_replaced_and_a_resolved_request_keeps_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "output.mp4").write_bytes(b"an earlier video")
    named, notes = GenerationRequest("a fox", **TINY, output="output.mp4").resolve()
    assert named.output == "output.mp4" and not any("exists" in note for note in notes)
    unnamed, _ = GenerationRequest("a fox", **TINY).resolve()
    assert unnamed.output == Path("output-2.mp4") and unnamed.resolve()[0].output == Path("output-2.mp4")
    (tmp_path / "output.mp4").unlink()
    first_free, _ = GenerationRequest("a fox", **TINY).resolve()
    (tmp_path / "output.mp4").write_bytes(b"its video, written since")
    assert first_free.resolve()[0].output == "output.mp4"  # its name, not one free now


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ("image", "the input image is empty (''): give the path of an image file, or leave image out (None)"),
        ("extend", "the clip to extend is empty (''): give the path of a video, or leave extend out (None)"),
        ("output", "the output is empty (''): give a file name such as fox.mp4, or leave output out (output.mp4"),
    ],
)
def test_an_empty_path_in_a_request_says_to_give_one_or_leave_it_out(field, said, tmp_path, monkeypatch):
    # A notebook form's field left empty: Path('') is the current folder, and the image was "a directory; give
    # the image file in it, e.g. <a file there>".
    monkeypatch.chdir(tmp_path)
    PIL.Image.new("RGB", (48, 32)).save(tmp_path / "holiday.png")
    with pytest.raises(RequestError) as raised:
        GenerationRequest("a fox", **{"output": "fox.mp4", **TINY, field: ""}).resolve()
    assert said in str(raised.value) and "directory" not in str(raised.value)


@pytest.mark.parametrize(
    ("argument", "said"),
    [
        ({"model": ""}, "model is empty (''): give a checkpoint folder or a Hub repo id, or leave it out for "),
        ({"gguf": ""}, "gguf is empty (''): give a .gguf file or a variant name such as 'Q4_K_M', or leave it out"),
        ({"text_encoder_gguf": " "}, "text_encoder_gguf is empty (' '): give a text encoder .gguf file, or leave"),
        ({"weights": {"vae": ""}}, "weights['vae'] is empty (''): give its .safetensors file"),
    ],
)
def test_an_empty_path_given_to_load_pipeline_is_refused(argument, said, checkpoint, tmp_path, monkeypatch):
    # gguf="" took the one .gguf file of the current folder (Path('') is that folder), and model="" asked to
    # download a checkpoint into it.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckpointError) as raised:
        load_pipeline(**{"model": checkpoint, **argument}, dtype="fp32", device="cpu")
    assert str(raised.value).startswith(said), str(raised.value)


@pytest.mark.skipif(present_accelerator() is not None, reason="this machine has a GPU: auto picks it")
def test_a_pipeline_on_the_cpu_by_default_says_so_before_it_loads(checkpoint):
    # A notebook on a CPU runtime loaded on the CPU without a word, and its first 720p video would have sampled for
    # weeks (motif-lite run estimates the time and asks; load_pipeline has no such question).
    import warnings

    with pytest.warns(UserWarning, match=r"^no GPU found \(.+\): the pipeline runs on the CPU, .+ give device='cpu'"):
        load_pipeline(checkpoint, dtype="fp32", kernels="torch")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_pipeline(checkpoint, dtype="fp32", kernels="torch", device="cpu")  # asked for: nothing to say
    assert not [warning for warning in caught if "no GPU found" in str(warning.message)]


def test_an_output_that_is_not_a_path_says_the_video_goes_to_a_file():
    with pytest.raises(RequestError, match=r"output must be a file path \(str or Path\) such as 'fox.mp4', got None"):
        GenerationRequest("a fox", **TINY, output=None).resolve()


def test_loras_may_be_plain_files_and_anything_else_is_named(tmp_path):
    style, motion = tmp_path / "style.safetensors", tmp_path / "motion.safetensors"
    style.touch(), motion.touch()
    other = tmp_path / "other.safetensors"
    other.touch()
    assert lora_specs([str(style), (motion, 0.6), [other, np.float32(0.5)]]) == [
        LoRASpec(style, 1.0), LoRASpec(motion, 0.6), LoRASpec(other, 0.5)
    ]  # fmt: skip
    with pytest.raises(LoRAError, match=r"loras takes a list of files or \(file, strength\) pairs"):
        lora_specs(str(style))
    # One file as --lora takes it, `FILE:STRENGTH`: the example was that whole text as a file at strength 1.
    with pytest.raises(LoRAError, match=r"or a \{file: strength\} dict, e.g. loras=\{'style.safetensors': 0.5\}$"):
        lora_specs("style.safetensors:0.5")
    for entry in [(style, "strong"), (style, float("nan")), (style,), (style, 1.0, 2.0), 3]:
        with pytest.raises(LoRAError, match="each LoRA is a file or a"):
            lora_specs([entry])
    with pytest.raises(LoRAError, match="LoRA file not found: .*absent.safetensors"):
        lora_specs([(tmp_path / "absent.safetensors", 1.0)])
    with pytest.raises(LoRAError, match="loras takes a list"):  # before the (absent) checkpoint is looked for
        load_pipeline(tmp_path / "no-checkpoint", loras=str(style), device="cpu")
    # One pair without its list (diffusers' load_lora_weights takes one file): was "each LoRA is a file or a
    # (file, strength) pair ...; got 0.8", its strength read as a second LoRA.
    for pair in [(style, 0.8), [str(style), np.float32(0.8)]]:
        with pytest.raises(LoRAError) as refused:
            lora_specs(pair)
        assert str(refused.value) == (
            f"loras takes a list of (file, strength) pairs, even for one LoRA: loras=[({str(style)!r}, 0.8)] (or "
            f"loras={{{str(style)!r}: 0.8}}), got the pair alone"
        )
    assert lora_specs((style, motion)) == [LoRASpec(style, 1.0), LoRASpec(motion, 1.0)]  # two files: no pair
    for nothing in (None, 0):  # None was a TypeError ("'NoneType' object is not iterable") from inside
        with pytest.raises(LoRAError, match=rf"loras takes a list .*, or \[\] for none; got \w+ {nothing}"):
            lora_specs(nothing)


def test_a_weight_file_for_an_unknown_component_names_the_known_ones(checkpoint):
    vae = checkpoint / "vae" / "diffusion_pytorch_model.safetensors"
    with pytest.raises(CheckpointError, match="no component 'unet' takes a weight file; use transformer, text_enc"):
        locate_sources(checkpoint, weights={"unet": vae})


@pytest.mark.parametrize("threshold", ["0.05", True, -1])
def test_a_step_cache_threshold_that_is_not_a_number_fails_at_load(threshold, checkpoint):
    # A str used to be kept as the cache's config and fail inside the first step of the first video.
    with pytest.raises(ConfigError, match=r"step cache threshold must be a (finite )?number"):
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", step_cache=threshold)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (dict(plan="auto"), r"plan must be a Plan from plan_generation\(request, model\).*got str 'auto'"),
        (dict(parallel="cfg"), "parallel must be a Parallel of motif_lite.runtime.parallel .*got str 'cfg'"),
        (dict(compile="max-autotune"), "compile must be True, False or a CompileConfig.*got str 'max-autotune'"),
        (dict(compile={"mode": "max-autotune"}), "compile must be True, False or a CompileConfig.*got dict"),
        (dict(batch_guidance="yes"), r"batch_guidance must be True or False \(or None\), got str 'yes'"),
        (dict(weights="vae.safetensors"), "weights must be a dict of component -> .safetensors file.*got str"),
        (dict(weights={"vae": None}), r"weights\['vae'\] must be the path of a .safetensors file.*got NoneType"),
        (dict(quantize=8), r"quantize must be a quantization type such as 'Q4_K_M'.*got int 8"),
        (dict(text_encoder_quantize=8), r"text_encoder_quantize must be a quantization type .*got int 8"),
        # A tokenizer's folder (diffusers takes folders) was an AttributeError after the checks and any download.
        (dict(prompt_tokenizer="ck/tokenizer"), r"prompt_tokenizer must be the checkpoint's tokenizer .*got str"),
        (dict(prompt_tokenizer=42), r"prompt_tokenizer must be the checkpoint's tokenizer .*got int 42"),
        # diffusers' habit of a dtype after the model: load_pipeline's second argument is gguf ("no such GGUF file").
        (
            dict(gguf=torch.bfloat16),
            r"gguf \(load_pipeline's second argument\) must be .*; for the dtype, give "
            r"dtype=torch.bfloat16$",
        ),
    ],
)
def test_an_argument_of_a_type_load_pipeline_cannot_use_fails_before_any_file_is_read(argument, message, tmp_path):
    # Before: plan="auto" was an AttributeError once every weight had loaded, parallel="cfg" one once the checks
    # were done, weights="..." and quantize=8 AttributeErrors from inside the checks; compile="max-autotune" (or
    # a dict of torch.compile's options) and batch_guidance="yes" were taken as True.
    absent = tmp_path / "no-checkpoint"  # a checkpoint error would mean the argument was not checked first
    with pytest.raises(ConfigError, match=message):
        load_pipeline(absent, dtype="fp32", device="cpu", **argument)


@pytest.mark.parametrize("weights", [[("transformer", "x.safetensors")], "vae.safetensors", {"vae": None}])
def test_locate_sources_and_check_setup_refuse_weights_of_the_wrong_shape_as_load_pipeline_does(weights, tmp_path):
    # A list of pairs (or a str) was an AttributeError ('list' object has no attribute 'items') from the two public
    # entry points that load_pipeline's own check did not cover.
    from motif_lite.checkup import check_setup

    absent = tmp_path / "no-checkpoint"
    for entry in (locate_sources, check_setup):
        with pytest.raises(ConfigError, match=r"^weights(\['vae'\])? must be ") as error:
            entry(absent, weights=weights)
        assert "\n" not in str(error.value), error.value


@pytest.mark.parametrize("model", [None, 123])
def test_a_model_of_a_type_that_names_no_checkpoint_says_what_to_give(model):
    # Was "no such checkpoint directory: None", as if a folder named None were missing.
    said = r"model \(load_pipeline's first argument\) must be a local checkpoint folder or a Hub repo id"
    with pytest.raises(ConfigError, match=rf"^{said} .*got {type(model).__name__} {model}$"):
        load_pipeline(model, device="cpu")


def test_weight_files_may_be_paths(tmp_path):
    # A Path (what the checks' message asks for: "str or Path") passes the type check: the checkpoint is looked for.
    with pytest.raises(CheckpointError) as refused:
        load_pipeline(tmp_path / "no-checkpoint", device="cpu", weights={"vae": tmp_path / "vae.safetensors"})
    assert not isinstance(refused.value, ConfigError), refused.value


def test_the_top_level_names_are_importable_and_listed():
    import motif_lite

    assert set(motif_lite.__all__) - {"__version__"} <= set(dir(motif_lite))  # a notebook's completion offers them
    for name in motif_lite.__all__:
        assert getattr(motif_lite, name) is not None
    assert motif_lite.GenerationRequest is GenerationRequest and issubclass(RequestError, motif_lite.MotifLiteError)
    # What load_pipeline returns and generate gives back, for type hints; not the module's own imports.
    assert motif_lite.MotifVideoPipeline is MotifVideoPipeline and motif_lite.GenerationResult is GenerationResult
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib"} & set(dir(motif_lite))
    assert {"__version__", "__name__", "load_pipeline"} <= set(dir(motif_lite))  # a module's own names stay


def test_a_name_the_package_lacks_says_what_to_use():
    # Before: "module 'motif_lite' has no attribute ..." alone, for diffusers' names and for typos.
    import motif_lite

    with pytest.raises(AttributeError, match=r"'load_pipline'; did you mean load_pipeline\?$"):
        motif_lite.load_pipline  # noqa: B018
    with pytest.raises(AttributeError, match=r"\(a diffusers name\): image-to-video is the same pipeline"):
        motif_lite.MotifVideoImage2VideoPipeline  # noqa: B018
    with pytest.raises(AttributeError, match=r"^module 'motif_lite' has no attribute 'zzz'$"):
        motif_lite.zzz  # noqa: B018
    assert not hasattr(motif_lite, "export_to_video")
    assert motif_lite.plan_generation is plan_generation  # the plan load_pipeline(plan=...) takes, named in the docs


def test_the_diffusers_names_a_from_import_cannot_hint_are_in_the_docs_table():
    # `motif_lite.export_to_video` says what to use, but Python (3.11 to 3.13) drops a module __getattr__'s message
    # for `from motif_lite import export_to_video`: the usage table is where that user finds the line to type.
    import motif_lite

    with pytest.raises(ImportError, match=r"^cannot import name 'export_to_video' from 'motif_lite'"):
        from motif_lite import export_to_video  # noqa: F401
    usage = (Path(__file__).parents[1] / "docs" / "usage.md").read_text()
    table = usage[usage.index("**Coming from diffusers.**") : usage.index("Typed the diffusers way")]
    for name in motif_lite._DIFFUSERS_NAMES:
        assert f"`{name}" in table or f" {name}" in table, name


def test_the_errors_to_catch_are_top_level_names():
    # RequestError lived in motif_lite.request and LoRAError in motif_lite.weights.lora, named nowhere in the docs.
    import motif_lite

    assert motif_lite.RequestError is RequestError and motif_lite.LoRAError is LoRAError
    assert issubclass(RequestError, motif_lite.MotifLiteError) and issubclass(LoRAError, motif_lite.MotifLiteError)


def test_one_problem_keeps_its_own_error_type_and_several_are_listed(checkpoint, tmp_path):
    """`except DeviceError` catches a device that does not exist here; several problems come as one list."""
    from motif_lite.errors import DeviceError

    missing_gpu = "cuda:7" if torch.cuda.is_available() else "cuda"
    with pytest.raises(DeviceError, match="cuda"):
        load_pipeline(checkpoint, dtype=torch.float32, device=missing_gpu, kernels="torch")
    with pytest.raises(CheckpointError) as raised:  # a bad device and a checkpoint that is not there
        load_pipeline(tmp_path / "nothing", dtype=torch.float32, device=missing_gpu, kernels="torch")
    assert "cuda" in str(raised.value) and "nothing" in str(raised.value) and len(str(raised.value).splitlines()) > 1


@pytest.mark.parametrize(
    ("arguments", "keyword"),
    [
        (dict(device="gpu"), 'a GPU is cuda here: --device cuda (in Python device="cuda")'),  # other tools' name
        (dict(device="cpu", kernels="triton"), 'use auto or torch: --kernels auto (in Python kernels="auto")'),
    ],
)
def test_the_advice_of_a_check_before_loading_names_the_keyword_too(arguments, keyword, checkpoint):
    """The checks before loading are shared with `motif-lite run`, whose flags they name: a Python caller gets the
    keyword to pass beside each flag (before: only "--device cuda", "--kernels auto")."""
    with pytest.raises(MotifLiteError) as error:
        load_pipeline(checkpoint, dtype="fp32", **arguments)
    assert keyword in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_gpu_asked_for_without_one_names_the_cpu_keyword_too(checkpoint):
    from motif_lite.errors import DeviceError

    with pytest.raises(DeviceError, match=r'use the CPU: --device cpu \(in Python device="cpu"\)$'):
        load_pipeline(checkpoint, dtype="fp32", device="cuda")


def test_float16_overflow_advice_names_the_dtype_keywords_too():
    from motif_lite.numerics import advice

    said = advice(torch.zeros(1, dtype=torch.float16))
    assert "--dtype bf16 (in Python dtype=torch.bfloat16)" in said and "(in Python dtype=torch.float32)" in said


def test_numpy_numbers_count_as_the_python_numbers_they_hold(tmp_path):
    """A notebook's seed from numpy (np.int64) or a cfg from a sweep (np.float32) is a valid setting, and the
    resolved request holds plain ints and floats (the video's metadata is JSON)."""
    request = GenerationRequest(
        "a fox", seed=np.int64(3), width=np.int64(48), height=32, frames=np.int32(9), steps=np.int16(2),
        cfg_scale=np.float32(5.0), output=tmp_path / "a.mp4",
    )  # fmt: skip
    resolved, _ = request.resolve()
    assert (resolved.seed, resolved.width, resolved.frames, resolved.steps, resolved.cfg_scale) == (3, 48, 9, 2, 5.0)
    assert [type(v) for v in (resolved.seed, resolved.width, resolved.steps, resolved.cfg_scale)] == [
        int,
        int,
        int,
        float,
    ]
    with pytest.raises(RequestError, match=r"^--seed must be a whole number"):  # a bool is not a number here
        GenerationRequest("a fox", seed=np.bool_(True), output=tmp_path / "a.mp4").resolve()
    # A 0-d tensor (torch.randint(0, 2**32, ()) as a seed) was "--seed must be a whole number ..., got tensor(3)".
    request = GenerationRequest("a fox", seed=torch.tensor(3), cfg_scale=torch.tensor(5.5), output=tmp_path / "a.mp4")
    resolved, _ = request.resolve()
    assert (resolved.seed, resolved.cfg_scale) == (3, 5.5) and type(resolved.seed) is int
    for not_one_number in (torch.tensor([3]), torch.tensor(True)):
        with pytest.raises(RequestError, match=r"^--seed must be a whole number"):
            GenerationRequest("a fox", seed=not_one_number, output=tmp_path / "a.mp4").resolve()


def test_a_request_error_names_each_invalid_field_in_the_order_of_its_lines(tmp_path):
    request = GenerationRequest(" ", width=50, steps=0, seed=-5, apg_eta=-1, output=tmp_path / "a.gif", fps=99.0)
    with pytest.raises(RequestError) as error:
        request.resolve()
    heading, *lines = str(error.value).splitlines()
    assert heading == "6 settings are invalid:"
    assert error.value.fields == ("prompt", "width", "steps", "apg_eta", "seed", "fps")
    assert [line.split()[0] for line in lines] == ["prompt", "-W/--width", "--steps", "--apg-eta", "--seed", "fps"]
    with pytest.raises(RequestError) as error:
        GenerationRequest("a fox", image=tmp_path / "none.png", output=tmp_path / "a.mp4").resolve()
    assert error.value.fields == ("image",)


def test_speed_settings_are_checked_as_the_run_will_use_them(checkpoint, monkeypatch):
    from motif_lite.runtime import attention

    checked = []
    monkeypatch.setattr(attention, "check_backend_runs", lambda *args: checked.append(args))
    # A fixed kernel is checked in the run's dtype (FlashAttention has none for float32 on a GPU) ...
    load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", attention_backend="flash")
    assert checked == [("flash", torch.device("cpu"), torch.float32)]
    # ... and not at all with int8 attention, which chooses no exact kernel.
    checked.clear()
    pipe = load_pipeline(checkpoint, device="cpu", kernels="torch", attention="int8", attention_backend="cudnn")
    assert checked == [] and pipe.attention_backend is None


def test_batch_guidance_the_plan_has_no_room_for_is_turned_off_with_a_warning():
    from types import SimpleNamespace

    from motif_lite.pipeline.loading import install_speed

    pipe = SimpleNamespace(device=torch.device("cuda"), parallel=None, transformer=None)
    with pytest.warns(UserWarning, match="batch_guidance=True does not fit the memory plan"):
        install_speed(pipe, SimpleNamespace(cfg_batch=1), True, None)
    assert pipe.batch_guidance is False
    install_speed(pipe, SimpleNamespace(cfg_batch=2), True, None)
    assert pipe.batch_guidance is True
    pipe.parallel = object()  # a parallel run computes the two predictions in separate calls
    install_speed(pipe, SimpleNamespace(cfg_batch=2), True, None)
    assert pipe.batch_guidance is False


def test_the_batch_guidance_warning_points_at_the_callers_line(checkpoint):
    request, _ = GenerationRequest("x", **TINY).resolve()
    plan = plan_generation(request, checkpoint, dtype="fp32", device="cpu")
    assert plan.cfg_batch == 1  # on the CPU
    with pytest.warns(UserWarning, match="batch_guidance=True does not fit the memory plan") as record:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", plan=plan, batch_guidance=True)
    assert {w.filename for w in record if "batch_guidance" in str(w.message)} == {__file__}


def test_strict_int8_attention_on_a_gpu_without_int8_tensor_cores_fails_before_loading(monkeypatch):
    from motif_lite.preflight import check_strict_int8
    from motif_lite.runtime.kernels import KernelBackendError

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    cuda = torch.device("cuda")
    for capability, fails in (((7, 5), True), ((8, 0), False)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        if fails:
            with pytest.raises(KernelBackendError, match="Tesla T4 is 7.5, and --kernels triton never falls back"):
                check_strict_int8("int8", "triton", cuda)
        else:
            check_strict_int8("int8", "triton", cuda)
        check_strict_int8("int8", "auto", cuda)  # auto falls back to exact attention with a warning
        check_strict_int8("exact", "triton", cuda)


def test_load_pipeline_refuses_strict_int8_attention_on_a_gpu_without_int8_tensor_cores(checkpoint, monkeypatch):
    from motif_lite.pipeline import loading
    from motif_lite.runtime.kernels import KernelBackendError

    def preflight_on_a_gpu(*args, device_checks, **kwargs):  # the caller's checks come with the device's
        device_checks(torch.device("cuda"))
        return locate_sources(checkpoint), torch.device("cuda")

    monkeypatch.setattr(loading, "preflight", preflight_on_a_gpu)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(KernelBackendError, match="--attention int8 needs INT8 tensor cores") as error:
        load_pipeline(checkpoint, device="cuda", kernels="triton", attention="int8")
    assert 'use --attention exact (in Python attention="exact"), or --kernels auto (in Python kernels="auto")' in str(
        error.value
    )


def test_load_pipeline_refuses_a_step_cache_in_a_parallel_run_before_loading(checkpoint):
    from motif_lite.runtime.parallel import Parallel

    parallel = Parallel.__new__(Parallel)  # never used: the check comes first
    with pytest.raises(ConfigError, match="a step cache is not supported in a parallel run"):
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", step_cache=0.1, parallel=parallel)


def test_load_pipeline_refuses_compile_without_a_compiler_before_loading(checkpoint, monkeypatch):
    import shutil

    from motif_lite.runtime.compile import CompileUnavailableError

    monkeypatch.setattr(shutil, "which", lambda name: None)  # no g++, c++ or clang++
    with pytest.raises(CompileUnavailableError, match="--compile on the CPU needs a C\\+\\+ compiler") as error:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", compile=True)
    assert str(error.value).endswith("run without compiling: no --compile (in Python compile=False)")


@pytest.mark.parametrize(("kernels", "strict"), [("triton", True), ("auto", False)])
def test_a_fixed_triton_attention_is_as_strict_as_the_kernels(kernels, strict, monkeypatch):
    from motif_lite import preflight as checks

    pytest.importorskip("triton")
    monkeypatch.setattr(checks, "use_triton", lambda kernels, device=None: True)  # as on a GPU
    _, backend = checks.check_speed(torch.device("cuda"), kernels, "triton", None)  # no GPU is touched
    assert backend.attend.strict is strict


def test_the_field_table_of_usage_md_matches_the_request_the_flags_and_the_server():
    """docs/usage.md lists GenerationRequest's fields with the run flag, the server field and diffusers' name of each
    (diffusers' num_frames is a TypeError there): every field once, each flag filling that field, each server name
    mapped to it, each diffusers call argument mapped to it (from_diffusers), the other diffusers names real ones."""
    import argparse
    import dataclasses
    import inspect
    import pathlib
    import re

    from diffusers import AdaptiveProjectedGuidance, FlowMatchEulerDiscreteScheduler
    from diffusers.utils import export_to_video

    from motif_lite.cli import build_parser
    from motif_lite.cli.run_request import request_from_args
    from motif_lite.pipeline.from_diffusers import CALL_FIELDS
    from motif_lite.server.schema import MOTIF_FIELDS, OPENAI_FIELDS

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "usage.md").read_text()
    rows = re.findall(r"^\| (`\w+`.*?) \| (`-.*?) \| (.*?) \| (.*?) \|$", text, re.M)
    diffusers_names = {"guider", "scheduler", "export_to_video"}  # the pipeline's components, its video writer
    # and their arguments
    for function in (AdaptiveProjectedGuidance.__init__, FlowMatchEulerDiscreteScheduler.__init__, export_to_video):
        diffusers_names |= set(inspect.signature(function).parameters)
    run = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["run"]
    dests = {option: action.dest for action in run._actions for option in action.option_strings}
    defaults = run.parse_args(["-p", "x"])
    listed = []
    for fields_cell, flags_cell, server_cell, diffusers_cell in rows:
        fields = re.findall(r"`(\w+)`", fields_cell)
        listed += fields
        for flag in re.findall(r"`(-[^`]+)`", flags_cell):  # the flag's every spelling fills one of the fields
            for spelling in flag.split(", "):
                args = argparse.Namespace(**{**vars(defaults), dests[spelling]: object()})
                request = request_from_args(args)
                filled = [
                    f.name
                    for f in dataclasses.fields(request)
                    if getattr(request, f.name) is getattr(args, dests[spelling])
                ]
                assert filled and filled[0] in fields, (spelling, fields)
        for name in re.findall(r"`(\w+)`", server_cell):
            if name in MOTIF_FIELDS:
                assert MOTIF_FIELDS[name][0] in fields, (name, fields)
            else:
                assert name in OPENAI_FIELDS, name
        for name in re.findall(r"`(\w+)`", diffusers_cell):
            if name in CALL_FIELDS:
                assert CALL_FIELDS[name] in fields, (name, fields)
            else:
                assert name in diffusers_names, name
    assert len(rows) >= 12
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(GenerationRequest))
    with pytest.raises(TypeError, match="no field num_frames: give frames=5"):  # a TypeError still (see the docs)
        GenerationRequest("x", num_frames=5)


class _Stopped(Exception):
    """Raised by a progress callback: the run stops at its first report, before any real work."""


def _stop_at_first_report(stage: str, done: int, total: int) -> None:
    raise _Stopped(stage)


def test_generate_on_the_cpu_at_the_default_size_warns_with_the_estimate_before_it_starts(pipe, tmp_path, caplog):
    # `motif-lite run` asks before hours of CPU work; a library cannot ask, but it must not start them silently.
    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"))  # the official 1280x736x121
    with caplog.at_level("WARNING", logger="motif_lite"), pytest.raises(_Stopped, match="encode"):
        pipe.generate(request, on_progress=_stop_at_first_report, keep_latents=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "FLOPs" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    (warning,) = warnings
    assert "\n" not in warning
    assert re.search(
        r"on the CPU this run \(1280x736x121, 50 steps\) is .* FLOPs: about [\d.]+ (minutes|hours|days)", warning
    )
    assert "width=256, height=256, frames=9, steps=2" in warning and "-W 256" not in warning  # the Python keywords


def test_a_short_cpu_run_or_one_the_cli_asked_about_is_not_warned_about(pipe, tmp_path, caplog):
    short = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    with caplog.at_level("WARNING", logger="motif_lite"), pytest.raises(_Stopped):
        pipe.generate(short, on_progress=_stop_at_first_report, keep_latents=False)
    pipe.warns_long_cpu_runs = False  # what `motif-lite run` sets once it asked (or --yes said it)
    try:
        long = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"))
        with caplog.at_level("WARNING", logger="motif_lite"), pytest.raises(_Stopped):
            pipe.generate(long, on_progress=_stop_at_first_report, keep_latents=False)
    finally:
        pipe.warns_long_cpu_runs = True
    assert "FLOPs" not in caplog.text


def test_the_compile_time_is_told_for_the_first_run_at_its_shapes_only(checkpoint, tmp_path):
    # A batch's later videos, and later generate calls at the same shapes, run the blocks the first run compiled:
    # they were told a compile time all the same. An empty CompileHandle stands for compiled blocks here (a real
    # compile takes minutes on the CPU); the pipeline's bookkeeping is what is tested.
    import dataclasses

    from motif_lite.runtime.compile import CompileHandle

    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    pipe._loaded = dataclasses.replace(pipe._loaded, compile_handle=CompileHandle())

    def compile_seconds(width: int, seed: int) -> float | None:
        output = tmp_path / f"{width}_{seed}_%03d.png"
        request = GenerationRequest("a fox", width=width, height=32, frames=5, steps=3, seed=seed, output=output)
        return pipe.generate(request).compile_seconds

    assert compile_seconds(48, 0) is not None  # the first run at 48x32: it compiled
    assert compile_seconds(48, 1) is None  # the same shapes: nothing compiled
    assert compile_seconds(64, 0) is not None  # another size compiles again


@pytest.mark.parametrize(
    ("planned", "loaded", "said"),
    [
        ({}, {"step_cache": 0.05}, "made without a step cache's tensors .* plan_generation\\(..., step_cache=True\\)"),
        ({"step_cache": True}, {}, "made with a step cache's tensors .* plan_generation\\(..., step_cache=False\\)"),
        ({"step_cache": True}, {"step_cache": 0}, "made with a step cache's tensors .*a threshold of 0, which stores"),
        ({}, {"attention": "int8"}, 'made for attention="exact" .* plan_generation\\(..., attention="int8"\\)'),
        ({"attention": "int8"}, {}, 'made for attention="int8" .*attention="exact"\\), or load with attention="int8"'),
    ],
)
def test_a_plan_made_for_other_options_is_refused_before_loading(checkpoint, no_weights, planned, loaded, said):
    # Before: a plan made without the step cache's (or 8-bit attention's) tensors loaded without a word, and the
    # run could then need more memory than the plan's budget.
    request, _ = GenerationRequest("x", **TINY).resolve()
    plan = plan_generation(request, checkpoint, dtype="fp32", device="cpu", **planned)
    with pytest.raises(ConfigError, match=f"^the memory plan was {said}") as error:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", plan=plan, **loaded)
    assert "\n" not in str(error.value)


def test_a_plan_matches_the_options_it_was_made_for(checkpoint):
    from motif_lite.pipeline.loading import _check_plan_matches
    from motif_lite.runtime.step_cache import StepCacheConfig

    cpu = torch.device("cpu")
    request, _ = GenerationRequest("x", **TINY).resolve()
    for step_cache, attention, config in ((False, "exact", None), (False, "exact", StepCacheConfig(0)),
                                          (True, "int8", StepCacheConfig(0.05))):  # fmt: skip
        plan = plan_generation(request, checkpoint, device="cpu", step_cache=step_cache, attention=attention)
        assert (plan.step_cache, plan.attention) == (step_cache, attention)
        _check_plan_matches(plan, cpu, config, attention)  # no error


def test_a_request_beyond_the_plan_is_noted(checkpoint, tmp_path):
    # Before: a pipeline loaded with a plan for 48x32x5 generated a larger video without a word.
    request, _ = GenerationRequest("x", **TINY).resolve()
    plan = plan_generation(request, checkpoint, dtype="fp32", device="cpu", vram_gib=64)
    planned = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch", plan=plan)
    beyond = "the memory plan was made for, so it may run out of device memory"
    within = GenerationRequest("x", **{**TINY, "width": 32}, output=tmp_path / "within.mp4")
    assert not [n for n in planned.generate(within, keep_latents=False).notes if beyond in n]
    larger = GenerationRequest("x", **{**TINY, "frames": 9}, output=tmp_path / "larger.mp4")
    notes = [n for n in planned.generate(larger, keep_latents=False).notes if beyond in n]
    assert notes == [
        f"this 48x32x9 text-to-video is beyond the 48x32x5 text-to-video {beyond}: a plan made for the largest video "
        "asked for counts what it needs"
    ]


def test_image_to_video_on_a_text_to_video_plan_is_noted(checkpoint):
    request, _ = GenerationRequest("x", **TINY).resolve()
    plan = plan_generation(request, checkpoint, device="cpu")
    assert plan.uncovered_note(48, 32, 5, image=False) is None
    assert plan.uncovered_note(32, 48, 5, image=False) is None  # as many pixels a frame: what --max-video counts
    assert "this 48x32x5 image-to-video is beyond the 48x32x5 text-to-video" in plan.uncovered_note(48, 32, 5, True)
    image_plan = dataclasses.replace(plan, image=True)
    assert image_plan.uncovered_note(48, 32, 5, image=True) is None
    assert image_plan.uncovered_note(48, 32, 5, image=False) is None  # text-to-video needs less
    assert "48x48x5 image-to-video is beyond the 48x32x5 image-to-video" in image_plan.uncovered_note(48, 48, 5, True)


def test_step_cache_blocks_the_encoder_has_not_are_refused_before_loading(checkpoint, no_weights):
    # Before: load_pipeline loaded, and every generate failed after encoding its prompts.
    from motif_lite.runtime.step_cache import StepCacheConfig

    config = locate_sources(checkpoint).transformer.value
    encoder_blocks = config.num_layers + config.num_encoder_single_layers
    with pytest.raises(ConfigError) as error:
        load_pipeline(checkpoint, dtype="fp32", device="cpu", step_cache=StepCacheConfig(0.05, blocks=1000))
    assert str(error.value) == (
        f"step cache blocks=1000: the encoder has only {encoder_blocks} blocks; give blocks from 1 to "
        f"{encoder_blocks - 1} (1, the default, probes with the first block)"
    )


def test_the_lora_advice_offers_a_strength_in_full(tmp_path):
    # `:g` cut a strength to 6 digits: 0.1234567 was offered as 0.123457, another strength (the server's advice
    # gives it in full).
    style = tmp_path / "style.safetensors"
    style.write_bytes(b"")
    advice = {
        "style.safetensors:0.1234567": "loras={'style.safetensors': 0.1234567}",
        (style, 0.1234567): f"loras=[({str(style)!r}, 0.1234567)] (or loras={{{str(style)!r}: 0.1234567}})",
        f"{style}:0.1234567": f"loras=[({str(style)!r}, 0.1234567)]",
    }
    for given, offered in advice.items():
        with pytest.raises(LoRAError) as refused:
            lora_specs([given] if given == f"{style}:0.1234567" else given)
        assert offered in str(refused.value), refused.value


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_a_path_under_a_folder_this_process_may_not_enter_is_a_request_error(pipe):
    # Python 3.10-3.13 raise PermissionError from Path.is_dir and exists under such a folder: generate(image=...),
    # extend= and latents_file= raised it bare, where the command line says which folder stops the way.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    from another_user import as_another_user

    base = Path(tempfile.mkdtemp(prefix="motif-lite-test-", dir="/tmp"))
    closed, out = base / "closed", base / "out"
    try:
        base.chmod(0o755)
        closed.mkdir()
        closed.chmod(0o000)
        out.mkdir(mode=0o777)
        out.chmod(0o777)
        fields = dict(width=64, height=64, frames=9, steps=1, output=out / "fox.mp4")
        PIL.Image.new("RGB", (64, 64)).save(out / "fox.png")
        pipe.generate(GenerationRequest("a red fox", **fields, image=out / "fox.png"), keep_latents=False)
        calls = {
            "image": lambda: pipe.generate(GenerationRequest("a red fox", **fields, image=closed / "fox.png")),
            "extend": lambda: pipe.generate(GenerationRequest("a red fox", **fields, extend=closed / "fox.mp4")),
            "latents_file": lambda: pipe.generate(
                GenerationRequest("a red fox", **fields), latents_file=closed / "fox.latents.safetensors"
            ),
        }

        def refusal(call) -> str:
            try:
                call()
            except RequestError as exc:
                return f"RequestError: {exc}"
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return "no refusal"

        told = f"cannot be reached: this process may not enter {closed} (it needs x, search permission there)"
        for name, call in calls.items():
            said = as_another_user(lambda call=call: refusal(call))
            assert said.startswith("'RequestError: ") and told in said, (name, said)
    finally:
        closed.chmod(0o755)
        shutil.rmtree(base)
