"""One-shot GPU check of the VAE (not a pytest file): python bench/bench_vae_gpu.py [frames]

Full Wan2.1 config with random weights on CUDA: fp32 parity with diffusers at 64x64x5, then bf16 decode of
1280x736 x frames (default 33) with diffusers and ours, untiled and tiled; prints time and peak CUDA memory
(torch.cuda.max_memory_allocated, weights included) as JSON lines.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time

import torch
from diffusers import AutoencoderKLWan

from motif_lite.vae import VAETile, load_vae


def measure(name: str, decode) -> torch.Tensor:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad():
        out = decode()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps({"run": name, "seconds": round(time.perf_counter() - start, 2), "peak_gib": round(peak, 2)}))
    return out


def main(frames: int) -> None:
    torch.manual_seed(0)
    folder = tempfile.mkdtemp()
    AutoencoderKLWan().save_pretrained(folder)
    ref = AutoencoderKLWan.from_pretrained(folder).eval().cuda()
    ours = load_vae(folder, device="cuda")
    z = torch.randn(1, 16, 2, 8, 8, device="cuda")
    with torch.no_grad():
        expected = ref.decode(z).sample
    err = (ours.decode(z) - expected).abs().max().item()
    print(json.dumps({"run": "fp32 parity 64x64x5", "max_abs": err, "ref_std": expected.std().item()}))
    del ref, ours
    ref = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.bfloat16).eval().cuda()
    z = torch.randn(1, 16, (frames - 1) // 4 + 1, 92, 160, device="cuda", dtype=torch.bfloat16)
    theirs = measure(f"diffusers bf16 1280x736x{frames}", lambda: ref.decode(z).sample).float().cpu()
    ref.enable_tiling()  # its defaults: 256-pixel tiles, 192-pixel stride (= our VAETile(32, 8))
    measure(f"diffusers tiled bf16 1280x736x{frames}", lambda: ref.decode(z).sample)
    ref = None  # free its weights before loading ours
    torch.cuda.empty_cache()
    ours = load_vae(folder, dtype=torch.bfloat16, device="cuda", encoder=False)
    mine = measure(f"motif_lite bf16 1280x736x{frames}", lambda: ours.decode(z)).float().cpu()
    print(json.dumps({"run": "bf16 ours vs diffusers", "max_abs": (mine - theirs).abs().max().item()}))
    measure(f"motif_lite tiled(32,8) bf16 1280x736x{frames}", lambda: ours.decode(z, tile=VAETile(32, 8)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 33)
