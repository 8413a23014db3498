"""The time estimates count the work of the LoRA adapters kept beside packed (GGUF) layers wherever they are made, as
`motif-lite run` counts it after its checks: the Python API's warning before a long CPU run and a CPU server's
refusal of a long job (the question `run` asks before a download: tests/test_hub_download.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from server_helpers import InProcessServer

from motif_lite import load_pipeline
from motif_lite.memory_plan import packed_adapter_macs
from motif_lite.preflight import check_loras, locate_sources
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.request import GenerationRequest
from motif_lite.run_estimates import LONG_CPU_RUN_SECONDS, run_flops
from motif_lite.runtime import cost
from motif_lite.weights.lora import linear_shapes
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.shapes import build_model

# A small video of many steps: the tiny transformer's linears, not its attention, are most of the work, and its
# fixed cost per call (`cost.slowest_call_seconds`) makes it long enough to be measured at all.
REQUEST = GenerationRequest("a fox", width=128, height=128, frames=17, steps=1000, seed=0)


def write_heavy_lora(path: Path, config: object, rank: int = 256) -> Path:
    """A LoRA of `rank` on every linear of the transformer blocks of `config`: its adapters beside packed layers do
    several times the blocks' own multiply-adds (rank x (in + out) against in x out, with in and out 64 to 256)."""
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, (out_features, in_features) in linear_shapes(build_model(config)).items():
        if name.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            tensors[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(rank, in_features, generator=g) * 0.01
            tensors[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_features, rank, generator=g) * 0.01
    save_file(tensors, path)
    return path


@pytest.fixture(scope="module")
def packed(checkpoint, tmp_path_factory):
    """The tiny checkpoint, its transformer as a Q8_0 GGUF (packed layers: a LoRA stays beside them) and a heavy
    LoRA for it."""
    folder = tmp_path_factory.mktemp("packed")
    gguf = folder / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(checkpoint / "transformer"), gguf, get_recipe("Q8_0"), progress=False)
    lora = write_heavy_lora(folder / "heavy.safetensors", locate_sources(checkpoint).transformer.value)
    return checkpoint, gguf, lora


def cpu_between(monkeypatch, flops_without: float, flops_with: float) -> None:
    """A CPU on which the run is long with the adapters' work counted and short without it: its matrix-multiply rate
    between the two FLOPs over LONG_CPU_RUN_SECONDS, its fixed cost per call none."""
    assert flops_with > 1.5 * flops_without  # the adapters' work is large enough to change the answer
    rate = math.sqrt(flops_without * flops_with) / LONG_CPU_RUN_SECONDS
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda *args, **kwargs: rate)
    monkeypatch.setattr(cost, "measure_call_seconds", lambda config, dtype: 0.0)


def flops(pipe, request: GenerationRequest, loras=()) -> tuple[float, float]:
    """(FLOPs of `request` without adapters, with those of `loras` beside the pipeline's packed layers)."""
    settings = pipe.settings_for(request)
    macs = packed_adapter_macs(pipe.sources, list(loras), pipe.dtype)
    assert macs  # the LoRA stays beside packed layers: it does work of its own
    configs = pipe.sources.configs
    return run_flops(request, settings, configs), run_flops(request, settings, configs, macs)


class _Stopped(Exception):
    """Raised by a progress callback: the run stops at its first report, before any real work."""


def _stop_at_first_report(stage: str, done: int, total: int) -> None:
    raise _Stopped(stage)


def test_the_python_apis_long_cpu_run_warning_counts_the_adapters_work(packed, monkeypatch, caplog, tmp_path):
    # It counted the transformer alone: a run that the adapters beside a GGUF's layers make long started without a
    # word, where `motif-lite run` asks first.
    root, gguf, lora = packed
    pipe = load_pipeline(root, gguf=gguf, dtype=torch.float32, device="cpu", kernels="torch", loras=[(lora, 0.5)])
    request = dataclasses.replace(REQUEST, output=tmp_path / "fox.mp4").resolve()[0]
    cpu_between(monkeypatch, *flops(pipe, request, pipe.loras.files))
    with caplog.at_level("WARNING", logger="motif_lite"), pytest.raises(_Stopped):
        pipe.generate(request, on_progress=_stop_at_first_report, keep_latents=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "FLOPs" in r.getMessage()]
    assert len(warnings) == 1 and "on the CPU this run (128x128x17, 1000 steps)" in warnings[0], caplog.text


def test_a_cpu_servers_refusal_counts_the_adapters_work(packed, monkeypatch, tmp_path):
    # It counted the transformer alone, for the server's own --lora and for the LoRAs a job names: a job that the
    # adapters make long was queued for hours.
    from motif_lite.cli import serve_loading

    root, gguf, lora = packed
    request = REQUEST.resolve()[0]
    own = load_pipeline(root, gguf=gguf, dtype=torch.float32, device="cpu", kernels="torch", loras=[(lora, 0.5)])
    cpu_between(monkeypatch, *flops(own, request, own.loras.files))
    long = serve_loading.cpu_time_limit(own, torch.float32)(request, own.settings_for(request))
    assert long is not None and long.why.startswith("on the CPU this run (128x128x17, 1000 steps)"), long
    # A server without LoRAs of its own: a job that names the LoRA is long, the same job without it is not.
    plain = load_pipeline(root, gguf=gguf, dtype=torch.float32, device="cpu", kernels="torch")
    job_loras = check_loras([LoRASpec(lora, 0.5)], plain.sources)
    too_long = serve_loading.cpu_time_limit(plain, torch.float32)
    assert too_long(request, plain.settings_for(request)) is None
    assert too_long(request, plain.settings_for(request), job_loras) is not None
    with InProcessServer(plain, tmp_path / "data", too_long=too_long, lora_dir=lora.parent) as running:
        body = {"prompt": "a fox", "size": "128x128", "num_frames": 17, "steps": 1000}
        code, error, _ = running.request(
            "POST", "/v1/videos", {**body, "loras": [{"name": lora.name, "strength": 0.5}]}
        )
        assert code == 400 and "this job too long: on the CPU this run" in error["error"]["message"], error


def test_only_the_adapters_beside_packed_layers_count_as_work(monkeypatch):
    # A LoRA's adapter on a float layer merges into its weight: no work of its own, though the LoRA has one there.
    from motif_lite import memory_plan

    packed = frozenset({"transformer_blocks.0.attn.to_q.weight"})
    monkeypatch.setattr(memory_plan, "packed_weight_names", lambda sources: packed)
    adapters = {"transformer_blocks.0.attn.to_q": 10, "proj_out": 5}
    monkeypatch.setattr(memory_plan, "side_adapter_macs", lambda loras, dtype: adapters)
    assert packed_adapter_macs(None, ["style.safetensors"], torch.float32) == {"transformer_blocks.0.attn.to_q": 10}
