"""The VAE on a GPU: motif_lite.vae vs diffusers' AutoencoderKLWan, full Wan2.1 config, random weights (CUDA only).

    pytest bench/bench_vae_gpu.py -s                          # 1280x736x121, bf16 (~3 min on an H200)
    VAE_GPU_FRAMES=33 pytest bench/bench_vae_gpu.py -s        # fewer frames
    pytest bench/bench_vae_gpu.py -s -k "not tiled and not cudnn"   # without the slower extra variants

fp32 parity with diffusers at 64x64x5 first, then bf16 decodes of 1280x736 x frames with diffusers and ours. Time
and peak CUDA memory (`max_memory_allocated` and `max_memory_reserved`, weights included) go to the report's table
"VAE decode on the GPU", with the max |ours - diffusers| of each decode.

Asserted (times and memory are report-only): fp32 parity at most 1e-4 x the output's std with 4 frames at once
(measured 0 on an H200) and 1e-2 x std frame by frame (cuDNN's TF32 algorithms for one-frame inputs: 3.3e-3 x std
measured); every bf16 decode's relative error against diffusers' float32 decode of the same latents at most
tests/bf16_bounds.py's SLACK (1.5) x diffusers' own bf16 error, as tests/test_cuda.py checks at a small size; a
tiled decode against 1.5x diffusers' own tiled bf16 error (tiling is lossy by design: tiles meet at seams).

Ours runs as `decode` (frame by frame through the upper levels, the whole clip returned on the GPU like diffusers'),
`decode_frames` with every chunk copied to the CPU as it comes (what the pipeline does: the clip never sits on the
GPU), `decode` with frame_by_frame=False (the reference's chunking), 2 and 3 exact bands both ways, tiled, and with
cuDNN's autotuned algorithms (an experiment behind the chosen defaults).
"""

from __future__ import annotations

import os
import time

import pytest
import torch
from bf16_bounds import SLACK, rel
from helpers import peak_gib, reset_peak, sync

from motif_lite.vae import VAETile, load_vae

pytestmark = pytest.mark.cuda
FRAMES = int(os.environ.get("VAE_GPU_FRAMES", "121"))
SIZE = f"1280x736x{FRAMES}"
TABLE = "VAE decode on the GPU (full Wan2.1, random weights)"


def measure(bench_report, run: str, decode, references: dict[str, torch.Tensor] | None = None, tiled: bool = False):
    """Time one decode with its peak memory; -> (output on the CPU in float32, its row). Given `references`
    (`diffusers_bf16`), the row gets max |out - diffusers' bf16| and `parity` (`tiled`: against diffusers' tiling)."""
    reset_peak()
    start = time.perf_counter()
    with torch.no_grad():
        out = decode()
    sync()
    row = dict(run=run, seconds=time.perf_counter() - start, **peak_gib())
    out = out.float().cpu()
    if references is not None:
        row["max_abs_vs_diffusers"] = (out - references["bf16"]).abs().max().item()
        row.update(parity(out, references["exact"], references["tiled" if tiled else "bf16"]))
    bench_report.add(TABLE, **row)
    return out, row


def parity(out: torch.Tensor, exact: torch.Tensor, diffusers_bf16: torch.Tensor) -> dict[str, float]:
    """A bf16 decode's relative error against diffusers' float32 decode `exact`, and its bound: SLACK x that of
    diffusers' own bf16 decode (of the same kind: tiled or not)."""
    return dict(rel_err_vs_diffusers_fp32=rel(out, exact), rel_err_bound=SLACK * rel(diffusers_bf16, exact))


def within(row: dict) -> bool:
    return row["rel_err_vs_diffusers_fp32"] <= row["rel_err_bound"]


