"""`--compile`: every block compiled in place (regional) gives the eager numbers, composes with block streaming
(its hooks run eagerly around the compiled blocks), keeps the module tree and state-dict keys, and comes off again.
Inductor on the CPU (needs a C++ compiler); one tiny model, a few graphs."""

from __future__ import annotations

import shutil

import pytest
import torch
from speed_helpers import tiny_transformer
from tiny_config import inputs

from motif_lite.pipeline import first_step_overhead
from motif_lite.runtime.compile import CompileUnavailableError, apply_compile, check_compile_possible
from motif_lite.runtime.streaming import StreamingConfig, apply_block_streaming

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor on the CPU needs g++")


def forward(model, x):
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])


def test_compiled_blocks_equal_eager_and_compose_with_streaming():
    from torch._dynamo.utils import counters

    model = tiny_transformer()
    keys = list(model.state_dict())
    x = inputs(image=5, image_dim=20)  # batch 2, padded text (masked attention), I2V image tokens
    eager = forward(model, x)
    graphs = counters["stats"]["unique_graphs"]
    handle = apply_compile(model)
    streaming = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=2))
    try:
        compiled = forward(model, x)
        again = forward(model, x)
        # The streaming hooks ran eagerly around every streamed block, on both calls.
        assert streaming.stats.loads == 2 * (len(model.transformer_blocks) + len(model.single_transformer_blocks) - 2)
        assert list(model.state_dict()) == keys  # no wrapper modules, no renamed keys
    finally:
        streaming.remove()
        handle.remove()
    # The blocks really ran compiled code: one graph per block kind (dual, encoder single, decoder), no more.
    assert 3 <= counters["stats"]["unique_graphs"] - graphs <= 4
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    assert torch.equal(again, compiled)
    assert all(block._compiled_call_impl is None for block in model.single_transformer_blocks)


def test_compile_possible_here_and_names_the_missing_compiler(monkeypatch):
    check_compile_possible("cpu")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CompileUnavailableError, match="C\\+\\+ compiler"):
        check_compile_possible("cpu")


def test_first_step_overhead():
    assert first_step_overhead([12.0, 2.0, 3.0, 2.5]) == pytest.approx(9.5)
    assert first_step_overhead([2.0, 3.0]) == 0.0 and first_step_overhead([5.0]) is None
