"""The arithmetic of one generation and the time it takes on this CPU: what `motif-lite run` tells a user before a
long CPU run.

FLOPs are counted from the architecture, 2 per multiply-accumulate (MAC):
- transformer, per call: every token through every block's linear layers (dual-stream blocks: the video and the
  text stream through their own weights; encoder single-stream blocks: both through shared weights; DDT decoder
  blocks: 2N tokens), attention (QK^T and PV: 2 L_q L_k hidden MACs) and the text cross-attention. Embedders, the
  per-sample modulation and the head are left out (well under 1 % at video token counts). The LoRA adapters kept
  beside packed layers add their own multiply-adds at each layer's tokens (`adapter_flops`; a merged one adds none).
- text encoder: each weight of its layers once per token (the embedding table is a lookup) and the attention.
- VAE decode: every convolution's MACs (weights x output pixels x output frames, at its level's size) plus the mid
  block's attention.
`tests/test_cost.py` checks the three counts against torch's FLOP counter on real (tiny) models.

Time on the CPU = FLOPs / throughput + transformer calls x the fixed cost of a call. The throughput is this CPU's
measured rate for a transformer-shaped `F.linear` in the run's dtype, at the moment of the run (a busy machine
measures slower). The fixed cost is what a call costs however small its tensors: Python, module calls and op
launches, about a thousand ops for a 5-block model, several thousand for the official 36 blocks. It is timed now on
a copy of the architecture at its narrowest (one head, one video token, one text token), so it is a lower bound of
the real call's: half the time of a tiny checkpoint's call (14 ms of 26 on a 2-core machine, whose FLOPs take well
under 1 ms), and under a minute in the month of a 720p video. The estimate is not a bound: on an idle 2-core
machine the measured runs in docs/benchmarks.md reached 0.6-2x the matrix-multiply rate (convolutions and large
matmuls run faster than this probe, attention and small ops slower).

On a GPU the FLOPs over the GPU's measured matrix-multiply rate is a floor: attention (most of the FLOPs at video
sizes) runs below that rate, and streamed plans add their copies. On an H200 this probe's shape ran at 775 TFLOP/s
(16384 x 6144 x 1536 in 0.399 ms) and a whole 720p forward at 558 (5.13 PFLOP in 9.20 s, the last decoder block
then computed whole), 0.72x of it (docs/benchmarks.md, "Kernels, second versions" and "8-bit attention"), so
`motif-lite run` says "about T to 1.5 T" (the 6 GiB plan took 1.12x the resident time: a streamed run may land just
past the top, ~1.55 T).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from motif_lite.config import MAX_PROMPT_TOKENS, TransformerConfig
from motif_lite.runtime.activation_memory import TextEncoderShape
from motif_lite.runtime.generation_sizes import video_tokens
from motif_lite.vae.config import WanVAEConfig

SLOWEST_CPU_FLOPS = 1e9  # below FLOPs / this many seconds a run is short on any CPU (no need to measure)
# The fixed cost of one block in one transformer call on the slowest CPU worth counting: 6 to 70 times the 0.7 to
# 8 ms a narrow block took on a busy 2-core machine (`measure_call_seconds`, the tiny and the official architecture).
SLOWEST_CPU_BLOCK_SECONDS = 0.05
SLOWEST_GPU_FLOPS = 5e12  # the same for any GPU a video run is worth starting on (bf16 matrix multiply)
CHARS_PER_TOKEN = 4  # English text through the Gemma tokenizer, roughly; prompts are capped at MAX_PROMPT_TOKENS


@dataclass(frozen=True)
class GenerationCost:
    """FLOPs per stage of one generation."""

    text: float
    denoise: float
    decode: float

    @property
    def total(self) -> float:
        return self.text + self.denoise + self.decode


@dataclass(frozen=True)
class TransformerFlops:
    """FLOPs of one transformer call, in the two kinds of work a GPU runs at different rates."""

    linear: float  # the blocks' projections and MLPs
    attention: float  # QK^T and PV of every attention, the text cross-attention's included

    @property
    def total(self) -> float:
        return self.linear + self.attention


def transformer_flop_parts(config: TransformerConfig, video_tokens: int, text_tokens: int) -> TransformerFlops:
    """FLOPs of one transformer call over `video_tokens` (N) and `text_tokens` (T), linear and attention apart."""
    d, m = config.hidden_size, int(config.hidden_size * config.mlp_ratio)
    n, t = video_tokens, text_tokens
    per_token = 4 * d * d + 2 * d * m  # q, k, v, out + the MLP (single-stream: proj_mlp and the wide proj_out)
    joint_blocks = config.num_layers + config.num_encoder_single_layers  # attend over [video; text]
    cross_blocks = config.num_layers * config.enable_text_cross_attention_dual
    cross_blocks += config.num_encoder_single_layers * config.enable_text_cross_attention_single
    decoder_blocks = config.num_decoder_layers
    # MACs. Cross-attention: q and out on the video, k and v on the text. The DDT decoder's blocks see 2N tokens;
    # its last block projects Q, K, V for all 2N, then attention, out and MLP for the decoder's N only.
    linear = joint_blocks * (n + t) * per_token + cross_blocks * (2 * n * d * d + 2 * t * d * d)
    attention = joint_blocks * 2 * (n + t) ** 2 * d + cross_blocks * 2 * n * t * d
    if decoder_blocks:
        linear += (decoder_blocks - 1) * 2 * n * per_token + 3 * d * d * 2 * n + n * (per_token - 3 * d * d)
        attention += (decoder_blocks - 1) * 2 * (2 * n) ** 2 * d + 2 * n * (2 * n) * d
    return TransformerFlops(linear=2.0 * linear, attention=2.0 * attention)


def transformer_flops(config: TransformerConfig, video_tokens: int, text_tokens: int) -> float:
    """FLOPs of one transformer call over `video_tokens` (N) and `text_tokens` (T)."""
    return transformer_flop_parts(config, video_tokens, text_tokens).total


def adapter_flops(
    config: TransformerConfig, macs_per_token: Mapping[str, int], video_tokens: int, text_tokens: int
) -> float:
    """FLOPs of one transformer call's LoRA adapters kept beside packed layers (`lora_apply.side_adapter_macs`:
    module name -> multiply-adds per token; a merged update adds none): each module's per token, times the tokens
    its layer projects, counted as `transformer_flop_parts` counts that layer. Adapters outside the blocks and on
    the per-sample modulation are left out, as those layers are."""
    return 2.0 * sum(macs * _layer_tokens(config, m, video_tokens, text_tokens) for m, macs in macs_per_token.items())


def _layer_tokens(config: TransformerConfig, module: str, video_tokens: int, text_tokens: int) -> int:
    """The tokens linear `module` of the transformer projects in one call over N video and T text tokens: a
    dual-stream block's video layers N and its context layers (add_*, to_add_out, ff_context) T; an encoder
    single-stream block's N + T; a DDT decoder block's 2N (its last block's MLP and output N); the text
    cross-attention's query and output N, its key and value T; 0 for the modulation and outside the blocks."""
    n, t = video_tokens, text_tokens
    block, _, layer = module.partition(".")
    index, _, layer = layer.partition(".")
    if block not in ("transformer_blocks", "single_transformer_blocks") or ".norm" in f".{layer}":
        return 0
    if layer.startswith("cross_attn."):
        return t if layer.split(".")[1] in ("to_k", "to_v") else n
    if block == "transformer_blocks":
        return t if layer.startswith(("attn.add_", "attn.to_add_out", "ff_context.")) else n
    decoder_index = int(index) - config.num_encoder_single_layers
    if decoder_index < 0:
        return n + t
    last = decoder_index == config.num_decoder_layers - 1
    return n if last and layer.startswith(("proj_mlp", "proj_out")) else 2 * n


def text_encoder_flops(shape: TextEncoderShape, tokens: int) -> float:
    """Every layer weight once per token, plus attention over the prompt (QK^T and PV per head)."""
    attention = shape.layers * 2 * tokens**2 * shape.heads * shape.head_dim
    return 2.0 * (shape.layer_weights * tokens + attention)


def vae_decode_flops(vae_config: WanVAEConfig, width: int, height: int, frames: int) -> float:
    """FLOPs of decoding `frames` (4k+1) output frames at `width` x `height` with the Wan2.1 decoder.

    Each convolution costs (its weights) x (output pixels) x (output frames) MACs at its level's size: the first
    latent frame becomes one frame at every level, each later one 2 and then 4 frames after the temporal
    upsamplers. The mid block's attention adds 2 (h w)^2 C MACs per latent frame."""
    from motif_lite.vae.model import WanVAE

    with torch.device("meta"):  # shapes only
        vae = WanVAE(vae_config)
    _, _, latent_frames, latent_h, latent_w = vae_config.latent_shape(width, height, frames)
    first, later = _decoder_macs(vae.post_quant_conv, vae.decoder, latent_h * latent_w)
    return 2.0 * (first + later * (latent_frames - 1))


def _decoder_macs(post_quant_conv: nn.Module, decoder: nn.Module, latent_pixels: int) -> tuple[int, int]:
    """(MACs of the first latent frame, MACs of each later one) of `post_quant_conv` and then the decoder
    (`motif_lite.vae.model.Decoder`)."""
    first = later = 0

    def add(module: nn.Module, area: int, frames: int, first_frames: int = 1) -> None:
        nonlocal first, later
        weights = sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d | nn.Conv3d))
        first += weights * latent_pixels * area * first_frames
        later += weights * latent_pixels * area * frames

    add(post_quant_conv, 1, 1)
    add(decoder.conv_in, 1, 1)
    add(decoder.mid_block, 1, 1)
    channels = decoder.conv_in.weight.shape[0]
    attention = 2 * latent_pixels**2 * channels * len(decoder.mid_block.attentions)
    first, later = first + attention, later + attention
    area, frames = 1, 1  # the current level's area (in latent pixels) and frames per later latent frame
    for block in decoder.up_blocks:
        add(block.resnets, area, frames)
        upsampler = None if block.upsamplers is None else block.upsamplers[0]
        if upsampler is None:
            continue
        if upsampler.time_conv is not None:  # the first frame passes it untouched; later frames double
            add(upsampler.time_conv, area, frames, first_frames=0)
            frames *= 2
        area *= 4
        add(upsampler.resample, area, frames)
    add(decoder.conv_out, area, frames)
    return first, later


