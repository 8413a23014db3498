"""What a run's forwards share is built once per run, not once per forward (issue #17): the attention masks in the
form the attention takes (SDPA's additive floats, which SDPA otherwise builds from a bool mask inside every call)
and the RoPE tables of the patch grid. The outputs stay the same bits."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from speed_helpers import conditioning, pipeline, sample, sampling_request, tiny_transformer
from test_launches import launches

from motif_lite.model.ops import TORCH_OPS, AttentionFn, additive_mask, mask_form_of
from motif_lite.model.rope import rope_3d
from motif_lite.runtime.attention import AutoAttention, FixedAttention, apply_attention_backend, attention_backend
from motif_lite.runtime.attention_candidates import auto_candidates, candidate
from motif_lite.runtime.attention_choices import FA3_MODULE
from motif_lite.runtime.kernels import SparsityConfig, select_ops, triton_ops


def bool_mask_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """SDPA given the bool mask, as every forward called it before (it says nothing of taking the additive form)."""
    assert mask is None or mask.dtype == torch.bool
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_a_forward_converts_no_mask_and_builds_no_rope_table_nor_frequencies():
    # bench/launches.py's batch-2 forward with a padded text row, after the run's first: before, SDPA turned the
    # bool masks into additive ones in each of its 44 masked calls (a `where` and two scalar tensors each), the
    # RoPE tables (cos and sin of three axes) were built again, and so were the timestep sinusoid's frequencies
    # (`arange`, `mul`, `div`, `exp`); the timestep's own cos and sin remain.
    ops = launches.forward_counts(launches.Case()).ops
    assert ops["where"] == 0 and ops["scalar_tensor"] == 0, ops
    assert ops["cos"] == 1 and ops["sin"] == 1, ops
    assert ops["arange"] == 0 and ops["exp"] == 0 and ops["div"] == 0, ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("i2v", [False, True], ids=["T2V", "I2V"])
def test_the_kept_frequencies_give_a_fresh_forwards_bits(dtype, i2v):
    # A run's first forward builds the frequencies, the next ones reuse them, and after `end_run` they are built
    # again (and so are the text masks it lets go of: it kept them, on the device): the same output each time.
    # They stay float32 in a bf16 model (not a buffer that `.to` would cast) and are no part of its state dict
    # (checkpoints, GGUF files, streaming's weights).
    model = tiny_transformer().to(dtype)
    cond = conditioning(i2v=i2v)
    x = torch.randn(cond.latents.shape, generator=torch.Generator().manual_seed(3))
    hidden, text, text_mask, image = cond.inputs(x, (True, False))
    t = torch.full((2,), 700.0)
    kept = model.time_text_embed.frequencies
    with torch.no_grad():
        first = model(hidden, t, text, text_mask, image)
        freqs = kept.last[1]
        again = model(hidden, t, text, text_mask, image)
        assert kept.last[1] is freqs  # reused, not built again
        model.end_run()
        assert kept.last is None
        assert not model.text_masks.kept.seen  # the caller's text masks and their attention masks, let go too
        fresh = model(hidden, t, text, text_mask, image)
    assert torch.equal(first, again) and torch.equal(first, fresh)
    assert freqs.dtype == torch.float32
    assert not any("frequencies" in name for name in model.state_dict())


def test_the_kept_frequencies_follow_the_device_asked_for():
    # A model moved to another device between runs (or a pipeline's offload) must not get the last device's tensor.
    from motif_lite.model.layers import SinusoidFrequencies, sinusoid_frequencies

    frequencies = SinusoidFrequencies()
    on_cpu = frequencies(torch.device("cpu"))
    assert torch.equal(on_cpu, sinusoid_frequencies("cpu"))
    assert frequencies(torch.device("meta")).device.type == "meta"  # a device any machine has, as a GPU stands in


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


def every_attention_backend() -> dict[str, AttentionFn]:
    """Each attention function that can sit behind the model's `Ops.attention` (or `decoder_attention`) seam,
    our Triton kernels' aside (`triton_attention_backends`)."""
    sparse = select_ops("torch", SparsityConfig(latent_frames=3))
    model = tiny_transformer()
    apply_attention_backend(model, FixedAttention("flash"))
    return {
        "torch ops": TORCH_OPS.attention,
        "torch ops, decoder": TORCH_OPS.decoder_attention,
        **{f"candidate {name}": candidate(name) for name in ("sdpa", "flash", "cudnn", "efficient", "fa3")},
        **{f"fixed {name}": FixedAttention(name) for name in ("sdpa", "flash", "cudnn", "efficient")},
        "auto on the CPU": attention_backend("auto", "cpu"),
        "auto": AutoAttention(auto_candidates(triton_ok=False)),
        **{f"auto's {name}": attend for name, attend in auto_candidates(triton_ok=False).items()},
        "int8": select_ops("torch", attention="int8").attention,
        "int8, decoder": select_ops("torch", attention="int8").decoder_attention,
        "sparse decoder": sparse.decoder_attention,
        "sparse, encoder": sparse.attention,
        "--attention-backend flash on the model": model.ops.attention,
    }