def streamed_to_cpu(vae, z: torch.Tensor, frame_by_frame: bool = True, bands: int = 1) -> torch.Tensor:
    chunks = vae.decode_frames(z, frame_by_frame=frame_by_frame, bands=bands)
    return torch.cat([chunk.cpu() for chunk in chunks], dim=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wan21")
    AutoencoderKLWan().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    g = torch.Generator("cuda").manual_seed(0)
    return torch.randn(1, 16, (FRAMES - 1) // 4 + 1, 92, 160, device="cuda", generator=g).bfloat16()


@pytest.fixture(scope="module")
def diffusers_bf16(bench_report, folder, latents) -> dict[str, torch.Tensor]:
    """diffusers' decodes of the latents (on the CPU, float32): "bf16" and "tiled" (bf16), timed, and "exact"
    (float32 weights, the yardstick of `parity`; untimed)."""
    from diffusers import AutoencoderKLWan

    ref = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.bfloat16).eval().cuda()
    out, _ = measure(bench_report, f"diffusers bf16 {SIZE}", lambda: ref.decode(latents).sample)
    ref.enable_tiling()  # its defaults: 256-pixel tiles, 192-pixel stride (= our VAETile(32, 8))
    tiled, _ = measure(bench_report, f"diffusers tiled bf16 {SIZE}", lambda: ref.decode(latents).sample)
    ref = AutoencoderKLWan.from_pretrained(folder).eval().cuda()  # float32, in place of the bf16 weights
    with torch.no_grad():
        exact = ref.decode(latents.float()).sample.cpu()
    ref = None  # free its weights before ours load
    torch.cuda.empty_cache()
    return dict(bf16=out, tiled=tiled, exact=exact)


@pytest.fixture(scope="module")
def ours_bf16(folder):
    return load_vae(folder, dtype=torch.bfloat16, device="cuda", encoder=False)


def test_fp32_parity_64x64x5(bench_report, folder) -> None:
    from diffusers import AutoencoderKLWan

    ref = AutoencoderKLWan.from_pretrained(folder).eval().cuda()
    ours = load_vae(folder, device="cuda")
    z = torch.randn(1, 16, 2, 8, 8, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    with torch.no_grad():
        expected = ref.decode(z).sample
        errors = {}
        for frame_by_frame in (False, True):
            err = (ours.decode(z, frame_by_frame=frame_by_frame) - expected).abs().max().item()
            bench_report.add(TABLE, run=f"fp32 parity 64x64x5, frame_by_frame={frame_by_frame}",
                             max_abs_vs_diffusers=err, reference_std=expected.std().item())  # fmt: skip
            errors[frame_by_frame] = err / expected.std().item()
    # 4 frames at once is diffusers' computation; frame by frame lets cuDNN pick TF32 algorithms for one frame.
    assert errors[False] <= 1e-4 and errors[True] <= 1e-2, f"fp32 max |ours - diffusers| / std: {errors}"


VARIANTS = {
    "decode (frame by frame)": lambda vae, z: vae.decode(z),
    "decode_frames -> CPU (the pipeline's path)": lambda vae, z: streamed_to_cpu(vae, z),
    "decode frame_by_frame=False": lambda vae, z: vae.decode(z, frame_by_frame=False),
    **{
        f"decode_frames -> CPU, {bands} bands, frame_by_frame={fbf}": (
            lambda vae, z, bands=bands, fbf=fbf: streamed_to_cpu(vae, z, fbf, bands)
        )
        for bands in (2, 3)
        for fbf in (True, False)
    },
    "tiled VAETile(32, 8)": lambda vae, z: vae.decode(z, tile=VAETile(32, 8)),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_decode(bench_report, diffusers_bf16, ours_bf16, latents, variant: str) -> None:
    decode = lambda: VARIANTS[variant](ours_bf16, latents)  # noqa: E731
    out, row = measure(bench_report, f"motif_lite bf16 {SIZE} {variant}", decode, diffusers_bf16, "tiled" in variant)
    assert out.shape == diffusers_bf16["bf16"].shape
    assert within(row), row


@pytest.mark.parametrize("frame_by_frame", [True, False])
def test_bf16_decode_cudnn_benchmark(bench_report, diffusers_bf16, ours_bf16, latents, frame_by_frame: bool) -> None:
    """An experiment behind the chosen defaults: cuDNN's autotuned algorithms."""
    with torch.backends.cudnn.flags(enabled=True, benchmark=True):
        ours_bf16.decode(latents[:, :, :3], frame_by_frame=frame_by_frame)  # let cuDNN pick per shape first
        run = f"motif_lite bf16 {SIZE} decode_frames -> CPU, frame_by_frame={frame_by_frame}, cudnn.benchmark"
        _, row = measure(bench_report, run, lambda: streamed_to_cpu(ours_bf16, latents, frame_by_frame), diffusers_bf16)
    assert within(row), row
