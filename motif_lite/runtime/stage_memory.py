"""Stage estimates: the peak of allocated device memory in each stage of a generation (encode, denoise, decode)
for one runtime setup, a candidate of the memory planner's ladder (runtime/planner.py), which tries them fastest
first.

Each stage adds the weights on the device (the resident ones, the streamed blocks in flight, the text encoder
while it encodes) to the activations of the formulas in runtime/activation_memory.py and runtime/vae_memory.py,
over the sizes in runtime/generation_sizes.py, with a margin and the workspaces the formulas leave out. Every
constant is explained where it is defined; docs/memory.md derives the formulas.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from motif_lite.kernels.tuning import dequant_matmul_tunes
from motif_lite.runtime.activation_memory import (
    TEXT_LAYER_FRACTION,
    TEXT_NON_LAYER_FRACTION,
    TEXT_TOKENS,
    adapter_temporary_bytes,
    context_tokens,
    image_tower_activation_bytes,
    linear_rows,
    step_cache_bytes,
    text_activation_bytes,
    transformer_activation_bytes,
)
from motif_lite.runtime.generation_sizes import GenerationSizes
from motif_lite.runtime.streaming import TextEncoderPlacement
from motif_lite.runtime.vae_memory import vae_decode_bytes, vae_encode_bytes
from motif_lite.units import MiB
from motif_lite.vae.tiling import VAEMode

# A quantized linear dequantizes its weight per call: float32 values then the bf16 copy (4 + 2 bytes per weight).
DEQUANT_BYTES_PER_WEIGHT = 6
# What the formulas leave out: the caching allocator's 512-byte rounding and small temporaries (x1.05), cuBLAS
# workspaces (32 MiB per stream; 64 MiB counted), and in the denoise stage the latent-sized tensors of the
# sampler (noise, conditioning, model input with 33 channels, velocities, guidance state: 12 latents counted).
ESTIMATE_MARGIN = 1.05
WORKSPACE_BYTES = 64 * MiB
SAMPLER_LATENTS = 12


@dataclass(frozen=True)
class StageEstimate:
    """Estimated peak of allocated device memory in one stage (bytes) and what runs off the device during it."""

    name: str
    peak_bytes: int
    weight_bytes: int
    activation_bytes: int
    streamed: str
    chunks: str


@dataclass(frozen=True)
class Choice:
    """One candidate setup the planner estimates: where the text encoder runs, how many transformer blocks stay
    resident (None: all), the tokens per piece (None: all at once), the VAE's mode, whether streamed blocks are
    fetched ahead, and the heads per attention call."""

    text: TextEncoderPlacement
    resident_blocks: int | None
    token_chunk: int | None
    vae: VAEMode = VAEMode()
    prefetch: bool = True
    heads: int | None = None  # heads per attention call in the single-stream blocks (None: all)


def _resident_weights(sizes: GenerationSizes, choice: Choice) -> int:
    """Bytes that stay on the device for the whole run: the transformer's resident part and the VAE. (The text
    encoder holds device memory only while it encodes.)"""
    resident_blocks = sizes.block_bytes[: choice.resident_blocks]  # None: no streaming, every block
    return sizes.non_block_bytes + sum(resident_blocks) + sizes.vae_bytes


def _text_weights(sizes: GenerationSizes, choice: Choice) -> int:
    """The text encoder's bytes on the device while it encodes."""
    if choice.text is TextEncoderPlacement.DEVICE:
        return sizes.text_bytes
    if choice.text is TextEncoderPlacement.STREAMED:  # embeddings and norms + the running and prefetched layers
        return int((TEXT_NON_LAYER_FRACTION + 2 * TEXT_LAYER_FRACTION) * sizes.text_bytes)
    return 0


def streamed_bytes(sizes: GenerationSizes, choice: Choice) -> int:
    """The streamed blocks' weights: what is copied to the device at every transformer forward."""
    return 0 if choice.resident_blocks is None else sum(sizes.block_bytes[choice.resident_blocks :])


