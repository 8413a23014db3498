"""What the memory planner's estimates need to know about one generation, in bytes and tokens: the video's tokens,
pixels and latent shape, and the models' weights block by block (counted on the meta device, no memory used).

The planner (runtime/planner.py) builds them once per video size; its stage estimates and the VAE formulas
(runtime/vae_memory.py) read them. docs/memory.md ("The planner's formulas": Weights) derives how the weights
are counted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from motif_lite import dtypes
from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.runtime.activation_memory import OFFICIAL_IMAGE_TOWER, ImageTowerShape
from motif_lite.runtime.host_memory import pinned_size
from motif_lite.vae.config import WanVAEConfig


@dataclass(frozen=True)
class GenerationSizes:
    """What the estimates need to know about the video and the models, in bytes and tokens."""

    video_tokens: int
    config: TransformerConfig
    block_bytes: tuple[int, ...]  # the streamable blocks in execution order
    block_pinned_bytes: tuple[int, ...]  # the same, each tensor rounded up as a pinned home
    non_block_bytes: int
    largest_linear: int  # weights of the largest linear (dequantized per call when quantized)
    quantized: bool
    text_bytes: int
    vae_bytes: int
    vae_element_bytes: int
    vae_pixels: int  # output pixels of one frame
    vae_latent_hw: tuple[int, int]
    vae_latent_frames: int
    vae_config: WanVAEConfig
    vae_spatial: int
    vae_scale: float  # channel width relative to the Wan2.1 base_dim 96
    frames: int
    image: bool  # image-to-video: the first frame is VAE-encoded in the encode stage
    act_bytes: int  # bytes per element of the transformer's activations
    text_act_bytes: int  # bytes per element of the text encoder's activations (it may run in another dtype)
    image_tower: ImageTowerShape = OFFICIAL_IMAGE_TOWER  # the checkpoint's SigLIP tower (image-to-video)
    # Packed layer -> the most bytes per token its LoRA adapters keep alive at once beside its output in a forward
    # (`lora_apply.SideAdapters.temporary_bytes_per_token`; None: no adapters).
    adapter_token_bytes: Mapping[str, int] | None = None

    @property
    def image_tokens(self) -> int:
        """The first frame's SigLIP tokens in the transformer's context: the tower's for image-to-video, else 0."""
        return self.image_tower.tokens if self.image else 0


def video_tokens(width: int, height: int, frames: int, config: TransformerConfig, vae_config: WanVAEConfig) -> int:
    """N = latent frames x (H / 16) x (W / 16) for Motif (VAE /4 in time, /8 in space; patch 1x2x2)."""
    space = size_multiple(config, vae_config)
    if width <= 0 or height <= 0 or width % space or height % space:
        raise ConfigError(f"width and height must be positive multiples of {space}, got {width}x{height}")
    if frames < 1 or (frames - 1) % vae_config.temporal_factor:
        raise ConfigError(f"frames must be 1 + {vae_config.temporal_factor}k, got {frames}")
    return vae_config.latent_frames(frames) // config.patch_size_t * (height // space) * (width // space)


def size_multiple(config: TransformerConfig, vae_config: WanVAEConfig) -> int:
    """What a video's width and height are multiples of: the VAE's spatial factor x the transformer's patch (16)."""
    return vae_config.spatial_factor * config.patch_size


