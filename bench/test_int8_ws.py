"""bench/int8_ws.py, the warp-specialized 8-bit attention experiment: what it compiles to on sm_90 (no GPU needed)
and, under Triton's CPU interpreter, that its key loop computes what the default loop of `int8_attention` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

triton = pytest.importorskip("triton")

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import int8_ws  # noqa: E402


def _consumer_schedule(ping_pong: bool) -> tuple[dict, dict[str, list[int]]]:
    try:
        asm = int8_ws.compile_sm90(ping_pong=ping_pong)
        sass = int8_ws.compiled.sass(asm["cubin"])
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:  # no ptxas / cuobjdump with this triton
        pytest.skip(f"cannot build or read cubins here: {exc}")
    return asm, int8_ws.schedule(int8_ws.consumer_loop(sass))


def test_consumers_take_turns_between_their_mma_blocks() -> None:
    """A producer warpgroup and two consumers (384 threads), nothing spilled. In a consumer's loop the turn passes
    to the other consumer once its QKᵀ has been waited for, before its exp2s, and comes back before its P·V."""
    asm, at = _consumer_schedule(ping_pong=True)
    used = int8_ws.compiled.resources(asm)
    assert used.threads == 384 and used.stack == 0
    assert len(at["pass"]) == 1 and len(at["wait"]) == 1, at
    qk_waited = min(i for i in at["MMA waits"] if i > at["QKᵀ (IGMMA)"][-1])
    assert qk_waited < at["pass"][0] < at["exp2"][0], at
    assert at["exp2"][0] < at["wait"][0] < at["P·V (QGMMA)"][0], at


def test_without_ping_pong_nothing_orders_the_consumers() -> None:
    """Triton's warp specialization alone: each consumer waits for each of its MMAs at once and no barrier orders
    one consumer's MMAs against the other's softmax."""
    _, at = _consumer_schedule(ping_pong=False)
    assert at["pass"] == [] and at["wait"] == [], at
    for mma in ("QKᵀ (IGMMA)", "P·V (QGMMA)"):
        waited = min(i for i in at["MMA waits"] if i > at[mma][-1])
        assert not at[mma][0] < at["exp2"][0] < waited, (mma, at)


# Run in a fresh interpreter: TRITON_INTERPRET must be set before triton is imported. Each 128-row query tile's
# rows get the same max |q|, so the experiment's one Q scale per tile equals the default loop's per-row scales and
# the two kernels must agree to rounding; 256 queries and keys: two query tiles, four key tiles.
INTERPRETED_CHECK = """
import sys, torch
sys.path[:0] = [{bench!r}, {tests!r}]
from attention_inputs import dit_like_qkv
from motif_lite.kernels.attention_int8 import int8_attention
import int8_ws
q, k, v = dit_like_qkv(1, 2, 256, 128, 3)
rows = q.abs().amax(-1, keepdim=True)
q = q / rows * rows.view(1, 2, 2, 128).amax(-1).repeat_interleave(128, -1)[..., None]
print(float((int8_ws.ws_attention(q, k, v) - int8_attention(q, k, v, pv="fp8")).abs().max()))
"""


def test_matches_the_default_loop_under_the_interpreter() -> None:
    code = INTERPRETED_CHECK.format(bench=str(BENCH), tests=str(BENCH.parent / "tests"))
    env = dict(os.environ, TRITON_INTERPRET="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.split()[-1]) <= 1e-6, done.stdout
