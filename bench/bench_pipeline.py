"""End to end, ours vs the diffusers MotifVideoPipeline: per-stage time, total time and peak RSS, same machine,
same checkpoint, same seed and settings, each implementation in its own subprocess.

    pytest bench/bench_pipeline.py -s                    # slow: 128x128x9, 2 steps, APG, fp32 on the CPU (~15 GB)
    python bench/bench_pipeline.py                       # the same from the command line, which takes options:
    python bench/bench_pipeline.py --size 256x256x9 --steps 4 --repeat 3

The checkpoint (written once to --workdir) has the full-size 2.04B transformer and the full-size Wan2.1 VAE with
random weights (float32 in both runs), and a random T5Gemma2 encoder with the official text stack (34 layers,
hidden 2560, MLP 10240, 8 heads / 4 KV heads of 256, sliding window 1024) in bfloat16, the checkpoint's own dtype,
in both runs (in float32 it would not fit next to the rest on a 24 GB machine). Two parts that do no work for
text-to-video are small: the token embedding (the tokenizer is character level, ~330 tokens instead of 262,144)
and the SigLIP tower. The prompt lengths are set to about what the real Gemma tokenizer gives (prompt ~30 tokens,
negative prompt 150); the reference pads both to 512. The reference's float32 transformer gets its bfloat16
text features through a cast at its context embedder (a forward pre-hook; its pipeline has no option for mixed
dtypes); ours passes `text_encoder_dtype=torch.bfloat16` to `load_pipeline`. Both runs write a PNG sequence,
and the parent compares the frames (max difference in uint8 levels). Under pytest the per-stage figures go to the
report's table "End to end (CPU)".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

PROMPT = "a red fox runs through snow"
NEGATIVE_CHARS = 150  # characters = tokens with the bench's character-level tokenizer
SEED = 0


# ---------------------------------------------------------------------------------------------- checkpoint


def build_checkpoint(root: Path) -> Path:
    """Full-size transformer (bf16 shards) and VAE, the full-depth text encoder (bf16), scheduler, guider."""
    if (root / "done").is_file():
        return root
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler
    from full_size import write_random_checkpoint
    from tiny_pipeline import official_apg
    from tiny_text import _save_feature_extractor, _save_tokenizer, _tiny_config, _tiny_vocab
    from transformers import T5Gemma2Encoder

    root.mkdir(parents=True, exist_ok=True)
    write_random_checkpoint(root)
    torch.manual_seed(0)
    AutoencoderKLWan().eval().save_pretrained(root / "vae")  # the Wan2.1 defaults are Motif's VAE config
    config = _tiny_config(len(_tiny_vocab()))  # tiny vocabulary and SigLIP tower; the text stack made official:
    official = dict(
        hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4,
        head_dim=256, query_pre_attn_scalar=256, sliding_window=1024, max_position_embeddings=131072,
        layer_types=["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(34)],
    )  # fmt: skip
    for key, value in official.items():
        setattr(config.text_config, key, value)
    encoder = T5Gemma2Encoder._from_config(config, dtype=torch.bfloat16).eval()  # transformers' own init
    encoder.save_pretrained(root / "text_encoder")
    _save_tokenizer(root / "tokenizer")
    _save_feature_extractor(root / "feature_extractor")
    FlowMatchEulerDiscreteScheduler(shift=15.0).save_pretrained(root / "scheduler")
    official_apg().save_config(root / "guider")
    (root / "done").write_text("ok")
    return root


# ------------------------------------------------------------------------------------------------ children


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM, so the peak below covers generation only.
    Path("/proc/self/clear_refs").write_text("5")


def _rss_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _negative() -> str:
    from motif_lite.request import OFFICIAL_NEGATIVE_PROMPT

    return OFFICIAL_NEGATIVE_PROMPT[:NEGATIVE_CHARS]


def run_ours(root: Path, out: Path, width: int, height: int, frames: int, steps: int) -> dict:
    from motif_lite import load_pipeline
    from motif_lite.request import GenerationRequest

    start = time.perf_counter()
    pipe = load_pipeline(root, dtype=torch.float32, device="cpu", kernels="auto", text_encoder_dtype=torch.bfloat16)
    load = time.perf_counter() - start
    loaded_rss = _rss_kib("VmRSS")
    _reset_peak_rss()
    request = GenerationRequest(
        PROMPT, _negative(), width=width, height=height, frames=frames, steps=steps, seed=SEED, output=out
    )
    result = pipe.generate(request)
    return {"load": load, **result.timings, "loaded_rss_kib": loaded_rss, "peak_rss_kib": _rss_kib("VmHWM")}


def _reference_pipeline(root: Path):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, MotifVideoPipeline
    from diffusers.guiders import AdaptiveProjectedGuidance
    from diffusers.models import MotifVideoTransformer3DModel
    from transformers import AutoTokenizer, SiglipImageProcessor, T5Gemma2Encoder

    pipe = MotifVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(root / "scheduler"),
        vae=AutoencoderKLWan.from_pretrained(root / "vae", torch_dtype=torch.float32),
        text_encoder=T5Gemma2Encoder.from_pretrained(root / "text_encoder", dtype=torch.bfloat16),
        tokenizer=AutoTokenizer.from_pretrained(root / "tokenizer"),
        transformer=MotifVideoTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=torch.float32),
        guider=AdaptiveProjectedGuidance.from_config(AdaptiveProjectedGuidance.load_config(root / "guider")),
        feature_extractor=SiglipImageProcessor.from_pretrained(root / "feature_extractor"),
    )
    pipe.set_progress_bar_config(disable=True)
    # Its encode_prompt keeps the text encoder's dtype; the float32 transformer needs float32 inputs.
    pipe.transformer.context_embedder.register_forward_pre_hook(lambda _, args: tuple(a.float() for a in args))
    return pipe


def _timed_method(obj, name: str, timings: dict, stage: str) -> None:
    # Wrap a bound method on the instance so the reference's monolithic __call__ reports its stages.
    method = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start

    setattr(obj, name, wrapper)


def run_reference(root: Path, out: Path, width: int, height: int, frames: int, steps: int) -> dict:
    start = time.perf_counter()
    pipe = _reference_pipeline(root)
    load = time.perf_counter() - start
    loaded_rss = _rss_kib("VmRSS")
    timings: dict[str, float] = {}
    _timed_method(pipe, "encode_prompt", timings, "encode")
    _timed_method(pipe.vae, "decode", timings, "decode")
    _timed_method(pipe.video_processor, "postprocess_video", timings, "decode")
    _reset_peak_rss()
    start = time.perf_counter()
    video = pipe(
        PROMPT,
        negative_prompt=_negative(),
        height=height,
        width=width,
        num_frames=frames,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(SEED),
    ).frames[0]
    write = time.perf_counter()
    for i, frame in enumerate(video):  # the same lossless output as ours (PNG per frame)
        frame.save(out.parent / (out.name % i))
    end = time.perf_counter()
    timings["decode"] += end - write  # postprocess is inside __call__; add the file writing
    timings["total"] = end - start
    timings["denoise"] = timings["total"] - timings["encode"] - timings["decode"]
    return {"load": load, **timings, "loaded_rss_kib": loaded_rss, "peak_rss_kib": _rss_kib("VmHWM")}


# ------------------------------------------------------------------------------------------------ parent


def child(impl: str, root: Path, out: Path, size: tuple[int, int, int], steps: int) -> dict:
    command = [sys.executable, __file__, "--child", impl, "--workdir", str(root.parent), "--steps", str(steps)]
    command += ["--size", "x".join(map(str, size)), "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{impl} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in sorted(folder.glob("f_*.png"))])


def report(results: dict[str, dict], size: tuple[int, int, int], steps: int, max_diff: int) -> str:
    w, h, f = size
    lines = [f"{w}x{h}x{f}, {steps} steps, APG, fp32 (text encoder bf16), CPU ({torch.get_num_threads()} threads); "
             "best of the repeats"]  # fmt: skip
    lines.append(f"{'':<10}" + "".join(f"{k:>10}" for k in ("load", "encode", "denoise", "decode", "total")))
    for impl, r in results.items():
        row = "".join(f"{r[k]:>9.1f}s" for k in ("load", "encode", "denoise", "decode", "total"))
        peak, loaded = r["peak_rss_kib"] / 2**20, r["loaded_rss_kib"] / 2**20
        lines.append(f"{impl:<10}{row}   peak RSS {peak:.2f} GiB (after load {loaded:.2f})")
    ours, ref = results["ours"], results["diffusers"]
    ratios = "  ".join(f"{k} {ours[k] / ref[k]:.2f}x" for k in ("encode", "denoise", "decode", "total"))
    lines.append(f"ours / diffusers: {ratios}; peak RSS {ours['peak_rss_kib'] / ref['peak_rss_kib']:.2f}x")
    lines.append(f"frames: max |ours - diffusers| = {max_diff} uint8 levels")
    return "\n".join(lines)


def run_both(workdir: Path, size: tuple[int, int, int], steps: int, repeat: int) -> tuple[dict, int]:
    """{impl: best figures of `repeat` alternating runs}, and max |ours - diffusers| over the frames (uint8)."""
    root = workdir / "checkpoint"
    build_checkpoint(root)
    # On a shared machine single runs swing by 2x: alternate the two and keep each one's least disturbed figures.
    runs: dict[str, list[dict]] = {"ours": [], "diffusers": []}
    for _ in range(repeat):
        for impl in runs:
            folder = workdir / f"out-{impl}"
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.png"):
                old.unlink()
            runs[impl].append(child(impl, root, folder / "f_%03d.png", size, steps))
            print(impl, json.dumps(runs[impl][-1]), flush=True)
    results = {impl: {k: min(r[k] for r in rs) for k in rs[0]} for impl, rs in runs.items()}
    frames = {impl: read_frames(workdir / f"out-{impl}").astype(int) for impl in results}
    return results, int(np.abs(frames["ours"] - frames["diffusers"]).max())


@pytest.mark.slow
def test_end_to_end(bench_report) -> None:
    size, steps = (128, 128, 9), 2
    results, max_diff = run_both(Path("/tmp/motif-lite-bench-full-text"), size, steps, repeat=1)
    print(report(results, size, steps, max_diff))
    table = "End to end (CPU): 128x128x9, 2 steps, APG, fp32 (text encoder bf16), full-size random components"
    for impl, r in results.items():
        bench_report.add(table, impl=impl, **{k: r[k] for k in ("load", "encode", "denoise", "decode", "total")},
                         peak_rss_gib=r["peak_rss_kib"] / 2**20, max_frame_diff_uint8=max_diff)  # fmt: skip
    ours, ref = results["ours"], results["diffusers"]
    bench_report.add(table, impl="ours / diffusers", **{k: ours[k] / ref[k] for k in ("encode", "denoise", "decode",
                     "total")}, peak_rss_gib=ours["peak_rss_kib"] / ref["peak_rss_kib"])  # fmt: skip
    assert max_diff <= 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="128x128x9", help="WxHxF")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="alternate ours/diffusers N times; report the best")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/motif-lite-bench-full-text"))
    parser.add_argument("--child", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    root = args.workdir / "checkpoint"
    if args.child:
        run = run_ours if args.child == "ours" else run_reference
        print(json.dumps(run(root, args.out, *size, args.steps)))
        return
    results, max_diff = run_both(args.workdir, size, args.steps, args.repeat)
    print(report(results, size, args.steps, max_diff))


if __name__ == "__main__":
    main()
