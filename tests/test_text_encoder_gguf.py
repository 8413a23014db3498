"""The quantized T5Gemma2 text encoder: `python -m motif_lite.quantize --component text_encoder`, loading it packed
(`load_text_encoder(gguf=...)`, `load_pipeline(text_encoder_gguf=...)`, `motif-lite run --text-encoder-gguf`), its
error against the unquantized encoder, and every check that runs before weights load.

Two tiny encoders: tests/tiny_text.py (hidden 32: no row fits a K-quant, so every K type falls back to a 32-block
type as the recipes say) and a "wide" one (hidden 256, MLP 512: the K-quants themselves).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf_helpers import write_test_gguf
from tiny_text import _save_feature_extractor, _save_tokenizer, _tiny_config, _tiny_vocab, make_tiny_text_encoder
from transformers import T5Gemma2Encoder

from motif_lite.encoders.text import load_text_encoder
from motif_lite.encoders.text_config import parse_text_encoder_config
from motif_lite.encoders.text_gguf import (
    EMBED_KEY,
    QuantizedScaledEmbedding,
    TextEncoderGGUF,
    load_text_encoder_gguf,
    meta_encoder,
    read_text_encoder_gguf,
)
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.quantize import TEXT_ENCODER, get_text_recipe, open_source, plan_text_types, quantize_tensor
from motif_lite.quantize.cli import main as quantize_main
from motif_lite.quantize.text_recipes import more_bits_layer
from motif_lite.units import file_size
from motif_lite.weights.dequant import dequantize
from motif_lite.weights.gguf_file import QUANTIZE_TYPE_KEY
from motif_lite.weights.quant_linear import QuantizedLinear

PROMPTS = ["a red fox jumps over a sleeping dog, cinematic", "snow at dusk"]
TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def make_wide_text_encoder(root: Path, seed: int = 0) -> None:
    """The tiny encoder with a 256-wide text stack (K-quant rows), weights scaled to keep activations sane."""
    config = _tiny_config(len(_tiny_vocab()))
    for key, value in dict(hidden_size=256, intermediate_size=512, head_dim=64, num_attention_heads=4,
                           num_key_value_heads=2, query_pre_attn_scalar=64).items():  # fmt: skip
        setattr(config.text_config, key, value)
    torch.manual_seed(seed)
    model = T5Gemma2Encoder(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3 if param.ndim == 1 else 1.2 / param.shape[-1] ** 0.5)
    model.save_pretrained(root / "text_encoder")
    _save_tokenizer(root / "tokenizer")
    _save_feature_extractor(root / "feature_extractor")


def quantize(root: Path, out: Path, qtype: str, *extra: str) -> Path:
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(out), "--type", qtype, "--quiet",
                          *extra]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_text")
    make_tiny_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wide_text")
    make_wide_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def tiny_files(tiny, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tiny_gguf")
    return {t: quantize(tiny, out / f"te-{t}.gguf", t) for t in ("F32", *TYPES)}


@pytest.fixture(scope="module")
def wide_files(wide, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wide_gguf")
    return {t: quantize(wide, out / f"te-{t}.gguf", t) for t in TYPES}


def relative_error(root: Path, gguf: Path) -> float:
    reference = load_text_encoder(root, dtype=torch.float32).encode(PROMPTS)
    embeds, mask = load_text_encoder(root, dtype=torch.float32, gguf=gguf).encode(PROMPTS)
    assert torch.equal(mask, reference[1])
    return float((embeds - reference[0])[mask].norm() / reference[0][mask].norm())


# ---------------------------------------------------------------------------------------------------- recipes


def test_recipes_at_the_official_architecture():
    from full_size_text import official_text_config

    from motif_lite.quantize.recipes import plan_bytes
    from motif_lite.sizes import OFFICIAL_TEXT_ENCODER_PARAMS

    shapes = {k: tuple(v.shape) for k, v in meta_encoder(official_text_config()).state_dict().items()}
    assert sum(int(np.prod(s)) for s in shapes.values()) == OFFICIAL_TEXT_ENCODER_PARAMS
    # llama.cpp's use_more_bits over 34 layers: first and last eighth, every third layer between.
    more_bits = [i for i in range(34) if more_bits_layer(i, 34)]
    assert more_bits == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29, 30, 31, 32, 33]
    sizes = {}
    for name in ("BF16", *TYPES):
        plan = plan_text_types(shapes, get_text_recipe(name))
        sizes[name] = plan_bytes(shapes, plan) / 1e9
        assert plan["text_model.layers.0.pre_self_attn_layernorm.weight"] == Q.F32
        assert plan["vision_tower.embeddings.position_embedding.weight"] == Q.BF16
        if name == "BF16":
            continue
        assert plan["text_model.embed_tokens.weight"] == (Q.Q8_0 if name == "Q8_0" else Q.Q6_K)
        assert plan["vision_tower.encoder.layers.0.self_attn.q_proj.weight"] == Q.Q8_0  # 1152-wide rows
        assert plan["vision_tower.encoder.layers.0.mlp.fc2.weight"] == Q.BF16  # 4304 inputs: not whole 32-blocks
        base = plan["text_model.layers.4.mlp.up_proj.weight"]
        assert base == {"Q8_0": Q.Q8_0, "Q6_K": Q.Q6_K, "Q5_K_M": Q.Q5_K, "Q4_K_M": Q.Q4_K}[name]
        bumped = Q.Q6_K if name.endswith("_M") else base
        for layer, more in ((3, True), (4, False), (6, True), (7, False), (29, True)):
            for proj in ("self_attn.v_proj", "mlp.down_proj"):
                assert plan[f"text_model.layers.{layer}.{proj}.weight"] == (bumped if more else base)
            assert plan[f"text_model.layers.{layer}.self_attn.q_proj.weight"] == base
    # The sizes docs/quantize.md gives (GB of tensor data).
    assert [round(sizes[n], 2) for n in ("BF16", *TYPES)] == [8.60, 4.71, 3.77, 3.40, 3.07]


def test_only_the_block_type_recipes_quantize_the_linears():
    # The float recipes keep every linear as floats: no packed kernel to autotune for the planner to make room for.
    from motif_lite.quantize.text_recipes import TEXT_RECIPES

    quantizing = [name for name, recipe in TEXT_RECIPES.items() if recipe.quantizes_linears]
    assert quantizing == ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"]


def test_a_packed_token_table_alone_is_no_quantized_linear(tiny):
    # A file whose recipe kept every linear as floats and packed only the token table: no packed linear kernel to
    # autotune (`quantized_linears`), which the planner counts a buffer for.
    config = parse_text_encoder_config(tiny / "text_encoder/config.json")
    packed = SimpleNamespace(is_quantized=True)
    linear = "text_model.layers.0.mlp.up_proj.weight"
    embed_only = TextEncoderGGUF(tiny, config, {EMBED_KEY: packed, linear: SimpleNamespace(is_quantized=False)}, None)
    assert embed_only.packed_keys == {EMBED_KEY} and not embed_only.quantized_linears
    assert TextEncoderGGUF(tiny, config, {EMBED_KEY: packed, linear: packed}, None).quantized_linears


def test_unknown_type_and_alias():
    assert get_text_recipe("q4_k").name == "Q4_K_M" and get_text_recipe("Q5_K").name == "Q5_K_M"
    with pytest.raises(ConfigError, match="Q4_K_S is a transformer recipe.*Q8_0, Q6_K, Q5_K_M, Q4_K_M"):
        get_text_recipe("Q4_K_S")


# ------------------------------------------------------------------------------------------------ the file


def test_file_holds_the_config_the_recipe_and_model_keys(wide, wide_files):
    reader = GGUFReader(wide_files["Q4_K_M"])
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.architecture"] == "t5gemma2_encoder" and fields["general.file_type"] == 15
    assert fields["motif_lite.quantize.type"] == "Q4_K_M"
    assert fields["t5gemma2_encoder.config_json"] == (wide / "text_encoder/config.json").read_text()
    model = T5Gemma2Encoder.from_pretrained(wide / "text_encoder")
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    plan = plan_text_types(shapes, get_text_recipe("Q4_K_M"))
    stored = {t.name: t.tensor_type for t in reader.tensors}
    assert stored == plan  # every tensor under its T5Gemma2Encoder key, typed as the recipe says
    assert stored["text_model.layers.1.mlp.up_proj.weight"] == Q.Q4_K  # real K-quants at width 256
    assert stored["text_model.layers.0.mlp.down_proj.weight"] == Q.Q4_K  # 3 layers: only the last is "more bits"
    assert stored["text_model.layers.2.mlp.down_proj.weight"] == Q.Q6_K
    assert stored["text_model.embed_tokens.weight"] == Q.Q6_K


def test_tiny_rows_fall_back_like_the_transformer_quantizer(tiny_files):
    types = {t.name: t.tensor_type for t in GGUFReader(tiny_files["Q4_K_M"]).tensors}
    assert types["text_model.layers.0.mlp.up_proj.weight"] == Q.Q5_0  # Q4_K needs rows of 256: 32 -> Q5_0
    assert types["text_model.embed_tokens.weight"] == Q.Q8_0  # Q6_K -> Q8_0
    assert types["vision_tower.encoder.layers.0.mlp.fc1.weight"] == Q.BF16  # 24 inputs: no 32-block fits


def test_requantizing_a_text_encoder_gguf(tiny_files, tmp_path):
    source = open_source(tiny_files["F32"], TEXT_ENCODER)
    assert "text_model.layers.0.self_attn.q_proj.weight" in source.shapes
    source.close()
    out = tmp_path / "re.gguf"  # no --type: the text encoder's default recipe, Q8_0
    assert quantize_main([str(tiny_files["F32"]), "--component", "text_encoder", "-o", str(out), "--quiet"]) == 0
    assert read_text_encoder_gguf(out).recipe == "Q8_0"


def test_large_tensors_are_quantized_in_row_slices_to_the_same_bytes(wide, wide_files, tmp_path, monkeypatch):
    from motif_lite.quantize import convert

    monkeypatch.setattr(convert, "CHUNK_VALUES", 1000)  # every matrix in several slices
    assert len(convert.row_slices((356, 256))) == 119 and convert.row_slices((256,)) == [slice(None)]
    sliced = quantize(wide, tmp_path / "sliced.gguf", "Q4_K_M")
    assert sliced.read_bytes() == wide_files["Q4_K_M"].read_bytes()
    requantized = quantize(wide_files["Q8_0"], tmp_path / "requantized.gguf", "Q8_0")  # GGUF source slices
    monkeypatch.setattr(convert, "CHUNK_VALUES", 1 << 24)
    whole = quantize(wide_files["Q8_0"], tmp_path / "whole.gguf", "Q8_0")
    assert requantized.read_bytes() == whole.read_bytes()


def test_quantizer_refuses_before_writing(tiny, checkpoint, tmp_path, capsys):
    no_config = tmp_path / "no_config"
    shutil.copytree(tiny / "text_encoder", no_config)
    (no_config / "config.json").unlink()
    args = ["--component", "text_encoder", "-o", str(tmp_path / "x.gguf"), "--quiet"]
    assert quantize_main([str(no_config), *args]) == 2
    assert quantize_main([str(tiny), *args, "--type", "Q4_K_S"]) == 2
    assert quantize_main([str(checkpoint / "transformer"), *args]) == 2  # a transformer is no text encoder
    err = capsys.readouterr().err
    assert "config.json is missing beside its weights" in err and "Q4_K_S is a transformer recipe" in err
    assert "these are the transformer's weights (config.json: MotifVideoTransformer3DModel)" in err
    assert not (tmp_path / "x.gguf").exists() and not (tmp_path / "x.gguf.tmp").exists()


# ---------------------------------------------------------------------------------------------- loading


def test_float_file_loads_bit_exactly(tiny, tiny_files):
    reference = load_text_encoder(tiny, dtype=torch.float32)
    loaded = load_text_encoder(tiny, dtype=torch.float32, gguf=tiny_files["F32"])
    assert not any(t.is_meta for t in [*loaded.model.parameters(), *loaded.model.buffers()])
    embeds, mask = loaded.encode(PROMPTS)
    expected, expected_mask = reference.encode(PROMPTS)
    assert torch.equal(mask, expected_mask) and torch.equal(embeds[mask], expected[mask])
    frames = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(loaded.encode_image(frames), reference.encode_image(frames))


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            start, end = line.split()[0].split("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the process's memory maps (Linux)")
def test_quantized_layers_stay_packed_in_the_memory_mapped_file(wide, wide_files):
    encoder = load_text_encoder(wide, dtype=torch.float32, gguf=wide_files["Q4_K_M"])
    model = encoder.model
    packed = [m for m in model.modules() if isinstance(m, QuantizedLinear)]
    plain = [name for name, m in model.named_modules() if type(m) is torch.nn.Linear]
    assert isinstance(model.text_model.embed_tokens, QuantizedScaledEmbedding)
    # Every text linear packed; the tiny SigLIP's 24-wide rows fit no block: BF16, plain linears.
    assert len(packed) == 7 * 3 and len(plain) == 6 * 2 and all(name.startswith("vision_tower.") for name in plain)
    mapped = _mapped_ranges(wide_files["Q4_K_M"].resolve())
    tensors = [m.packed for m in [*packed, model.text_model.embed_tokens]]
    assert mapped and all(any(lo <= t.data_ptr() < hi for lo, hi in mapped) for t in tensors)
    # A visit to a device (fresh copies of every tensor, as `.to("cuda")` makes) and back: the same mapped bytes
    # again, nothing copied into new host memory.
    pointers = [t.data_ptr() for t in tensors]
    for module in model.modules():
        for name, buffer in module.named_buffers(recurse=False):
            setattr(module, name, buffer.clone())
        for param in module.parameters(recurse=False):
            param.data = param.data.clone()
    assert all(m.packed.data_ptr() not in pointers for m in packed)
    encoder.offload()
    assert [m.packed.data_ptr() for m in [*packed, model.text_model.embed_tokens]] == pointers
    assert encoder.encode(PROMPTS)[0].isfinite().all()


def test_quantized_embedding_equals_transformers_layer_on_the_dequantized_table():
    from transformers.models.t5gemma2.modeling_t5gemma2 import T5Gemma2TextScaledWordEmbedding

    table = torch.randn(300, 64, generator=torch.Generator().manual_seed(0))
    original = T5Gemma2TextScaledWordEmbedding(300, 64, padding_idx=0, embed_scale=8.0, eoi_token_index=7)
    blocks = torch.from_numpy(quantize_tensor(table, Q.Q8_0))
    with torch.no_grad():
        original.weight.copy_(dequantize(blocks, Q.Q8_0, (300, 64)))
        original.eoi_embedding.normal_()
    layer = QuantizedScaledEmbedding(original, Q.Q8_0)
    layer.load_state_dict({"packed": blocks, "eoi_embedding": original.eoi_embedding.detach()}, assign=True)
    ids = torch.tensor([[2, 7, 299, 0, 7], [5, 5, 1, 150, 3]])
    assert torch.equal(layer(ids), original(ids))
    # Only the looked-up rows are read: rows no id asks for may hold anything.
    layer.packed[100:110] = 0xFF  # fp16 NaN scales
    assert torch.equal(layer(ids), original(ids))


# --------------------------------------------------------------------------------------------- accuracy

# Relative error of the prompt embeddings (valid tokens) against the float32 encoder, measured on these seeds:
# tiny Q8_0 0.018 (Q6_K = Q8_0 by fallback), Q5_K_M 0.114, Q4_K_M 0.115; wide Q8_0 0.017, Q6_K 0.059,
# Q5_K_M 0.103, Q4_K_M 0.191. Bounds are about 1.5x those.
BOUNDS = {"tiny": {"Q8_0": 0.03, "Q4_K_M": 0.18}, "wide": {"Q8_0": 0.03, "Q6_K": 0.09, "Q5_K_M": 0.15, "Q4_K_M": 0.29}}


def test_embedding_error_per_type_is_bounded_and_ordered(tiny, tiny_files, wide, wide_files):
    tiny_err = {t: relative_error(tiny, tiny_files[t]) for t in ("Q8_0", "Q4_K_M")}
    wide_err = {t: relative_error(wide, wide_files[t]) for t in TYPES}
    for measured, bounds in ((tiny_err, BOUNDS["tiny"]), (wide_err, BOUNDS["wide"])):
        assert all(measured[t] < bound for t, bound in bounds.items()), measured
    assert tiny_err["Q4_K_M"] > 4 * tiny_err["Q8_0"] and wide_err["Q4_K_M"] > 6 * wide_err["Q8_0"]
    assert wide_err["Q8_0"] < wide_err["Q6_K"] < wide_err["Q5_K_M"] < wide_err["Q4_K_M"]
    assert tiny_err["Q8_0"] > 1e-3  # the quantized path really ran (an F32 file gives exactly 0)


# ---------------------------------------------------------------------------------------- checks first


def test_checks_before_any_weight(tiny, wide, wide_files, tiny_files, tmp_path):
    # Another encoder's file next to this checkpoint: named setting by setting.
    with pytest.raises(CheckpointError, match=r"another text encoder.*text_config\.hidden_size 256 in the file vs 32"):
        read_text_encoder_gguf(wide_files["Q8_0"], tiny / "text_encoder/config.json")
    # A checkpoint whose config changed one value.
    changed = tmp_path / "config.json"
    values = json.loads((tiny / "text_encoder/config.json").read_text())
    values["text_config"]["rms_norm_eps"] = 1e-5
    changed.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match=r"text_config\.rms_norm_eps 1e-06 in the file vs 1e-05"):
        read_text_encoder_gguf(tiny_files["Q8_0"], changed)
    # A checkpoint without text_encoder/ (its text encoder only in the GGUF): the file's own config, unchecked.
    assert read_text_encoder_gguf(tiny_files["Q8_0"], tmp_path / "text_encoder/config.json").recipe == "Q8_0"
    # A file that lacks a tensor, and one without the embedded config.
    for drop, match in (("text_model.norm.weight", "1 missing tensors:\n  text_model.norm.weight"),
                        ("t5gemma2_encoder.config_json", "has no t5gemma2_encoder.config_json")):  # fmt: skip
        broken = rewrite_without(tiny_files["Q8_0"], tmp_path / f"without-{drop}.gguf", drop)
        with pytest.raises(CheckpointError, match=match):
            read_text_encoder_gguf(broken)
    # A recipe name that is no string (a hand-edited file): no recipe, and the summary names none.
    numbered = rewrite_without(tiny_files["Q8_0"], tmp_path / "numbered.gguf", "", {QUANTIZE_TYPE_KEY: 8})
    checked = read_text_encoder_gguf(numbered)
    assert checked.recipe is None and checked.describe() == f"numbered.gguf ({file_size(checked.nbytes)} packed)"
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_files["Q8_0"].read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_text_encoder_gguf(truncated)
    from motif_lite.checkpoint import locate_sources

    with pytest.raises(CheckpointError) as raised:  # a run's error ends with the command that makes it again
        locate_sources(tiny, text_encoder_gguf=truncated, require_weights=False, download=False)
    remake = f"python -m motif_lite.quantize {tiny} --component text_encoder -o {truncated} --type Q8_0 --force"
    assert "truncated" in str(raised.value) and str(raised.value).endswith(f"; make it again: {remake}")


def test_many_differing_settings_are_named_up_to_the_limit(tiny, wide_files, monkeypatch):
    import motif_lite.encoders.text_gguf as text_gguf

    monkeypatch.setattr(text_gguf, "_MAX_LISTED", 1)
    with pytest.raises(CheckpointError, match=r"another text encoder.* in the file vs [^,;]+, and \d+ more; quantize"):
        read_text_encoder_gguf(wide_files["Q8_0"], tiny / "text_encoder/config.json")


def test_a_folder_is_searched_as_a_gguf_folder_is(tiny, tiny_files, tmp_path):
    """A --text-encoder-gguf folder: its one .gguf file, found in a subfolder (as `hf download --local-dir` may
    leave it) and never in .cache/, as a --gguf folder is searched."""
    from motif_lite.checkpoint import find_text_encoder_gguf

    folder = tmp_path / "te"
    (folder / "Q8_0").mkdir(parents=True)
    shutil.copy(tiny_files["Q8_0"], folder / "Q8_0" / "te.gguf")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "te.gguf").write_bytes(b"")
    assert find_text_encoder_gguf(tiny, folder).path == folder / "Q8_0" / "te.gguf"
    shutil.copy(tiny_files["Q4_K_M"], folder / "te-Q4_K_M.gguf")
    found = r"must hold exactly one .gguf file \(found: Q8_0/te.gguf, te-Q4_K_M.gguf\); pass the file"
    with pytest.raises(CheckpointError, match=rf"--text-encoder-gguf folder {folder} {found}"):
        find_text_encoder_gguf(tiny, folder)


def rewrite_without(src: Path, out: Path, drop: str, replace: dict[str, str] | None = None) -> Path:
    """A copy of a text encoder GGUF without one tensor or one (string) metadata key, and with the (string)
    metadata in `replace` changed."""
    reader = GGUFReader(src)
    strings = {k: f.contents() for k, f in reader.fields.items() if isinstance(f.contents(), str)}
    metadata = {k: v for k, v in strings.items() if k not in (drop, "general.architecture")} | (replace or {})
    tensors = {
        t.name: (np.array(t.data), t.tensor_type, tuple(int(d) for d in reversed(t.shape.tolist())))
        for t in reader.tensors
        if t.name != drop
    }
    return write_test_gguf(out, tensors, arch="t5gemma2_encoder", extra_metadata=metadata)


@pytest.mark.parametrize(
    ("edit", "message"),
    [({"hidden_size": -4}, r"config_json: text_config\.hidden_size must be an integer from 1"),
     ({"num_hidden_layers": 10**6}, r"config_json: text_config\.num_hidden_layers must be an integer from 1 to 1,024"),
     ({"hidden_activation": "none such"}, r"config_json: text_config\.hidden_activation must be an activation"),
     ({"attention_bias": "12"}, "config_json: transformers cannot read it as the text encoder.s config")],
)  # fmt: skip
def test_an_embedded_config_that_builds_no_encoder_is_refused_naming_it(tiny_files, tmp_path, edit, message):
    """The checks of a checkpoint's text_encoder/config.json apply to the copy a GGUF holds: a size torch cannot
    build ended in a traceback as the tensors were checked against the encoder it builds."""
    key = "t5gemma2_encoder.config_json"
    values = json.loads(GGUFReader(tiny_files["Q8_0"]).fields[key].contents())
    values["text_config"] |= edit
    edited = rewrite_without(tiny_files["Q8_0"], tmp_path / "edited.gguf", "", {key: json.dumps(values)})
    with pytest.raises(ConfigError, match=message):
        read_text_encoder_gguf(edited)


def test_the_wrong_component_is_named(tiny, tiny_files, tmp_path):
    zeros = {"proj_out.weight": (np.zeros((4, 32)), Q.F32, (4, 32))}
    transformer = write_test_gguf(tmp_path / "transformer.gguf", zeros)  # a motif_video GGUF
    with pytest.raises(CheckpointError, match="'motif_video': the Motif-Video transformer, for --gguf"):
        load_text_encoder(tiny, gguf=transformer)
    from motif_lite.weights.gguf_file import read_gguf

    with pytest.raises(CheckpointError, match="'t5gemma2_encoder': the T5Gemma2 text encoder, for --text-encoder-gguf"):
        read_gguf(tiny_files["Q8_0"])  # what --gguf reads
    with pytest.raises(CheckpointError, match="no such text encoder GGUF file.*--component text_encoder"):
        from motif_lite.checkpoint import locate_sources

        locate_sources(tmp_path, text_encoder_gguf=tmp_path / "missing.gguf", require_weights=False, download=False)


def test_load_needs_no_text_encoder_weights(tiny, tiny_files, tmp_path):
    root = tmp_path / "ckpt"
    shutil.copytree(tiny, root, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_text_encoder(root, dtype=torch.float32)
    assert load_text_encoder(root, dtype=torch.float32, gguf=tiny_files["Q8_0"]).encode(PROMPTS)[0].shape[0] == 2
    (root / "text_encoder/config.json").unlink()  # nothing to compare with: the embedded config alone
    assert load_text_encoder_gguf(tiny_files["Q8_0"], dtype=torch.float32).text_model.norm.weight.dtype == torch.float32


# ------------------------------------------------------------------------------------------ the pipeline

VIDEO = dict(prompt="a red fox runs through snow", negative_prompt="blurry, static", width=48, height=32, frames=9,
             steps=3, seed=0)  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint_files(checkpoint, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ckpt_gguf")
    return {t: quantize(checkpoint, out / f"te-{t}.gguf", t) for t in ("Q8_0", "Q4_K_M")}


def frames_of(pipe, folder: Path) -> np.ndarray:
    import PIL.Image

    from motif_lite.request import GenerationRequest

    folder.mkdir()
    pipe.generate(GenerationRequest(output=folder / "out_%03d.png", **VIDEO))
    return np.stack([np.asarray(PIL.Image.open(f)) for f in sorted(folder.glob("out_*.png"))]).astype(int)


@pytest.fixture(scope="module")
def unquantized_frames(checkpoint, tmp_path_factory) -> np.ndarray:
    from motif_lite import load_pipeline

    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    return frames_of(pipe, tmp_path_factory.mktemp("frames") / "plain")


def test_pipeline_frames_close_to_the_unquantized_run(checkpoint, checkpoint_files, unquantized_frames, tmp_path):
    from motif_lite import load_pipeline
    from motif_lite.runtime.streaming import TextEncoderPlacement

    diffs = {}
    for qtype, path in checkpoint_files.items():
        pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", text_encoder_gguf=path)
        assert pipe.sources.text_encoder_gguf.recipe == qtype
        frames = frames_of(pipe, tmp_path / qtype)
        diffs[qtype] = np.abs(frames - unquantized_frames).mean()
        if qtype == "Q8_0":  # streamed placement runs the packed layers too: the same frames, no hooks left
            pipe.text_placement = TextEncoderPlacement.STREAMED
            assert np.array_equal(frames_of(pipe, tmp_path / "streamed"), frames)
            hooked = [m for m in pipe.text_encoder.model.modules() if m._forward_hooks or m._forward_pre_hooks]
            assert not hooked
    # Mean |difference| in uint8 levels, measured 0.57 (Q8_0) and 1.99 (Q4_K_M); bounds about 2x.
    assert unquantized_frames.std() > 10, "degenerate video: the comparison would prove nothing"
    assert diffs["Q8_0"] < 1.1 and diffs["Q4_K_M"] < 4.0
    assert diffs["Q4_K_M"] > 2.5 * diffs["Q8_0"] > 0  # Q8_0 is much closer (and the quantized encoder really ran)


def test_run_flag_summary_dry_run_and_errors(checkpoint, checkpoint_files, tmp_path, capsys):
    from motif_lite import cli

    args = ["run", "-m", str(checkpoint), "-p", VIDEO["prompt"], "-n", "blurry", "-W", "48", "-H", "32",
            "--video-frames", "5", "--steps", "2", "--dtype", "fp32", "--device", "cpu"]  # fmt: skip
    q8 = str(checkpoint_files["Q8_0"])
    assert cli.main([*args, "-o", str(tmp_path / "a.gif"), "--text-encoder-gguf", q8]) == 0
    out = capsys.readouterr().out
    packed = file_size(read_text_encoder_gguf(q8).nbytes)  # a file's size: decimal units
    assert f"text encoder: te-Q8_0.gguf (Q8_0, {packed} packed)" in out and (tmp_path / "a.gif").is_file()
    assert cli.main([*args, "-o", str(tmp_path / "b.gif"), "--text-encoder-gguf", q8, "--dry-run"]) == 0
    assert "te-Q8_0.gguf, packed" in capsys.readouterr().out
    # A transformer GGUF given as the text encoder, next to a missing VAE file: both reported, nothing loaded.
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "vae/diffusion_pytorch_model.safetensors").unlink()
    zeros = {"proj_out.weight": (np.zeros((4, 32)), Q.F32, (4, 32))}
    transformer = write_test_gguf(tmp_path / "transformer.gguf", zeros)
    code = cli.main([*args, "-m", str(broken), "-o", str(tmp_path / "c.gif"), "--text-encoder-gguf", str(transformer)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err and not (tmp_path / "c.gif").exists()
    assert "vae/diffusion_pytorch_model.safetensors" in err and "the Motif-Video transformer, for --gguf" in err


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("placement", ["device", "streamed"])
def test_packed_encoder_on_cuda_runs_the_triton_kernel_and_leaves_nothing(wide, wide_files, placement):
    from motif_lite.runtime.kernels import FallbackOp, apply_dequant_kernels
    from motif_lite.runtime.streaming import StreamingConfig, TextEncoderPlacement, place_text_encoder

    expected, mask = load_text_encoder(wide, dtype=torch.float32, gguf=wide_files["Q4_K_M"]).encode(PROMPTS)
    encoder = load_text_encoder(wide, dtype=torch.bfloat16, gguf=wide_files["Q4_K_M"])
    apply_dequant_kernels(encoder.model, "auto")
    kernels = {m.kernel for m in encoder.model.modules() if isinstance(m, QuantizedLinear)}
    assert len(kernels) == 1 and isinstance(next(iter(kernels)), FallbackOp)
    pointers = [m.packed.data_ptr() for m in encoder.model.modules() if isinstance(m, QuantizedLinear)]
    baseline = torch.cuda.memory_allocated()
    handle = place_text_encoder(encoder.model, TextEncoderPlacement(placement), StreamingConfig("cuda"))
    embeds, cuda_mask = encoder.encode(PROMPTS)
    if handle is not None:
        handle.remove()
    encoder.offload()
    assert not next(iter(kernels)).warned  # the Triton kernel ran; no fallback to torch
    assert torch.equal(cuda_mask.cpu(), mask)
    error = float((embeds.float().cpu() - expected)[mask].norm() / expected[mask].norm())
    assert error < 0.03, error  # bf16 compute over the same packed weights
    del embeds, cuda_mask
    assert torch.cuda.memory_allocated() == baseline
    assert [m.packed.data_ptr() for m in encoder.model.modules() if isinstance(m, QuantizedLinear)] == pointers


def test_the_host_memory_advice_knows_the_text_encoder_is_a_gguf_already(checkpoint, checkpoint_files):
    # A --ram too small for this tiny model: the advice offers the text encoder's Q8_0 copy only to those without one.
    from motif_lite.errors import MotifLiteError
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest

    request = GenerationRequest("a fox", width=48, height=32, frames=9)
    cases = [(None, "--component text_encoder --type Q8_0"), (checkpoint_files["Q8_0"], "already quantized")]
    for gguf, advice in cases:
        with pytest.raises(MotifLiteError, match="host memory") as refused:
            plan_generation(request, checkpoint, device="cpu", ram_gib=1e-4, text_encoder_gguf=gguf)
        assert advice in str(refused.value), refused.value


def test_the_plan_counts_the_tuning_buffer_for_a_text_encoder_gguf_with_packed_blocks_only(checkpoint, tmp_path):
    # The fused dequantizing GEMM autotunes on packed blocks; an F32 file's linears run as plain float layers (cuBLAS),
    # so its encode stage holds no autotuning buffer. Planned for a CUDA GPU (no GPU needed): kernels "torch" is the
    # same plan without any Triton kernel, so the two encode stages differ by the buffer or by nothing.
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest
    from motif_lite.runtime.kernels import autotune_buffer_bytes

    request = GenerationRequest("a fox", width=48, height=32, frames=9)
    buffer = autotune_buffer_bytes(True)
    assert buffer > 0
    for qtype, tunes in (("F32", False), ("Q8_0", True)):
        gguf = quantize(checkpoint, tmp_path / f"te-{qtype}.gguf", qtype)

        def encode_peak(kernels: str, gguf: Path = gguf) -> int:
            plan = plan_generation(request, checkpoint, device="cuda", kernels=kernels, text_encoder_gguf=gguf)
            return next(stage for stage in plan.stages if stage.name == "encode").peak_bytes

        assert encode_peak("auto") - encode_peak("torch") == (buffer if tunes else 0), qtype


def test_the_recipe_table_of_docs_quantize_is_the_official_architectures():
    # docs/quantize.md, "The text encoder", "Recipes": each row's size and bits per weight, and how the Q8_0 file
    # splits between the token table, the SigLIP tower and the rest, counted from the official shapes.
    from full_size_text import official_text_config

    from motif_lite.quantize.recipes import plan_bytes

    shapes = {k: tuple(v.shape) for k, v in meta_encoder(official_text_config()).state_dict().items()}
    weights = sum(int(np.prod(s)) for s in shapes.values())
    doc = (Path(__file__).resolve().parent.parent / "docs/quantize.md").read_text()
    doc = doc.split("| recipe | text linears", 1)[1]  # the text encoder's table, not the transformer's above it
    for name in ("BF16", *TYPES):
        plan = plan_text_types(shapes, get_text_recipe(name))
        size = plan_bytes(shapes, plan)
        row = re.search(rf"^\| {name} \|.*\| (\d+\.\d+) GB \| (\d+\.\d+) \|$", doc, re.M)
        assert row is not None, f"docs/quantize.md has no recipe row for {name}"
        decimals = len(row[2].partition(".")[2])
        assert (float(row[1]), float(row[2])) == (round(size / 1e9, 2), round(8 * size / weights, decimals)), name
    plan = plan_text_types(shapes, get_text_recipe("Q8_0"))

    def gigabytes(names: list[str]) -> float:
        return round(plan_bytes({n: shapes[n] for n in names}, {n: plan[n] for n in names}) / 1e9, 2)

    table = [n for n in shapes if n == EMBED_KEY]
    siglip = [n for n in shapes if n.startswith("vision_tower.")]
    layers = [n for n in shapes if n.startswith("text_model.layers.")]
    rest = [n for n in shapes if n not in table + siglip]
    said = re.search(
        r"Of the Q8_0 file, (\S+) GB is the token table, (\S+) GB the SigLIP tower and (\S+) GB the rest: the 34 text "
        r"layers \((\S+) GB\), the image projector and two vectors \(the final norm, the end-of-image embedding\)\.",
        " ".join(doc.split()),
    )
    assert said is not None, "docs/quantize.md no longer splits the Q8_0 file"
    assert [float(n) for n in said.groups()] == [gigabytes(part) for part in (table, siglip, rest, layers)]
    assert {n.split(".")[0] for n in rest} == {"text_model", "multi_modal_projector"}
    vectors = sorted(n for n in rest if n.startswith("text_model.") and n not in layers)
    assert vectors == ["text_model.embed_tokens.eoi_embedding", "text_model.norm.weight"]


def test_a_checkpoint_config_saved_in_another_dtype_is_the_same_text_encoder(tiny, tiny_files, tmp_path):
    # The dtype a config.json records says how its weights were saved, not what the model is: a checkpoint saved in
    # float16 takes the file quantized from the same encoder saved otherwise.
    changed = tmp_path / "config.json"
    values = json.loads((tiny / "text_encoder/config.json").read_text())
    values["dtype"] = "float16"
    changed.write_text(json.dumps(values))
    assert read_text_encoder_gguf(tiny_files["Q8_0"], changed).recipe == "Q8_0"


def test_an_empty_tensor_beside_the_encoders_is_left_out_not_refused(tiny, tiny_files):
    # No model has a tensor with no elements: one in the file (a writer's placeholder) is left out of the checks and
    # of what loads, not named an unexpected tensor.
    from motif_lite.encoders.text_gguf import packed_text_encoder
    from motif_lite.weights.gguf_file import PackedTensor

    tensors = dict(read_text_encoder_gguf(tiny_files["Q8_0"]).tensors)
    tensors["text_model.placeholder"] = PackedTensor(torch.empty(0), Q.F32, (0,), "text_model.placeholder")
    checked = packed_text_encoder(tensors, tiny / "text_encoder/config.json", "Q8_0", tiny)
    assert "text_model.placeholder" not in checked.tensors and len(checked.tensors) == len(tensors) - 1
