"""Planner accuracy: every estimate against what a run really uses (docs/memory.md, "Planner accuracy").

    pytest bench/bench_planner.py -m "not slow"        # CPU, quick: one case of each check (~2 min)
    pytest bench/bench_planner.py -m "not cuda"        # CPU: every case (~10 min on 2 busy cores)
    pytest bench/bench_planner.py -m cuda              # GPU: whole T2V per stage, the 6 GB plan vs resident

CPU parts (any machine):
- transformer and VAE-encode activations: the planner's formula against the bytes of tensors a forward keeps
  alive together, counted exactly (tests/live_memory.py), at the full hidden width with fewer blocks;
- host memory: the plan's host estimate against the peak RSS (VmHWM) of a fresh process that plans, loads and
  generates on the CPU, for a tiny checkpoint and a moderately sized one (full Wan2.1 VAE, a 768-wide transformer).
GPU part (skips without CUDA): the whole text-to-video at PLANNER_BENCH_SIZE (default 1280x736x121) with random
full-size weights (Q4_K transformer, T5Gemma2 with the official config, bf16 VAE; bench/gpu_t2v.py builds them),
PLANNER_BENCH_STEPS steps (default 1), once with the plan for PLANNER_BENCH_VRAM GiB (default 6) and once all
resident: per stage the peak allocated and reserved memory against the plan, and the time of a 50-step run
projected from the stage times. Each estimate must be within 10 % of its measurement. Every row goes to the shared
benchmark report (bench/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as `motif-lite run` sets it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # also when run as the host worker
SLOW = pytest.mark.slow

from live_memory import LiveTensors, estimate_and_live_peak  # noqa: E402

from motif_lite.config import TransformerConfig  # noqa: E402
from motif_lite.model.transformer import MotifVideoTransformer  # noqa: E402
from motif_lite.runtime import planner  # noqa: E402
from motif_lite.runtime.vae_memory import VAE_ENCODE_ELEMS_PER_PIXEL  # noqa: E402

GiB = 1024**3
TOLERANCE = 0.10
RESULTS: dict[str, dict] = {}
ACCURACY = "Planner accuracy: estimate vs measured"


def within(estimate: float, measured: float) -> bool:
    return abs(estimate - measured) <= TOLERANCE * measured


# -- CPU: activation formulas --

# D = 1536, F = 6144, 12 heads; two dual-stream blocks as in the real model (from the second on, a block's inputs
# are not the embedded streams the forward also holds).
WIDE = TransformerConfig(num_layers=2, num_single_layers=2, num_decoder_layers=1)


@pytest.fixture(scope="module")
def wide_model():
    torch.manual_seed(0)
    return MotifVideoTransformer(WIDE).eval().requires_grad_(False).to(torch.bfloat16)


# (latent frames, height, width, text tokens): N = 1152 video tokens with a short prompt, and a one-frame clip
# (N = 96) with a prompt longer than the video (T' = 1200), where the context's phases set the peak.
SHORT_TEXT, LONG_TEXT = (3, 32, 48, 64), (1, 16, 24, 1200)


@pytest.mark.parametrize(
    ("chunk", "ops", "shape", "heads"),
    [(256, "fused", SHORT_TEXT, None), (256, "fused", SHORT_TEXT, 4), *(pytest.param(*case, marks=SLOW) for case in [
        (None, "fused", SHORT_TEXT, None), (1024, "fused", SHORT_TEXT, None), (None, "torch", SHORT_TEXT, None),
        (1024, "torch", SHORT_TEXT, None), (256, "torch", SHORT_TEXT, None), (256, "fused", LONG_TEXT, None),
        (256, "torch", LONG_TEXT, None), (256, "torch", SHORT_TEXT, 3), (256, "fused", LONG_TEXT, 6),
    ])],
)  # fmt: skip
def test_transformer_activations(bench_report, wide_model, chunk, ops, shape, heads):
    frames, height, width, text_tokens = shape
    latent = (frames, height, width)
    estimate, live_peak = estimate_and_live_peak(wide_model, chunk, ops, latent, text_tokens, 0, heads)
    n = frames * height * width // 4
    groups = "" if heads is None else f", {heads} of 12 heads per call"
    check = f"transformer, D 1536, N {n}, T' {text_tokens}, chunk {chunk}, {ops} norms{groups}"
    mib = dict(estimate_mib=estimate / 2**20, measured_mib=live_peak / 2**20)
    bench_report.add(ACCURACY, check=check, **mib, ratio=estimate / live_peak)
    assert within(estimate, live_peak)


# Every combination on a narrow model (D = 256 with the real head size and MLP ratio; the formulas count in units
# of D and F): video against context length, pieces, norms, and the cross-attention layouts (the diffusers one
# projects its own text K/V; the shared ones copy the block's), also in the dual-stream blocks (optional).
SWEEP_VIDEO = ((1, 8, 16), (2, 16, 32), (3, 16, 32))  # N = 32, 256, 384
SWEEP_TEXT = (40, 300, 1000)
SWEEP_IMAGE = (0, 100)  # image-to-video's image tokens join the context, not the cross-attention's keys


@SLOW
@pytest.mark.parametrize(("layout", "dual_cross"), [("diffusers", False), ("original", False), ("diffusers", True),
                                                   ("original", True)])  # fmt: skip
def test_transformer_activations_sweep(bench_report, layout, dual_cross):
    config = TransformerConfig(num_attention_heads=2, num_layers=2, num_single_layers=2, num_decoder_layers=1,
                               text_embed_dim=32, image_embed_dim=24, cross_attention_layout=layout,
                               enable_text_cross_attention_dual=dual_cross)  # fmt: skip
    torch.manual_seed(0)
    model = MotifVideoTransformer(config).eval().requires_grad_(False).to(torch.bfloat16)
    ratios = []
    cases = itertools.product(SWEEP_VIDEO, SWEEP_TEXT, SWEEP_IMAGE, (None, 64, 256), ("fused", "torch"))
    for latent, text_tokens, image_tokens, chunk, ops in cases:
        estimate, live_peak = estimate_and_live_peak(model, chunk, ops, latent, text_tokens, image_tokens)
        ratios.append(estimate / live_peak)
    shapes = f"{len(ratios)} shapes (N 32-384, text 40-1000, image 0/100, pieces none/64/256, fused/torch norms)"
    check = f"transformer, D 256, {shapes}, {layout} cross-attention{' (dual-stream blocks too)' if dual_cross else ''}"
    bench_report.add(ACCURACY, check=check, ratio=f"{min(ratios):.3f}-{max(ratios):.3f}")
    assert min(ratios) >= 1 - TOLERANCE and max(ratios) <= 1 + TOLERANCE, ratios


@pytest.mark.parametrize("bands", [2, *(pytest.param(b, marks=SLOW) for b in (1, 3, 4))])
def test_vae_encode_activations(bench_report, bands):
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.vae.model import WanVAE

    torch.manual_seed(0)
    vae = WanVAE(WanVAEConfig()).eval().requires_grad_(False)  # float32: the CPU's bf16 convolutions crawl
    height, width = 128, 224
    video = torch.rand(1, 3, 1, height, width) * 2 - 1
    with torch.no_grad(), LiveTensors() as live:
        posterior = vae.encode(video, bands=bands)
        del posterior
    share = vae.encoder.band_share((height // 8, width // 8), bands)
    estimate = VAE_ENCODE_ELEMS_PER_PIXEL * height * width * share * 4
    bench_report.add(ACCURACY, check=f"VAE encode, one {height}x{width} frame, fp32, {bands} band(s)",
                     estimate_mib=estimate / 2**20, measured_mib=live.peak_bytes / 2**20,
                     ratio=estimate / live.peak_bytes)  # fmt: skip
    assert within(estimate, live.peak_bytes)


# -- CPU: host memory of a whole run, in a fresh process --

SIZES = {"tiny": (48, 32, 9), "moderate": (128, 128, 9)}
# The planner's base RSS (Python, torch, the libraries: a constant) differs between installs by an absolute amount,
# ~0.1 GiB (0.53 GiB after a tiny load on 2026-11-30, 0.48 in a fresh environment on 2026-12-01); the tiny case is
# almost all base, so 10 % of it cannot hold that spread.
BASE_RSS_SPREAD = int(0.1 * GiB)


def _make_checkpoint(kind: str, root: Path) -> None:
    from tiny_pipeline import make_tiny_checkpoint
    from tiny_text import TINY_TEXT_HIDDEN, TINY_VISION_HIDDEN
    from tiny_transformer import make_reference

    pipe = make_tiny_checkpoint(root)
    if kind == "moderate":  # a 768-wide transformer (~150 M parameters) and the full Wan2.1 VAE (127 M)
        from diffusers import AutoencoderKLWan

        transformer = make_reference(
            0, num_attention_heads=6, attention_head_dim=128, num_layers=2, num_single_layers=4, num_decoder_layers=1,
            text_embed_dim=TINY_TEXT_HIDDEN, image_embed_dim=TINY_VISION_HIDDEN, rope_axes_dim=(16, 56, 56),
        )  # fmt: skip
        transformer.save_pretrained(root / "transformer")
        AutoencoderKLWan(z_dim=16).save_pretrained(root / "vae")
    del pipe


def _host_worker(root: str, kind: str) -> None:
    from motif_lite.memory_plan import plan_generation
    from motif_lite.pipeline import load_pipeline
    from motif_lite.request import GenerationRequest

    width, height, frames = SIZES[kind]
    out = Path(root) / "out.mp4"
    request = GenerationRequest("a red fox", width=width, height=height, frames=frames, steps=1, output=out)
    request, _ = request.resolve()
    plan = plan_generation(
        request, root, dtype=torch.float32, device="cpu", vram_gib=64.0, kernels="torch", batch_guidance=False
    )  # the CPU runs the guidance branches one at a time
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch", plan=plan)
    loaded = _status_bytes("VmRSS")
    pipe.generate(request)
    print(json.dumps({"estimate": plan.host.peak_bytes, "load": plan.host.load_bytes, "run": plan.host.run_bytes,
                      "measured": _status_bytes("VmHWM"), "loaded": loaded}))  # fmt: skip


def _status_bytes(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0]) * 1024


@pytest.mark.parametrize("kind", ["tiny", pytest.param("moderate", marks=SLOW)])
def test_host_rss(bench_report, kind, tmp_path):
    # Two fresh processes, the higher peak counts: on a shared machine the kernel may drop pages of the
    # memory-mapped weight files under pressure, which lowers one run's RSS (not what the run needs).
    pytest.importorskip("diffusers")
    _make_checkpoint(kind, tmp_path)
    command = [sys.executable, __file__, "--host-worker", str(tmp_path), kind]
    runs = []
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = max(runs, key=lambda run: run["measured"])
    peaks = ", ".join(f"{run['measured'] / GiB:.2f}" for run in runs)
    bench_report.add(ACCURACY, check=f"host peak RSS, {kind} checkpoint, {'x'.join(map(str, SIZES[kind]))}, CPU",
                     estimate_mib=result["estimate"] / 2**20, measured_mib=result["measured"] / 2**20,
                     ratio=result["estimate"] / result["measured"],
                     note=f"runs {peaks} GiB; "
                     f"RSS after loading {result['loaded'] / GiB:.2f} GiB")  # fmt: skip
    # Never more than 10 % short; above, 10 % plus the install-to-install spread of the assumed base RSS.
    assert result["estimate"] >= (1 - TOLERANCE) * result["measured"]
    assert result["estimate"] <= (1 + TOLERANCE) * result["measured"] + BASE_RSS_SPREAD


# -- GPU: the whole text-to-video, each stage against the plan --

GPU_SIZE = tuple(int(v) for v in os.environ.get("PLANNER_BENCH_SIZE", "1280x736x121").split("x"))
GPU_VRAM = float(os.environ.get("PLANNER_BENCH_VRAM", "6"))
GPU_STEPS = int(os.environ.get("PLANNER_BENCH_STEPS", "1"))
OFFICIAL_STEPS = 50


@pytest.fixture(scope="module")
def full_components(tmp_path_factory):
    from bench_gpu_t2v import text_encoder_full, transformer_q4k

    from motif_lite.runtime.kernels import apply_kernels
    from motif_lite.vae import WanVAE, WanVAEConfig

    transformer, weight_bytes = transformer_q4k()
    apply_kernels(transformer, "auto")
    text_encoder, text_bytes = text_encoder_full(tmp_path_factory.mktemp("tok"))
    vae = WanVAE(WanVAEConfig()).to(torch.bfloat16).eval()
    return transformer, weight_bytes, text_encoder, text_bytes, vae


@pytest.mark.cuda
@pytest.mark.parametrize("setup", ["planned", "resident"])
def test_cuda_whole_t2v(bench_report, full_components, setup, tmp_path):
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.request import GenerationRequest

    transformer, weight_bytes, text_encoder, text_bytes, vae = full_components
    width, height, frames = GPU_SIZE
    budget = int(GPU_VRAM * GiB) if setup == "planned" else None
    inputs = planner.PlannerInputs(
        width, height, frames, transformer.config, weight_bytes, text_bytes, vae.config, cfg_batch=1,
        vae_dtype=torch.bfloat16, fused_norms=True,
    )  # fmt: skip
    plan = planner.plan_memory(inputs, budget, device="cuda")
    print("\n" + plan.describe())
    handle = planner.apply_plan(transformer, vae, plan)
    pipe = MotifVideoPipeline(transformer, text_encoder, vae, torch.device("cuda"), torch.bfloat16, plan_handle=handle)
    pipe.text_placement = plan.text_placement
    pipe.vae_mode = pipe.plan_handle.vae
    reserved: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:  # the stage's peak reserved so far
        reserved[stage] = max(reserved.get(stage, 0), torch.cuda.max_memory_reserved())

    (tmp_path / "frames").mkdir()
    request = GenerationRequest("a red fox runs through snow", width=width, height=height, frames=frames,
                                steps=GPU_STEPS, seed=0, output=tmp_path / "frames" / "f_%03d.png")  # fmt: skip
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = pipe.generate(request, on_progress=on_progress)
    torch.cuda.synchronize()
    reserved["decode"] = max(reserved.get("decode", 0), torch.cuda.max_memory_reserved())
    total = time.perf_counter() - start
    pipe.plan_handle.remove()
    transformer.cpu(), vae.cpu()
    torch.cuda.empty_cache()
    t = result.timings
    projected = t["encode"] + OFFICIAL_STEPS * t["denoise"] / GPU_STEPS + t["decode"]
    rss = _status_bytes("VmHWM")
    RESULTS[setup] = dict(seconds=total, projected_50_steps=projected, timings=t)
    rows = []
    budget_text = f"{GPU_VRAM if budget else 'none'} GiB"
    run = f"{'x'.join(map(str, GPU_SIZE))}, {setup} (budget {budget_text}, plan {plan.ladder_index + 1})"
    for stage in plan.stages:
        measured = result.stage_peaks[stage.name]
        rows.append((stage.name, stage.peak_bytes, measured, reserved.get(stage.name, 0)))
        bench_report.add("Planner accuracy on the GPU: whole T2V per stage", run=run, stage=stage.name,
                         estimate_gib=stage.peak_bytes / GiB, allocated_gib=measured / GiB,
                         reserved_gib=reserved.get(stage.name, 0) / GiB, ratio=stage.peak_bytes / measured,
                         seconds=t[stage.name])  # fmt: skip
    bench_report.add("Planner accuracy on the GPU: whole T2V per stage", run=run, stage="host RSS",
                     estimate_gib=plan.host.peak_bytes / GiB, rss_gib=rss / GiB,
                     ratio=plan.host.peak_bytes / rss, seconds=total,
                     note=f"50 steps projected: {projected:.0f} s")  # fmt: skip
    if setup == "planned":
        assert max(m for _, _, m, _ in rows) <= budget, "the run allocated more than the budget"
        assert all(within(est, measured) for _, est, measured, _ in rows), rows
        # The targets of issue 18 at 1280x736x121 in 6 GB: 6.0 GiB allocated, 6.5 GiB reserved.
        assert max(r for *_, r in rows) <= GPU_VRAM * GiB * 6.5 / 6.0


@pytest.mark.cuda
def test_cuda_planned_is_at_most_15_percent_slower_than_resident(bench_report):
    if set(RESULTS) != {"planned", "resident"}:
        pytest.skip("run test_cuda_whole_t2v for both setups first (same session)")
    ratio = RESULTS["planned"]["projected_50_steps"] / RESULTS["resident"]["projected_50_steps"]
    bench_report.add("Planner accuracy on the GPU: whole T2V per stage", run="planned / resident, 50 steps projected",
                     ratio=ratio)  # fmt: skip
    assert ratio <= 1.15


if __name__ == "__main__" and sys.argv[1:2] == ["--host-worker"]:
    _host_worker(sys.argv[2], sys.argv[3])
