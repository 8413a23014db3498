"""Loader and config: every source form, strictness, clear errors, config inference from weights."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_config import forward
from tiny_transformer import TINY, assert_close_to_reference, inputs, make_reference, reference_forward, save_official

from motif_lite import TransformerConfig, load_transformer
from motif_lite.config import config_from_weights, default_rope_axes
from motif_lite.devices import parse_device
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError
from motif_lite.weights.keymap import detect_layout, to_checkpoint_name, to_model_name
from motif_lite.weights.loader import meta_transformer
from motif_lite.weights.safetensors_files import TensorFiles
from motif_lite.weights.shapes import MAX_LISTED, compare_shapes, listing, text_encoder_mismatches

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def reference():
    return make_reference()


@pytest.fixture
def checkpoint(tmp_path, reference):
    return save_official(reference, tmp_path)


def test_every_source_form_loads_the_same_model(tmp_path, checkpoint, reference):
    sharded = tmp_path / "sharded"
    reference.save_pretrained(sharded, max_shard_size="40KB")
    index = next(sharded.glob("*.index.json"))
    assert len(json.loads(index.read_text())["weight_map"]) > 0 and len(list(sharded.glob("*.safetensors"))) > 2
    x = inputs(image=3)
    expected = reference_forward(reference, x)
    for source in (checkpoint, checkpoint / "transformer", checkpoint / WEIGHTS, sharded, index):
        model = load_transformer(source, dtype=torch.float32)
        assert_close_to_reference(forward(model, x), expected)


def test_file_names_in_upper_case_load_as_their_kind(tmp_path, checkpoint, reference):
    """T.SAFETENSORS, M.INDEX.JSON and X.GGUF (names some Windows tools write) are read by what they end in."""
    from motif_lite.quantize.cli import main as quantize

    upper = tmp_path / "upper"
    reference.save_pretrained(upper, max_shard_size="40KB")
    index = upper / "M.INDEX.JSON"
    next(upper.glob("*.index.json")).rename(index)
    single = (checkpoint / WEIGHTS).rename(checkpoint / "transformer" / "T.SAFETENSORS")
    gguf = tmp_path / "X.GGUF"
    assert quantize([str(single), "-o", str(gguf), "--type", "F32", "--quiet"]) == 0
    x = inputs(image=3)
    expected = reference_forward(reference, x)
    for source in (single, index, gguf):
        model = load_transformer(source, dtype=torch.float32)
        assert_close_to_reference(forward(model, x), expected)
        assert meta_transformer(source).config == model.config, source


def test_each_file_is_opened_once_for_its_tensors(tmp_path, reference, monkeypatch):
    # Opened once per tensor, each file's header was read and parsed again for every tensor it holds.
    from collections import Counter

    from motif_lite.weights import safetensors_files

    sharded = tmp_path / "sharded"
    reference.save_pretrained(sharded, max_shard_size="40KB")
    opened, safe_open = Counter(), safetensors_files.safe_open

    def counted(file, **options):
        opened[file] += 1
        return safe_open(file, **options)

    monkeypatch.setattr(safetensors_files, "safe_open", counted)
    model = load_transformer(sharded, dtype=torch.float32)
    files = sorted(sharded.glob("*.safetensors"))
    assert len(model.state_dict()) > len(files) > 2
    assert opened == Counter({file: 2 for file in files})  # its header read, then its tensors


def test_a_tilde_in_the_source_is_the_home_folder(checkpoint, monkeypatch):
    # A path from a config file or a notebook ("~/Motif-Video-2B"), which no shell expanded.
    monkeypatch.setenv("HOME", str(checkpoint.parent))
    model = load_transformer(f"~/{checkpoint.name}", dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in meta_transformer(checkpoint).parameters()
    )
    assert meta_transformer(f"~/{checkpoint.name}/transformer").config == model.config


def test_weights_are_assigned_not_copied_into_random_init(checkpoint):
    model = load_transformer(checkpoint, dtype=torch.float32)
    stored = load_file(checkpoint / WEIGHTS)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(p.is_meta for p in model.parameters())


def _rewrite(checkpoint, edit):
    state = load_file(checkpoint / WEIGHTS)
    edit(state)
    save_file(state, checkpoint / WEIGHTS)


def test_one_error_lists_missing_unexpected_and_misshapen_tensors(checkpoint):
    def edit(state):
        del state["proj_out.bias"]
        state["extra.weight"] = torch.zeros(2)
        state["context_embedder.linear_1.weight"] = torch.zeros(64, 25)

    _rewrite(checkpoint, edit)
    with pytest.raises(CheckpointError) as err:
        load_transformer(checkpoint, dtype=torch.float32)
    message = str(err.value)
    assert "1 missing tensors" in message and "proj_out.bias" in message
    assert "1 unexpected tensors" in message and "extra.weight" in message
    assert "context_embedder.linear_1.weight: checkpoint [64, 25], model [64, 24]" in message


def test_integer_and_bool_tensors_are_refused_before_any_is_read(checkpoint, monkeypatch):
    # An int8 export without its scales has the float weights' names and shapes: cast to floats it made noise.
    def edit(state):
        state["proj_out.weight"] = (state["proj_out.weight"] * 100).round().to(torch.int8)
        state["proj_out.bias"] = state["proj_out.bias"] > 0

    _rewrite(checkpoint, edit)
    monkeypatch.setattr(TensorFiles, "load", lambda *_: pytest.fail("read a tensor of a refused checkpoint"))
    with pytest.raises(CheckpointError) as err:
        load_transformer(checkpoint, dtype=torch.float32)
    assert "2 transformer tensors not stored as floats" in str(err.value)
    assert "proj_out.bias (BOOL), proj_out.weight (I8)" in str(err.value)


def test_an_exporters_zero_size_placeholder_is_no_unexpected_tensor(checkpoint):
    # Some exporters write an empty tensor for a layer the model lacks: nothing to load, so nothing to refuse.
    _rewrite(checkpoint, lambda state: state.update({"transformer_blocks.0.absent.weight": torch.zeros(0, 4)}))
    model = load_transformer(checkpoint, dtype=torch.float32)
    assert "transformer_blocks.0.absent.weight" not in model.state_dict()


def test_config_flags_must_match_the_weights(checkpoint):
    config = json.loads((checkpoint / "transformer/config.json").read_text())
    config["enable_text_cross_attention_single"] = False
    (checkpoint / "transformer/config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        load_transformer(checkpoint)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_give_a_clear_error(checkpoint, damage):
    path = checkpoint / WEIGHTS
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not safetensors" * 10, "empty": b""}[damage])
    with pytest.raises(CheckpointError, match="safetensors"):
        load_transformer(checkpoint)


def test_missing_paths_and_wrong_files(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_transformer(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="no diffusion_pytorch_model.safetensors"):
        load_transformer(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unsupported model file"):
        load_transformer(tmp_path / "weights.bin")
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "shard-1.safetensors"}}))
    with pytest.raises(CheckpointError, match="lists shards that are not in"):
        load_transformer(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    with pytest.raises(CheckpointError, match="the safetensors index has an empty weight_map"):
        load_transformer(tmp_path)


@pytest.mark.parametrize("source", ["folder", "file"])
def test_another_components_folder_is_named_by_its_config(tmp_path, source):
    # The VAE's folder (its config.json names diffusers' class) used to warn about unknown transformer keys and
    # fail on the first field of ours it lacks ("patch_size must be a positive integer, got None").
    vae = tmp_path / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan", "z_dim": 16}))
    save_file({"decoder.conv_in.weight": torch.zeros(4, 16, 3, 3, 3)}, str(vae / "diffusion_pytorch_model.safetensors"))
    path = vae if source == "folder" else vae / "diffusion_pytorch_model.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing about the config's keys before the error
        with pytest.raises(CheckpointError) as error:
            load_transformer(path)
    assert f"{vae / 'config.json'} describes AutoencoderKLWan, not the Motif-Video transformer" in str(error.value)


def test_the_config_is_read_once_per_load(checkpoint, monkeypatch):
    # The check for another model's config and the config itself are one read of config.json.
    read = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: read.append(path.name) or real_read(path))
    meta_transformer(checkpoint)
    assert read.count("config.json") == 1


@pytest.mark.parametrize(
    ("config", "said"),
    [(b"\xff\xfe{}", ": the transformer config is not valid JSON"), (b"[]", ": the transformer config is a list")],
    ids=["not-utf8", "a-list"],
)
def test_a_config_that_names_no_model_is_named_as_unreadable(tmp_path, config, said):
    # The check for another component's config must leave such a file to the config's own error (no traceback).
    (tmp_path / "config.json").write_bytes(config)
    save_file({"transformer_blocks.0.attn.to_q.weight": torch.zeros(4, 4)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConfigError, match=f"{re.escape(str(tmp_path / 'config.json'))}{said}"):
        load_transformer(tmp_path)


@pytest.mark.parametrize("cuda_build", [None, "12.8"])
def test_unusable_cuda_device_is_a_user_error(checkpoint, monkeypatch, cuda_build):
    # As on a machine without a GPU: a CPU-only torch build, or a CUDA build without an NVIDIA driver (torch then
    # raises its own AssertionError / RuntimeError from deep inside `.to("cuda")`).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)

    def no_driver():  # what CUDA says on starting (`devices.cuda_start_failure` quotes it)
        raise RuntimeError("Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU")

    monkeypatch.setattr(torch.cuda, "init", no_driver)
    why = "no CUDA" if cuda_build is None else "Found no NVIDIA driver on your system"
    for source in (checkpoint, checkpoint / WEIGHTS):
        with pytest.raises(MotifLiteError, match=f"'cuda' requested but CUDA is not available .*{why}.*: --device cpu"):
            load_transformer(source, device="cuda")
    for other, meant in (("gpu", "cuda"), ("GPU:1", "cuda:1"), ("0", "cuda:0")):  # other tools' names of a GPU
        meant_both = rf"--device {meant} \(in Python device=\"{meant}\"\)"
        with pytest.raises(MotifLiteError, match=rf"unknown device '{other}': a GPU is cuda here: {meant_both}"):
            load_transformer(checkpoint, device=other)
    with pytest.raises(MotifLiteError, match=r"unknown device 'nonsense' \(use cpu, cuda or cuda:N\)"):
        load_transformer(checkpoint, device="nonsense")
    with pytest.raises(MotifLiteError, match=r"a GPU is cuda here: --device cuda \(in Python device=\"cuda\"\)"):
        parse_device("gpu")  # what a dry run checks (it also takes auto)
    # Real torch devices this runtime does not support: said before any file is read, with the name users know.
    for other, known in (("mps", "an Apple silicon GPU"), ("xpu", "an Intel GPU"), ("meta", None)):
        said = f", {known} \\({other}\\)," if known else ""
        with pytest.raises(MotifLiteError, match=f"device '{other}'{said} is not supported: motif-lite runs on CUDA"):
            load_transformer(checkpoint, device=other)


@pytest.mark.parametrize(
    ("device", "said"),
    [
        (" cuda", "unknown device ' cuda': no spaces around the name: --device cuda "),
        ("cuda:0 ", "unknown device 'cuda:0 ': no spaces around the name: --device cuda:0 "),
        ("CPU ", "unknown device 'CPU ': no spaces around the name and device names are lower case: --device cpu "),
        ("cuda:", "unknown device 'cuda:': --device cuda "),  # a stray colon: nothing more to say than the name
    ],
)
def test_a_torch_device_name_misspelled_says_why(device, said):
    # " cuda" (a quoted flag, a config value) said "unknown device ' cuda': : --device cuda": no reason, two colons.
    with pytest.raises(MotifLiteError) as caught:
        parse_device(device)
    assert str(caught.value).startswith(said) and ": :" not in str(caught.value)


def test_bad_config_values_are_named(checkpoint):
    path = checkpoint / "transformer/config.json"
    good = json.loads(path.read_text())
    for key, value, expected in [
        ("num_attention_heads", 0, "num_attention_heads"),
        ("rope_axes_dim", [8, 12, 10], "rope_axes_dim"),
        ("num_decoder_layers", 9, "num_decoder_layers"),
        ("qk_norm", "layer_norm", "qk_norm"),
        ("rope_theta", -1, "rope_theta"),
    ]:
        path.write_text(json.dumps({**good, key: value}))
        with pytest.raises(ConfigError, match=f"{path}: .*{expected}"):  # the file, then what is wrong in it
            load_transformer(checkpoint)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_transformer(checkpoint)


def test_config_reads_like_the_reference():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = TransformerConfig.from_dict({"_class_name": "X", "num_layers": 3, "something_new": 1})
    assert any("something_new" in str(w.message) for w in caught)
    # Keys a config.json leaves out take the reference's class defaults, as diffusers reads them.
    assert config.num_layers == 3 and config.rope_theta == 256.0 and config.num_attention_heads == 24
    assert TransformerConfig().hidden_size == 1536 and TransformerConfig().num_encoder_single_layers == 16


def test_user_errors_share_one_base_class():
    assert issubclass(CheckpointError, MotifLiteError) and issubclass(ConfigError, MotifLiteError)


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(enable_text_cross_attention_dual=True, image_embed_dim=None), dict(num_decoder_layers=2)],
)
def test_config_inferred_from_weights(overrides):
    reference = make_reference(**{**overrides, "rope_axes_dim": default_rope_axes(32)})
    shapes = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    inferred = config_from_weights(shapes)
    expected = TransformerConfig.from_dict(dict(reference.config))
    assert inferred == expected


def test_inference_without_cross_attention_falls_back_to_the_official_decoder_count():
    reference = make_reference(enable_text_cross_attention_single=False, num_single_layers=10, num_decoder_layers=8)
    shapes = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    assert config_from_weights(shapes).num_decoder_layers == 8
    assert TINY["num_decoder_layers"] == 1  # the tiny default is not what the fallback gives


@pytest.mark.parametrize(("heads", "ff"), [(14, 453), (30, 965), (48, 6144)])  # hidden 448, 960, 1536
def test_an_inferred_mlp_ratio_builds_the_feed_forward_the_weights_have(heads, ff):
    # mlp_ratio = ff / hidden, and the blocks build int(hidden * mlp_ratio): 453 / 448 * 448 is 452.99999..., so a
    # GGUF without a config of such a width was refused by its own shapes (a feed-forward of 452, not 453).
    from motif_lite.weights.shapes import build_model

    hidden = heads * TINY["attention_head_dim"]
    config = TransformerConfig.from_dict({**TINY, "num_attention_heads": heads, "mlp_ratio": (ff + 0.5) / hidden})
    shapes = {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    assert shapes["single_transformer_blocks.0.proj_mlp.weight"] == (ff, hidden)
    rebuilt = build_model(config_from_weights(shapes)).state_dict()
    assert {name: tuple(t.shape) for name, t in rebuilt.items()} == shapes


@pytest.mark.parametrize("layout", ["original", "pr"])
def test_shared_layout_names_round_trip_and_a_mixed_checkpoint_is_refused(layout):
    ours = "single_transformer_blocks.3.cross_attn.query_proj.weight"
    stored = to_checkpoint_name(ours, layout)
    assert detect_layout([stored, "single_transformer_blocks.3.attn.to_k.weight"]) == layout
    assert to_model_name(stored, layout) == ours
    with pytest.raises(CheckpointError, match="mixes cross-attention key layouts"):
        detect_layout([stored, "transformer_blocks.0.cross_attn.to_q.weight"])


def test_shapes_are_compared_by_value_and_every_difference_counts():
    # A header's shapes may be lists; a file whose only fault is a shape is still a mismatch (check's verdict).
    expected = {"b": (2, 3), "a": (4,), "c": (5,), "d": (6,)}
    found = {"b": [2, 3], "a": [1], "c": [7], "d": (6,), "z": (1,)}
    mismatch = compare_shapes(expected, found)
    assert (mismatch.wrong, mismatch.missing, mismatch.unexpected) == (["a", "c"], [], ["z"])  # sorted by name
    assert bool(compare_shapes({"a": (4,)}, {"a": (5,)})) and not compare_shapes(expected, {**expected})
    names = [f"block{i}.weight" for i in range(12)]
    assert compare_shapes(dict.fromkeys(names, (1,)), dict.fromkeys(names, (2,))).wrong == sorted(names)
    assert compare_shapes({"a": (4,)}, {"a": (5,)}).lines() == ["a: file [5], config [4]"]


def test_a_long_list_of_tensors_is_cut_after_the_first_ones():
    names = [f"t{i:02}" for i in range(MAX_LISTED + 5)]
    assert listing("missing tensors", names).splitlines() == [
        f"{MAX_LISTED + 5} missing tensors:",
        *[f"  {n}" for n in names[:MAX_LISTED]],
        "  ... and 5 more",
    ]
    assert MAX_LISTED >= 10 and listing("missing tensors", []) == ""


def test_a_text_encoder_under_other_names_with_the_same_shapes_matches():
    # transformers renames the encoder's tensors on load: names that differ but the same shapes are no mismatch.
    from tiny_text import _tiny_config
    from transformers import T5Gemma2Encoder

    from motif_lite.weights.shapes import expected_shapes

    config = _tiny_config(64)
    with torch.device("meta"):
        shapes = expected_shapes(T5Gemma2Encoder(config))
    renamed = {f"renamed.{name}": shape for name, shape in shapes.items()}
    assert text_encoder_mismatches(config, renamed) == []
    name = next(iter(renamed))
    assert text_encoder_mismatches(config, {**renamed, name: (*renamed[name], 2)}) != []
    # the same shapes, but one tensor fewer of one and one more of another: not the same tensors
    other = next(shape for shape in renamed.values() if shape != renamed[name])
    assert text_encoder_mismatches(config, {**renamed, name: other}) != []


def test_inference_without_cross_attention_takes_every_single_block_where_there_are_fewer_than_eight():
    # docs/transformer.md and docs/gguf.md: without cross-attention the decoder count defaults to the official 8, or
    # to every single-stream block where there are fewer (8 of 5 would be no config at all).
    reference = make_reference(enable_text_cross_attention_single=False, num_single_layers=5, num_decoder_layers=5)
    shapes = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    assert config_from_weights(shapes).num_decoder_layers == 5
