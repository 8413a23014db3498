"""An experiment, not used at run time: the 8-bit attention's key loop warp-specialized on Hopper (Triton 3.9).

    python bench/int8_ws.py                  # compile for sm_90 (no GPU needed) and print what the SASS shows
    python bench/int8_ws.py --no-ping-pong   # the same loop without the consumers taking turns

One CTA of 12 warps per 128 query rows: Triton's Hopper warp specialization (`tl.range(..., warp_specialize=True)`,
which takes effect only with num_warps=4 and TMA loads) gives a producer warpgroup that loads K and Vᵀ tiles by TMA
into a 3-deep ring of shared-memory buffers, and splits the query tile between two consumer warpgroups (64 rows
each) that run INT8 QKᵀ, the online softmax and FP8 P·V. Triton (3.9) schedules nothing between the consumers;
with PING_PONG they take turns by two named barriers written here in PTX (FlashAttention-3's inter-warpgroup
overlap): a consumer's [P·V of tile j, QKᵀ of tile j + 1] run while the other consumer computes its softmax.

Limits, each forced by Triton 3.9's warp specialization (docs/benchmarks.md, "8-bit attention"): Q is quantized
beforehand with one scale per 128-row query tile (a per-row scale vector cannot reach the consumers: a vector
load goes to the producer, which cannot hand it on, and a row max in the kernel stops the pass), every key tile
is full (keys a multiple of 64, no key mask, no block mask), FP8 P·V, head dim 128. Under TRITON_INTERPRET=1 the
barriers are left out (the interpreter runs the loop in one thread); the arithmetic is the default loop's.
`ws_attention` runs it on a GPU (bench/bench_attention_int8.py times it as "int8-ws"); a GPU must show that the
turn-taking neither deadlocks nor slows it before any of it moves into kernels/.
"""

from __future__ import annotations

import argparse
import math
import os
import re

import torch
import triton
import triton.language as tl

from motif_lite.kernels import attention_int8, compiled
from motif_lite.kernels.attention import _key_mask_arg
from motif_lite.kernels.attention_int8 import MAGIC, MAGIC_BITS, _fp8_tile_pv, _softmax_int8, _to_e4m3

BLOCK_M, BLOCK_N, HEAD_DIM = 128, attention_int8.K_BLOCK, 128
OPTIONS = dict(num_warps=4, num_stages=3)  # 4 warps: the only count Triton 3.9 warp-specializes on Hopper
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _wait_turn(x):
    """Consumer warpgroup w (1 or 2: threads 128-383, after the producer's 0-127) waits at named barrier 9 + w
    until the other consumer has passed it the turn (bar.sync over 256 threads). Returns 0, from x: the caller
    adds it to a consumer's value so that Triton keeps the barrier in the consumers, in source order."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 t; mov.u32 t, %tid.x; shr.u32 t, t, 7; add.u32 t, t, 9; bar.sync t, 256; and.b32 $0, $1, 0; }",
        "=r,r", [x], dtype=tl.int32, is_pure=False, pack=1,
    )  # fmt: skip


@triton.jit
def _pass_turn(tile):
    """Consumer w passes the turn (bar.arrive at the other's barrier, 12 - w), except consumer 1 at tile 0: it
    starts with the turn, so only consumer 2 arrives first and their MMA blocks alternate. Returns tile."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 t; .reg .pred p, q; mov.u32 t, %tid.x; shr.u32 t, t, 7; setp.eq.u32 p, t, 1; "
        "setp.eq.u32 q, $1, 0; and.pred p, p, q; sub.u32 t, 12, t; @!p bar.arrive t, 256; mov.b32 $0, $1; }",
        "=r,r", [tile], dtype=tl.int32, is_pure=False, pack=1,
    )  # fmt: skip


@triton.jit
def _last_turn(x):
    """Consumer 1's arrival for the one it skipped at tile 0, so that both barriers balance. Returns 0."""
    return tl.inline_asm_elementwise(
        "{ .reg .u32 t; .reg .pred p; mov.u32 t, %tid.x; shr.u32 t, t, 7; setp.eq.u32 p, t, 1; "
        "@p bar.arrive 11, 256; and.b32 $0, $1, 0; }",
        "=r,r", [x], dtype=tl.int32, is_pure=False, pack=1,
    )  # fmt: skip


