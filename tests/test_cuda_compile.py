"""`--compile` on a GPU (`pytest -m cuda`; skipped without CUDA), as a run installs it: our Triton kernels, the `auto`
attention backend, then `apply_compile`. The compiled blocks err like the eager ones against the float32
reference (bf16, the same bound as the Triton ops: tests/bf16_bounds.py), Dynamo breaks the blocks' graphs only
at the attention (which stays eager), no op fell back, and `remove()` gives the eager model back.

On the CPU, tests/test_compile.py checks the same code with torch's ops; this file is what only a GPU can show:
inductor's CUDA kernels for the norms, RoPE and dequantization, and the compiled blocks around eager Triton and
SDPA attention.
"""

from __future__ import annotations

import pytest
import torch
from bf16_bounds import SLACK, rel
from test_cuda import MID, mid_inputs, on_cuda, reference_outputs
from tiny_config import forward
from tiny_transformer import make_reference, save_official

from motif_lite import load_transformer
from motif_lite.runtime.attention import apply_attention_backend, attention_backend
from motif_lite.runtime.compile import apply_compile
from motif_lite.runtime.kernels import apply_kernels, fallbacks

pytestmark = pytest.mark.cuda


def test_compiled_blocks_on_cuda_err_like_eager(tmp_path, record_property) -> None:
    from torch._dynamo.utils import counters

    reference = make_reference(**MID)
    model = load_transformer(save_official(reference, tmp_path), torch.bfloat16, "cuda")
    apply_kernels(model, "auto")
    apply_attention_backend(model, attention_backend("auto", "cuda", triton_ok=True))
    x = mid_inputs()
    exact, _ = reference_outputs(reference, x)
    xb = on_cuda(x, torch.bfloat16)
    eager = forward(model, xb)
    torch._dynamo.reset()
    counters.clear()
    handle = apply_compile(model)
    try:
        compiled = forward(model, xb)
        again = forward(model, xb)
    finally:
        handle.remove()
    breaks = {reason.splitlines()[0]: n for reason, n in counters["graph_break"].items()}
    errors = dict(eager=rel(eager, exact), compiled=rel(compiled, exact), compiled_vs_eager=rel(compiled, eager))
    for key, value in errors.items():
        record_property(f"{key}_error", value)
    record_property("graphs", counters["stats"]["unique_graphs"])
    record_property("graph_breaks", str(breaks))
    assert fallbacks(model) == {}
    assert errors["compiled"] <= SLACK * errors["eager"], errors
    assert torch.equal(again, compiled)
    assert counters["stats"]["unique_graphs"] >= 3  # the blocks really ran compiled code
    # Graphs break only around the attention, which stays eager (the `auto` trial and backends, Triton kernels).
    assert all("disable" in reason for reason in breaks), breaks
    assert torch.equal(forward(model, xb), eager)  # off again: the eager model and its kernels
