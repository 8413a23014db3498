"""What a run's forwards share is built once per run, not once per forward (issue #17): the attention masks in the
form the attention takes (SDPA's additive floats, which SDPA otherwise builds from a bool mask inside every call)
and the RoPE tables of the patch grid. The outputs stay the same bits."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from speed_helpers import conditioning, pipeline, sample, sampling_request, tiny_transformer
from test_launches import launches

from motif_lite.model.ops import TORCH_OPS, additive_mask, sdpa_attention, takes_additive_mask
from motif_lite.model.rope import rope_3d
from motif_lite.runtime.attention import AutoAttention, FixedAttention, SDPBackend, sdpa_with


def bool_mask_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """SDPA given the bool mask, as every forward called it before (it says nothing of taking the additive form)."""
    assert mask is None or mask.dtype == torch.bool
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_a_forward_converts_no_mask_and_builds_no_rope_table():
    # bench/launches.py's batch-2 forward with a padded text row, after the run's first: before, SDPA turned the
    # bool masks into additive ones in each of its 44 masked calls (a `where` and two scalar tensors each), and the
    # RoPE tables (cos and sin of three axes) were built again; the timestep embedding's cos and sin remain.
    ops = launches.forward_counts(launches.Case()).ops
    assert ops["where"] == 0 and ops["scalar_tensor"] == 0, ops
    assert ops["cos"] == 1 and ops["sin"] == 1, ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("i2v", [False, True], ids=["T2V", "I2V"])
def test_the_additive_masks_give_the_bool_masks_bits(dtype, i2v):
    model = tiny_transformer().to(dtype)
    cond = conditioning(i2v=i2v)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(cond.latents.shape, generator=g)
    hidden, text, text_mask, image = cond.inputs(x, (True, False))  # the shorter prompt padded: masks
    t = torch.full((2,), 700.0)
    with torch.no_grad():
        ours = model(hidden, t, text, text_mask, image)
        model.ops = dataclasses.replace(TORCH_OPS, attention=bool_mask_sdpa)
        before = model(hidden, t, text, text_mask, image)
    assert text_mask is not None and not bool(text_mask.all())
    assert torch.equal(ours, before)


def test_each_backend_is_given_the_mask_form_it_takes():
    assert takes_additive_mask(sdpa_attention) and takes_additive_mask(FixedAttention("sdpa"))
    assert takes_additive_mask(sdpa_with(SDPBackend.EFFICIENT_ATTENTION, split_masked=False))
    # Row splits count a bool mask's valid keys: flash (and cuDNN, FA3, Triton, int8) take the bool one.
    assert not takes_additive_mask(FixedAttention("flash"))
    assert not takes_additive_mask(bool_mask_sdpa)


def test_auto_gives_a_bool_mask_to_a_candidate_that_reads_one():
    # `auto` takes the additive masks (its SDPA candidates use them as they are) and gives a candidate that reads a
    # bool mask (row splits, Triton) the bool one, converted once per mask.
    seen: list[torch.dtype] = []

    def reads_bool(q, k, v, mask):
        seen.append(mask.dtype)
        return bool_mask_sdpa(q, k, v, mask)

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 9, 16, generator=g) for _ in range(3))
    valid = torch.arange(9) < torch.tensor([[9], [5]])
    mask = additive_mask(valid[:, None, None], torch.float32)
    auto = AutoAttention({"bool kernel": reads_bool}, timer=lambda name, call: 1.0)
    for _ in range(2):
        out = auto(q, k, v, mask)
        assert torch.equal(out, bool_mask_sdpa(q, k, v, valid[:, None, None]))
    assert takes_additive_mask(auto)
    assert seen and set(seen) == {torch.bool}
    assert len(auto.bool_masks.seen) == 1  # converted once


def test_additive_mask_is_what_sdpa_builds():
    valid = torch.tensor([[True, True, False], [True, False, False]])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        mask = additive_mask(valid, dtype)
        assert mask.dtype == dtype
        assert torch.equal(mask, torch.where(valid, 0.0, float("-inf")).to(dtype))


def test_the_rope_tables_are_built_once_per_grid():
    model = tiny_transformer()
    cfg = model.config
    axes, theta = cfg.rope_axes_dim, cfg.rope_theta
    first = model.rope_tables((3, 3, 5), axes, theta, "cpu")
    assert model.rope_tables((3, 3, 5), axes, theta, torch.device("cpu")) is first  # kept: the same tensors
    for got, want in zip(first, rope_3d((3, 3, 5), axes, theta, "cpu"), strict=True):
        assert torch.equal(got, want)
    other = model.rope_tables((2, 3, 5), axes, theta, "cpu")  # another grid: its own tables
    assert torch.equal(other[0], rope_3d((2, 3, 5), axes, theta, "cpu")[0])
    assert model.rope_tables((3, 3, 5), axes, theta, "cpu") is not first  # only the last grid is held


def test_a_changed_rope_theta_is_honoured_by_the_next_forward():
    # verify --force rope_theta (and anyone editing the config) changes the config after the model is built.
    model = tiny_transformer()
    cond = conditioning()
    x = torch.randn(cond.latents.shape, generator=torch.Generator().manual_seed(3))
    hidden, text, text_mask, image = cond.inputs(x, (True, False))
    t = torch.full((2,), 700.0)
    with torch.no_grad():
        before = model(hidden, t, text, text_mask, image)
        model.config = model.config.replace(rope_theta=1.0)
        after = model(hidden, t, text, text_mask, image)
    assert not torch.allclose(before, after)
    assert model.rope_tables.last[0][2] == 1.0


def test_a_run_lets_go_of_its_rope_tables():
    # The tables of a 720p run are ~0.1 GB of device memory that the VAE decode after sampling may need.
    pipe = pipeline(tiny_transformer())
    sample(pipe, conditioning(), sampling_request(steps=2))
    assert pipe.transformer.rope_tables.last is None


def block_copies(block, s) -> int:
    with torch.no_grad(), launches.recording() as log:
        block(s.x, s.context, s.ctx)
    return log.ops["copy_"]


@pytest.mark.parametrize("dual", [False, True], ids=["single-stream", "dual-stream"])
def test_a_block_writes_its_output_without_copies(dual):
    # An unchunked block (one piece) with the text cross-attention, masked: the cross-attention's output is added
    # in place to its rows (`rows += ...` also copied the rows' view onto itself), so it adds no copy to the block;
    # and a single-stream block's output is the residual sum itself (it was copied into a buffer): its one copy
    # left is its attention output into its output projection's input (`mlp_and_project`).
    config = dataclasses.replace(launches.narrow_config(image=False), enable_text_cross_attention_dual=True)
    model = launches.narrow_model(config)
    block = model.transformer_blocks[0] if dual else model.encoder_single_blocks[0]
    g = torch.Generator().manual_seed(0)
    latents, text = torch.randn(2, 33, 3, 4, 4, generator=g), torch.randn(2, 10, 64, generator=g)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    with torch.no_grad():
        s = model.embed(latents, torch.full((2,), 500.0), text, mask)
    assert block.cross_attn is not None
    copies = block_copies(block, s)
    block.cross_attn = None
    assert copies == block_copies(block, s)
    if not dual:
        assert copies == 1
