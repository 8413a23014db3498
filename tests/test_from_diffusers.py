"""What a diffusers user types, said the motif-lite way (motif_lite.pipeline.from_diffusers): its tables against
diffusers' own pipelines, so that a renamed or new diffusers argument or method shows up here. The line it gives
for a diffusers call makes the reference's video: tests/test_pipeline.py."""

from __future__ import annotations

import dataclasses
import inspect
import re
from unittest import mock

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DiffusionPipeline, MotifVideoImage2VideoPipeline, MotifVideoPipeline, WanPipeline

from motif_lite.errors import ConfigError
from motif_lite.pipeline import GenerationResult, load_pipeline
from motif_lite.pipeline import MotifVideoPipeline as OurPipeline
from motif_lite.pipeline.from_diffusers import (
    CALL_ADVICE,
    CALL_FIELDS,
    FORMER_METHODS,
    LOAD_ADVICE,
    METHOD_ADVICE,
    RESULT_ADVICE,
    call_advice,
    to_arguments,
)
from motif_lite.request import OTHER_FIELD_NAMES, PYTHON_FIELD_ADVICE, GenerationRequest, RequestError


def call_parameters(pipeline: type) -> dict[str, inspect.Parameter]:
    return {k: v for k, v in inspect.signature(pipeline.__call__).parameters.items() if k != "self"}


@pytest.mark.parametrize("pipeline", [MotifVideoPipeline, MotifVideoImage2VideoPipeline])
def test_every_argument_of_diffusers_call_has_a_field_or_advice(pipeline):
    unknown = set(call_parameters(pipeline)) - set(CALL_FIELDS) - set(CALL_ADVICE)
    assert not unknown, f"diffusers' {pipeline.__name__} takes arguments this table does not know: {unknown}"


@pytest.mark.parametrize("pipeline", [MotifVideoPipeline, MotifVideoImage2VideoPipeline])
def test_every_argument_of_diffusers_call_given_to_the_request_says_what_to_give(pipeline):
    # GenerationRequest(num_frames=...) and the like: a field, or a name with advice; a close spelling alone said
    # "give frames=" for latents= and "give steps=" for timesteps=.
    fields = {field.name for field in dataclasses.fields(GenerationRequest)}
    unknown = set(call_parameters(pipeline)) - fields - set(OTHER_FIELD_NAMES) - set(PYTHON_FIELD_ADVICE)
    assert not unknown, f"diffusers' {pipeline.__name__} takes arguments GenerationRequest has no advice for: {unknown}"
    assert set(OTHER_FIELD_NAMES.values()) <= fields  # a field's name
    assert all(" " in advice for advice in PYTHON_FIELD_ADVICE.values())  # advice that is no field's name


def test_each_field_is_the_one_with_the_same_official_default():
    """num_frames -> frames, num_inference_steps -> steps, ...: where diffusers has a default, the field named for
    it has the same one (a swapped height and width, or frames mapped to fps, would differ)."""
    parameters = call_parameters(MotifVideoPipeline)
    fields = {field.name: field for field in dataclasses.fields(GenerationRequest)}
    compared = 0
    for name, field in CALL_FIELDS.items():
        assert field in fields, f"{name} -> {field}: no such GenerationRequest field"
        default = parameters[name].default if name in parameters else inspect.Parameter.empty
        if default not in (inspect.Parameter.empty, None) and fields[field].default is not dataclasses.MISSING:
            assert fields[field].default == default, name
            compared += 1
    assert compared >= 4  # height, width, num_frames, num_inference_steps


def test_the_methods_named_are_diffusers_and_not_ours():
    components = set(inspect.signature(MotifVideoPipeline.__init__).parameters)  # pipe.scheduler, pipe.guider
    for name in METHOD_ADVICE:
        diffusers_has = hasattr(MotifVideoPipeline, name) or hasattr(WanPipeline, name) or name in components
        assert diffusers_has, f"diffusers has no {name}"
        assert not hasattr(OurPipeline, name), f"ours has {name}: its advice would never be shown"