@triton.jit
def _ws_attention_kernel(
    q8_ptr, qscale_ptr, k_desc, kscale_ptr, v_desc, vscale_ptr, vmean_ptr, o_ptr,
    H, LQ, LK, LPAD, LQPAD, sob, soh, som,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, PING_PONG: tl.constexpr,
    INTERPRETED: tl.constexpr,
):  # fmt: skip
    """Program (query tile, b·H + h). q8: INT8 Q [B·H·LQPAD, BLOCK_D] (its descriptor is made here: the pass
    splits the Q tile between the consumers, which a host descriptor's fixed block refuses), one scale per query
    tile in qscale (softmax scale x log2 e folded in); k_desc: INT8 K [B·H·LPAD, BLOCK_D]; v_desc: e4m3 Vᵀ
    [B·H·BLOCK_D, LPAD]; LK a multiple of BLOCK_N. Same arithmetic as `attention_int8._attend_tile_int8` per tile."""
    pid_m, pid_bh = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    q_row = pid_bh * LQPAD + pid_m * BLOCK_M
    q_desc = tl.make_tensor_descriptor(
        q8_ptr, shape=[tl.num_programs(1) * LQPAD, BLOCK_D], strides=[BLOCK_D, 1], block_shape=[BLOCK_M, BLOCK_D]
    )
    q8 = q_desc.load([q_row, 0])
    q_scale = tl.full((BLOCK_M,), 1.0, tl.float32) * tl.load(qscale_ptr + q_row // BLOCK_M)
    kscale_row = kscale_ptr + pid_bh * (LPAD // BLOCK_N)
    offs_n = tl.arange(0, BLOCK_N)
    m_i = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_M,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    for start_n in tl.range(0, LK, BLOCK_N, warp_specialize=True):
        k = k_desc.load([pid_bh * LPAD + start_n, 0])
        qk = (tl.dot(q8, tl.trans(k)) + MAGIC_BITS).to(tl.float32, bitcast=True) - MAGIC
        tile = start_n // BLOCK_N
        if PING_PONG and not INTERPRETED:  # QKᵀ j done: the other consumer may start its MMAs
            tile = _pass_turn(tile)
        p, alpha, l_i, m_i = _softmax_int8(
            qk, l_i, m_i, q_scale, kscale_row, None, tile * BLOCK_N, offs_n, None, False, False, True, BLOCK_N,
        )  # fmt: skip
        p8 = _to_e4m3(p, INTERPRETED)
        if PING_PONG and not INTERPRETED:  # this consumer's P·V j and QKᵀ j + 1 wait for its turn
            l_i += _wait_turn(tile).to(tl.float32)
        vt = v_desc.load([pid_bh * BLOCK_D, start_n])
        acc = acc * alpha[:, None] + _fp8_tile_pv(p8, tl.trans(vt), BLOCK_N)
    if PING_PONG and not INTERPRETED:
        l_i += _last_turn(LK).to(tl.float32)
    out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
    offs_d = tl.arange(0, BLOCK_D)
    out *= tl.load(vscale_ptr + pid_bh * BLOCK_D + offs_d)[None, :]
    out += tl.where(l_i > 0.0, 1.0, 0.0)[:, None] * tl.load(vmean_ptr + pid_bh * BLOCK_D + offs_d)[None, :]
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    o_rows = o_ptr + b.to(tl.int64) * sob + h.to(tl.int64) * soh + offs_m[:, None].to(tl.int64) * som
    tl.store(o_rows + offs_d[None, :], out.to(o_ptr.dtype.element_ty), mask=offs_m[:, None] < LQ)


def quantize_q_tiles(q: torch.Tensor, sm_scale_log2: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """q [B, H, L, D] -> (INT8 Q [B·H·LQPAD, D], one scale per BLOCK_M rows x sm_scale_log2, LQPAD), rounded as the
    kernel rounds (halves away from zero)."""
    bsz, heads, length, dim = q.shape
    lqpad = triton.cdiv(length, BLOCK_M) * BLOCK_M
    rows = torch.zeros(bsz * heads, lqpad, dim, device=q.device)
    rows[:, :length] = q.reshape(bsz * heads, length, dim).float()
    amax = rows.view(bsz * heads, lqpad // BLOCK_M, BLOCK_M * dim).abs().amax(-1)
    scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
    q8 = rows / scale.repeat_interleave(BLOCK_M, 1)[..., None]
    q8 = (q8 + torch.where(q8 >= 0, 0.5, -0.5)).to(torch.int8)
    return q8.reshape(-1, dim), (scale * sm_scale_log2).reshape(-1), lqpad


def ws_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ping_pong: bool = True) -> torch.Tensor:
    """Softmax attention of q/k/v [B, H, L, 128] (keys a multiple of 64, no mask) by `_ws_attention_kernel`."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    bsz, heads, lq, dim = q.shape
    lk = k.shape[2]
    if dim != HEAD_DIM or lk % BLOCK_N:
        raise ValueError(f"ws_attention: head dim {HEAD_DIM} and keys a multiple of {BLOCK_N} only")
    sm_scale_log2 = 1.0 / math.sqrt(dim) * math.log2(math.e)
    q8, q_scale, lqpad = quantize_q_tiles(q, sm_scale_log2)
    no_mask, mask_stride = _key_mask_arg(None, bsz, lk, q.device)
    kv = attention_int8._quantize_kv(k, v, no_mask, mask_stride, False, True, True, BLOCK_N, HEAD_DIM)
    lpad = kv.k8.shape[1]
    # The kernel's own (Q) descriptor lives in global scratch memory that Triton asks this allocator for.
    triton.set_allocator(lambda size, alignment, stream: torch.empty(size, dtype=torch.int8, device=q.device))
    k_desc = TensorDescriptor.from_tensor(kv.k8.reshape(-1, HEAD_DIM), [BLOCK_N, HEAD_DIM])
    v_desc = TensorDescriptor.from_tensor(kv.v.reshape(-1, lpad), [HEAD_DIM, BLOCK_N])
    out = torch.empty_like(q)
    _ws_attention_kernel[(triton.cdiv(lq, BLOCK_M), bsz * heads)](
        q8, q_scale, k_desc, kv.k_scale, v_desc, kv.v_scale, kv.v_mean, out, heads, lq, lk, lpad, lqpad,
        *out.stride()[:3], BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=HEAD_DIM, PING_PONG=ping_pong,
        INTERPRETED=INTERPRETED, **({} if INTERPRETED else OPTIONS),
    )  # fmt: skip
    return out


def compile_sm90(ping_pong: bool = True, keys: int = 228_160) -> dict[str, object]:
    """`_ws_attention_kernel` as a call at the 720p decoder shape (`keys` queries and keys, 12 heads) compiles it
    for sm_90 (`compiled.compile_for`'s result)."""
    descs = dict(k_desc=f"tensordesc<i8[{BLOCK_N}, {HEAD_DIM}]>", v_desc=f"tensordesc<fp8e4nv[{HEAD_DIM}, {BLOCK_N}]>")
    pointers = dict(
        q8_ptr="*i8", qscale_ptr="*fp32", kscale_ptr="*fp32", vscale_ptr="*fp32", vmean_ptr="*fp32", o_ptr="*bf16"
    )
    ints = dict(LQ=keys, LK=keys, LPAD=keys, LQPAD=keys, sob=12 * keys * HEAD_DIM, soh=keys * HEAD_DIM, som=HEAD_DIM)
    constexprs = dict(BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=HEAD_DIM, PING_PONG=ping_pong, INTERPRETED=False)
    return compiled.compile_for(_ws_attention_kernel, 90, descs | pointers, constexprs, ints, **OPTIONS)


def register_targets(sass: str) -> list[int]:
    """The register counts the warpgroups move to (`setmaxnreg`: the producer gives registers up, the consumers
    take them), smallest first."""
    return sorted({int(n, 16) for n in re.findall(r"USETMAXREG\.\w+\.CTAPOOL (?:\w+, )?(0x[0-9a-f]+)", sass)})


def consumer_loop(sass: str) -> list[str]:
    """The first consumer warpgroup's key loop (the first loop of the SASS with MMAs), as `compiled.hot_loop`."""
    return compiled.hot_loop(sass)


def schedule(body: list[str]) -> dict[str, list[int]]:
    """Where in a consumer loop body the MMAs, their waits, the exp2s and the turn barriers are (indices): "pass" and
    "wait" are the named barriers whose number is in a register (ours; Triton's own have immediate numbers)."""
    at = {"QKᵀ (IGMMA)": "IGMMA", "P·V (QGMMA)": "QGMMA", "MMA waits": "WARPGROUP.DEPBAR", "exp2": "MUFU.EX2"}
    found = {name: [i for i, entry in enumerate(body) if entry.startswith(opcode)] for name, opcode in at.items()}
    found["pass"] = [i for i, entry in enumerate(body) if re.match(r"BAR\.ARV R\d+", entry)]
    found["wait"] = [i for i, entry in enumerate(body) if re.match(r"BAR\.SYNC(\.\w+)* R\d+", entry)]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-ping-pong", action="store_true", help="leave the consumers' turn-taking out")
    args = parser.parse_args()
    asm = compile_sm90(ping_pong=not args.no_ping_pong)
    sass = compiled.sass(asm["cubin"])
    used = compiled.resources(asm)
    body = consumer_loop(sass)
    print(f"sm_90: {used.threads} threads (3 warpgroups: producer + 2 consumers), {used.registers} registers at "
          f"launch, {used.stack} bytes of stack, {used.shared} bytes of shared memory; TMA loads: "
          f"{sass.count('UTMALDG')}; registers per warpgroup set to {register_targets(sass)}")  # fmt: skip
    print(f"consumer key loop: {len(body)} instructions per thread and 64-key tile")
    for name, at in schedule(body).items():
        print(f"  {name}: {at if len(at) <= 4 else f'{len(at)} at {at[0]}-{at[-1]}'}")


if __name__ == "__main__":
    main()
