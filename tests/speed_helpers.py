"""Tiny random transformers and conditioning for the speed-feature tests (batched guidance, step cache, compile,
attention backends, streaming, planner): no diffusers, no checkpoint files."""

from __future__ import annotations

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf_helpers import random_packed
from tiny_config import TINY, randomize_
from torch import nn

from motif_lite.choices import SAMPLERS
from motif_lite.config import TransformerConfig
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.pipeline import MotifVideoPipeline
from motif_lite.pipeline.conditioning import Conditioning
from motif_lite.request import GenerationRequest
from motif_lite.runtime.planner import PlanHandle
from motif_lite.sampling import RECOMMENDED_APG
from motif_lite.settings import FLAG, Setting, Settings
from motif_lite.weights.quant_linear import QuantizedLinear

# Latent video of the tests: 3 latent frames of 6 x 10 (2 x 3 x 5 = 30 video tokens with the 1x2x2 patch).
LATENT = (1, 16, 3, 6, 10)


def tiny_transformer(seed: int = 0, quantized: bool = False) -> MotifVideoTransformer:
    """The tiny transformer of the speed-feature and streaming tests, randomized like every test model
    (`tiny_config.randomize_`: the text moves its output as much as the timestep does; tests/test_sensitivity.py).
    With `quantized`, the feed-forward and MLP linears hold packed random Q8_0 bytes."""
    model = randomize_(MotifVideoTransformer(TransformerConfig(**TINY)).eval().requires_grad_(False), seed)
    if quantized:
        rng = np.random.default_rng(seed)
        for name, module in list(model.named_modules()):
            if isinstance(module, nn.Linear) and (".ff" in name or "proj_mlp" in name):
                packed = torch.from_numpy(random_packed(Q.Q8_0, module.weight.shape, rng))
                layer = QuantizedLinear.from_packed(packed, Q.Q8_0, module.in_features, module.bias.data)
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent), child, layer)
    return model


def conditioning(i2v: bool = False, prompt_tokens: int = 7, negative_tokens: int = 4, seed: int = 1) -> Conditioning:
    """A prompt and a negative prompt of different lengths (unpadded, as the pipeline encodes them); for I2V a
    first-frame latent, its mask channel and image tokens."""
    g = torch.Generator().manual_seed(seed)
    text_dim, image_dim = TINY["text_embed_dim"], TINY["image_embed_dim"]
    prompt = torch.randn(1, prompt_tokens, text_dim, generator=g)
    negative = torch.randn(1, negative_tokens, text_dim, generator=g)
    latents, mask = torch.zeros(LATENT), torch.zeros(LATENT[0], 1, *LATENT[2:])
    image = None
    if i2v:
        latents[:, :, 0] = torch.randn(LATENT[0], LATENT[1], *LATENT[3:], generator=g)
        mask[:, :, 0] = 1.0
        image = torch.randn(1, 5, image_dim, generator=g)
    ones = torch.ones
    return Conditioning(
        (prompt, ones(1, prompt_tokens, dtype=torch.bool)),
        (negative, ones(1, negative_tokens, dtype=torch.bool)),
        latents,
        mask,
        image,
    )


def noise(seed: int = 2) -> torch.Tensor:
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(seed))


def pipeline(transformer: MotifVideoTransformer, plan_handle: PlanHandle | None = None) -> MotifVideoPipeline:
    """A pipeline around `transformer` alone (no text encoder or VAE): enough for `sample`."""
    return MotifVideoPipeline(transformer, None, None, torch.device("cpu"), torch.float32, plan_handle=plan_handle)


def sampling_request(steps: int = 5, solver: str = "euler", guidance=RECOMMENDED_APG) -> Settings:
    """The settings `MotifVideoPipeline.sample` runs with: any solver and guidance (windows included), shift 8."""
    request, _ = GenerationRequest("-", steps=steps).resolve()
    sampler = {solver: name for name, solver in SAMPLERS.items()}[solver]
    config = Setting(TransformerConfig(**TINY), FLAG)
    return Settings(request, Setting(sampler, FLAG), Setting(8.0, FLAG), Setting(guidance, FLAG), config)


def sample(pipe: MotifVideoPipeline, cond: Conditioning, settings: Settings):
    """(latents, record) of one sampling run."""
    return pipe.sample(settings.request, noise(), cond, settings, lambda stage, done, total: None)


def forward_batches(model: torch.nn.Module) -> tuple[list[int], object]:
    """Record the batch size of every transformer forward; returns (the list, the hook handle)."""
    batches: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    return batches, handle
