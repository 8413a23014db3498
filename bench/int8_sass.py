"""What the 8-bit attention kernel compiles to, without a GPU: the instructions of its key loop, per thread.

    python bench/int8_sass.py                       # sm_90, FP8 P·V, 128 x 64 tiles on 8 warps, 3 stages
    python bench/int8_sass.py --pv 16bit --capability 89 --block-m 64 --warps 4

Compiles `_int8_attention_kernel` as Triton's JIT compiles a call at the 1280x736x121 DDT decoder shape (two heads
of 228,160 keys per launch, head dim 128, contiguous bf16 q, lengths and strides multiples of 16), disassembles
it with the cuobjdump Triton ships, and prints the hot loop's instruction counts (one key tile: 64 keys, so
counts / 32 per score for 128-row tiles on 8 warps), the MMA waits and the local-memory stores. This is how the
int-to-float conversions, the serialized wgmmas and the Ada accumulation were found (docs/benchmarks.md,
"8-bit attention"); it says what runs, not how fast.
"""

from __future__ import annotations

import argparse
import collections
import re

from motif_lite.kernels import attention_int8, compiled

KEYS, HEADS, DIM = 228_160, 2, 128


def compile_kernel(capability: int, fp8: bool, block_m: int, warps: int, stages: int) -> str:
    """-> the SASS of the attention kernel specialized like a real call at the 720p decoder shape."""
    v_strides = dict(svb=HEADS * DIM * KEYS, svh=DIM * KEYS, svn=1, svd=KEYS) if fp8 else dict(
        svb=12 * KEYS * DIM, svh=KEYS * DIM, svn=DIM, svd=1
    )  # fmt: skip
    ints = dict(H=HEADS, LQ=KEYS, LK=KEYS, D=DIM, LPAD=KEYS, sqb=12 * KEYS * DIM, sqh=KEYS * DIM, sqm=DIM, sqd=1,
                **v_strides, sob=12 * KEYS * DIM, soh=KEYS * DIM, som=DIM, skm_b=0, sbm_b=0, sbm_h=0, sbm_m=0,
                LQ_BUCKET=16384, LK_BUCKET=16384)  # fmt: skip
    pointers = dict(q_ptr="*bf16", k8_ptr="*i8", kscale_ptr="*fp32", v_ptr="*fp8e4nv" if fp8 else "*bf16",
                    vscale_ptr="*fp32", vmean_ptr="*fp32", o_ptr="*bf16", kmask_ptr="*u8", bmask_ptr="*i32",
                    sm_scale_log2="fp32")  # fmt: skip
    constexprs = dict(HAS_BLOCK_MASK=False, MASK_BLOCK=128, BLOCK_M=block_m, BLOCK_N=attention_int8.K_BLOCK,
                      BLOCK_D=DIM, HAS_KEY_MASK=False, PV_FP8=fp8, PV_FP16=False, EVEN_D=True,
                      INTERPRETED=False)  # fmt: skip
    kernel = attention_int8._int8_attention_kernel
    asm = compiled.compile_for(kernel, capability, pointers, constexprs, ints, num_warps=warps, num_stages=stages)
    return compiled.sass(asm["cubin"])


def hot_loop(sass: str) -> list[str]:
    """The opcodes of the first backward-branching block that holds MMAs (the unmasked key loop)."""
    lines = sass.splitlines()
    labels = {line.rstrip(":"): i for i, line in enumerate(lines) if re.fullmatch(r"\w+:", line)}
    for i, line in enumerate(lines):
        target = re.search(r"BRA (\w+);", line)
        if target and labels.get(target.group(1), i) < i:
            body = [entry.split("\t", 1)[1] for entry in lines[labels[target.group(1)] : i + 1] if "\t" in entry]
            if any(re.search(r"MMA", entry) for entry in body):
                return [re.sub(r"^@!?U?P\w+\s+", "", entry).split()[0].rstrip(";") for entry in body]
    raise SystemExit("no MMA loop found in the SASS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capability", type=int, default=90, help="compute capability x 10 (default 90: H100)")
    parser.add_argument("--pv", choices=["fp8", "16bit"], default="fp8", help="P·V format (default fp8)")
    parser.add_argument("--block-m", type=int, default=128, help="query rows per program (default 128)")
    parser.add_argument("--warps", type=int, default=8, help="warps per program (default 8)")
    parser.add_argument("--stages", type=int, default=3, help="pipeline stages (default 3)")
    args = parser.parse_args()
    sass = compile_kernel(args.capability, args.pv == "fp8", args.block_m, args.warps, args.stages)
    loop = hot_loop(sass)
    print(f"sm_{args.capability}, {args.pv} P·V, {args.block_m} rows x {attention_int8.K_BLOCK} keys, "
          f"{args.warps} warps, {args.stages} stages: {len(loop)} instructions per thread per key tile")  # fmt: skip
    for opcode, count in collections.Counter(loop).most_common(24):
        print(f"{count:6d}  {opcode}")
    mmas, local_stores = len(re.findall(r"[IQH]G?MMA\.", sass)), len(re.findall(r"\bSTL\b", sass))
    print(f"whole kernel: {mmas} MMAs, {sass.count('WARPGROUP.DEPBAR')} wgmma waits, {local_stores} local stores")


if __name__ == "__main__":
    main()
