"""VAE decode: motif_lite.vae vs diffusers' AutoencoderKLWan, full Wan2.1 config, random weights, fp32, CPU.

Run: pytest bench/bench_vae.py -s          (slow: ~5 min at the default size on 2 cores)

Each decode runs once in a fresh subprocess (this file in worker mode). Memory is read from Linux
/proc/self/status: `loaded_mb` = VmRSS after loading (libraries + weights); then the peak is reset (write "5"
to /proc/self/clear_refs) and `peak_mb` = VmHWM, the peak RSS of the process during the decode, so
`decode_extra_mb` = peak_mb - loaded_mb is what the decode itself needs. (`ru_maxrss` is not used: it carries
the parent's peak over fork/exec.) The worker also times the decode alone; pytest-benchmark's own timing
includes process start and loading. Size: VAE_BENCH_SIZE as HxWxF (default 128x128x9 pixels; the issue's
256x256x17 takes ~1.5 min per decode on an idle 2-core CPU). Runs: diffusers, then ours in the decode modes of
VARIANTS (select with -k, e.g. -k "diffusers or bands"). Rows: the report's table "VAE decode (CPU)".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from motif_lite.vae import VAETile

SIZE = os.environ.get("VAE_BENCH_SIZE", "128x128x9")
pytestmark = pytest.mark.slow
# Our runs: the decode options of each, and whether the encoder is loaded (the pipeline loads it only for I2V).
VARIANTS = {
    "motif_lite": {"encoder": True},  # default decode: frame by frame through the upper levels
    "motif_lite_decoder_only": {},
    "motif_lite_chunk": {"frame_by_frame": False},  # the reference's chunking (4 frames at once)
    "motif_lite_bands2": {"bands": 2},  # exact bands: one band's caches at a time
    "motif_lite_bands3": {"bands": 3},
    "motif_lite_tiled": {"tile": VAETile(8, 2)},  # 64x64-pixel tiles, blended (approximate)
}


def _worker(impl: str, folder: str, size: str) -> None:
    import torch

    height, width, frames = (int(v) for v in size.split("x"))
    z = torch.randn(1, 16, (frames - 1) // 4 + 1, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
    if impl == "diffusers":
        from diffusers import AutoencoderKLWan

        model = AutoencoderKLWan.from_pretrained(folder).eval()

        def decode():
            return model.decode(z).sample
    else:
        from motif_lite.vae import load_vae

        options = dict(VARIANTS[impl])
        model = load_vae(folder, encoder=options.pop("encoder", False))

        def decode():
            return model.decode(z, **options)

    for weight in model.parameters():  # page in memory-mapped weights, so loaded_mb counts them
        weight.sum()
    loaded_mb = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    with torch.no_grad():
        video = decode()
    seconds = time.perf_counter() - start
    peak_mb = _status_mb("VmHWM")
    result = {"decode_s": round(seconds, 2), "loaded_mb": loaded_mb, "peak_mb": peak_mb}
    print(json.dumps({**result, "decode_extra_mb": peak_mb - loaded_mb, "shape": list(video.shape)}))


def _status_mb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024  # the value is in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("wan21") / "vae"
    AutoencoderKLWan().save_pretrained(folder)  # the full Wan2.1 config, random weights
    return folder


def _run_worker(impl: str, folder: Path) -> dict:
    cmd = [sys.executable, __file__, "worker", impl, str(folder), SIZE]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("impl", ["diffusers", *VARIANTS])
def test_decode(benchmark, bench_report, checkpoint, impl):
    result = benchmark.pedantic(_run_worker, args=(impl, checkpoint), rounds=1, iterations=1)
    benchmark.extra_info.update(result, size=SIZE)
    row = {k: v for k, v in result.items() if k != "shape"}
    bench_report.add("VAE decode (CPU, full Wan2.1, fp32, one decode per fresh process)", impl=impl, size=SIZE, **row)
    print(f"\n{impl} {SIZE}: {json.dumps(result)}")


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _worker(*sys.argv[2:5])
