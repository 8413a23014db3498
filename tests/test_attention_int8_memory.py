"""What the 8-bit attention allocates per call, counted tensor by tensor (`live_memory.LiveTensors`), against the
workspace the memory planner adds for it (`int8_scheme.workspace_bytes`): the quantized K/V copies of one head
group, their scales and statistics rows, and the key mask the kernel reads. Interpreted on the CPU (exact: no
allocator), compiled on a GPU with FP8 P·V."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from kernels_interp import DEVICE, KernelCall, kernel_runner, live_call

from motif_lite.kernels.int8_scheme import heads_per_launch, workspace_bytes

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 9), reason="FP8 P·V needs sm_89+"
)


@pytest.fixture(scope="module")
def measured() -> Iterator[KernelCall]:
    yield from kernel_runner(live_call)


@pytest.mark.parametrize(
    ("batch", "heads", "length", "head_dim", "masked", "budget"),
    [
        (1, 4, 200, 64, False, None),  # every head in one group, ragged keys (200 of 256 padded)
        (2, 4, 200, 64, True, 1),  # one head per group: 4 groups, a key mask per batch row
        (1, 3, 1100, 24, True, 60_000),  # 2 heads, then 1; head dim padded to 32; two statistics chunks
        (1, 2, 201, 64, True, None),  # a key mask of 201 bytes, rounded up to 204 for its 4-byte words
    ],
)
def test_the_planned_workspace_is_what_a_call_allocates(measured, batch, heads, length, head_dim, masked, budget):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, batch, heads, length, head_dim, device=DEVICE).unbind(0)
    mask = None
    if masked:  # the joint attention's padded prompt: the last keys of each row masked out
        mask = (torch.arange(length, device=DEVICE) < length - 7)[None, None, None, :].repeat(batch, 1, 1, 1)
    options = {"pv": "fp8"} | ({} if budget is None else {"workspace_bytes": budget})
    measured("attention_int8.int8_attention", q, k, v, mask, **options)  # a GPU tunes on its first call: not counted
    peak, out = measured("attention_int8.int8_attention", q, k, v, mask, **options)
    planned = workspace_bytes(batch, heads, length, head_dim, masked, **({} if budget is None else {"budget": budget}))
    assert peak - out == planned
    if budget is not None:  # several groups: the copies of one group at a time, never two
        assert heads_per_launch(batch, heads, length, head_dim, True, budget=budget) < heads


def test_the_16_bit_layout_holds_no_fp8_v_and_narrow_heads_are_32_wide():
    # Plain arithmetic, no kernel: 100 keys pad to 128 rows, a head of 48 to 64 columns; the FP8 layout adds the
    # e4m3 Vᵀ copy, a byte per element, that the 16-bit P·V (before sm_89) does without.
    from motif_lite.kernels.int8_scheme import head_block, head_workspace_bytes

    fp8, sixteen = head_workspace_bytes(2, 100, 48, True), head_workspace_bytes(2, 100, 48, False)
    assert fp8 - sixteen == 2 * 128 * 64
    # Triton refuses an 8-bit dot narrower than 32: a head of 8 or 16 is loaded 32 wide, and counted so.
    assert [head_block(d) for d in (8, 16, 32, 33)] == [32, 32, 32, 64]
