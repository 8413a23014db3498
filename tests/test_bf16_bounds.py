"""The GPU suite's bf16 criterion (tests/bf16_bounds.py), checked on the CPU where it can be: an honest second
bf16 path passes it and broken ops fail it.

The real norm kernels (Triton's CPU interpreter) pass it: the dense GPU test's Triton ops are these two kernels
(dense attention stays SDPA there). Interpreted, their final cast to bf16 truncates where the GPU rounds to
nearest (docs/kernels.md), so they err at least as much here as compiled.

The stand-in for the Triton ops is what they compute: each norm in float32 and rounded to bf16 once, attention
with float32 scores and P rounded to bf16 before P·V (as flash-style kernels do). `pytest -s` prints each path's
errors as multiples of the reference's own bf16 error (docs/testing.md quotes them)."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from bf16_bounds import bf16_bound_failures, bf16_errors, block_divergence, block_outputs, rel
from kernels_interp import KernelCall, kernel_runner
from tiny_config import inputs
from tiny_transformer import make_reference, reference_forward, save_official

from motif_lite import load_transformer
from motif_lite.model import ops


def rounded_once(op):
    """`op` computed in float32 on float32 copies of its inputs, rounded to the inputs' dtype once."""

    def run(*args, **kwargs):
        dtype = next(a.dtype for a in args if isinstance(a, torch.Tensor))
        args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
        return op(*args, **kwargs).to(dtype)

    return run


def p_in_low_precision(q, k, v, mask):
    """Attention with float32 scores and softmax, P rounded to q's dtype before P·V (a flash kernel's rounding)."""
    scores = (q.float() @ k.float().transpose(-1, -2)) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = torch.softmax(scores, dim=-1).to(q.dtype)
    return (p.float() @ v.float()).to(q.dtype)


def reversed_rope(x, weight, eps, cos=None, sin=None):
    return ops.rms_norm_rope(x, weight, eps, cos, None if sin is None else -sin)


def text_mask_ignored(q, k, v, mask):
    return ops.sdpa_attention(q, k, v, None)


HONEST = ops.Ops(
    attention=p_in_low_precision,
    decoder_attention=p_in_low_precision,
    layer_norm_modulate=rounded_once(ops.layer_norm_modulate),
    rms_norm_rope=rounded_once(ops.rms_norm_rope),
)
BROKEN = {
    "reversed-rope": ops.Ops(rms_norm_rope=reversed_rope),
    "text-mask-ignored": ops.Ops(attention=text_mask_ignored),
}


def triton_norms(kernel: KernelCall) -> ops.Ops:
    """The Ops of the dense GPU test's Triton path: the two norm kernels, run through `kernel`."""
    return ops.Ops(
        layer_norm_modulate=lambda *args: kernel("norm.layer_norm_modulate", *args),
        rms_norm_rope=lambda *args: kernel("norm.rms_norm_rope", *args),
    )


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


@pytest.fixture(scope="module", params=[0, 1], ids=lambda seed: f"seed{seed}")
def paths(request, tmp_path_factory) -> dict:
    """The float32 reference output, its own bf16 error, our bf16 outputs with each set of ops, `forward` (ops ->
    our bf16 output with them) and `divergence` (ops -> `block_divergence` of that path)."""
    seed = request.param
    reference = make_reference(seed)
    x = inputs(batch=2, frames=3, height=6, width=6, seed=seed + 1)
    xb = {k: v.bfloat16() if k != "timestep" and v is not None and v.is_floating_point() else v for k, v in x.items()}
    ours = load_transformer(save_official(reference, tmp_path_factory.mktemp("bf16")), torch.bfloat16, "cpu")

    @torch.no_grad()
    def forward(path_ops: ops.Ops) -> torch.Tensor:
        ours.ops = path_ops
        return ours(xb["latents"], xb["timestep"], xb["text_embeds"], xb["text_mask"], xb["image_embeds"])

    reference_bf16 = copy.deepcopy(reference).bfloat16()
    exact, exact_blocks = block_outputs(reference, lambda: reference_forward(reference, x))
    rounded, rounded_blocks = block_outputs(reference_bf16, lambda: reference_forward(reference_bf16, xb))

    def divergence(path_ops: ops.Ops) -> dict[str, tuple[float, float, float]]:
        return block_divergence(exact_blocks, rounded_blocks, block_outputs(ours, lambda: forward(path_ops))[1])

    outputs = {
        name: forward(path_ops) for name, path_ops in {"torch": ops.TORCH_OPS, "honest": HONEST, **BROKEN}.items()
    }
    return dict(exact=exact, reference_error=rel(rounded, exact), forward=forward, divergence=divergence, **outputs)


def errors_of(paths: dict, name: str, output: torch.Tensor | None = None) -> dict[str, float]:
    """The errors of path `name` (`output`, else the fixture's output of that name), printed (`pytest -s`) as
    multiples of the reference's own bf16 error: the figures docs/testing.md quotes."""
    errors = bf16_errors(paths["exact"], paths["torch"], paths[name] if output is None else output)
    print(f"{name}: " + ", ".join(f"{key} {value / paths['reference_error']:.2f}x" for key, value in errors.items()))
    return errors


def test_an_honest_second_rounding_passes(paths) -> None:
    errors = errors_of(paths, "honest")
    assert errors["triton_vs_torch"] > 0.5 * paths["reference_error"]  # it does round differently
    assert bf16_bound_failures(errors, paths["reference_error"]) == [], errors


def test_the_norm_kernels_pass(paths, kernel) -> None:
    errors = errors_of(paths, "triton norms", paths["forward"](triton_norms(kernel)))
    assert errors["triton_vs_torch"] > 0  # the kernels ran
    assert bf16_bound_failures(errors, paths["reference_error"]) == [], errors


@pytest.mark.parametrize("broken", BROKEN)
def test_broken_ops_fail(paths, broken: str) -> None:
    errors = errors_of(paths, broken)
    assert bf16_bound_failures(errors, paths["reference_error"]) != [], errors
    lossy = bf16_bound_failures(errors, paths["reference_error"], exact_math=False)
    assert lossy != [], errors  # the lossy criterion still catches a broken kernel against its own torch path


def test_block_divergence_finds_where_a_path_departs(paths) -> None:
    """The per-block table the GPU suite prints when a whole-transformer bound fails: on the CPU our torch path
    gives the reference's bf16 bits in every block it shares with diffusers, and reversed RoPE departs at the
    first block (its attention), not before."""
    same = paths["divergence"](ops.TORCH_OPS)
    assert {"transformer_blocks.0", "single_transformer_blocks.0", "proj_out"} <= set(same)
    assert all(vs_reference == 0.0 for _, _, vs_reference in same.values()), same
    broken = paths["divergence"](BROKEN["reversed-rope"])
    first = next(name for name, (_, _, vs_reference) in broken.items() if vs_reference > 0)
    assert first == "transformer_blocks.0", broken
