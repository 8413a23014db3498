"""`pipe.set_loras`: switching LoRAs on a loaded pipeline gives bit for bit the frames of a fresh `load_pipeline`
with those LoRAs (fp32, CPU; safetensors, GGUF and memory-planned transformers), keeps the text encoder, the VAE
and the encoded prompts, and leaves the pipeline as it was when the new LoRAs do not fit."""

from __future__ import annotations

import copy
import dataclasses
import gc
import re
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_lora import NEGATIVE, PROMPT, SIZE, add_random_lora, frames, write_formats
from tiny_pipeline import make_tiny_checkpoint

import motif_lite.pipeline.recipe as recipe_module
from motif_lite import load_pipeline
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.io.latents import read_latents
from motif_lite.io.model_stamps import other_model_notes
from motif_lite.memory_plan import plan_generation
from motif_lite.pipeline import MotifVideoPipeline
from motif_lite.pipeline.recipe import LoadedTransformer
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.request import GenerationRequest
from motif_lite.runtime.planner import Plan
from motif_lite.weights.lora import linear_shapes
from motif_lite.weights.lora_apply import LoRALinear
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

FP32_CPU = dict(dtype=torch.float32, device="cpu", kernels="torch")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A tiny checkpoint ("root"), a Q8_0 GGUF of its transformer, two different LoRAs ("a", "b") and a LoRA whose
    one layer the transformer does not have ("bad")."""
    root = tmp_path_factory.mktemp("ckpt")
    transformer = make_tiny_checkpoint(root).transformer
    other = copy.deepcopy(transformer)
    add_random_lora(transformer, seed=0)
    add_random_lora(other, seed=1, targets=["to_q", "ff.net.2"])
    a = write_formats(transformer, tmp_path_factory.mktemp("a"))["peft"]
    b = write_formats(other, tmp_path_factory.mktemp("b"))["kohya"]
    bad = tmp_path_factory.mktemp("bad") / "bad.safetensors"
    save_file({"transformer.no_such_layer.lora_A.weight": torch.ones(2, 8),
               "transformer.no_such_layer.lora_B.weight": torch.ones(8, 2)}, bad)  # fmt: skip
    gguf = tmp_path_factory.mktemp("gguf") / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(root / "transformer"), gguf, get_recipe("Q8_0"), progress=False)
    return {"root": root, "gguf": gguf, "a": a, "b": b, "bad": bad}


class Frames:
    """The frames of one pipeline after another, each written into its own folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path, self.count = tmp_path, 0

    def __call__(self, pipe: MotifVideoPipeline) -> np.ndarray:
        self.count += 1
        folder = self.tmp_path / f"run{self.count}"
        folder.mkdir()
        return frames(pipe, folder)


def lora_flags(pipe: MotifVideoPipeline) -> tuple:
    """What the run summary and a saved run's record say of the pipeline's LoRAs."""
    return (None if pipe.loras is None else pipe.loras.describe()), pipe.model_flags()["lora"]


def tightest_plan(root: Path, tmp_path: Path) -> Plan:
    """The smallest memory plan of the test's video, as tests/test_pipeline.py makes it: every block streamed,
    tokens in chunks."""
    request, _ = GenerationRequest(PROMPT, NEGATIVE, output=tmp_path / "a.mp4", **SIZE).resolve()
    with pytest.raises(MotifLiteError, match="needs at least") as err:
        plan_generation(request, root, dtype=torch.float32, device="cpu", vram_gib=0.01)
    number, unit = re.search(r"needs at least ([\d.]+) (MiB|GiB)", str(err.value)).groups()
    smallest = float(number) / (1024 if unit == "MiB" else 1)
    plan = plan_generation(request, root, dtype=torch.float32, device="cpu", vram_gib=smallest + 0.005)
    assert plan.resident_blocks == 0 and plan.token_chunk
    return plan


def test_switching_gives_the_frames_of_a_fresh_load_and_keeps_the_rest(files, tmp_path):
    video = Frames(tmp_path)
    pipe = load_pipeline(files["root"], **FP32_CPU)
    text_encoder, vae = pipe.text_encoder, pipe.vae
    before = video(pipe)
    # None -> a file at strength 1 -> another strength -> another file (a dict, as diffusers users write it) -> none.
    for loras in ([files["a"]], [(files["a"], -0.6)], {files["b"]: 0.8}, []):
        pipe.set_loras(loras)
        fresh = load_pipeline(files["root"], loras=loras, **FP32_CPU)
        after = video(pipe)
        assert np.array_equal(after, video(fresh)), loras
        assert lora_flags(pipe) == lora_flags(fresh)
        assert not np.array_equal(after, before), loras  # each switch changes the video: the comparison means something
        before = after
        assert pipe.text_encoder is text_encoder and pipe.vae is vae  # not loaded again
        assert PROMPT in pipe.encoded_texts and NEGATIVE in pipe.encoded_texts  # nor the prompts encoded again
    assert pipe.loras is None and pipe.model_flags()["lora"] == []


