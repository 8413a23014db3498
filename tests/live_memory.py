"""Peak bytes of the tensors a piece of code keeps alive at once, counted exactly on any device (CPU included).

    with LiveTensors() as live:
        model(x)
    live.peak_bytes   # the most bytes of tensor storage created inside the block that were alive together

Every op output that owns new storage is counted until the last tensor sharing that storage dies; views and
in-place results of existing storage are not new memory. Tensors that existed before (weights, inputs) are not
counted. This is what a perfect allocator would need: no fragmentation, no rounding, no workspaces, so it checks
the planner's activation formulas (runtime/activation_memory.py) on a CPU exactly (the GPU bench measures the
allocator's real peak).
"""

from __future__ import annotations

import dataclasses
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensors(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.refs: dict[int, int] = {}  # storage pointer -> tensors alive on it
        self.sizes: dict[int, int] = {}
        self.current = 0
        self.peak_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        existing = {_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t, new=_key(t) not in existing)
        return out

    def _track(self, t: torch.Tensor, new: bool) -> None:
        key = _key(t)
        if key not in self.refs:
            if not new:
                return  # a view or in-place result of a tensor from before: not ours
            self.refs[key], self.sizes[key] = 0, t.untyped_storage().nbytes()
            self.current += self.sizes[key]
            self.peak_bytes = max(self.peak_bytes, self.current)
        self.refs[key] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.current -= self.sizes.pop(key)


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def fused_like_ops():
    """The torch `Ops` with the two norms replaced by what the fused Triton kernels allocate: their output and
    nothing else (the torch versions keep float32 temporaries, the kernels' CPU fallbacks would too)."""
    from motif_lite.model.ops import TORCH_OPS

    def layer_norm_modulate(x, shift, scale, eps=1e-6):
        return torch.empty(x.shape, dtype=x.dtype)

    def rms_norm_rope(x, weight, eps, cos=None, sin=None):
        return torch.empty(x.shape, dtype=x.dtype)

    return dataclasses.replace(TORCH_OPS, layer_norm_modulate=layer_norm_modulate, rms_norm_rope=rms_norm_rope)


def estimate_and_live_peak(
    model: torch.nn.Module,
    chunk: int | None,
    ops: str,
    latent: tuple[int, int, int],
    text_tokens: int,
    image_tokens: int = 0,
    heads_per_call: int | None = None,
) -> tuple[int, int]:
    """The planner's activation bytes for one forward of a `MotifVideoTransformer` over latent (frames, height,
    width) with text_tokens text tokens (and image_tokens image tokens), with `ops` "fused" (`fused_like_ops`) or
    "torch", token pieces of `chunk` (and head groups of `heads_per_call`), and the most bytes of tensors that
    forward really kept alive together."""
    from motif_lite.model.ops import TORCH_OPS
    from motif_lite.runtime.activation_memory import transformer_activation_bytes
    from motif_lite.runtime.chunking import apply_token_chunking

    config = model.config
    model.ops = fused_like_ops() if ops == "fused" else TORCH_OPS
    handle = apply_token_chunking(model, chunk, heads_per_call) if chunk else None
    dtype = next(model.parameters()).dtype  # the activations' (bf16, or float32 where the torch norms copy nothing)
    latents = torch.randn(1, 33, *latent, dtype=dtype)
    text = torch.randn(1, text_tokens, config.text_embed_dim, dtype=dtype)
    image = torch.randn(1, image_tokens, config.image_embed_dim, dtype=dtype) if image_tokens else None
    model.end_run()  # the RoPE tables kept from an earlier forward: this one builds them, as a run's first does
    try:
        with torch.no_grad(), LiveTensors() as live:
            out = model(latents, torch.tensor([500.0]), text, None, image)
            del out
    finally:
        if handle:
            handle.remove()
    frames, height, width = latent
    estimate = transformer_activation_bytes(
        frames * height * width // 4, config, 1, chunk, fused_norms=ops == "fused",
        context_tokens=text_tokens + image_tokens, text_tokens=text_tokens, heads_per_call=heads_per_call,
        act_bytes=dtype.itemsize,
    )  # fmt: skip
    return estimate, live.peak_bytes