# diffusers' LoRA methods left out of METHOD_ADVICE, and why: the loader's helpers that read or write LoRA files and
# state dicts (class methods, called on the class as often as on a pipeline), not something done to a loaded one.
LEFT_OUT_LORA_METHODS = {
    "lora_state_dict": "reads a LoRA file into a state dict: motif-lite reads the file itself",
    "load_lora_into_transformer": "the loader's step of load_lora_weights, which has advice",
    "save_lora_weights": "writes a trained LoRA: motif-lite trains none",
    "write_lora_layers": "save_lora_weights' writer",
}


def test_every_lora_method_of_diffusers_has_advice_or_is_left_out_with_a_reason():
    # The other direction: the advice for fuse_lora could be taken out and no test noticed.
    methods = {name for name in dir(WanPipeline) if not name.startswith("_") and callable(getattr(WanPipeline, name))}
    lora_methods = {name for name in methods if "lora" in name or "adapter" in name}
    assert lora_methods - set(METHOD_ADVICE) - set(LEFT_OUT_LORA_METHODS) == set()
    assert set(LEFT_OUT_LORA_METHODS) <= lora_methods  # a stale entry: diffusers renamed or dropped it
    assert not set(LEFT_OUT_LORA_METHODS) & set(METHOD_ADVICE)


def generate_line(message: str, image: object = None) -> GenerationRequest:
    """The request of the advice's line, run as the user would paste it: with their `image` in scope, if any."""
    line = re.search(r"pipe\.generate\((GenerationRequest\(.*\))\), with GenerationRequest", message).group(1)
    return eval(line, {"GenerationRequest": GenerationRequest, "image": image})


def test_a_call_becomes_a_request_with_the_same_settings():
    generator = torch.Generator().manual_seed(1234)
    message = call_advice(("a fox",), dict(num_inference_steps=30, guidance_scale=5.0, num_frames=49,
                                           generator=generator, output_type="np"))  # fmt: skip
    request = generate_line(message)
    assert (request.prompt, request.steps, request.cfg_scale, request.frames, request.seed) == (
        "a fox", 30, 5.0, 49, 1234)  # fmt: skip
    assert "\noutput_type: " in message


@pytest.mark.parametrize("given", [{}, {"negative_prompt": None}], ids=["absent", "None"])
def test_a_call_without_a_negative_prompt_gets_the_empty_one_diffusers_runs_with(given):
    # diffusers' MotifVideoPipeline encodes "" when negative_prompt is None or absent: the line left it out, so it
    # ran with motif-lite's default, the official negative prompt, which makes another video ("The same video here"
    # was not); with None it gave negative_prompt=None, which the request refuses.
    message = call_advice(("a fox",), given)
    assert generate_line(message).negative_prompt == ""
    assert "\nnegative_prompt: '' is what diffusers' MotifVideoPipeline uses without one (or with None); leave it " \
        "out for the official negative prompt" in message  # fmt: skip
    message = call_advice(("a fox", "blurry"), {})
    assert generate_line(message).negative_prompt == "blurry" and "\nnegative_prompt:" not in message


@pytest.mark.parametrize(
    "image", [PIL.Image.new("RGB", (64, 64)), np.zeros((64, 64, 3), np.uint8), torch.zeros(3, 64, 64)]
)
def test_an_image_to_video_call_with_an_image_in_memory_gives_it_as_it_is(image):
    # The advice said to save any image first, with image.save(...), which an array or a tensor lacks.
    message = call_advice((image, "a fox"), {})
    request = generate_line(message, image)
    assert (request.prompt, request.image) == ("a fox", image)
    assert "save the image first" not in message and "video.first-frame.png" in message


def test_a_list_of_generators_and_of_prompts_are_said_not_translated():
    generators = [torch.Generator().manual_seed(seed) for seed in (1, 2)]  # one per video, as diffusers takes them
    message = call_advice((), dict(prompt=["a fox", "a cat"], generator=generators))
    assert (generate_line(message).prompt, generate_line(message).seed) == ("a fox", None)
    assert "one request per prompt" in message and "generator: give seed=N" in message