def _streamed_in_flight(sizes: GenerationSizes, choice: Choice) -> int:
    """Streamed blocks on the device at once: the running one and, with prefetch, the next."""
    if choice.resident_blocks is None or choice.resident_blocks >= len(sizes.block_bytes):
        return 0
    return (2 if choice.prefetch else 1) * max(sizes.block_bytes[choice.resident_blocks :])


def _denoise_activations(
    sizes: GenerationSizes,
    choice: Choice,
    batch: int,
    fused_norms: bool,
    sequence_parallel: int,
    attention_workspace: Callable[[int], int] | None,
    step_cache: bool,
) -> int:
    """The denoise stage's activation bytes: one transformer forward of `batch` rows, the sampler's latent-sized
    tensors, and what the attention kernel, the step cache and the LoRA adapters beside packed layers add."""
    context = context_tokens(sizes.image_tokens)
    activations = transformer_activation_bytes(
        sizes.video_tokens, sizes.config, batch, choice.token_chunk, fused_norms, context, sizes.act_bytes,
        sequence_parallel=sequence_parallel, heads_per_call=choice.heads,
    )  # fmt: skip
    latent_elements = sizes.config.out_channels * sizes.video_tokens * 4  # 2x2 patches per token
    activations += batch * SAMPLER_LATENTS * latent_elements * sizes.act_bytes
    if attention_workspace is not None:
        activations += attention_workspace(batch)
    tokens = math.ceil(sizes.video_tokens / sequence_parallel)
    if step_cache:
        activations += step_cache_bytes(tokens, sizes.config.hidden_size, batch, sizes.act_bytes, context)
    token_bytes, image_tokens = sizes.adapter_token_bytes, sizes.image_tokens
    return activations + adapter_temporary_bytes(token_bytes, tokens, choice.token_chunk, batch, image_tokens)


def _tunes_in_denoise(
    sizes: GenerationSizes,
    choice: Choice,
    batch: int,
    sequence_parallel: int,
    attention_workspace: Callable[[int], int] | None,
    triton_attention: bool = False,
) -> bool:
    """Whether a kernel of ours can meet a new tuning key inside a transformer forward, so that Triton's
    autotuner holds its benchmark buffer there: 8-bit attention (the only attention with a workspace) and the
    exact attention where it can be our dense Triton kernel (`triton_attention`: auto's trial times it), both in
    the attention phase, the peak; and the quantized linears' fused GEMM for a row count it tunes for
    (`linear_rows`: a stream, or a piece of one, of a few dozen to a few hundred tokens)."""
    if attention_workspace is not None and attention_workspace(batch) > 0:
        return True
    if triton_attention:
        return True
    if not sizes.quantized:
        return False
    tokens = math.ceil(sizes.video_tokens / sequence_parallel)
    rows = linear_rows(tokens, choice.token_chunk, batch, TEXT_TOKENS, sizes.image_tokens)
    return any(dequant_matmul_tunes(count, sizes.act_bytes) for count in rows)


@functools.cache
def _text_encoder_tunes(act_bytes: int) -> bool:
    """Whether a quantized text encoder's linears (`dequant_matmul`, one call per layer over the prompt's tokens)
    autotune for some prompt of up to TEXT_TOKENS tokens in activations of `act_bytes` bytes: in 16 bits, for
    prompts of a few dozen to a few hundred tokens; never in float32, whose fused GEMM takes a fixed config.
    Cached: every candidate of every plan asks."""
    return any(dequant_matmul_tunes(tokens, act_bytes) for tokens in range(1, TEXT_TOKENS + 1))


