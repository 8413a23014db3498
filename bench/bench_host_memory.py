"""Host memory per stage on the CPU (docs/benchmarks.md, "Host memory per stage"), on a "medium" random checkpoint.

    pytest bench/bench_host_memory.py -s      # ~10 min on 2 cores, ~3 GB of disk in pytest's tmp folder

The checkpoint (`medium_checkpoint`): random weights in the official layout, all stored in bf16: the transformer at
full width (12 x 128 heads) with 2 dual-stream, 2 single-stream and 1 decoder block, T5Gemma2 at the official width
and vocabulary with 2 text and 2 SigLIP layers, the full Wan2.1 VAE, and the transformer as a Q4_K_M GGUF made by
`python -m motif_lite.quantize`. Each stage loads (and uses) one component in a fresh process: its peak RSS
(`VmHWM`) above the RSS after the imports, and the peaks of the file pages and anonymous memory (`RssFile`,
`RssAnon`), sampled every 5 ms by a thread. The whole runs are `motif-lite run --device cpu` in a child process:
their peak RSS (as `/usr/bin/time -v` gives it) includes the imports.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

GiB = 2**30
PROMPT = "a red fox running through the snow"

# One stage in a fresh process: argv is the stage, the checkpoint folder, the GGUF file and the prompt; prints one
# JSON line.
STAGE = """
import json, sys, threading, time
from pathlib import Path

def status():
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM", "RssFile", "RssAnon")}

peaks = {"RssFile": 0, "RssAnon": 0}
def sample():
    while True:
        now = status()
        for key in peaks:
            peaks[key] = max(peaks[key], now[key])
        time.sleep(0.005)

import torch
from motif_lite.encoders.text import load_text_encoder
from motif_lite.vae.loader import load_vae
from motif_lite.weights.loader import load_transformer

stage, folder, gguf, prompt = sys.argv[1:]
imports = status()["VmRSS"]
threading.Thread(target=sample, daemon=True).start()
with torch.no_grad():
    if stage == "transformer, safetensors, bf16":
        model = load_transformer(folder, torch.bfloat16)
    elif stage == "transformer, safetensors, float32":
        model = load_transformer(folder, torch.float32)
    elif stage == "transformer, GGUF Q4_K_M, bf16":
        model = load_transformer(gguf, torch.bfloat16)
    elif stage.startswith("text encoder"):
        model = load_text_encoder(folder, torch.float32 if "float32" in stage else torch.bfloat16)
        if "encoded" in stage:
            model.encode([prompt])
    elif stage == "VAE decoder, float32":
        model = load_vae(folder, torch.float32, encoder=False)
time.sleep(0.02)  # a last sample
print(json.dumps({"imports": imports, "peak": status()["VmHWM"], **peaks}))
"""

STAGES = [
    "transformer, safetensors, bf16",
    "transformer, safetensors, float32",
    "transformer, GGUF Q4_K_M, bf16",
    "text encoder, bf16",
    "text encoder, bf16, one prompt encoded",
    "text encoder, float32",
    "VAE decoder, float32",
]


@pytest.fixture(scope="module")
def medium_checkpoint(tmp_path_factory) -> Path:
    from diffusers import AutoencoderKLWan
    from full_size_text import OFFICIAL_TEXT, OFFICIAL_VISION
    from tiny_pipeline import make_tiny_checkpoint
    from tiny_transformer import make_reference
    from transformers import T5Gemma2Encoder, T5Gemma2EncoderConfig

    root = tmp_path_factory.mktemp("medium") / "checkpoint"
    make_tiny_checkpoint(root)  # the layout, scheduler, guider and tokenizer; then larger components in its place
    text = {**OFFICIAL_TEXT, "num_hidden_layers": 2, "layer_types": OFFICIAL_TEXT["layer_types"][:2]}
    config = T5Gemma2EncoderConfig(
        text_config=text, vision_config={**OFFICIAL_VISION, "num_hidden_layers": 2}, mm_tokens_per_image=256
    )
    torch.manual_seed(0)
    for name, model in [
        ("text_encoder", lambda: T5Gemma2Encoder(config)),
        ("transformer", lambda: make_reference(
            0, num_attention_heads=12, attention_head_dim=128, num_layers=2, num_single_layers=2,
            num_decoder_layers=1, text_embed_dim=2560, image_embed_dim=1152, rope_axes_dim=(16, 56, 56),
        )),
        ("vae", lambda: AutoencoderKLWan(z_dim=16)),
    ]:  # fmt: skip
        shutil.rmtree(root / name)
        model().to(torch.bfloat16).save_pretrained(root / name)  # one at a time: the text encoder alone is 3.3 GB
    gguf = root.parent / "transformer-Q4_K_M.gguf"
    command = [sys.executable, "-m", "motif_lite.quantize", str(root), "-o", str(gguf), "--type", "Q4_K_M"]
    subprocess.run(command, check=True, capture_output=True)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_host_memory_of_a_stage(medium_checkpoint, stage, bench_report):
    gguf = medium_checkpoint.parent / "transformer-Q4_K_M.gguf"
    done = subprocess.run([sys.executable, "-c", STAGE, stage, str(medium_checkpoint), str(gguf), PROMPT],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    bench_report.add(
        "Host memory per stage (CPU)", stage=stage, imports_gib=round(measured["imports"] / GiB, 2),
        peak_above_imports_gib=round((measured["peak"] - measured["imports"]) / GiB, 2),
        rss_file_peak_gib=round(measured["RssFile"] / GiB, 2), rss_anon_peak_gib=round(measured["RssAnon"] / GiB, 2),
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_host_memory_of_a_whole_run(medium_checkpoint, dtype, tmp_path, bench_report):
    command = [
        sys.executable, "-m", "motif_lite", "run", "-m", str(medium_checkpoint), "-p", PROMPT, "-W", "128", "-H",
        "128", "--video-frames", "9", "--steps", "1", "--device", "cpu", "--dtype", dtype, "-s", "0", "-y",
        "-o", str(tmp_path / "out.mp4"),
    ]  # fmt: skip
    # A wrapper waits for the run: its children's peak RSS is the run's alone (this process has waited for others).
    wrapper = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); " \
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    peak = int(done.stdout.strip().splitlines()[-1])
    bench_report.add("Host memory of a whole run (CPU, 128x128x9, 1 step)", dtype=dtype, peak_gib=round(peak / GiB, 2))