def test_our_pipeline_answers_diffusers_calls_and_methods():
    pipe = OurPipeline.__new__(OurPipeline)  # no weights needed: neither touches them
    with pytest.raises(RequestError, match=r"pipe\.generate\(GenerationRequest\('a fox', steps=4"):
        pipe("a fox", num_inference_steps=4)
    with pytest.raises(AttributeError, match="plan=plan_generation"):
        pipe.enable_model_cpu_offload()
    with pytest.raises(AttributeError) as error:
        pipe.no_such_thing  # noqa: B018
    assert str(error.value) == "'MotifVideoPipeline' object has no attribute 'no_such_thing'"
    assert not hasattr(pipe, "enable_model_cpu_offload")  # its AttributeError is a plain one to hasattr
    # A notebook's habits (before: bare AttributeErrors): bars turned off, a scheduler read to swap it.
    with pytest.raises(AttributeError, match=r"on_progress=ProgressBars\(\)"):
        pipe.set_progress_bar_config(disable=True)
    with pytest.raises(AttributeError, match="the sampler is a request field: GenerationRequest"):
        pipe.scheduler.config  # noqa: B018
    with pytest.raises(AttributeError, match="guidance='cfg', cfg_scale=5.0"):
        pipe.guider  # noqa: B018
    with pytest.raises(AttributeError, match=r"on_progress=ProgressBars\(\)"):
        pipe.progress_bar(total=4)
    with pytest.raises(AttributeError, match="pipe.transformer, pipe.text_encoder and pipe.vae"):
        pipe.components  # noqa: B018


def test_every_entry_of_the_tables_is_an_argument_diffusers_takes():
    """The other direction: an entry for an argument no pipeline takes (a stale or misspelled name) would
    translate something no diffusers call passes. Wan's call is counted: guidance_scale is its habit (diffusers'
    Motif-Video pipelines read the guider's config instead)."""
    taken = set().union(*map(call_parameters, (MotifVideoPipeline, MotifVideoImage2VideoPipeline, WanPipeline)))
    assert not (set(CALL_FIELDS) | set(CALL_ADVICE)) - taken


@pytest.mark.parametrize("pipeline", [MotifVideoPipeline, MotifVideoImage2VideoPipeline])
def test_positional_arguments_are_read_in_diffusers_order(pipeline):
    """pipe("a fox", "blurry", 480, 832, 49) as diffusers reads it: each value given positionally lands in the
    field of the argument at that place in diffusers' own signature (height and width swapped would not)."""
    image = PIL.Image.new("RGB", (64, 64))
    values = {"image": image, "prompt": "a fox", "negative_prompt": "blurry", "height": 480, "width": 832,
              "num_frames": 49}  # fmt: skip
    order = [name for name in call_parameters(pipeline) if name in values][: len(values)]
    request = generate_line(call_advice(tuple(values[name] for name in order), {}), image)
    for name in order:
        if name != "image":
            assert getattr(request, CALL_FIELDS[name]) == values[name], name
    assert (request.image is not None) == ("image" in order)


def test_a_list_of_prompts_given_first_is_not_taken_for_an_image():
    """Only the image-to-video pipeline puts the image first; a text-to-video call's first argument may be a
    list of prompts, which must stay the prompt."""
    request = generate_line(call_advice((["a fox", "a cat"],), {}))
    assert (request.prompt, request.image) == ("a fox", None)


def test_an_image_path_is_kept_and_pastes_as_written(tmp_path):
    """An image given as a path (str or Path) is the file to use; a Path is written as a plain string, so the
    line runs with only GenerationRequest imported (PosixPath('...') would not)."""
    for image in ("frame.png", tmp_path / "frame.png"):
        message = call_advice((), dict(image=image, prompt="a fox"))
        assert generate_line(message).image == str(image)
        assert "save the image first" not in message


def test_a_cuda_generator_is_not_taken_for_its_seed():
    """diffusers draws the noise on a CUDA generator's device: its seed gives other noise than our CPU draw, so it
    is said, not translated. A stand-in generator (no GPU here) that claims the CUDA device."""
    generator = mock.Mock(spec=torch.Generator)
    generator.device = torch.device("cuda")
    generator.initial_seed.return_value = 7
    message = call_advice(("a fox",), dict(generator=generator))
    assert generate_line(message).seed is None
    assert "generator: give seed=N" in message