def stage_estimates(
    sizes: GenerationSizes,
    choice: Choice,
    batch: int,
    fused_norms: bool,
    sequence_parallel: int = 1,
    attention_workspace: Callable[[int], int] | None = None,
    step_cache: bool = False,
    autotune_bytes: int = 0,
    text_quantized: bool = False,
    triton_attention: bool = False,
) -> tuple[StageEstimate, ...]:
    """The encode, denoise and decode stages' estimates for `choice`, with `batch` rows per transformer forward.
    `autotune_bytes` (Triton's benchmark buffer; 0 without our Triton kernels) is added to the stages where a
    kernel of ours can autotune: the encode stage of a text encoder with quantized linears (`text_quantized`) on
    the device where `_text_encoder_tunes`, the denoise stage where `_tunes_in_denoise` (`triton_attention`: the
    exact attention can be our Triton kernel)."""
    resident = _resident_weights(sizes, choice)
    # Encode: the text encoder's pass; for image-to-video its SigLIP tower's pass over the first frame after it
    # (the larger of the two: the prompts' activations are gone by then), then the first frame through the VAE
    # encoder, after the text encoder has left the device.
    # No text encoder on this device: on the CPU, or in a process that never loads it (text_bytes 0). The pipeline
    # encodes one prompt per call, whatever the transformer's rows per forward.
    on_device = choice.text is not TextEncoderPlacement.CPU and sizes.text_bytes > 0
    text_acts = text_activation_bytes(1, sizes.text_act_bytes) if on_device else 0
    if on_device and sizes.image:
        text_acts = max(text_acts, image_tower_activation_bytes(sizes.image_tower, sizes.text_act_bytes))
    encode = (resident + _text_weights(sizes, choice), text_acts)
    if sizes.image:
        encode = max(encode, (resident, vae_encode_bytes(sizes, choice.vae.bands)), key=sum)
    dit_weights = resident + _streamed_in_flight(sizes, choice)
    if sizes.quantized:
        dit_weights += sizes.largest_linear * DEQUANT_BYTES_PER_WEIGHT
    dit_acts = _denoise_activations(
        sizes, choice, batch, fused_norms, sequence_parallel, attention_workspace, step_cache
    )
    vae_acts = vae_decode_bytes(sizes, choice.vae)
    blocks = len(sizes.block_bytes)
    streamed_blocks = "none" if choice.resident_blocks is None else f"{blocks - choice.resident_blocks} of {blocks}"
    if choice.resident_blocks is not None and not choice.prefetch:
        streamed_blocks += ", no prefetch"
    encode_chunks = f"vae encode: {choice.vae.bands} bands" if sizes.image and choice.vae.bands > 1 else "-"
    encode_tuning = autotune_bytes if on_device and text_quantized and _text_encoder_tunes(sizes.text_act_bytes) else 0
    tunes = _tunes_in_denoise(sizes, choice, batch, sequence_parallel, attention_workspace, triton_attention)
    denoise_tuning = autotune_bytes if tunes else 0
    # The VAE's measured terms already contain cuDNN's workspace: no workspace counted for the decode stage.
    stages = [
        ("encode", *encode, WORKSPACE_BYTES + encode_tuning, f"text encoder: {choice.text.value}", encode_chunks),
        ("denoise", dit_weights, dit_acts, WORKSPACE_BYTES + denoise_tuning, f"transformer blocks: {streamed_blocks}",
         _chunk_label(choice.token_chunk, choice.heads)),
        ("decode", resident, vae_acts, 0, "-", _vae_label(choice)),
    ]  # fmt: skip
    return tuple(
        StageEstimate(name, int((weights + acts) * ESTIMATE_MARGIN) + workspace, weights, acts, streamed, chunks)
        for name, weights, acts, workspace, streamed, chunks in stages
    )


def _chunk_label(chunk: int | None, heads: int | None = None) -> str:
    label = "tokens: whole streams" if chunk is None else f"tokens: {chunk} per piece"
    return label if heads is None else f"{label}, {heads} heads per call"


def _vae_label(choice: Choice) -> str:
    frames = "1 frame" if choice.vae.frame_by_frame else "4 frames"
    tile = choice.vae.tile
    where = "whole frame" if tile is None else f"tile {tile.size} (overlap {tile.overlap}) latent px"
    if choice.vae.bands > 1:
        where = f"{choice.vae.bands} exact bands"
    return f"vae: {where}, {frames} at a time"
