"""The text encoder loaded in another dtype than its file stores (the official bf16 file in a float32 CPU run):
the same weights as transformers' `from_pretrained` gives, without the file's pages held beside them.

transformers casts each tensor from the memory-mapped file and keeps the file open until the last tensor: the peak
was the float32 weights plus the whole bf16 file. Read and cast one tensor at a time, it is the weights and one
tensor more.
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from pathlib import Path
from shutil import copyfile, copytree

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_text import make_tiny_text_encoder
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.encoders.text import load_text_encoder
from motif_lite.encoders.text_weights import weights_cast_to
from motif_lite.errors import CheckpointError

MiB = 2**20
# Above the loaded weights: one tensor read and not yet freed, the tokenizer, the allocator's leftovers. The copy
# this guards against is the bf16 file, half the float32 weights: 80 MiB and more here.
SLACK_BYTES = 32 * MiB

CHILD = """
import json, sys
from pathlib import Path
import torch

def status(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) * 1024

from motif_lite.encoders.text import load_text_encoder
from motif_lite.errors import CheckpointError

before = status("VmRSS")
try:
    model = load_text_encoder(sys.argv[1], dtype=torch.float32).model
except Exception as exc:  # a refusal: its message, and how much it read first
    print(json.dumps({"peak_above_start": status("VmHWM") - before, "error": str(exc)}))
    raise SystemExit(0)