def test_a_request_given_to_the_pipeline_itself_names_generate():
    """`pipe(GenerationRequest(...))` was read as a diffusers call whose first argument, not being a string, was an
    image: the advice was a line with image='first_frame.png' and "save the image first"."""
    message = call_advice((GenerationRequest("a fox"),), {})
    assert message == "a GenerationRequest is given to generate, not to the pipeline: pipe.generate(request)"
    assert call_advice((), dict(request=GenerationRequest("a fox"))) == message


def test_the_line_names_the_file_the_video_is_written_to():
    """A diffusers user expects frames back: the line says where the video goes instead of leaving the default
    unsaid."""
    request = generate_line(call_advice(("a fox",), {}))
    assert "output=" in call_advice(("a fox",), {}) and str(request.output).endswith(".mp4")


def test_the_result_answers_diffusers_output_fields():
    """diffusers' pipeline returns a MotifVideoPipelineOutput whose `.frames` hold the video; ours says where they
    are instead of a bare AttributeError (before: "'GenerationResult' object has no attribute 'frames'")."""
    from diffusers.pipelines.motif_video.pipeline_output import MotifVideoPipelineOutput

    assert set(RESULT_ADVICE) == {field.name for field in dataclasses.fields(MotifVideoPipelineOutput)}
    fields = {
        field.name: None for field in dataclasses.fields(GenerationResult) if field.default is dataclasses.MISSING
    }
    result = GenerationResult(**fields)
    assert not any(hasattr(GenerationResult, name) for name in RESULT_ADVICE)  # else its advice is never shown
    with pytest.raises(AttributeError, match=r"no attribute 'frames': generate writes the video to result\.output"):
        result.frames  # noqa: B018
    with pytest.raises(AttributeError) as error:
        result.no_such_thing  # noqa: B018
    assert str(error.value) == "'GenerationResult' object has no attribute 'no_such_thing'"
    assert dataclasses.replace(result, shift=1.0).shift == 1.0  # still a plain dataclass: copies, fields


def from_pretrained_keywords() -> set[str]:
    """The keywords diffusers' `from_pretrained` reads (it takes **kwargs and pops each one by name), and the
    components it takes in place of the checkpoint's (`scheduler=`, `transformer=`, ...)."""
    source = inspect.getsource(DiffusionPipeline.from_pretrained)
    components = set(inspect.signature(MotifVideoPipeline.__init__).parameters) - {"self"}
    return set(re.findall(r'kwargs\.pop\("(\w+)"', source)) | components


def test_every_keyword_of_diffusers_from_pretrained_is_ours_or_has_advice():
    ours = set(inspect.signature(load_pipeline).parameters)
    keywords = from_pretrained_keywords()
    assert {"torch_dtype", "variant", "device_map", "cache_dir", "token", "revision"} <= keywords  # the parse works
    assert keywords - ours - set(LOAD_ADVICE) == set()
    assert set(LOAD_ADVICE) <= keywords  # the other direction: a stale or misspelled entry
    assert not set(LOAD_ADVICE) & ours  # else its advice would never be shown


def test_load_pipeline_says_what_to_give_for_diffusers_keywords(tmp_path):
    """Before: Python's "load_pipeline() got an unexpected keyword argument 'torch_dtype'". Said before anything is
    read (an absent checkpoint would be a CheckpointError), a line per keyword."""
    absent = tmp_path / "no-checkpoint"
    with pytest.raises(ConfigError, match=r"load_pipeline takes no torch_dtype= .*give dtype=torch\.bfloat16"):
        load_pipeline(absent, torch_dtype=torch.bfloat16)
    with pytest.raises(ConfigError) as error:
        load_pipeline(absent, variant="fp16", use_safetensors=True, device_map="cuda", low_cpu_mem_usage=False)
    lines = str(error.value).splitlines()
    assert [line.split()[3] for line in lines] == ["variant=", "use_safetensors=", "device_map=", "low_cpu_mem_usage="]
    assert "gguf='Q4_K_M'" in lines[0] and "device='cuda'" in lines[2] and "not needed" in lines[3]
    with pytest.raises(ConfigError, match="HF_TOKEN"):
        load_pipeline(absent, token="hf_xxx")
    with pytest.raises(ConfigError, match="sampler="):  # a component: its settings are request fields
        load_pipeline(absent, scheduler=object())


