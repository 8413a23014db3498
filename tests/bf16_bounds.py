"""The yardstick for a bf16 path: the reference's own bf16 error (diffusers in bf16 against diffusers in float32).

Each path (our torch ops, our Triton ops) errs against the float32 output by at most SLACK times that error. Two
paths that round differently (a fused kernel rounds once; the torch ops round after each step; attention kernels
round P to bf16 in their own order) differ by about as much as either errs, not by less, so their difference is
bounded by the sum of the two bounds (the triangle inequality). tests/test_bf16_bounds.py shows on the CPU that
an honest re-rounding passes these bounds and that broken ops fail them."""

from __future__ import annotations

from collections.abc import Callable

import torch

SLACK = 1.5  # a path may err half as much again as the reference in bf16


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, in float32 (the tests' relative error; bf16 inputs are compared in float32)."""
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def bf16_errors(exact: torch.Tensor, torch_out: torch.Tensor, triton_out: torch.Tensor) -> dict[str, float]:
    """The errors `bf16_bound_failures` reads: each path against the float32 output, and the two paths apart."""
    return dict(torch_ops=rel(torch_out, exact), triton_ops=rel(triton_out, exact),
                triton_vs_torch=rel(triton_out, torch_out))  # fmt: skip


def bf16_bound_failures(errors: dict[str, float], reference_error: float, exact_math: bool = True) -> list[str]:
    """-> the bounds `errors` break (empty if none).

    errors: "torch_ops" and "triton_ops" (each path against the float32 output) and "triton_vs_torch".
    exact_math: both paths compute the reference's math. False for a lossy option (the sparse decoder): the
    Triton path may then err only as much as the torch path of the same option does, plus SLACK x the yardstick."""
    bound = SLACK * reference_error
    limits = {"triton_vs_torch": 2 * bound}
    if exact_math:
        limits.update(torch_ops=bound, triton_ops=bound)
    else:
        limits["triton_ops"] = errors["torch_ops"] + bound
    return [f"{name} {errors[name]:.3g} > {limit:.3g}" for name, limit in limits.items() if errors[name] > limit]


def block_outputs(model: torch.nn.Module, run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """`run()`'s result, and the output of each top-level module and each block of `model` during it, in forward
    order: the tensors of a tuple output joined into one float32 vector (on the CPU)."""
    modules = {}
    for name, child in model.named_children():
        if isinstance(child, torch.nn.ModuleList):
            modules.update({f"{name}.{i}": block for i, block in enumerate(child)})
        else:
            modules[name] = child
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args, output) -> None:
            tensors = (
                [output] if isinstance(output, torch.Tensor) else [t for t in output if isinstance(t, torch.Tensor)]
            )
            outputs[name] = torch.cat([t.detach().float().flatten().cpu() for t in tensors])

        return hook

    hooks = [module.register_forward_hook(keep(name)) for name, module in modules.items()]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for hook in hooks:
            hook.remove()
    return result, outputs


def block_divergence(exact: dict, reference: dict, ours: dict) -> dict[str, tuple[float, float, float]]:
    """Per module both models have (same name, same output size), in forward order: our bf16 output's error
    against the float32 reference, the reference's own bf16 error, and ours against the reference's bf16 output.
    Where a bf16 path departs from the reference shows as the first module whose last figure is not ~0."""
    return {
        name: (rel(ours[name], expected), rel(reference[name], expected), rel(ours[name], reference[name]))
        for name, expected in exact.items()
        if name in ours and ours[name].numel() == expected.numel() == reference[name].numel()
    }


def divergence_lines(divergence: dict[str, tuple[float, float, float]]) -> str:
    return "\n".join(
        f"{name}: ours {a:.3g}, reference {b:.3g}, ours vs reference {c:.3g}" for name, (a, b, c) in divergence.items()
    )
