"""Host memory of loading weights stored in another dtype (a bf16 checkpoint loaded in float32, the CPU VAE's
default): the peak resident memory of a fresh process, against the size of what it loaded.

Cast from the memory-mapped file, each tensor's source pages stayed mapped (and counted in the process's resident
memory) until every tensor was read: the peak was the float32 weights plus the whole bf16 file, 1.5 times what
was loaded. Read with plain reads and cast one at a time, the peak is the loaded weights and one tensor more.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import save, save_file
from tiny_transformer import make_reference

from motif_lite.errors import CheckpointError
from motif_lite.weights.loader import load_transformer
from motif_lite.weights.safetensors_files import TensorFiles, read_tensor_refs

MiB = 2**20
# Above the loaded weights: one tensor read and not yet freed, the allocator's leftovers and the loaders' own
# code. The copy this guards against is half the weights (a bf16 file under float32 weights): 60 MiB and more here.
SLACK_BYTES = 24 * MiB

CHILD = """
import json, sys
from pathlib import Path
import torch

def status(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) * 1024

from motif_lite.vae.loader import load_vae
from motif_lite.weights.loader import load_transformer

what, folder = sys.argv[1:]
before = status("VmRSS")
if what == "transformer":
    model = load_transformer(folder, dtype=torch.float32)
else:
    model = load_vae(folder, dtype=torch.float32)
loaded = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
print(json.dumps({"peak_above_start": status("VmHWM") - before, "loaded": loaded}))
"""


def peak_of_loading(what: str, folder: Path) -> dict[str, int]:
    """Load `what` from `folder` in float32 in a fresh process: its peak RSS above the RSS before the load, and
    the bytes of the loaded model's tensors."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(folder)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory) -> Path:
    """A 768-wide transformer (~125 MiB in float32) and a small Wan2.1 VAE, both stored in bf16 as the official
    checkpoint is."""
    root = tmp_path_factory.mktemp("bf16")
    transformer = make_reference(
        0, num_attention_heads=6, attention_head_dim=128, num_layers=1, num_single_layers=1, num_decoder_layers=1,
        rope_axes_dim=(16, 56, 56),
    )  # fmt: skip
    transformer.to(torch.bfloat16).save_pretrained(root / "transformer")
    torch.manual_seed(0)
    AutoencoderKLWan(base_dim=48, z_dim=16).to(torch.bfloat16).save_pretrained(root / "vae")
    return root


@pytest.mark.parametrize("what", ["transformer", "vae"])
def test_float32_load_of_a_bf16_file_holds_the_weights_once(bf16_checkpoint, what):
    measured = peak_of_loading(what, bf16_checkpoint)
    assert measured["loaded"] > 100 * MiB  # big enough that the bf16 file's pages (half of it) would show
    assert measured["peak_above_start"] <= measured["loaded"] + SLACK_BYTES, (
        f"loading {measured['loaded'] / MiB:.0f} MiB of float32 weights peaked "
        f"{measured['peak_above_start'] / MiB:.0f} MiB above the start"
    )


def test_a_tensor_read_and_cast_equals_the_mapped_one_cast(tmp_path):
    # Shards of a few KB: many tensors at offsets other than the data's start, in several files.
    reference = make_reference(0).to(torch.bfloat16)
    reference.save_pretrained(tmp_path / "transformer", max_shard_size="40KB")
    assert len(list((tmp_path / "transformer").glob("*.safetensors"))) > 2
    read = load_transformer(tmp_path, dtype=torch.float32).state_dict()  # read with plain reads, then cast
    mapped = load_transformer(tmp_path, dtype=torch.bfloat16).state_dict()  # views of the mapped files
    assert read.keys() == mapped.keys()
    for name, tensor in read.items():
        assert tensor.dtype == torch.float32 and torch.equal(tensor, mapped[name].float()), name


def replace_file(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Writes `tensors` beside `path` and renames them into place, as a re-download does: a new file under the name."""
    new = path.with_suffix(".new")
    save_file(tensors, new)
    os.replace(new, path)


@pytest.mark.parametrize("cast_to", [None, torch.float32], ids=["mapped", "read-and-cast"])
def test_a_file_replaced_during_a_load_gives_the_weights_of_one_version(tmp_path, cast_to):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(4, dtype=torch.bfloat16), "b": torch.zeros(4, dtype=torch.bfloat16)}, path)
    refs = read_tensor_refs([path])
    with TensorFiles() as files:
        a = files.load(refs["a"], cast_to)
        replace_file(path, {"a": torch.ones(4, dtype=torch.bfloat16), "b": torch.ones(4, dtype=torch.bfloat16)})
        b = files.load(refs["b"], cast_to)
    assert a.tolist() == b.tolist() == [0.0] * 4  # both from the file first opened


@pytest.mark.parametrize(
    "new_tensors",
    [
        {"w": torch.ones(4, 4)},
        {"w": torch.ones(2, 8, dtype=torch.bfloat16)},
        {"v": torch.ones(4, 4, dtype=torch.bfloat16)},
    ],
    ids=["another-dtype", "another-shape", "tensor-gone"],
)
def test_a_file_changed_after_its_header_was_read_is_a_clear_error(tmp_path, new_tensors):
    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(4, 4, dtype=torch.bfloat16)}, path)
    refs = read_tensor_refs([path])  # the loader's look at the headers
    save_file(new_tensors, path)  # re-exported before the weights are read
    changed = re.escape(f"{path}: the file changed while it was read")
    with TensorFiles() as files, pytest.raises(CheckpointError, match=changed):
        files.load(refs["w"], torch.float32)


def test_a_file_replaced_between_a_mapped_and_a_read_tensor_is_refused(tmp_path):
    # Loaded in float32, the F32 norm is mapped and the BF16 weight read and cast: two opens of one file.
    path = tmp_path / "w.safetensors"
    save_file({"norm": torch.zeros(4), "weight": torch.zeros(4, dtype=torch.bfloat16)}, path)
    refs = read_tensor_refs([path])
    with TensorFiles() as files:
        files.load(refs["norm"], torch.float32)
        replace_file(path, {"norm": torch.ones(4), "weight": torch.ones(4, dtype=torch.bfloat16)})
        with pytest.raises(CheckpointError, match="changed while it was read"):
            files.load(refs["weight"], torch.float32)


def test_a_file_rewritten_in_place_between_a_mapped_and_a_read_tensor_is_refused(tmp_path):
    # Rewritten in place (the same inode and size: an export writing over its own file), the file is told from the
    # one first opened by its modification time.
    path = tmp_path / "w.safetensors"
    save_file({"norm": torch.zeros(4), "weight": torch.zeros(4, dtype=torch.bfloat16)}, path)
    refs = read_tensor_refs([path])
    with TensorFiles() as files:
        files.load(refs["norm"], torch.float32)
        before = os.stat(path)
        data = save({"norm": torch.ones(4), "weight": torch.ones(4, dtype=torch.bfloat16)})
        assert len(data) == before.st_size
        with open(path, "r+b") as f:
            f.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        assert os.stat(path).st_ino == before.st_ino
        with pytest.raises(CheckpointError, match="changed while it was read"):
            files.load(refs["weight"], torch.float32)