def test_a_misspelled_keyword_of_load_pipeline_names_the_one_meant(tmp_path):
    """A typo of our own arguments is not taken for a diffusers keyword, nor passed over: the closest name, else
    the list of them."""
    absent = tmp_path / "no-checkpoint"
    with pytest.raises(
        ConfigError, match=r"^load_pipeline takes no text_encoder_dtpye=: did you mean text_encoder_dtype=\?$"
    ):
        load_pipeline(absent, text_encoder_dtpye="bf16")
    with pytest.raises(ConfigError, match=r"takes no lora=: did you mean loras=\?"):
        load_pipeline(absent, lora=["style.safetensors"])
    with pytest.raises(ConfigError, match=r"takes no frobnicate=: its arguments are model, gguf, dtype, device, "):
        load_pipeline(absent, frobnicate=1)


@pytest.mark.parametrize("name", ["scheduler", "guider"])
def test_setting_a_diffusers_component_is_refused_with_what_to_pass(name):
    """Before: pipe.scheduler = UniPCMultistepScheduler(...) was kept as an attribute nothing reads, and the video
    came out as before; now it says which request fields set the same thing."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = OurPipeline.__new__(OurPipeline)
    with pytest.raises(
        AttributeError, match=rf"pipe\.{name} = \.\.\. would change nothing: .*{METHOD_ADVICE[name][:20]}"
    ):
        setattr(pipe, name, FlowMatchEulerDiscreteScheduler(shift=5.0))
    assert name not in vars(pipe)
    with pytest.raises(AttributeError, match="pipe.set_loras"):
        pipe.load_lora_weights = None
    pipe.vae_mode = None  # its own attributes are set as before
    assert pipe.vae_mode is None


def test_generate_says_what_to_give_for_diffusers_call_keywords_and_typos():
    """As load_pipeline does: before, Python's "generate() got an unexpected keyword argument", after no check of
    ours had run (no weights needed: said first)."""
    pipe = OurPipeline.__new__(OurPipeline)
    request = GenerationRequest("a fox")
    with pytest.raises(RequestError) as error:
        pipe.generate(request, num_inference_steps=30, generator=torch.Generator().manual_seed(7))
    assert str(error.value).splitlines() == [  # with the values given (they said steps=..., seed=N)
        "generate takes no num_inference_steps= (diffusers' pipeline call does): a request field here: "
        "GenerationRequest(..., steps=30)",
        "generate takes no generator= (diffusers' pipeline call does): a request field here: "
        "GenerationRequest(..., seed=7)",
    ]
    with pytest.raises(RequestError, match=f"takes no generator= .*: {re.escape(CALL_ADVICE['generator'])}$"):
        pipe.generate(request, generator=[torch.Generator().manual_seed(7)])  # a list of them: one per video
    with pytest.raises(RequestError, match=r"^generate takes no on_progres=: did you mean on_progress=\?$"):
        pipe.generate(request, on_progres=print)
    # A keyword like none of its own gets the list of them, as a caller writes them (no `self`).
    with pytest.raises(RequestError, match=r"^generate takes no frobnicate=: its arguments are request, on_progress, "):
        pipe.generate(request, frobnicate=1)


def test_generate_without_a_request_says_the_line_with_its_keywords_inside_one():
    """`pipe.generate(prompt="a fox", ...)`, diffusers' call style on generate: it was Python's "missing 1 required
    positional argument: 'request'", which says nothing of GenerationRequest."""
    pipe = OurPipeline.__new__(OurPipeline)
    with pytest.raises(RequestError) as error:
        pipe.generate(prompt="a fox", num_inference_steps=30, width=832, output="fox.mp4", callback_on_step_end=print)
    first, second = str(error.value).splitlines()
    assert first == (
        "generate takes the video's settings in a GenerationRequest: pipe.generate(GenerationRequest('a fox', "
        "steps=30, width=832, output='fox.mp4')), with GenerationRequest from motif_lite"
    )
    assert second.startswith("generate takes no callback_on_step_end= (diffusers' pipeline call does): ")
    request = generate_line(first)  # the line runs as written
    assert (request.prompt, request.steps, request.width, request.output) == ("a fox", 30, 832, "fox.mp4")
    with pytest.raises(RequestError, match=r"^generate takes the video's settings in a GenerationRequest: "):
        pipe.generate()