loaded = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
print(json.dumps({"peak_above_start": status("VmHWM") - before, "loaded": loaded}))
"""


def measured_load(folder: Path) -> dict:
    """What CHILD reports for a float32 load of `folder`, in a process of its own (its peak is the load's)."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def without_text_encoder(root: Path, folder: Path) -> Path:
    """A copy of checkpoint `root` in `folder`, whose text_encoder/ folder is empty."""
    copytree(root, folder, ignore=lambda where, names: names if where.endswith("text_encoder") else [])
    return folder


def stored_as(root: Path, folder: Path, dtype: torch.dtype, max_shard_size: str | None) -> Path:
    """`root`'s text encoder saved again in `dtype` (in shards of `max_shard_size`) in a checkpoint in `folder`."""
    folder = without_text_encoder(root, folder)
    model = T5Gemma2Encoder.from_pretrained(root / "text_encoder", dtype=torch.float32)
    model.to(dtype).save_pretrained(folder / "text_encoder", max_shard_size=max_shard_size or "50GB")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "checkpoint"
    make_tiny_text_encoder(root)  # stored in float32
    return root


@pytest.mark.parametrize(
    ("stored", "loaded", "shards"),
    [
        (torch.bfloat16, torch.float32, None),
        (torch.bfloat16, torch.float32, "20KB"),
        (torch.bfloat16, torch.float16, None),
        (torch.float32, torch.bfloat16, None),
        (torch.bfloat16, torch.bfloat16, None),
    ],
)
def test_weights_and_buffers_equal_what_transformers_loads(tiny, tmp_path, stored, loaded, shards):
    folder = stored_as(tiny, tmp_path / "checkpoint", stored, shards)
    if shards:
        assert len(list((folder / "text_encoder").glob("*.safetensors"))) > 2
    # Read and cast where a float tensor is stored in another dtype (shards too); else transformers' mapped load.
    config = T5Gemma2EncoderConfig.from_pretrained(folder / "text_encoder")
    assert (weights_cast_to(folder / "text_encoder", loaded, config) is None) == (stored == loaded)
    ours = load_text_encoder(folder, dtype=loaded).model
    theirs = T5Gemma2Encoder.from_pretrained(folder / "text_encoder", dtype=loaded)
    ours_tensors = dict(ours.named_buffers()) | ours.state_dict()  # non-persistent buffers too
    theirs_tensors = dict(theirs.named_buffers()) | theirs.state_dict()
    assert ours_tensors.keys() == theirs_tensors.keys()
    for name, tensor in ours_tensors.items():
        other = theirs_tensors[name]
        assert tensor.dtype == other.dtype and torch.equal(tensor, other), name


def test_one_float_tensor_in_another_dtype_is_enough_to_read_and_cast_the_file(tiny, tmp_path):
    # A norm kept in float32 beside bf16 weights, loaded in bf16: transformers would cast it from the mapped file
    # too. A tensor the encoder does not take (token ids) stays unread, as stored; a folder without the file is
    # left to transformers.
    encoder = stored_as(tiny, tmp_path / "checkpoint", torch.bfloat16, None) / "text_encoder"
    config = T5Gemma2EncoderConfig.from_pretrained(encoder)
    file = encoder / "model.safetensors"
    weights = load_file(file) | {"ids": torch.arange(3)}
    save_file(weights, file, metadata={"format": "pt"})
    assert weights_cast_to(encoder, torch.bfloat16, config) is None
    norm = next(name for name in weights if name.endswith("norm.weight"))
    save_file(weights | {norm: weights[norm].float()}, file, metadata={"format": "pt"})
    cast = weights_cast_to(encoder, torch.bfloat16, config)
    assert cast is not None and cast.keys() == weights.keys()
    assert cast[norm].dtype == torch.bfloat16 and torch.equal(cast[norm], weights[norm])
    assert all(cast[name].dtype == torch.bfloat16 for name in weights if name != "ids")
    assert cast["ids"].dtype == torch.int64 and cast["ids"].is_meta
    assert weights_cast_to(tmp_path / "elsewhere", torch.bfloat16, config) is None


def test_a_float32_load_of_a_bf16_file_holds_the_weights_once(tiny, tmp_path):
    # ~180 MiB in float32 in tensors of 16 MiB at most: the bf16 file beside them (half) would show.
    folder = without_text_encoder(tiny, tmp_path / "checkpoint")
    text = {
        "vocab_size": 4096, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 128, "query_pre_attn_scalar": 128,
        "layer_types": ["full_attention"] * 3, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
        "dropout_rate": 0.0,
    }  # fmt: skip
    vision = {"model_type": "siglip_vision_model", "hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 1,
              "num_attention_heads": 2, "image_size": 28, "patch_size": 7, "vision_use_head": False}  # fmt: skip
    config = T5Gemma2EncoderConfig(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    T5Gemma2Encoder(config).to(torch.bfloat16).save_pretrained(folder / "text_encoder")
    measured = measured_load(folder)
    assert measured["loaded"] > 150 * MiB
    assert measured["peak_above_start"] <= measured["loaded"] + SLACK_BYTES, (
        f"loading {measured['loaded'] / MiB:.0f} MiB of float32 weights peaked "
        f"{measured['peak_above_start'] / MiB:.0f} MiB above the start"
    )


def with_file_tensors(root: Path, folder: Path, prefix: str, extra: dict[str, torch.Tensor]) -> Path:
    """`root`'s text encoder in bf16 with its file's names behind `prefix`, plus the `extra` tensors (a whole
    T5Gemma2 file's decoder), in a checkpoint in `folder`."""
    folder = stored_as(root, folder, torch.bfloat16, None)
    file = folder / "text_encoder" / "model.safetensors"
    tensors = {prefix + name: tensor for name, tensor in load_file(file).items()} | extra
    save_file(tensors, file, metadata={"format": "pt"})
    return folder


# 64 MiB in bf16, 128 MiB once cast to float32: far above the tiny encoder and the slack, if it were read.
UNUSED = {"decoder.embed_tokens.weight": torch.zeros(8192, 4096, dtype=torch.bfloat16)}


def test_a_tensor_the_encoder_does_not_take_is_not_read(tiny, tmp_path):
    folder = with_file_tensors(tiny, tmp_path / "checkpoint", "", UNUSED)
    measured = measured_load(folder)
    assert "error" not in measured, measured
    assert measured["peak_above_start"] <= measured["loaded"] + SLACK_BYTES, (
        f"loading {measured['loaded'] / MiB:.0f} MiB peaked {measured['peak_above_start'] / MiB:.0f} MiB above the "
        "start: the unused tensor was read"
    )


def test_a_whole_t5gemma2_file_is_refused_before_it_is_read(tiny, tmp_path):
    # A T5Gemma2 model's file names its encoder "model.encoder.*": none of the encoder's own names.
    folder = with_file_tensors(
        tiny, tmp_path / "checkpoint", "model.encoder.", {f"model.{k}": v for k, v in UNUSED.items()}
    )
    measured = measured_load(folder)
    assert measured["peak_above_start"] <= SLACK_BYTES, measured
    # The same refusal as from transformers' own load of the file (stored dtype: no cast, the mapped file).
    with pytest.raises(CheckpointError) as theirs:
        load_text_encoder(folder, dtype=torch.bfloat16)
    assert measured["error"] == str(theirs.value)


def test_the_single_file_is_read_before_a_shard_index(tiny, tmp_path):
    # Both layouts in one folder (a download that moved from one to the other): transformers reads model.safetensors.
    folder = stored_as(tiny, tmp_path / "checkpoint", torch.bfloat16, "20KB")
    other = tmp_path / "other"
    make_tiny_text_encoder(other, seed=1)
    single = stored_as(other, tmp_path / "other-bf16", torch.bfloat16, None)
    copyfile(single / "text_encoder" / "model.safetensors", folder / "text_encoder" / "model.safetensors")
    ours = load_text_encoder(folder, dtype=torch.float32).model.state_dict()
    theirs = T5Gemma2Encoder.from_pretrained(folder / "text_encoder", dtype=torch.float32).state_dict()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name


def test_a_failed_load_keeps_no_weights_alive_in_its_error(tiny, tmp_path):
    folder = stored_as(tiny, tmp_path / "checkpoint", torch.bfloat16, None)
    file = folder / "text_encoder" / "model.safetensors"
    tensors = load_file(file)
    name = next(name for name in tensors if name.endswith("norm.weight"))
    tensors[name] = torch.zeros(tensors[name].numel() + 1, dtype=torch.bfloat16)  # a shape transformers refuses
    save_file(tensors, file, metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="ignore_mismatched_sizes") as refused:
        load_text_encoder(folder, dtype=torch.float32)
    error: BaseException | None = refused.value
    while error is not None:  # the error and its causes, whose frames a caller keeps alive with it
        for frame, _ in traceback.walk_tb(error.__traceback__):
            if frame.f_code.co_filename == __file__:  # this test's own frame, which holds the file's tensors
                continue
            for local, value in frame.f_locals.items():
                held = isinstance(value, dict) and any(isinstance(t, torch.Tensor) for t in value.values())
                assert not held, f"{frame.f_code.co_name}'s {local} keeps the loaded weights"
        error = error.__cause__
