"""The forty-fourth mutation pass's tests (docs/testing.md) of io/gguf_source.py, quantize/convert.py,
quantize/components.py, weights/shapes.py, kernels/launch.py and sampling/guidance.py: behaviours no test reached,
each failing with the mutant that showed the gap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motif_lite.choices import GGUF_REPO
from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.io import gguf_source


def test_a_variant_two_files_of_the_repo_carry_is_refused_not_taken_as_the_first():
    names = ["motif-video-2b-Q8_0.gguf", "other/motif-video-2b-Q8_0.gguf", "motif-video-2b-Q4_K_M.gguf"]
    with pytest.raises(CheckpointError, match=r"2 files \(motif-video-2b-Q8_0.gguf, other/motif-video-2b-Q8_0"):
        gguf_source._pick_variant(names, "Q8_0")


def test_a_file_that_hf_download_left_its_record_beside_is_downloaded_again(tmp_path):
    # `hf download --local-dir` records each file in .cache/huggingface/download/NAME.metadata: such a file is the
    # official repo's whatever its name, and its fix downloads it again rather than remaking it.
    path = tmp_path / "renamed.gguf"
    path.write_bytes(b"GGUF cut short")
    record = tmp_path / ".cache" / "huggingface" / "download" / "renamed.gguf.metadata"
    record.parent.mkdir(parents=True)
    record.write_text("commit\netag\n1.0\n")
    fix = gguf_source.gguf_file_fix(path, "ckpt")
    assert fix.startswith(f"download the file again (hf download {GGUF_REPO}"), fix


def test_a_tensor_of_zeros_has_no_error_rather_than_a_division_by_zero():
    from motif_lite.quantize.convert import _ErrorSums

    sums = _ErrorSums()
    sums.add(np.zeros((4, 32), np.float32), np.zeros((4, 32), np.float32))  # a zero-initialized bias, say
    assert sums.rel_rmse == 0.0


def _guide_both(guider, ours, steps: int, seed: int = 0) -> None:
    """`guide` against the diffusers guider, step by step, on the same random predictions: equal bit for bit."""
    from motif_lite.sampling import APGState, guidance_active, guide

    gen, state = torch.Generator().manual_seed(seed), APGState()
    for i in range(steps):
        cond = torch.randn((2, 4, 3, 5, 6), generator=gen) * 3
        uncond = cond + torch.randn(cond.shape, generator=gen)
        guider.set_state(step=i, num_inference_steps=steps, timestep=torch.tensor(1000.0 - i))
        guided = len(guider.prepare_inputs({"x": (cond, uncond)})) == 2
        assert guidance_active(ours, i, steps) == guided, f"step {i}"
        expected = guider.forward(cond, uncond if guided else None).pred
        assert torch.equal(guide(ours, cond, uncond if guided else None, state, i, steps), expected), f"step {i}"


@pytest.mark.parametrize("method", ["cfg", "apg"])
def test_the_rescale_applies_on_the_steps_outside_the_window_too_as_in_diffusers(method):
    # Outside the window the prediction is the conditional one, rescaled towards itself: 0.7·x + 0.3·x, which
    # rounds differently from x. diffusers rescales there as on guided steps.
    from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance

    from motif_lite.sampling import APGConfig, CFGConfig

    window = {"guidance_rescale": 0.7, "start": 0.5, "stop": 1.0}
    if method == "cfg":
        guider, ours = ClassifierFreeGuidance(guidance_scale=3.0, **window), CFGConfig(scale=3.0, **window)
    else:
        guider = AdaptiveProjectedGuidance(guidance_scale=6.0, adaptive_projected_guidance_momentum=0.3, **window)
        ours = APGConfig(scale=6.0, momentum=0.3, **window)
    _guide_both(guider, ours, steps=4)


@pytest.mark.parametrize("method", ["cfg", "apg"])
def test_a_window_that_starts_where_it_stops_is_taken_and_guides_no_step_as_in_diffusers(method):
    from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance

    from motif_lite.sampling import APGConfig, CFGConfig, needs_uncond

    if method == "cfg":
        guider, ours = ClassifierFreeGuidance(start=0.5, stop=0.5), CFGConfig(start=0.5, stop=0.5)
    else:
        guider, ours = AdaptiveProjectedGuidance(start=0.5, stop=0.5), APGConfig(start=0.5, stop=0.5)
    assert not needs_uncond(ours, 10)
    _guide_both(guider, ours, steps=10)


@pytest.mark.parametrize(("seconds", "said"), [(9.94, "9.9 s"), (10.0, "10 s"), (10.4, "10 s")])
def test_ten_seconds_and_more_read_in_whole_seconds(seconds, said):
    from motif_lite.quantize.convert import duration

    assert duration(seconds) == said


def _one_tensor_source(tmp_path):
    from safetensors.torch import save_file

    from motif_lite.quantize.sources import SafetensorsSource

    save_file({"transformer_blocks.0.attn1.to_q.weight": torch.randn(64, 256)}, tmp_path / "w.safetensors")
    return SafetensorsSource([tmp_path / "w.safetensors"], None)


def test_the_free_space_check_counts_the_header_on_top_of_the_tensor_data(tmp_path, monkeypatch):
    # Room for the tensor data alone is not room for the file: its header (tensor infos, metadata) and alignment
    # padding come on top, and a run that counted only the data would fail at its end on a full disk.
    import collections

    from motif_lite.quantize import convert, get_recipe
    from motif_lite.quantize.components import TRANSFORMER
    from motif_lite.quantize.recipes import plan_bytes

    source, recipe = _one_tensor_source(tmp_path), get_recipe("Q8_0")
    data = plan_bytes(source.shapes, TRANSFORMER.plan(source.shapes, recipe, []))
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda path: usage(10**9, 10**9, data + 100))
    with pytest.raises(convert.OutputError, match="free some space or write it elsewhere"):
        convert.quantize_checkpoint(source, tmp_path / "o.gguf", recipe, progress=False)
    assert not (tmp_path / "o.gguf").exists()


def test_a_text_encoder_config_without_a_model_type_is_not_said_to_describe_another_model():
    # A config.json that names no model is no other model's: config_from_json says which field is wrong.
    from motif_lite.errors import ConfigError
    from motif_lite.quantize.components import TEXT_ENCODER

    with pytest.raises(ConfigError, match="has model_type None, expected 't5gemma2_encoder'"):
        TEXT_ENCODER.check('{"hidden_size": 3}', {})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_one_bad_value_among_finite_ones_is_refused_naming_the_tensor(bad):
    from gguf import GGMLQuantizationType as Q

    from motif_lite.quantize.convert import encode_checked

    values = torch.randn(4, 64)
    values[2, 5] = bad
    with pytest.raises(CheckpointError, match="tensor 'w' contains NaN or infinite values"):
        encode_checked(values, Q.Q8_0, "w", "cpu")


def test_an_output_named_gguf_in_capitals_is_taken_and_loads_as_a_gguf(tmp_path):
    # The quantizer writes MODEL.GGUF (its check ignores letter case, as --gguf does), and load_transformer reads
    # it as the GGUF it is: it took only ".gguf", and called MODEL.GGUF an unsupported model file.
    import shutil

    from motif_lite.quantize import convert, get_recipe
    from motif_lite.weights.loader import load_transformer, meta_transformer

    source, recipe = _one_tensor_source(tmp_path), get_recipe("Q8_0")
    out = convert.check_output(source, tmp_path / "MODEL.GGUF", recipe)
    convert.quantize_checkpoint(source, out, recipe, progress=False)
    shutil.copy(out, tmp_path / "model.gguf")
    for read in (meta_transformer, lambda path: load_transformer(path, dtype="float32")):
        with pytest.raises(MotifLiteError) as lower:
            read(tmp_path / "model.gguf")  # one tensor is no whole transformer: the GGUF loader says so
        with pytest.raises(MotifLiteError) as upper:
            read(out)
        assert str(upper.value) == str(lower.value).replace("model.gguf", "MODEL.GGUF")
        assert "cannot infer the transformer config" in str(upper.value)


@pytest.mark.parametrize("layout", ["original", "pr"])
def test_a_transformer_in_another_cross_attention_layout_passes_the_quantizer_s_check_beside_its_config(layout):
    # The config.json says nothing of the layout: the model checked against is built in the one the names use.
    import json

    from tiny_config import TINY

    from motif_lite.config import TransformerConfig
    from motif_lite.quantize.components import TRANSFORMER
    from motif_lite.weights.keymap import to_checkpoint_name
    from motif_lite.weights.shapes import build_model, expected_shapes

    config = TransformerConfig.from_dict(dict(TINY), source="TINY").replace(cross_attention_layout=layout)
    shapes = {to_checkpoint_name(n, layout): s for n, s in expected_shapes(build_model(config)).items()}
    TRANSFORMER.check(json.dumps(TINY), shapes)  # raises CheckpointError if it finds a difference


def test_text_encoder_weights_without_their_config_are_refused_saying_so():
    from motif_lite.quantize.components import TEXT_ENCODER

    with pytest.raises(CheckpointError, match=r"the text encoder's config\.json is missing beside its weights"):
        TEXT_ENCODER.check(None, {"encoder.embed_tokens.weight": (64, 8)})


def test_comfyui_s_prefix_is_said_only_when_every_tensor_name_carries_it():
    # A file where some names carry it is no ComfyUI save: it is not read without the prefix (stripping it would
    # leave the others as wrong as before; `without_comfy_prefix` refuses it).
    from motif_lite.weights.shapes import comfy_prefix

    assert comfy_prefix(["model.diffusion_model.x_embedder.proj.weight"]) == "model.diffusion_model."
    assert comfy_prefix(["model.diffusion_model.x_embedder.proj.weight", "norm_out.linear.weight"]) is None


@pytest.mark.parametrize(("key", "field"), [("guidance_scale", "scale"), ("guidance_rescale", "guidance_rescale")])
def test_a_guider_config_s_true_is_no_number(tmp_path, key, field):
    # JSON's true is Python's True, an int: taken, `"guidance_scale": true` would guide at scale 1 unsaid.
    import json

    from motif_lite.errors import ConfigError
    from motif_lite.sampling import guidance_from_guider_config

    (tmp_path / "guider_config.json").write_text(json.dumps({"_class_name": "ClassifierFreeGuidance", key: True}))
    with pytest.raises(ConfigError, match=f"guidance {field} must be a finite number, got True"):
        guidance_from_guider_config(tmp_path)


def test_a_block_mask_of_128_key_blocks_takes_the_tuned_launch():
    from motif_lite.kernels.launch import tuned_launch_ok

    tuned = object()  # any autotuner: the rule reads only whether there is one
    assert tuned_launch_ok(tuned, 128, True, 128)
    assert not tuned_launch_ok(tuned, 128, True, 64) and not tuned_launch_ok(None, 128, False, 128)