def test_from_pretrained_says_the_load_pipeline_line():
    """Before: "type object 'MotifVideoPipeline' has no attribute 'from_pretrained'". The keywords load_pipeline
    takes go into the line; the others get their advice."""
    with pytest.raises(ConfigError) as error:
        OurPipeline.from_pretrained("Motif-Technologies/Motif-Video-2B", torch_dtype=torch.bfloat16, device="cuda")
    first, advice = str(error.value).splitlines()
    assert "pipe = load_pipeline('Motif-Technologies/Motif-Video-2B', device='cuda'), with load_pipeline" in first
    assert advice.startswith("load_pipeline takes no torch_dtype= ") and "dtype=torch.bfloat16" in advice
    # Without a repo (or with one not a name), the line names the official repo rather than None.
    with pytest.raises(ConfigError, match=re.escape("pipe = load_pipeline('Motif-Technologies/Motif-Video-2B'), ")):
        OurPipeline.from_pretrained()


def test_the_vae_methods_named_are_diffusers_and_not_ours():
    from diffusers import AutoencoderKLWan

    from motif_lite.vae import WanVAE
    from motif_lite.vae.diffusers_habits import VAE_METHOD_ADVICE

    for name in VAE_METHOD_ADVICE:
        assert hasattr(AutoencoderKLWan, name), f"diffusers' VAE has no {name}"
        assert not hasattr(WanVAE, name), f"ours has {name}: its advice would never be shown"
    # diffusers' pipelines before 0.40 had them as their own methods; each is answered as the VAE's method is.
    for name, vae_name in FORMER_METHODS.items():
        assert vae_name in VAE_METHOD_ADVICE and name not in METHOD_ADVICE
        assert not hasattr(OurPipeline, name) and not hasattr(MotifVideoPipeline, name), name


def test_the_vae_and_the_pipeline_answer_diffusers_memory_savers():
    # A notebook's `pipe.vae.enable_tiling()` (or the older `pipe.enable_vae_tiling()`) was a bare AttributeError.
    from motif_lite.vae import WanVAE, WanVAEConfig

    vae = WanVAE(WanVAEConfig(base_dim=8, z_dim=4, dim_mult=(1, 1), temperal_downsample=(True,),
                              latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4))  # fmt: skip
    for name in ("enable_tiling", "disable_tiling"):
        with pytest.raises(
            AttributeError, match=rf"has no attribute '{name}': motif-lite's VAE decodes as the memory plan allows, "
        ):
            getattr(vae, name)()
    for name in ("enable_slicing", "disable_slicing"):
        with pytest.raises(AttributeError, match=rf"has no attribute '{name}': .* decodes one video at a time"):
            getattr(vae, name)()
    with pytest.raises(AttributeError) as error:
        vae.ENABLE_TILING()  # a name diffusers' VAE lacks too (Python names are case-sensitive): no advice
    assert str(error.value) == "'WanVAE' object has no attribute 'ENABLE_TILING'"
    assert not hasattr(vae, "enable_tiling")  # a plain AttributeError to hasattr
    assert isinstance(vae.decoder, torch.nn.Module)  # nn.Module's own lookup of submodules is unchanged
    with pytest.raises(AttributeError) as error:
        vae.no_such_thing  # noqa: B018
    assert str(error.value) == "'WanVAE' object has no attribute 'no_such_thing'"
    pipe = OurPipeline.__new__(OurPipeline)  # no weights needed
    with pytest.raises(AttributeError, match=r"'enable_vae_tiling': motif-lite's VAE decodes .*plan=plan_generation"):
        pipe.enable_vae_tiling()
    with pytest.raises(AttributeError, match="'enable_vae_slicing': motif-lite's VAE decodes one video at a time"):
        pipe.enable_vae_slicing()
    with pytest.raises(AttributeError, match="plan=plan_generation"):
        pipe.enable_model_cpu_offload()


