"""One-shot GPU check of the VAE (not a pytest file): python bench/bench_vae_gpu.py [frames] [--tiled]

Full Wan2.1 config with random weights on CUDA: fp32 parity with diffusers at 64x64x5, then bf16 decode of
1280x736 x frames (default 33) with diffusers and ours; prints time and peak CUDA memory
(torch.cuda.max_memory_allocated, weights included) as JSON lines. Ours runs three ways: `decode` (frame by frame
through the upper levels, the whole clip returned on the GPU like diffusers'), `decode_frames` with every chunk
copied to the CPU as it comes (what the pipeline does: the clip never sits on the GPU), and `decode` with
frame_by_frame=False (the reference's chunking), then in 2 and 3 exact bands both ways. --tiled adds the tiled
decodes of both; --variants adds cuDNN-autotuned runs (an experiment behind the chosen defaults).
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
    torch.cuda.empty_cache()  # so the reserved peak is this run's
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.no_grad():
        out = decode()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    reserved = torch.cuda.max_memory_reserved() / 2**30
    seconds = round(time.perf_counter() - start, 2)
    print(json.dumps({"run": name, "seconds": seconds, "peak_gib": round(peak, 2), "reserved_gib": round(reserved, 2)}))
    return out


def streamed_to_cpu(vae, z: torch.Tensor, frame_by_frame: bool = True, bands: int = 1) -> torch.Tensor:
    chunks = vae.decode_frames(z, frame_by_frame=frame_by_frame, bands=bands)
    return torch.cat([chunk.cpu() for chunk in chunks], dim=2)


def main(frames: int, tiled: bool, variants: bool) -> None:
    torch.manual_seed(0)
    folder = tempfile.mkdtemp()
    AutoencoderKLWan().save_pretrained(folder)
    ref = AutoencoderKLWan.from_pretrained(folder).eval().cuda()
    ours = load_vae(folder, device="cuda")
    z = torch.randn(1, 16, 2, 8, 8, device="cuda")
    with torch.no_grad():
        expected = ref.decode(z).sample
    for frame_by_frame in (False, True):
        err = (ours.decode(z, frame_by_frame=frame_by_frame) - expected).abs().max().item()
        print(json.dumps({"run": f"fp32 parity 64x64x5, frame_by_frame={frame_by_frame}", "max_abs": err,
                          "ref_std": expected.std().item()}))  # fmt: skip
    del ref, ours
    ref = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.bfloat16).eval().cuda()
    z = torch.randn(1, 16, (frames - 1) // 4 + 1, 92, 160, device="cuda", dtype=torch.bfloat16)
    size = f"1280x736x{frames}"
    theirs = measure(f"diffusers bf16 {size}", lambda: ref.decode(z).sample).float().cpu()
    if tiled:
        ref.enable_tiling()  # its defaults: 256-pixel tiles, 192-pixel stride (= our VAETile(32, 8))
        measure(f"diffusers tiled bf16 {size}", lambda: ref.decode(z).sample)
    ref = None  # free its weights before loading ours
    torch.cuda.empty_cache()
    ours = load_vae(folder, dtype=torch.bfloat16, device="cuda", encoder=False)
    mine = measure(f"motif_lite bf16 {size} decode (frame by frame)", lambda: ours.decode(z)).float().cpu()
    print(json.dumps({"run": "bf16 ours (frame by frame) vs diffusers", "max_abs": (mine - theirs).abs().max().item(),
                      "mean_abs": (mine - theirs).abs().mean().item()}))  # fmt: skip
    del mine
    measure(f"motif_lite bf16 {size} decode_frames -> CPU (the pipeline's path)", lambda: streamed_to_cpu(ours, z))
    exact = measure(f"motif_lite bf16 {size} decode frame_by_frame=False", lambda: ours.decode(z, frame_by_frame=False))
    print(json.dumps({"run": "bf16 ours (chunk at once) vs diffusers",
                      "max_abs": (exact.float().cpu() - theirs).abs().max().item()}))  # fmt: skip
    del exact
    for bands in (2, 3):  # exact bands, one band's caches at a time; frames collect in CPU memory
        for fbf in (True, False):
            banded = measure(f"motif_lite bf16 {size} decode_frames -> CPU, {bands} bands, frame_by_frame={fbf}",
                             lambda bands=bands, fbf=fbf: streamed_to_cpu(ours, z, fbf, bands))  # fmt: skip
            print(json.dumps({"run": f"bf16 ours ({bands} bands, frame_by_frame={fbf}) vs diffusers",
                              "max_abs": (banded.float() - theirs).abs().max().item()}))  # fmt: skip
            del banded
    if tiled:
        measure(f"motif_lite tiled(32,8) bf16 {size}", lambda: ours.decode(z, tile=VAETile(32, 8)))
    if variants:
        # An experiment behind the chosen defaults: cuDNN's autotuned algorithms.
        with torch.backends.cudnn.flags(enabled=True, benchmark=True):
            for fbf in (True, False):
                ours.decode(z[:, :, :3], frame_by_frame=fbf)  # let cuDNN pick per shape first
                measure(f"motif_lite bf16 {size} decode_frames -> CPU, frame_by_frame={fbf}, cudnn.benchmark",
                        lambda fbf=fbf: streamed_to_cpu(ours, z, fbf))  # fmt: skip


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 33, "--tiled" in sys.argv, "--variants" in sys.argv)