def prompt_tokens(text: str) -> int:
    """A rough token count (no tokenizer needed): <bos> + one token per CHARS_PER_TOKEN characters, capped."""
    return min(MAX_PROMPT_TOKENS, 1 + -(-len(text) // CHARS_PER_TOKEN))


def generation_cost(
    config: TransformerConfig,
    vae_config: WanVAEConfig,
    text_shape: TextEncoderShape,
    width: int,
    height: int,
    frames: int,
    steps: int,
    prompts: tuple[str, ...],
    guided_steps: int | None = None,
    adapter_macs: Mapping[str, int] | None = None,
) -> GenerationCost:
    """FLOPs of a text-to-video generation; `prompts` are the prompt and, when guided, the negative prompt: every
    step calls the transformer for the prompt, and `guided_steps` of them (None: every step) for the negative one
    too (a guidance window may cover part of the steps). `adapter_macs`: the LoRA adapters kept beside packed
    layers (`lora_apply.side_adapter_macs`; None: none), counted in every call (`adapter_flops`)."""
    n = video_tokens(width, height, frames, config, vae_config)
    tokens = [prompt_tokens(p) for p in prompts]
    calls = [steps] + [steps if guided_steps is None else guided_steps] * (len(tokens) - 1)

    def call_flops(t: int) -> float:
        return transformer_flops(config, n, t) + adapter_flops(config, adapter_macs or {}, n, t)

    return GenerationCost(
        text=sum(text_encoder_flops(text_shape, t) for t in tokens),
        denoise=sum(count * call_flops(t) for count, t in zip(calls, tokens, strict=True)),
        decode=vae_decode_flops(vae_config, width, height, frames),
    )


def text_encoder_shape(root: str | Path | None) -> TextEncoderShape:
    """The text stack of a checkpoint folder's `text_encoder/config.json`, else the official one."""
    return TextEncoderShape.of_checkpoint(root)


def slowest_call_seconds(config: TransformerConfig) -> float:
    """The fixed cost of one transformer call on the slowest CPU worth counting (SLOWEST_CPU_BLOCK_SECONDS a block):
    an upper bound, to tell a run that is short on any CPU without timing this one."""
    return (config.num_layers + config.num_single_layers) * SLOWEST_CPU_BLOCK_SECONDS


def narrowest_call(config: TransformerConfig, dtype: torch.dtype = torch.float32) -> Callable[[], torch.Tensor]:
    """One transformer call of `config`'s architecture at its narrowest, ready to run: a randomly initialized copy
    with one attention head and 8 embedding features, on one video token and one text token. Every block and op of
    a real call runs, on tensors too small to cost more than their launch."""
    from motif_lite.model.transformer import MotifVideoTransformer

    narrow = config.replace(num_attention_heads=1, text_embed_dim=8, image_embed_dim=config.image_embed_dim and 8)
    model = MotifVideoTransformer(narrow).to(dtype).eval()
    patch = (narrow.patch_size_t, narrow.patch_size, narrow.patch_size)
    latents = torch.zeros(1, narrow.in_channels, *patch, dtype=dtype)  # one video token
    text, timestep = torch.zeros(1, 1, 8, dtype=dtype), torch.ones(1)

    @torch.inference_mode()
    def call() -> torch.Tensor:
        return model(latents, timestep, text)

    return call


def measure_call_seconds(
    config: TransformerConfig, dtype: torch.dtype = torch.float32, seconds: float = 0.3, calls: int = 3
) -> float:
    """This CPU's fixed cost of one transformer call of `config`'s architecture in `dtype`, in seconds: the best of
    at least `calls` timed `narrowest_call`s, for about `seconds`, after a warm-up call. A lower bound of a real
    call's fixed cost (whose ops are the same, on larger tensors); the best, as other processes' work only adds."""
    call = narrowest_call(config, dtype)
    call()  # warm-up: first-call dispatch, the thread pool
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(timings) < calls or time.perf_counter() <= deadline:
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return min(timings)


def measure_matmul_flops(
    dtype: torch.dtype = torch.float32, seconds: float = 0.3, device: torch.device | str = "cpu"
) -> float:
    """This device's matrix-multiply rate in FLOP/s: the best of repeated `F.linear` calls of a transformer linear's
    shape for about `seconds` (`F.linear`, as our layers call it: on some CPUs torch's plain bfloat16 `mm` is ten
    times slower than its bfloat16 linear). The CPU gets 512 tokens, 1536 -> 1536; a GPU, whose throughput needs
    large products, 16384 tokens, 1536 -> 6144 (the feed-forward's first linear at a fraction of a video's tokens)."""
    device = torch.device(device)
    tokens, features = (16384, 6144) if device.type == "cuda" else (512, 1536)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, 1536, generator=generator).to(device, dtype)
    weight = torch.randn(features, 1536, generator=generator).to(device, dtype)
    flops = 2.0 * x.shape[0] * x.shape[1] * weight.shape[0]
    best = float("inf")
    torch.nn.functional.linear(x, weight)  # warm-up: thread pool, first-call dispatch, cuBLAS's choice
    deadline = time.perf_counter() + seconds
    while best == float("inf") or time.perf_counter() <= deadline:  # at least one timed call
        _synchronize(device)
        start = time.perf_counter()
        torch.nn.functional.linear(x, weight)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    del x, weight
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the memory plan that follows budgets the free device memory: give it back
    return flops / best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