def test_pipe_to_takes_the_warning_switch_of_diffusers_to():
    # `pipe.to("cuda", silence_dtype_warnings=True)` is diffusers' own keyword (the others it reads, but the device
    # and the dtype, are Intel Gaudi's): taken as the call without it, not refused as a keyword `to` lacks.
    read = set(re.findall(r'kwargs\.(?:pop|get)\("(\w+)"', inspect.getsource(DiffusionPipeline.to)))
    assert {"device", "dtype", "silence_dtype_warnings"} <= read
    assert to_arguments(("cpu",), {"silence_dtype_warnings": True}) == (torch.device("cpu"), None)
    assert to_arguments((), {"dtype": torch.float16, "silence_dtype_warnings": False}) == (None, torch.float16)


@pytest.mark.parametrize("seed", [2**40, -1, 2**64 - 1])
def test_a_generator_seeded_past_32_bits_is_told_a_seed_that_runs_and_draws_its_noise(tmp_path, seed):
    """`initial_seed()` gives the seed as set, up to 2**64 - 1 (`manual_seed(-1)` is stored so), which a request
    refuses: the advice gave it all the same. torch's CPU generator reads only the low 32 bits, which are the seed."""
    from motif_lite.pipeline.from_diffusers import generate_advice
    from motif_lite.request.advice import seed_of_generator

    def generator() -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    told = [
        generate_line(call_advice(("a fox",), dict(generator=generator()))).seed,
        int(re.search(r"seed=(\d+)\)", generate_advice(dict(generator=generator()), OurPipeline.generate))[1]),
        int(re.search(r"give seed=(\d+),", seed_of_generator(generator()))[1]),
    ]
    shape = (1, 16, 3, 4, 6)  # a latent's noise, drawn as diffusers draws it with the generator it is given
    for advised in told:
        request = GenerationRequest("a fox", seed=advised, output=tmp_path / "fox.mp4", width=64, height=64, frames=9)
        assert request.resolve()[0].seed == advised  # taken
        drawn = torch.randn(shape, generator=torch.Generator().manual_seed(advised))
        assert torch.equal(drawn, torch.randn(shape, generator=generator()))


