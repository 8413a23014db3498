"""`run --text-encoder-quantize TYPE`: how long quantizing the T5Gemma2 text encoder as it loads takes, from a slice
of the full-size encoder scaled to the whole.

    pytest bench/bench_quantize_on_load_text.py -s            # CPU, ~1.2 GB of random bf16 weights, a minute or so

The official encoder (tests/full_size_text.py: 34 text layers, 27 SigLIP layers, a 262,144-token table; 4.30B
weights, 8.6 GB) is too large to write to disk for a benchmark here, so this writes its layers at full width, fewer
of them (4 text layers, 4 SigLIP layers, a quarter of the token table: 0.61B weights, the same tensor classes),
with random bf16 weights in the official `text_encoder/` layout, and times `quantize_text_encoder_tensors`
(quantize/on_load.py: reading the safetensors, the recipe's plan, packing every tensor in memory), what
`--text-encoder-quantize` adds to a load. The whole encoder's time is the measured rate times its 4.30B weights:
every class but the few BF16 tensors (SigLIP's fc2, the position embedding) rounds to Q8_0 at one rate, and the
slice holds the classes in about the whole's proportions. `test_peak_resident_memory` records, in a process of its
own, the peak resident memory the quantizing reaches.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from motif_lite.quantize.on_load import quantize_text_encoder_tensors

TABLE = "Quantizing the text encoder as it loads (full-width slice of the official T5Gemma2, scaled)"
OFFICIAL_WEIGHTS = 4_299_918_192  # motif_lite.sizes.OFFICIAL_TEXT_ENCODER_PARAMS


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from full_size_text import official_text_config

    from motif_lite.encoders.text_config import meta_encoder

    config = official_text_config(num_hidden_layers=4, vocab_size=262_144 // 4)
    config.vision_config.num_hidden_layers = 4
    root = tmp_path_factory.mktemp("te_on_load")
    (root / "text_encoder").mkdir()
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, meta in meta_encoder(config).state_dict().items():
        values = torch.randn(meta.shape, generator=generator) * (0.02 if meta.ndim == 2 else 1.0)
        tensors[name] = values.to(torch.bfloat16)
    save_file(tensors, root / "text_encoder/model.safetensors")
    (root / "text_encoder/config.json").write_text(json.dumps(config.to_dict()))
    return root, sum(math.prod(t.shape) for t in tensors.values())


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["Q8_0"])
def test_on_the_cpu(bench_report, checkpoint, recipe: str) -> None:
    root, weights = checkpoint
    load = os.getloadavg()[0]
    start = time.perf_counter()
    packed = quantize_text_encoder_tensors(root, recipe, device="cpu", progress=False)
    seconds = time.perf_counter() - start
    packed_gb = sum(t.nbytes for t in packed.values()) / 1e9
    scaled = seconds * OFFICIAL_WEIGHTS / weights
    print(f"{recipe}: {weights / 1e9:.3f}B weights in {seconds:.1f} s ({weights / seconds / 1e6:.1f} M/s), packed "
          f"{packed_gb:.3f} GB; the whole encoder: about {scaled:.0f} s; load average {load:.1f}")  # fmt: skip
    bench_report.add(TABLE, recipe=recipe, device="cpu", weights_b=round(weights / 1e9, 3),
                     seconds=round(seconds, 1), scaled_seconds=round(scaled), load_average=round(load, 1),
                     threads=torch.get_num_threads())  # fmt: skip


# Run in a process of its own, so that its peak resident memory is the quantizing's alone (not the fixture's).
# VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss over fork and exec (this one's would start at pytest's).
PEAK_RSS = """
import sys
from motif_lite.quantize.on_load import quantize_text_encoder_tensors
def hwm():
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
start = hwm()
packed = quantize_text_encoder_tensors(sys.argv[1], "Q8_0", device="cpu", progress=False)
print(start, hwm(), sum(t.nbytes for t in packed.values()))
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc")
def test_peak_resident_memory(bench_report, checkpoint) -> None:
    """The process's peak RSS while it quantizes: the packed blocks and the slice being quantized. The bf16 file is
    read with plain reads (quantize/sources.py), so its pages stay in the file cache, out of RSS; memory-mapped,
    the pages read so far counted until the file closed (2.33 GiB of peak where 1.24 GiB now, docs/benchmarks.md)."""
    root, _ = checkpoint
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(root)], capture_output=True, text=True, check=True)
    start, peak, packed = (int(word) for word in out.stdout.split())
    file_bytes = (root / "text_encoder/model.safetensors").stat().st_size
    print(f"Q8_0: peak RSS {peak / 2**30:.2f} GiB from {start / 2**30:.2f} GiB; file {file_bytes / 2**30:.2f} GiB, "
          f"packed {packed / 2**30:.2f} GiB")  # fmt: skip
    bench_report.add(TABLE + ", peak resident memory", recipe="Q8_0", start_gib=round(start / 2**30, 2),
                     peak_gib=round(peak / 2**30, 2), file_gib=round(file_bytes / 2**30, 2),
                     packed_gib=round(packed / 2**30, 2))  # fmt: skip
    assert peak - start > packed  # the packed blocks at least: a sanity check of the measurement, not a target
    assert peak - start < packed + file_bytes / 2  # the file's pages are not in it (they were, memory-mapped)
