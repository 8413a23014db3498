"""Batched guidance: a guided step's conditional and unconditional predictions as one batch-2 forward, with the
shorter prompt right-padded and masked, give the numbers of two separate calls (fp32, tight), for both solvers,
APG and CFG, T2V and I2V, and guidance windows whose unguided steps run batch 1. The planner decides."""

from __future__ import annotations

import pytest
import torch
from speed_helpers import conditioning, forward_batches, pipeline, sample, sampling_request, tiny_transformer

from motif_lite.pipeline import pad_prompts
from motif_lite.sampling import RECOMMENDED_APG, APGConfig, CFGConfig

STEPS = 5
GUIDANCE = {
    "apg": RECOMMENDED_APG,
    "cfg": CFGConfig(scale=4.0),
    "apg-window": APGConfig(scale=8.0, norm_threshold=12.0, momentum=0.1, start=0.2, stop=0.8),
    "cfg-stop": CFGConfig(scale=4.0, stop=0.6),
}
# Steps i of 5 guided by each setting: int(start * 5) <= i < int(stop * 5).
GUIDED = {"apg": 5, "cfg": 5, "apg-window": 3, "cfg-stop": 3}


@pytest.fixture(scope="module")
def model():
    return tiny_transformer()


def assert_tight(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = want.abs().max().item()
    assert scale > 0.1, "degenerate latents: the comparison would prove nothing"
    assert (got - want).abs().max().item() <= 1e-5 * scale


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m"])
@pytest.mark.parametrize("name", sorted(GUIDANCE))
@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
def test_batched_guidance_equals_two_calls(model, solver, name, i2v):
    pipe, cond = pipeline(model), conditioning(i2v=i2v)
    request = sampling_request(STEPS, solver, GUIDANCE[name])
    batches, hook = forward_batches(model)
    try:
        pipe.batch_guidance = False
        separate, record = sample(pipe, cond, request)
        assert batches == [1] * (STEPS + GUIDED[name]) and record.guidance_batch == 1
        batches.clear()
        pipe.batch_guidance = True
        batched, record = sample(pipe, cond, request)
    finally:
        hook.remove()
    # Guided steps make one batch-2 call; the unguided steps of a window make one batch-1 call.
    assert sorted(batches) == [1] * (STEPS - GUIDED[name]) + [2] * GUIDED[name] and record.guidance_batch == 2
    assert len(record.step_seconds) == STEPS
    assert_tight(batched, separate)


def test_guidance_really_guides(model):
    # Sensitivity: without guidance, or with the prompts swapped, the latents move far beyond the tolerance.
    pipe, cond = pipeline(model), conditioning()
    pipe.batch_guidance = True
    guided, _ = sample(pipe, cond, sampling_request())
    unguided, _ = sample(pipe, cond, sampling_request(guidance=None))
    cond.text, cond.negative = cond.negative, cond.text
    swapped, _ = sample(pipe, cond, sampling_request())
    for other in (unguided, swapped):
        assert (other - guided).abs().max() > 1e-2 * guided.abs().max()


def test_padding_must_be_masked(model):
    # Negative control: the padded prompt without its mask gives a different prediction, so the mask is what
    # makes the batched call exact.
    cond = conditioning()
    x, t = torch.randn(1, 16, 3, 6, 10), torch.full((2,), 500.0)
    hidden, text, mask, _ = cond.inputs(x, (True, False))
    with torch.no_grad():
        masked = model(hidden, t, text, mask)[1:]
        unmasked = model(hidden, t, text, None)[1:]
        alone = model(hidden[1:], t[1:], *cond.negative)
    assert (masked - alone).abs().max() <= 1e-5 * alone.abs().max()
    assert (unmasked - alone).abs().max() > 1e-3 * alone.abs().max()


def test_pad_prompts_pads_right_and_masks():
    a, b = torch.randn(1, 5, 3), torch.randn(1, 2, 3)
    text, mask = pad_prompts([(a, None), (b, torch.ones(1, 2, dtype=torch.bool))])
    assert text.shape == (2, 5, 3) and torch.equal(text[0], a[0]) and torch.equal(text[1, :2], b[0])
    assert torch.equal(text[1, 2:], torch.zeros(3, 3))
    assert mask.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert pad_prompts([(a, None)]) == (a, None)  # one branch: passed through as it is


def test_planner_batches_guidance_only_where_it_fits():
    import torch

    from motif_lite.config import TransformerConfig
    from motif_lite.runtime.planner import GiB, PlannerInputs, plan_memory
    from motif_lite.vae import WanVAEConfig

    args = (1280, 736, 121, TransformerConfig(), int(1.2 * GiB), int(8.6 * GiB), WanVAEConfig())
    bf16 = dict(vae_dtype=torch.bfloat16)  # a float32 VAE's decode would set both peaks
    roomy = plan_memory(PlannerInputs(*args, cfg_batch=2, **bf16), None)
    assert roomy.cfg_batch == 2 and roomy.resident_blocks is None
    # A budget between the two resident peaks: the same (resident) plan with one row per forward, not streaming.
    one_row = plan_memory(PlannerInputs(*args, cfg_batch=1, **bf16), None)
    assert one_row.peak_bytes < roomy.peak_bytes
    budget = (one_row.peak_bytes + roomy.peak_bytes) // 2
    tight = plan_memory(PlannerInputs(*args, cfg_batch=2, **bf16), budget)
    assert tight.cfg_batch == 1 and tight.ladder_index == one_row.ladder_index
    assert plan_memory(PlannerInputs(*args, cfg_batch=1), None).cfg_batch == 1
    assert "2 rows per transformer forward" in roomy.describe()


def test_whole_pipeline_batched_equals_the_diffusers_reference(tmp_path):
    # End to end through load_pipeline: batched guidance gives the reference pipeline's frames (APG, T2V).
    pytest.importorskip("diffusers")
    import numpy as np
    import PIL.Image
    from tiny_pipeline import make_tiny_checkpoint
    from video_frames import diffusers_frames

    from motif_lite import load_pipeline
    from motif_lite.request import GenerationRequest

    reference = make_tiny_checkpoint(tmp_path / "ckpt")
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch", batch_guidance=True)
    settings = dict(width=48, height=32, frames=9, steps=3)
    result = pipe.generate(GenerationRequest("a fox", "blurry", seed=0, output=tmp_path / "o_%03d.png", **settings))
    assert result.guidance_batch == 2
    ours = np.stack([np.asarray(PIL.Image.open(tmp_path / f"o_{i:03d}.png")) for i in range(9)])
    expected = diffusers_frames(reference, settings, 0, prompt="a fox", negative_prompt="blurry")
    assert expected.std() > 10 and np.abs(ours.astype(int) - expected.astype(int)).max() <= 1