def test_switching_on_gguf_weights_gives_the_frames_of_a_fresh_load(files, tmp_path):
    video = Frames(tmp_path)
    pipe = load_pipeline(files["root"], gguf=files["gguf"], loras=[(files["a"], 0.7)], **FP32_CPU)
    before = video(pipe)
    pipe.set_loras([(files["b"], -0.5)])
    fresh = load_pipeline(files["root"], gguf=files["gguf"], loras=[(files["b"], -0.5)], **FP32_CPU)
    after = video(pipe)
    assert np.array_equal(after, video(fresh)) and not np.array_equal(after, before)
    wrapped = [m for m in pipe.transformer.modules() if isinstance(m, LoRALinear)]
    assert len(wrapped) == pipe.loras.wrapped == fresh.loras.wrapped > 0  # b's adapters alone, a's are gone


def test_switching_under_a_memory_plan_keeps_the_plan(files, tmp_path):
    video = Frames(tmp_path)
    plan = tightest_plan(files["root"], tmp_path)
    pipe = load_pipeline(files["root"], plan=plan, **FP32_CPU)
    pipe.set_loras([files["a"]])
    fresh = load_pipeline(files["root"], plan=plan, loras=[files["a"]], **FP32_CPU)
    assert pipe.plan_handle is not None and pipe.plan_handle.handles  # streaming and chunking installed again
    assert np.array_equal(video(pipe), video(fresh))


def test_a_lora_that_does_not_fit_leaves_the_pipeline_as_it_was(files, tmp_path):
    video = Frames(tmp_path)
    pipe = load_pipeline(files["root"], loras=[files["a"]], **FP32_CPU)
    transformer, applied, before = pipe.transformer, pipe.loras, video(pipe)
    mistakes = [
        ("no_such_layer", [files["bad"]]),
        ("not found", [(files["a"], 1.0), tmp_path / "missing.safetensors"]),
        ("takes a list of files", files["b"]),  # a file where a list belongs
        *[("read for another model", [files["b"], read]) for read in read_for_other_models(pipe.transformer, files)],
    ]
    for message, mistake in mistakes:
        with pytest.raises(LoRAError, match=message):
            pipe.set_loras(mistake)
        assert pipe.transformer is transformer and pipe.loras is applied
    assert np.array_equal(video(pipe), before)


def read_for_other_models(transformer: torch.nn.Module, files: dict[str, Path]) -> list[LoRAFile]:
    """LoRA files read already (as run reads them) for models other than `transformer`: one naming a layer it lacks,
    one whose layer is one of its own in another shape."""
    name, (out_features, in_features) = next(iter(linear_shapes(transformer).items()))
    spec = LoRASpec(files["a"])
    return [
        LoRAFile(spec, "peft", [LoRAUpdate("blocks.99.attn.to_q", torch.ones(2, 8), torch.ones(4, 2), 1.0)]),
        LoRAFile(spec, "peft", [LoRAUpdate(name, torch.ones(2, in_features + 1), torch.ones(out_features, 2), 1.0)]),
    ]


def test_a_lora_read_for_another_model_is_refused_before_the_transformer_loads(files):
    for read in read_for_other_models(load_pipeline(files["root"], **FP32_CPU).transformer, files):
        with pytest.raises(LoRAError, match="read for another model"):
            load_pipeline(files["root"], loras=[read], **FP32_CPU)


@pytest.mark.parametrize("planned", [False, True], ids=["resident", "streamed"])
def test_the_old_transformer_is_freed_before_the_new_one_loads(files, tmp_path, monkeypatch, planned):
    # Streamed, the plan's streamers hold the blocks; a reference cycle holds the whole (freed by a collection only).
    pipe = load_pipeline(files["root"], plan=tightest_plan(files["root"], tmp_path) if planned else None, **FP32_CPU)
    old = [weakref.ref(module) for module in pipe.transformer.modules()]  # the blocks hold the weights
    cycle: list = [pipe.transformer]
    cycle.append(cycle)
    del cycle
    alive_at_load = []
    load = recipe_module.load_transformer

    def recording_load(*args, **kwargs):
        alive_at_load.append(sum(ref() is not None for ref in old))
        return load(*args, **kwargs)

    monkeypatch.setattr(recipe_module, "load_transformer", recording_load)
    gc.disable()  # no collection by chance: set_loras must make its own
    try:
        pipe.set_loras([files["a"]])
    finally:
        gc.enable()
    assert alive_at_load == [0]  # never two transformers in memory, not even in part