def triton_attention_backends() -> dict[str, AttentionFn]:
    """The attention functions of the Triton kernel backend and of our dense Triton attention kernel."""
    return {
        "triton ops": triton_ops().attention,
        "candidate triton": candidate("triton"),
        "fixed triton": FixedAttention("triton"),
        "auto with triton": AutoAttention(auto_candidates(triton_ok=True)),
        "auto's triton": auto_candidates(triton_ok=True)["triton"],
    }


# The key mask form each backend reads. SDPA's kernels take the additive masks (built once per run); row splits
# (flash, cuDNN, FA3) count a bool mask's valid keys, and our Triton and 8-bit kernels read a bool one. The
# sequence-parallel `UlyssesAttention` wraps `ctx.attention` after the masks are built and hands them on as they
# are: the form is its inner backend's, which the transformer reads from `ops.attention`.
MASK_FORMS = {
    "torch ops": "additive",
    "torch ops, decoder": "additive",
    "candidate sdpa": "additive",
    "candidate flash": "bool",
    "candidate cudnn": "bool",
    "candidate efficient": "additive",
    "candidate fa3": "bool",
    "fixed sdpa": "additive",
    "fixed flash": "bool",
    "fixed cudnn": "bool",
    "fixed efficient": "additive",
    "auto on the CPU": "additive",
    "auto": "additive",
    "auto's sdpa": "additive",
    "auto's flash": "bool",
    "auto's cudnn": "bool",
    "auto's efficient": "additive",
    "auto's fa3": "bool",
    "int8": "bool",
    "int8, decoder": "bool",
    "sparse decoder": "bool",
    "sparse, encoder": "additive",
    "--attention-backend flash on the model": "bool",
}
TRITON_MASK_FORMS = {
    "triton ops": "additive",  # its attention is SDPA's (dense Triton attention measured slower)
    "candidate triton": "bool",
    "fixed triton": "bool",
    "auto with triton": "additive",
    "auto's triton": "bool",
}


def test_each_backend_reads_the_mask_form_it_always_has(monkeypatch):
    monkeypatch.setitem(sys.modules, FA3_MODULE, types.ModuleType(FA3_MODULE))  # FA3 "installed": a candidate
    forms = {name: mask_form_of(attend) for name, attend in every_attention_backend().items()}
    assert forms == MASK_FORMS
    assert mask_form_of(bool_mask_sdpa) == "bool"  # a plain function says nothing: it is given bool masks


def test_each_triton_backend_reads_the_mask_form_it_always_has():
    pytest.importorskip("triton")
    forms = {name: mask_form_of(attend) for name, attend in triton_attention_backends().items()}
    assert forms == TRITON_MASK_FORMS


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
    assert mask_form_of(auto) == "additive"
    assert seen and set(seen) == {torch.bool}
    assert len(auto.bool_masks.kept.seen) == 1  # converted once


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
    assert pipe.transformer.time_text_embed.frequencies.last is None


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
