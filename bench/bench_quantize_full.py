"""Quantize tool at the full 2.04B architecture: time, file size and transformer output error per recipe.

    python bench/bench_quantize_full.py WORKDIR Q8_0 Q4_K_M ...

Writes a random bf16 checkpoint in the official sharded layout to WORKDIR (once), runs
`python -m motif_lite.quantize` on it for each recipe, loads the result with `load_transformer` and prints, per
recipe, the quantization time, the file size and the relative RMSE of the transformer's velocity (fp32 compute,
2 x 8 x 8 latent + 16 text tokens) against the same model in bf16 weights. One JSON line per recipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from full_size import write_random_checkpoint  # noqa: E402
from tiny_transformer import inputs  # noqa: E402

from motif_lite import load_transformer  # noqa: E402


def velocity(model: torch.nn.Module, x: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(x["latents"], x["timestep"], x["text_embeds"]).float()


def main() -> None:
    workdir, recipes = Path(sys.argv[1]), sys.argv[2:]
    root = workdir / "checkpoint"
    if not (root / "transformer").exists():
        write_random_checkpoint(root)
    x = inputs(batch=1, frames=2, height=8, width=8, text=16, masked=False, text_dim=2560)
    reference = velocity(load_transformer(root, dtype=torch.float32), x)
    for recipe in recipes:
        path = workdir / f"{recipe}.gguf"
        start = time.perf_counter()
        command = [sys.executable, "-m", "motif_lite.quantize", str(root), "-o", str(path), "--type", recipe]
        subprocess.run([*command, "--force", "--quiet"], check=True)
        seconds = time.perf_counter() - start
        out = velocity(load_transformer(path, dtype=torch.float32), x)
        error = ((out - reference).norm() / reference.norm()).item()
        record = {"recipe": recipe, "quantize_s": round(seconds, 1), "size_gb": round(path.stat().st_size / 1e9, 3)}
        print(json.dumps({**record, "output_rel_rmse": round(error, 4)}), flush=True)
        path.unlink()


if __name__ == "__main__":
    main()