def test_a_load_that_fails_after_the_old_transformer_went_says_so_and_can_be_retried(files, tmp_path, monkeypatch):
    video = Frames(tmp_path)
    pipe = load_pipeline(files["root"], **FP32_CPU)
    load = recipe_module.load_transformer

    def failing_load(*args, **kwargs):
        raise ConfigError("the weights went away")

    monkeypatch.setattr(recipe_module, "load_transformer", failing_load)
    with pytest.raises(ConfigError, match="went away\nthe pipeline has no transformer now: call set_loras again"):
        pipe.set_loras([files["a"]])
    assert pipe.transformer is None and pipe.loras is None
    assert "attention='none'" in repr(pipe)  # a notebook still shows the pipeline (it was an AttributeError)
    request = GenerationRequest(PROMPT, output=tmp_path / "x.mp4", **SIZE)
    with pytest.raises(ConfigError, match="no transformer: its set_loras failed to load one; call it again"):
        pipe.generate(request)
    monkeypatch.setattr(recipe_module, "load_transformer", load)
    pipe.set_loras([files["a"]])
    assert np.array_equal(video(pipe), video(load_pipeline(files["root"], loras=[files["a"]], **FP32_CPU)))


def test_a_failed_load_leaves_no_part_of_the_old_transformer(files, tmp_path, monkeypatch):
    # The transformer and what was installed on it go as one value (`LoadedTransformer`): no part outlives it, not
    # the plan's hooks, nor the weight files' stamps (which a stopped run keeps as its model's; they stayed before).
    pipe = load_pipeline(files["root"], loras=[files["a"]], plan=tightest_plan(files["root"], tmp_path), **FP32_CPU)
    assert pipe.plan_handle is not None and str(files["a"].absolute()) in pipe.file_stamps

    def failing_load(*args, **kwargs):
        raise ConfigError("the weights went away")

    monkeypatch.setattr(recipe_module, "load_transformer", failing_load)
    with pytest.raises(ConfigError, match="went away"):
        pipe.set_loras([files["b"]])
    parts = pipe.transformer, pipe.loras, pipe.plan_handle, pipe.compile_handle, pipe.file_stamps
    assert parts == (None, None, None, None, {})


def test_the_parts_of_the_loaded_transformer_are_not_assigned_one_by_one(files):
    # Assigned alone, a part would part from the rest (a transformer without the plan's hooks that its LoRAs
    # were applied with): the pipeline says what replaces them whole.
    pipe = load_pipeline(files["root"], loras=[files["a"]], **FP32_CPU)
    parts = pipe.transformer, pipe.loras, pipe.plan_handle, pipe.compile_handle, pipe.file_stamps
    for name in ("transformer", "loras", "plan_handle", "compile_handle", "file_stamps"):
        with pytest.raises(AttributeError, match=rf"^pipe\.{name} is read-only: .* pipe\.set_loras\(\.\.\.\) loads"):
            setattr(pipe, name, None)
    assert (pipe.transformer, pipe.loras, pipe.plan_handle, pipe.compile_handle, pipe.file_stamps) == parts


def test_each_part_of_the_loaded_transformer_is_a_read_only_property_of_the_pipeline():
    # A field added to `LoadedTransformer` is refused by assignment at once; its property must come with it.
    names = ["transformer" if f.name == "model" else f.name for f in dataclasses.fields(LoadedTransformer)]
    assert [name for name in names if not isinstance(getattr(MotifVideoPipeline, name, None), property)] == []


def test_a_resumed_run_compares_its_loras_with_the_switched_ones(files, tmp_path):
    pipe = load_pipeline(files["root"], loras=[files["a"]], **FP32_CPU)

    class Stop(Exception):
        pass

    def stop_after_one_step(stage, done, total):
        if stage == "denoise" and done == 1:
            raise Stop

    output = tmp_path / "fox.mp4"
    with pytest.raises(Stop):
        pipe.generate(GenerationRequest(PROMPT, NEGATIVE, output=output, **SIZE), on_progress=stop_after_one_step)
    saved = read_latents(tmp_path / "fox.latents.safetensors")
    pipe.set_loras([])
    (note,) = other_model_notes(saved.run, pipe.model_flags(), "this pipeline's model")
    assert f"--lora {files['a'].absolute()}:1" in note
    pipe.set_loras([(files["a"], 1.0)])
    assert other_model_notes(saved.run, pipe.model_flags(), "this pipeline's model") == []


def test_a_pipeline_not_made_by_load_pipeline_cannot_switch(files):
    loaded = load_pipeline(files["root"], **FP32_CPU)
    pipe = MotifVideoPipeline(loaded.transformer, loaded.text_encoder, loaded.vae, loaded.device, loaded.dtype)
    with pytest.raises(ConfigError, match="needs a pipeline made by load_pipeline"):
        pipe.set_loras([files["a"]])
    assert pipe.transformer is loaded.transformer
