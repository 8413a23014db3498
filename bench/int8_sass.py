"""What the 8-bit attention kernel compiles to, without a GPU: the instructions of its key loop, per thread.

    python bench/int8_sass.py                       # sm_90, FP8 P·V, 128 x 64 tiles on 8 warps, 3 stages
    python bench/int8_sass.py --pv 16bit --capability 89 --block-m 64 --warps 4

Compiles `_int8_attention_kernel` as Triton's JIT compiles a call at the 1280x736x121 DDT decoder shape
(`motif_lite.kernels.compiled.int8_attention_asm`, shared with the compile tests; 228,160 keys, no key mask, head dim
128, contiguous bf16 q, lengths and strides multiples of 16), disassembles it with the cuobjdump Triton ships, and
prints the hot loop's instruction counts (one key tile: 64 keys, so counts / 32 per score for 128-row tiles on 8
warps), the MMA waits and the local-memory stores. This is how the int-to-float conversions, the serialized wgmmas
and the Ada accumulation were found (docs/benchmarks.md, "8-bit attention"); it says what runs, not how fast.
"""

from __future__ import annotations

import argparse
import collections
import re

from motif_lite.kernels import attention_int8, compiled


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
    # The decoder's attention has no key mask; the default length is its 2N tokens at 1280x736x121.
    asm = compiled.int8_attention_asm(args.capability, fp8=args.pv == "fp8", key_mask=False, block_m=args.block_m,
                                      num_warps=args.warps, num_stages=args.stages)  # fmt: skip
    sass = compiled.sass(asm["cubin"])
    loop = hot_loop(sass)
    print(f"sm_{args.capability}, {args.pv} P·V, {args.block_m} rows x {attention_int8.K_BLOCK} keys, "
          f"{args.warps} warps, {args.stages} stages: {len(loop)} instructions per thread per key tile")  # fmt: skip
    for opcode, count in collections.Counter(loop).most_common(24):
        print(f"{count:6d}  {opcode}")
    mmas, local_stores = len(re.findall(r"[IQH]G?MMA\.", sass)), len(re.findall(r"\bSTL\b", sass))
    print(f"whole kernel: {mmas} MMAs, {sass.count('WARPGROUP.DEPBAR')} wgmma waits, {local_stores} local stores")


if __name__ == "__main__":
    main()
