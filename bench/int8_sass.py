"""What the 8-bit attention kernel compiles to, without a GPU: the instructions of its key loop, per thread.

    python bench/int8_sass.py                       # sm_90, FP8 P·V, 128 x 64 tiles on 8 warps, 3 stages
    python bench/int8_sass.py --block-m 64 --warps 4 --pipelined       # the software-pipelined loop
    python bench/int8_sass.py --pv 16bit --capability 89 --block-m 64 --warps 4

Compiles `_int8_attention_kernel` as Triton's JIT compiles a call at the 1280x736x121 DDT decoder shape
(`motif_lite.kernels.compiled.int8_attention_asm`, shared with the compile tests; 228,160 keys, no key mask, head dim
128, contiguous bf16 q, lengths and strides multiples of 16), disassembles it with the cuobjdump Triton ships, and
prints the hot loop's instruction counts (one key tile: 64 keys, so counts / 32 per score for 128-row tiles on 8
warps), where its MMAs are issued and waited for relative to its exp2s (on sm_90: whether the tensor cores have work
while the softmax runs), the registers, the MMA waits and the local-memory stores. This is how the int-to-float
conversions, the serialized wgmmas and the Ada accumulation were found (docs/benchmarks.md, "8-bit attention"); it
says what runs, not how fast.
"""

from __future__ import annotations

import argparse
import collections
import re

from motif_lite.kernels import attention_int8, compiled

MMA_KINDS = {"IGMMA": "QKᵀ (INT8)", "QGMMA": "P·V (FP8)", "HGMMA": "P·V (16-bit)"}  # Hopper wgmma opcodes


def schedule_lines(body: list[str]) -> list[str]:
    """One line per kind of wgmma in the loop body: where it is issued and waited for, against the exp2s."""
    lines = []
    for opcode, name in MMA_KINDS.items():
        if not any(entry.startswith(opcode) for entry in body):
            continue
        mma = compiled.mma_in_loop(body, opcode)
        waited = "in the next iteration" if mma.waited is None else f"at {mma.waited}"
        overlap = "runs during the exp2s" if mma.runs_during_exp2 else "does not overlap the exp2s"
        lines.append(
            f"{name}: issued at {mma.issued}, waited {waited}; MUFU.EX2 at {mma.first_exp2}-{mma.last_exp2}: {overlap}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capability", type=int, default=90, help="compute capability x 10 (default 90: H100)")
    parser.add_argument("--pv", choices=["fp8", "16bit"], default="fp8", help="P·V format (default fp8)")
    parser.add_argument("--block-m", type=int, default=128, help="query rows per program (default 128)")
    parser.add_argument("--warps", type=int, default=8, help="warps per program (default 8)")
    parser.add_argument("--stages", type=int, default=3, help="pipeline stages (default 3)")
    parser.add_argument("--pipelined", action="store_true", help="the software-pipelined key loop (PIPELINE_PV)")
    args = parser.parse_args()
    # The decoder's attention has no key mask; the default length is its 2N tokens at 1280x736x121.
    asm = compiled.int8_attention_asm(args.capability, fp8=args.pv == "fp8", key_mask=False, block_m=args.block_m,
                                      num_warps=args.warps, num_stages=args.stages,
                                      pipeline_pv=args.pipelined)  # fmt: skip
    sass = compiled.sass(asm["cubin"])
    body = compiled.hot_loop(sass)
    loop = [entry.split()[0] for entry in body]
    print(f"sm_{args.capability}, {args.pv} P·V, {args.block_m} rows x {attention_int8.K_BLOCK} keys, "
          f"{args.warps} warps, {args.stages} stages, {'pipelined' if args.pipelined else 'default'} loop: "
          f"{len(loop)} instructions per thread per key tile")  # fmt: skip
    for opcode, count in collections.Counter(loop).most_common(24):
        print(f"{count:6d}  {opcode}")
    for line in schedule_lines(body):
        print(line)
    used = compiled.resources(asm)
    mmas, local_stores = len(re.findall(r"[IQH]G?MMA\.", sass)), len(re.findall(r"\bSTL\b", sass))
    print(f"whole kernel: {mmas} MMAs, {sass.count('WARPGROUP.DEPBAR')} wgmma waits, {used.registers} registers, "
          f"{used.stack} bytes of stack frame (spills), {local_stores} local stores")  # fmt: skip


if __name__ == "__main__":
    main()