def test_every_keyword_of_diffusers_lora_methods_given_to_set_loras_has_advice():
    # load_lora_weights' weight_name= goes through its **kwargs (diffusers' docs name it): listed by hand.
    from diffusers import WanPipeline

    from motif_lite.pipeline.from_diffusers import SET_LORAS_ADVICE

    keywords = {"weight_name"}
    for method in (WanPipeline.set_adapters, WanPipeline.load_lora_weights):
        parameters = list(inspect.signature(method).parameters.values())[2:]  # past self and the LoRAs themselves
        keywords |= {p.name for p in parameters if p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert keywords <= set(SET_LORAS_ADVICE), keywords - set(SET_LORAS_ADVICE)


@pytest.mark.parametrize(
    ("loras", "weights", "expected"),
    [
        (["style.safetensors", "b.safetensors"], [0.5, 1.0], {"style.safetensors": 0.5, "b.safetensors": 1.0}),
        ("style.safetensors", 0.7, {"style.safetensors": 0.7}),  # diffusers takes one name and one weight
        (["style.safetensors", "b.safetensors"], 0.8, {"style.safetensors": 0.8, "b.safetensors": 0.8}),
    ],
)
def test_set_loras_given_diffusers_adapter_weights_says_the_dict_that_sets_those_strengths(
    loras, weights, expected, tmp_path, monkeypatch
):
    """Before: Python's "set_loras() got an unexpected keyword argument 'adapter_weights'", with a traceback through
    the call guards. Said before any file is read: the dict it gives is what set_loras takes for those strengths."""
    import ast

    from motif_lite.weights.lora_errors import LoRAError
    from motif_lite.weights.lora_specs import lora_specs, spec_of

    monkeypatch.chdir(tmp_path)
    for name in expected:  # lora_specs takes only files that exist
        (tmp_path / name).touch()
    pipe = OurPipeline(None, None, None, torch.device("cpu"), torch.float32)  # no weights: refused before them
    with pytest.raises(LoRAError, match=r"^set_loras takes no adapter_weights= \(diffusers' LoRA methods do\)") as e:
        pipe.set_loras(loras, adapter_weights=weights)
    advised = ast.literal_eval(re.search(r"pipe\.set_loras\((\{.*?\})\)", str(e.value))[1])
    assert advised == expected
    assert [(spec.path.name, spec.strength) for spec in map(spec_of, lora_specs(advised))] == list(expected.items())


def test_set_loras_given_other_keywords_of_diffusers_or_a_typo_says_what_to_give():
    from motif_lite.weights.lora_errors import LoRAError

    pipe = OurPipeline(None, None, None, torch.device("cpu"), torch.float32)
    for keywords, said in [
        (
            dict(adapter_names=["style"], adapter_weights=[0.5]),
            "adapter_names= (diffusers' LoRA methods do): a LoRA "
            "is named by its file here: pipe.set_loras({'style.safetensors': 0.8})",
        ),  # fmt: skip
        (
            dict(weight_name="pytorch_lora_weights.safetensors"),
            "weight_name= (diffusers' LoRA methods do): give the LoRA file's own path",
        ),  # fmt: skip
        (dict(lora={"style.safetensors": 1}), "set_loras takes no lora=: did you mean loras=?"),
    ]:
        with pytest.raises(LoRAError) as e:
            pipe.set_loras(**keywords)
        assert said in str(e.value), (keywords, str(e.value))


def test_set_loras_given_adapter_weights_it_cannot_take_as_a_dict_advises_no_dict_that_would_misapply_them(
    tmp_path, monkeypatch
):
    # A file named twice was advised {'a.safetensors': 0.5, 'a.safetensors': 0.5}, a dict Python keeps one 0.5 of;
    # diffusers' None (its 1) and True were advised as {'a.safetensors': None} and {...: True}, which set_loras refuses.
    import ast

    from motif_lite.weights.lora_errors import LoRAError

    monkeypatch.chdir(tmp_path)
    pipe = OurPipeline(None, None, None, torch.device("cpu"), torch.float32)
    for loras, weights in [(["a.safetensors", "a.safetensors"], [0.5, 0.5]), (["a.safetensors"], True)]:
        with pytest.raises(LoRAError) as e:
            pipe.set_loras(loras, adapter_weights=weights)
        # the general advice (its example file), not a dict of these files
        assert "a.safetensors" not in str(e.value) and "{'style.safetensors': 0.8}" in str(e.value), str(e.value)
    with pytest.raises(LoRAError) as e:
        pipe.set_loras(["a.safetensors", "b.safetensors"], adapter_weights=[None, 0.5])
    advised = ast.literal_eval(re.search(r"pipe\.set_loras\((\{.*?\})\)", str(e.value))[1])
    assert advised == {"a.safetensors": 1.0, "b.safetensors": 0.5}


def test_set_loras_given_a_strength_for_some_of_its_files_says_the_dict_not_a_zip_error():
    # diffusers refuses adapter_weights of another length than the names; the dict advised pairs each file with its
    # strength, and a list one short has no such pairs: the plain advice is said, not zip()'s ValueError.
    from motif_lite.weights.lora_errors import LoRAError

    pipe = OurPipeline(None, None, None, torch.device("cpu"), torch.float32)
    for weights in ([0.5], [0.5, 1.0, 0.8]):
        with pytest.raises(LoRAError) as e:
            pipe.set_loras(["style.safetensors", "b.safetensors"], adapter_weights=weights)
        said = str(e.value)
        assert said.startswith("set_loras takes no adapter_weights= (diffusers' LoRA methods do)"), said
        assert "a {file: strength} dict: pipe.set_loras({'style.safetensors': 0.8})" in said, said


def test_an_image_to_video_call_with_a_list_of_one_image_gives_it_as_it_is():
    # diffusers takes image=[frame], and so does GenerationRequest now; the advice still said to save a file named
    # first_frame.png and give its name.
    image = [PIL.Image.new("RGB", (64, 64))]
    message = call_advice((), dict(image=image, prompt="a fox"))
    request = generate_line(message, image)
    assert (request.prompt, request.image) == ("a fox", image)
    assert "first_frame.png" not in message, message