def generation_sizes(
    width: int,
    height: int,
    frames: int,
    config: TransformerConfig,
    weight_bytes: int,
    text_bytes: int,
    vae_config: WanVAEConfig,
    vae_dtype: torch.dtype,
    image: bool,
    activation_dtype: torch.dtype,
    text_activation_dtype: torch.dtype | None = None,
    image_tower: ImageTowerShape = OFFICIAL_IMAGE_TOWER,
    adapter_bytes: Mapping[str, tuple[int, ...]] | None = None,
    adapter_token_bytes: Mapping[str, int] | None = None,
) -> GenerationSizes:
    """The sizes of a width x height x frames generation: the transformer's weights (`weight_bytes` as loaded)
    spread over its blocks by their element counts, the text encoder's and VAE's bytes, the VAE's frame shapes.
    `text_activation_dtype`: the dtype the text encoder runs in (None: what `load_pipeline` gives it next to a
    transformer in `activation_dtype`, `dtypes.text_encoder_dtype`). `image_tower`: the checkpoint's SigLIP tower
    (`ImageTowerShape.of_checkpoint`), whose tokens an image-to-video context holds. `adapter_bytes`: the LoRA
    adapters kept beside packed layers, module name -> each adapter tensor's bytes (`lora_apply.side_adapter_bytes`):
    they are buffers of the layer's block, so they count with that block, resident or streamed.
    `adapter_token_bytes`: packed layer -> what its adapters keep alive per token in a forward."""
    text_dtype = dtypes.text_encoder_dtype(activation_dtype, text_activation_dtype)
    block_numels, total, largest_linear = _transformer_numels(config)
    per_param = weight_bytes / total  # average bytes per parameter of the given weights (e.g. ~0.56 for Q4_K_M)
    block_bytes = tuple(math.ceil(sum(numels) * per_param) for numels in block_numels)
    pinned = tuple(sum(pinned_size(math.ceil(n * per_param)) for n in numels) for numels in block_numels)
    non_block_bytes = max(0, weight_bytes - sum(block_bytes))
    extra, extra_pinned, extra_other = _adapter_bytes_by_block(config, adapter_bytes or {})
    block_bytes = tuple(b + e for b, e in zip(block_bytes, extra, strict=True))
    pinned = tuple(p + e for p, e in zip(pinned, extra_pinned, strict=True))
    _, _, latent_frames, latent_h, latent_w = vae_config.latent_shape(width, height, frames)
    return GenerationSizes(
        video_tokens=video_tokens(width, height, frames, config, vae_config),
        config=config,
        block_bytes=block_bytes,
        block_pinned_bytes=pinned,
        non_block_bytes=non_block_bytes + extra_other,
        largest_linear=largest_linear,
        quantized=per_param < 2,
        text_bytes=text_bytes,
        vae_bytes=_vae_numel(vae_config) * vae_dtype.itemsize,
        vae_element_bytes=vae_dtype.itemsize,
        vae_pixels=width * height,
        vae_latent_hw=(latent_h, latent_w),
        vae_latent_frames=latent_frames,
        vae_config=vae_config,
        vae_spatial=vae_config.spatial_factor,
        vae_scale=(vae_config.decoder_base_dim or vae_config.base_dim) / 96,
        frames=frames,
        image=image,
        act_bytes=activation_dtype.itemsize,
        text_act_bytes=text_dtype.itemsize,
        image_tower=image_tower,
        adapter_token_bytes=adapter_token_bytes,
    )


def _adapter_bytes_by_block(
    config: TransformerConfig, adapter_bytes: Mapping[str, tuple[int, ...]]
) -> tuple[list[int], list[int], int]:
    """(bytes per block in execution order, the same as pinned homes, bytes outside the blocks) of the adapters."""
    blocks = config.num_layers + config.num_single_layers
    extra, pinned, other = [0] * blocks, [0] * blocks, 0
    for module, tensors in adapter_bytes.items():
        index = _block_index(config, module)
        if index is None:
            other += sum(tensors)
        else:
            extra[index] += sum(tensors)
            pinned[index] += sum(map(pinned_size, tensors))
    return extra, pinned, other


def _block_index(config: TransformerConfig, module: str) -> int | None:
    """The execution-order index of the block `module` is in (dual-stream blocks first); None outside the blocks."""
    for prefix, first in (("transformer_blocks.", 0), ("single_transformer_blocks.", config.num_layers)):
        if module.startswith(prefix):
            return first + int(module.removeprefix(prefix).split(".")[0])
    return None


@functools.lru_cache(maxsize=8)
def _transformer_numels(config: TransformerConfig) -> tuple[tuple[tuple[int, ...], ...], int, int]:
    """(the tensor sizes of every block in execution order, total elements, largest linear weight), from a
    meta-device build."""
    from motif_lite.model.transformer import MotifVideoTransformer

    with torch.device("meta"):  # shapes only: no memory, no init
        model = MotifVideoTransformer(config)
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    linears = [m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)]
    numels = tuple(tuple(t.numel() for t in [*b.parameters(), *b.buffers()]) for b in blocks)
    return numels, _numel(model), max(linears)


@functools.cache
def _vae_numel(vae_config: WanVAEConfig) -> int:
    """The VAE's elements (weights and buffers), from a meta-device build."""
    from motif_lite.vae.model import WanVAE

    with torch.device("meta"):
        return _numel(WanVAE(vae_config))


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())
