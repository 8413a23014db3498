"""How the transformer is built: `load_pipeline` builds it once, `set_loras` again the same way with other LoRAs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from motif_lite.checkpoint import ModelSources
from motif_lite.io.model_stamps import file_stamps
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.pipeline.metadata import model_flags_of
from motif_lite.quantize.on_load import quantize_transformer_tensors
from motif_lite.runtime.attention import AttentionBackend, apply_attention_backend
from motif_lite.runtime.compile import CompileConfig, CompileHandle, apply_compile
from motif_lite.runtime.kernels import apply_kernels
from motif_lite.runtime.planner import Plan, PlanHandle, apply_plan
from motif_lite.weights.gguf_file import GGUFCheckpoint
from motif_lite.weights.gguf_loader import load_gguf_transformer, load_packed_transformer
from motif_lite.weights.loader import load_transformer
from motif_lite.weights.lora_apply import AppliedLoRAs, apply_loras
from motif_lite.weights.lora_updates import LoRAFile


@dataclass(frozen=True)
class TransformerRecipe:
    """How `load_pipeline` builds the transformer: `set_loras` builds it again the same way with other LoRAs."""

    sources: ModelSources
    dtype: torch.dtype
    load_device: torch.device | str  # the CPU under a memory plan, which then places the weights
    kernels: str
    attention: str  # "exact" or "int8"
    plan: Plan | None
    compile: bool | CompileConfig
    attention_backend: AttentionBackend | None  # the exact attention kernel; None with int8 attention

    @property
    def run_device(self) -> torch.device:
        """The device the transformer computes on: the plan's, else the one it loads on."""
        return torch.device(self.plan.device if self.plan is not None else self.load_device)


@dataclass(frozen=True)
class LoadedTransformer:
    """The transformer `load_transformer_stage` built, and what it installed on it: the pipeline holds it as one
    value, so that `set_loras` drops and replaces all of it at once (a new field needs no other change there)."""

    model: MotifVideoTransformer
    loras: AppliedLoRAs | None = None
    plan_handle: PlanHandle | None = None  # what a memory plan installed (streaming hooks, chunking)
    compile_handle: CompileHandle | None = None
    # The size and time of each weight file of the model (its LoRAs' among them) as it was loaded: a stopped run
    # keeps them, so that its resume can tell a file changed in place since (a LoRA retrained under the same name).
    file_stamps: dict[str, dict[str, int]] = field(default_factory=dict)


def quantize_search_device(run_device: torch.device | str) -> torch.device | str:
    """Where quantizing as it loads runs the K-quants' search: on the run's GPU (cuda:1 stays cuda:1, not the current
    device), much faster than on the CPU, before the weights go there; else on the CPU."""
    device = torch.device(run_device)
    return device if device.type == "cuda" else "cpu"


def load_transformer_stage(
    recipe: TransformerRecipe, lora_files: list[LoRAFile], gguf_header: GGUFCheckpoint | None = None
) -> LoadedTransformer:
    """Load the transformer from its source with `lora_files` (checked by `check_loras`) applied, then its kernels,
    its part of the memory plan, the attention backend and compiling, in that order. `gguf_header`: the GGUF file's
    header as `locate_sources` read it (the file is not read again; None: read now, as `set_loras` does)."""
    sources, dtype, device = recipe.sources, recipe.dtype, recipe.load_device
    if sources.gguf is not None:
        config = sources.transformer.value
        transformer = load_gguf_transformer(sources.gguf, dtype=dtype, device=device, config=config, header=gguf_header)
    elif sources.quantize is not None:
        search = quantize_search_device(recipe.run_device)
        packed = quantize_transformer_tensors(sources.root, sources.quantize, device=search)
        config = sources.transformer.value
        transformer = load_packed_transformer(packed, config, dtype, device, f"{sources.root} quantized on load")
    else:
        # The config.json `locate_sources` read and checked every tensor against, not read again (none there: the
        # loader infers the config from the weights, as before).
        read = sources.transformer.value if sources.configs.transformer is not None else None
        transformer = load_transformer(sources.root, dtype=dtype, device=device, config=read)
    applied_loras = apply_loras(transformer, lora_files, dtype) if lora_files else None
    # The kernels for the GPU it runs on, which `set_loras` need not have made the current one.
    apply_kernels(transformer, recipe.kernels, attention=recipe.attention, device=recipe.run_device)
    plan_handle = None if recipe.plan is None else apply_plan(transformer, None, recipe.plan)
    if recipe.attention_backend is not None:
        apply_attention_backend(transformer, recipe.attention_backend)
    compile_handle = None
    if recipe.compile:
        config = recipe.compile if isinstance(recipe.compile, CompileConfig) else None
        compile_handle = apply_compile(transformer, config)
    stamps = file_stamps(model_flags_of(sources, dtype, recipe.attention, applied_loras))
    return LoadedTransformer(transformer, applied_loras, plan_handle, compile_handle, stamps)
