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
from pathlib import Path
from shutil import copytree

import pytest
import torch
from safetensors.torch import save_file
from tiny_text import make_tiny_text_encoder
from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

from motif_lite.encoders.text import load_text_encoder
from motif_lite.encoders.text_weights import weights_cast_to

MiB = 2**20
# Above the loaded weights: one tensor read and not yet freed, the tokenizer, the allocator's leftovers. The copy
# this guards against is the bf16 file, half the float32 weights: 80 MiB and more here.
SLACK_BYTES = 32 * MiB

CHILD = """
import json, sys
from pathlib import Path
import torch
from safetensors.torch import save_file

def status(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) * 1024

from motif_lite.encoders.text import load_text_encoder

before = status("VmRSS")
model = load_text_encoder(sys.argv[1], dtype=torch.float32).model
loaded = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
print(json.dumps({"peak_above_start": status("VmHWM") - before, "loaded": loaded}))
"""


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
    assert (weights_cast_to(folder / "text_encoder", loaded) is None) == (stored == loaded)
    ours = load_text_encoder(folder, dtype=loaded).model
    theirs = T5Gemma2Encoder.from_pretrained(folder / "text_encoder", dtype=loaded)
    ours_tensors = dict(ours.named_buffers()) | ours.state_dict()  # non-persistent buffers too
    theirs_tensors = dict(theirs.named_buffers()) | theirs.state_dict()
    assert ours_tensors.keys() == theirs_tensors.keys()
    for name, tensor in ours_tensors.items():
        other = theirs_tensors[name]
        assert tensor.dtype == other.dtype and torch.equal(tensor, other), name


def test_one_float_tensor_in_another_dtype_is_enough_to_read_and_cast_the_file(tmp_path):
    # A norm kept in float32 beside bf16 weights, loaded in bf16: transformers would cast it from the mapped file
    # too. Tensors that are no float (token ids) stay as stored; a folder without the file is left to transformers.
    weights = {"weight": torch.ones(4, dtype=torch.bfloat16), "ids": torch.arange(3)}
    save_file(weights, tmp_path / "model.safetensors")
    assert weights_cast_to(tmp_path, torch.bfloat16) is None
    save_file({**weights, "norm": torch.ones(2)}, tmp_path / "model.safetensors")
    cast = weights_cast_to(tmp_path, torch.bfloat16)
    assert {name: tensor.dtype for name, tensor in cast.items()} == {
        "weight": torch.bfloat16, "norm": torch.bfloat16, "ids": torch.int64
    }  # fmt: skip
    assert weights_cast_to(tmp_path / "elsewhere", torch.bfloat16) is None


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
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["loaded"] > 150 * MiB
    assert measured["peak_above_start"] <= measured["loaded"] + SLACK_BYTES, (
        f"loading {measured['loaded'] / MiB:.0f} MiB of float32 weights peaked "
        f"{measured['peak_above_start'] / MiB:.0f} MiB above the start"
    )
