"""VRAM planner: estimate the peak device memory of each stage of a generation and pick the fastest runtime setup
that fits a budget.

Stable API (used by the CLI's `--vram GB` and `--dry-run`):

    plan = plan_memory(width, height, frames, transformer_config, weight_bytes, text_encoder_bytes, vae_config,
                       budget_bytes, cfg_batch=2, device="cuda", vae_dtype=torch.float32)
                                                         # budget_bytes None: no limit (CPU) -> all resident
                                                         # cfg_batch: most rows per forward (2: batched guidance)
    print(plan.describe())                               # the --dry-run table
    handle = apply_plan(transformer, vae, plan)          # the pipeline places the text encoder while encoding
    vae.decode_frames(z, handle.vae_tile, handle.vae_frame_by_frame, handle.vae_bands)  # arguments, not hooks
    budget = default_budget("cuda")                      # free bytes on the CUDA device, None on CPU

Candidates are tried from fastest to slowest (a fixed ladder, so more budget never gives a slower plan):
    1. everything resident on the device;
    2. the text encoder's layers streamed;
    3. + the transformer's blocks streamed, keeping k = 35 .. 0 blocks resident;
    4. + the dual blocks' feed-forward in smaller token chunks;
    5. + the VAE decoding in smaller spatial tiles;
    6. the text encoder run on the CPU, with the smallest settings of 3-5.
Within each untiled candidate the VAE tries its modes, fastest first: 4 frames at once through the upper levels,
one frame at a time, then 2, 3 or 4 exact bands (a few percent more VAE work each: far cheaper than streaming).
Every constant below is explained where it is defined; docs/memory.md derives the formulas.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.runtime.chunking import ChunkingHandle, apply_ff_chunking
from motif_lite.runtime.streaming import (
    StreamingConfig,
    StreamingHandle,
    TextEncoderPlacement,
    apply_block_streaming,
)
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.tiling import VAETile

GiB = 1024**3
ACT_BYTES = 2  # activations are bf16
# Tokens of the context stream: the reference pads prompts to 512 text tokens; I2V adds 729 SigLIP tokens.
CONTEXT_TOKENS = 512 + 729
# Live activation elements per token, in units of the hidden size D and the MLP width F (derived in docs/memory.md
# from what each block's forward keeps alive at its peak):
#   attention phase, torch ops: block inputs, normalized input, q/k/v, RoPE's float32 temporaries ..... 12 D
#   attention phase, fused Triton norms (the CUDA default): RoPE writes q/k in bf16, no float32 copies. Measured
#                 on an H100 at 1280x736x121, all blocks streamed, FF chunks of 16384 (bench_gpu_transformer.py): peak
#                 6.00 GiB = ~0.45 weights + chunk and held terms below + 7.0 D per decoder token .......... 7 D
#   dual-block FF phase: inputs, residual, attention output, FF input, GELU in + out (2 F), output ... 5 D + 2 F
#   single block: the attention phase (its MLP branch runs after attention)
#                 or, at proj_out, [attn; mlp] concat (D + F), mlp (F), attn, k, v, tokens, normed, inputs,
#                 output ....................................................................... 8 D + 2 F
#                 with `token_chunk` c (FF chunking): tokens, normed, attn, output ... 5 D, plus c (3 F + 2 D)
ATTN_PHASE_D = 12
ATTN_PHASE_D_FUSED = 7
# Sequence parallel (runtime/parallel.py) over sp ranks: each rank holds 1/sp of the video tokens (the context stays
# whole); around attention its all-to-all holds a send copy, then the received tensor and the reassembled q/k/v
# (3 D each) next to the q/k/v it started from: up to 6 D more per local token in the attention phase.
SP_EXCHANGE_D = 6
# Attention itself is O(L) with SDPA's flash / memory-efficient kernels: no L x L term.
# T5Gemma2 (Motif-Video's text encoder, ~4.3 B parameters, Gemma-3-4B-like: hidden 2560, MLP 10240, 34 layers):
# the token embedding (262144 x 2560 = 0.67 B) is ~16 % of the parameters; one text layer ~94 M (~2.2 %).
TEXT_NON_LAYER_FRACTION = 0.16
TEXT_LAYER_FRACTION = 0.022
TEXT_HIDDEN, TEXT_MLP, TEXT_HEADS, TEXT_TOKENS = 2560, 10240, 8, 512
# Wan2.1 VAE decode (base_dim 96), per output pixel of one frame, in elements of the VAE dtype:
# - causal caches: every 3-tap temporal conv keeps its last 2 input frames; summed over the decoder's convs at
#   their resolutions (1/8: 4240 channels, 1/4: 2496, 1/2: 1152, full: 672) -> 2 * (4240/64 + 2496/16 + 1152/4
#   + 672) = 2365. With tiles, every tile keeps its own caches (tiling.py), so this term covers the whole frame
#   (times the tiles' overlap) whatever the tile size; with bands (bands.py) only one band's caches exist, each
#   level's term times the largest band's share of that level's rows (halo included). The 1/8 term is mostly
#   the up path's first level (conv_in and the mid block, 1552 channels, run on whole frames before the bands
#   and are freed); the bands keep the mid block's output of every latent frame instead (384 channels at 1/8);
# - working tensors (input, float32 norm band, padded conv input, new cache, output, cuDNN's workspace), measured
#   on an H200 at 1280x736x121 in bf16 (bench/bench_vae_gpu.py, `decode_frames` into CPU memory) as peak - weights
#   - caches: 6.59 GiB -> 1311 when the 4 frames of a latent frame go through the upper levels one at a time
#   (`frame_by_frame`, the default), 10.39 GiB -> 3480 when they go together (the reference's chunking, 5-20 %
#   faster). With tiles, per tile pixel.
VAE_CACHE_CHANNELS = (4240, 2496, 1152, 672)  # at 1/8, 1/4, 1/2 and full resolution
VAE_CACHE_ELEMS_PER_PIXEL = round(2 * sum(c / 4 ** (3 - i) for i, c in enumerate(VAE_CACHE_CHANNELS)))  # 2365
VAE_LOWER_CACHE_CHANNELS = 1552  # conv_in (16) and the mid block (4 x 384): whole frames, before the bands
VAE_MID_CHANNELS = 384
VAE_WORK_ELEMS_PER_PIXEL = 1350
VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK = 3500
# A quantized linear dequantizes its weight per call: float32 values then the bf16 copy (4 + 2 bytes per weight).
DEQUANT_BYTES_PER_WEIGHT = 6
# Not modelled in detail: allocator fragmentation (x1.10) and cuBLAS/cuDNN workspaces, RoPE tables, latents (0.5 GiB;
# not added to the decode stage, whose measured VAE terms include cuDNN's workspace).
FRAGMENTATION = 1.10
RESERVE_BYTES = GiB // 2
# The step cache keeps, per guidance branch, the first block's effect and the skipped blocks' residual: N x D each.
STEP_CACHE_TENSORS = 4
FF_CHUNKS = (16384, 4096)
VAE_TILES = (VAETile(32, 8), VAETile(16, 4))
VAE_BANDS = (2, 3, 4)  # exact bands: 3.8 %, 7.5 %, 11.3 % more VAE work at 720p (bench/bench_vae_band_work.py)


@dataclass(frozen=True)
class StageEstimate:
    """Estimated device memory of one stage (bytes) and what runs off the device during it."""

    name: str
    peak_bytes: int
    weight_bytes: int
    activation_bytes: int
    streamed: str
    chunks: str


@dataclass(frozen=True)
class Plan:
    """A runtime setup and its estimates. `resident_blocks=None` means no block streaming (all resident)."""

    width: int
    height: int
    frames: int
    video_tokens: int
    device: str
    text_placement: TextEncoderPlacement
    resident_blocks: int | None
    ff_chunk_tokens: int | None
    vae_tile: VAETile | None
    vae_frame_by_frame: bool  # the VAE's upper levels one frame at a time (less memory) or 4 at once (faster)
    vae_bands: int  # the VAE's upper levels in this many exact bands, one after another (1: whole frames)
    stages: tuple[StageEstimate, ...]
    budget_bytes: int | None
    rank: int  # position in the ladder: 0 is the fastest
    ladder_size: int
    cfg_batch: int = 1  # rows per transformer forward the estimates allow: 2 = guidance branches batched

    @property
    def peak_bytes(self) -> int:
        return max(stage.peak_bytes for stage in self.stages)

    def describe(self) -> str:
        """A human-readable table of the plan (the CLI's --dry-run output)."""
        budget = "none" if self.budget_bytes is None else f"{self.budget_bytes / GiB:.2f} GiB"
        lines = [
            f"Memory plan for {self.width}x{self.height}x{self.frames}: N = {self.video_tokens:,} video tokens "
            f"(2N = {2 * self.video_tokens:,} in the DDT decoder), budget {budget}, "
            f"plan {self.rank + 1} of {self.ladder_size} (1 = fastest), "
            f"{self.cfg_batch} row{'s' if self.cfg_batch > 1 else ''} per transformer forward",
            f"{'stage':<9} {'est. peak':>10} {'weights':>10} {'activations':>12}  {'streamed':<34} chunks",
        ]
        for s in self.stages:
            lines.append(
                f"{s.name:<9} {_gib(s.peak_bytes):>10} {_gib(s.weight_bytes):>10} {_gib(s.activation_bytes):>12}  "
                f"{s.streamed:<34} {s.chunks}"
            )
        lines.append(
            f"peak {_gib(self.peak_bytes)} (includes x{FRAGMENTATION:.2f} fragmentation and, for text and denoise, "
            f"{RESERVE_BYTES / GiB:.1f} GiB reserve)"
        )
        return "\n".join(lines)


def _gib(n: int) -> str:
    return f"{n / GiB:.2f} GiB"


def default_budget(device: torch.device | str) -> int | None:
    """Free memory of a CUDA device in bytes (what other processes and this one already hold is excluded);
    None on other devices, meaning "no limit"."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


@dataclass(frozen=True)
class _Sizes:
    """What the estimates need to know about the models, in bytes and tokens."""

    video_tokens: int
    config: TransformerConfig
    block_bytes: tuple[int, ...]  # the streamable blocks in execution order
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


def video_tokens(width: int, height: int, frames: int, config: TransformerConfig, vae_config: WanVAEConfig) -> int:
    """N = latent frames x (H / 16) x (W / 16) for Motif (VAE /4 in time, /8 in space; patch 1x2x2)."""
    space = vae_config.spatial_factor * config.patch_size
    if width <= 0 or height <= 0 or width % space or height % space:
        raise ConfigError(f"width and height must be positive multiples of {space}, got {width}x{height}")
    if frames < 1 or (frames - 1) % vae_config.temporal_factor:
        raise ConfigError(f"frames must be 1 + {vae_config.temporal_factor}k, got {frames}")
    latent_frames = (frames - 1) // vae_config.temporal_factor + 1
    return latent_frames // config.patch_size_t * (height // space) * (width // space)


def _sizes(
    width: int,
    height: int,
    frames: int,
    config: TransformerConfig,
    weight_bytes: int,
    text_bytes: int,
    vae_config: WanVAEConfig,
    vae_dtype: torch.dtype,
) -> _Sizes:
    block_numels, total, largest_linear = _transformer_numels(config)
    per_param = weight_bytes / total  # average bytes per parameter of the given weights (e.g. ~0.56 for Q4_K_M)
    block_bytes = tuple(math.ceil(n * per_param) for n in block_numels)
    s = vae_config.spatial_factor
    return _Sizes(
        video_tokens=video_tokens(width, height, frames, config, vae_config),
        config=config,
        block_bytes=block_bytes,
        non_block_bytes=max(0, weight_bytes - sum(block_bytes)),
        largest_linear=largest_linear,
        quantized=per_param < 2,
        text_bytes=text_bytes,
        vae_bytes=_vae_numel(vae_config) * vae_dtype.itemsize,
        vae_element_bytes=vae_dtype.itemsize,
        vae_pixels=width * height,
        vae_latent_hw=(height // s, width // s),
        vae_latent_frames=(frames - 1) // vae_config.temporal_factor + 1,
        vae_config=vae_config,
        vae_spatial=s,
        vae_scale=(vae_config.decoder_base_dim or vae_config.base_dim) / 96,
    )


@functools.lru_cache(maxsize=8)
def _transformer_numels(config: TransformerConfig) -> tuple[tuple[int, ...], int, int]:
    """(elements per block in execution order, total elements, largest linear weight), from a meta-device build."""
    from motif_lite.model.transformer import MotifVideoTransformer

    with torch.device("meta"):  # shapes only: no memory, no init
        model = MotifVideoTransformer(config)
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    linears = [m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)]
    return tuple(_numel(b) for b in blocks), _numel(model), max(linears)


_VAE_NUMELS: dict[str, int] = {}  # WanVAEConfig holds lists (unhashable): keyed by its repr


def _vae_numel(vae_config: WanVAEConfig) -> int:
    key = repr(vae_config)
    if key not in _VAE_NUMELS:
        from motif_lite.vae.model import WanVAE

        with torch.device("meta"):
            _VAE_NUMELS[key] = _numel(WanVAE(vae_config))
    return _VAE_NUMELS[key]


def _numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters()) + sum(b.numel() for b in module.buffers())


@dataclass(frozen=True)
class _Choice:
    text: TextEncoderPlacement
    resident_blocks: int | None
    ff_chunk: int | None
    vae_tile: VAETile | None
    vae_frame_by_frame: bool = True
    vae_bands: int = 1


def _ladder(num_blocks: int) -> list[_Choice]:
    """Every candidate, fastest first (see the module docstring)."""
    dev, stream, cpu = TextEncoderPlacement.DEVICE, TextEncoderPlacement.STREAMED, TextEncoderPlacement.CPU
    outer = [_Choice(text, None, None, None) for text in (dev, stream)]
    outer += [_Choice(stream, k, None, None) for k in range(num_blocks - 1, -1, -1)]
    outer += [_Choice(stream, 0, chunk, None) for chunk in FF_CHUNKS]
    outer += [_Choice(stream, 0, FF_CHUNKS[-1], tile) for tile in VAE_TILES]
    outer += [_Choice(cpu, 0, FF_CHUNKS[-1], tile) for tile in (None, *VAE_TILES)]
    # Within each, the untiled VAE modes, fastest first: they cost far less than streaming more of anything.
    # Decoding 4 frames at once saves ~1-2 s per video at 720p, every band adds ~3.8 % to the decode.
    vae_modes = [(False, 1), (True, 1), *((True, bands) for bands in VAE_BANDS)]
    return [
        replace(choice, vae_frame_by_frame=fbf, vae_bands=bands)
        for choice in outer
        for fbf, bands in (vae_modes if choice.vae_tile is None else [(True, 1)])
    ]


def transformer_activation_bytes(
    n: int,
    config: TransformerConfig,
    batch: int,
    ff_chunk: int | None,
    fused_norms: bool = False,
    sequence_parallel: int = 1,
) -> int:
    """Peak activation bytes of one transformer forward over n video tokens (the formulas at the top), on each
    of `sequence_parallel` ranks sharing them."""
    attn_phase_d = ATTN_PHASE_D_FUSED if fused_norms else ATTN_PHASE_D
    if sequence_parallel > 1:
        n, attn_phase_d = -(-n // sequence_parallel), attn_phase_d + SP_EXCHANGE_D
    d = config.hidden_size
    f = int(d * config.mlp_ratio)
    joint = n + CONTEXT_TOKENS
    dual_ff = 5 * d if ff_chunk else 5 * d + 2 * f
    dual = joint * max(attn_phase_d * d, dual_ff) + (min(ff_chunk, joint) * (2 * f + d) if ff_chunk else 0)

    def single_block(length: int) -> int:
        if ff_chunk:
            return length * max(attn_phase_d * d, 5 * d) + min(ff_chunk, length) * (3 * f + 2 * d)
        return length * max(attn_phase_d * d, 8 * d + 2 * f)

    single = single_block(joint)
    # While the encoder runs, the decoder's copy of the patch-embedded input (n x D) is held for later.
    held = n * d if config.num_decoder_layers else 0
    decoder = single_block(2 * n) if config.num_decoder_layers else 0
    return batch * ACT_BYTES * max(dual + held, single + held, decoder)


def text_activation_bytes(batch: int) -> int:
    """T5Gemma2 over TEXT_TOKENS: ~6 hidden-size tensors and 3 MLP-size ones, plus eager fp32 attention scores."""
    per_token = 6 * TEXT_HIDDEN + 3 * TEXT_MLP
    return batch * (TEXT_TOKENS * per_token * ACT_BYTES + TEXT_HEADS * TEXT_TOKENS**2 * 4)


def vae_decode_bytes(sizes: _Sizes, tile: VAETile | None, frame_by_frame: bool = True, bands: int = 1) -> int:
    """Causal caches over the whole frame (times the tiles' overlap) or one band, plus one tile's or band's
    working tensors."""
    h, w = sizes.vae_latent_hw
    coverage, tile_pixels = 1.0, sizes.vae_pixels
    if tile is not None:
        from motif_lite.vae.tiling import tile_spans

        spans_h, spans_w = tile_spans(h, tile), tile_spans(w, tile)
        coverage = sum(b - a for a, b in spans_h) * sum(b - a for a, b in spans_w) / (h * w)
        tile_pixels = (spans_h[0][1] - spans_h[0][0]) * (spans_w[0][1] - spans_w[0][0]) * sizes.vae_spatial**2
    work = VAE_WORK_ELEMS_PER_PIXEL if frame_by_frame else VAE_WORK_ELEMS_PER_PIXEL_WHOLE_CHUNK
    if bands > 1:
        shares = _band_shares(sizes.vae_config, sizes.vae_latent_hw, bands)
        channels = (VAE_CACHE_CHANNELS[0] - VAE_LOWER_CACHE_CHANNELS, *VAE_CACHE_CHANNELS[1:])
        caches = 2 * sum(c / 4 ** (3 - i) * share for i, (c, share) in enumerate(zip(channels, shares, strict=True)))
        mids = VAE_MID_CHANNELS / 64 * sizes.vae_latent_frames
        elems = (caches + mids + work * shares[-1]) * sizes.vae_pixels
    else:
        elems = VAE_CACHE_ELEMS_PER_PIXEL * sizes.vae_pixels * coverage + work * tile_pixels
    return int(elems * sizes.vae_scale * sizes.vae_element_bytes)


_BAND_SHARES: dict[tuple[str, tuple[int, int], int], tuple[float, ...]] = {}


def _band_shares(vae_config: WanVAEConfig, latent_hw: tuple[int, int], bands: int) -> tuple[float, ...]:
    """The largest band's share of the rows of each up level (halo included), from the decoder's own plan."""
    key = (repr(vae_config), latent_hw, bands)
    if key not in _BAND_SHARES:
        from motif_lite.vae.model import Decoder

        with torch.device("meta"):
            _BAND_SHARES[key] = Decoder(vae_config).band_shares(latent_hw, bands)
    return _BAND_SHARES[key]


def _resident_weights(sizes: _Sizes, choice: _Choice) -> int:
    """Bytes that stay on the device for the whole run: the transformer's resident part and the VAE. (The text
    encoder holds device memory only while it encodes.)"""
    if choice.resident_blocks is None:
        transformer = sizes.non_block_bytes + sum(sizes.block_bytes)
    else:
        transformer = sizes.non_block_bytes + sum(sizes.block_bytes[: choice.resident_blocks])
    return transformer + sizes.vae_bytes


def _text_weights(sizes: _Sizes, choice: _Choice) -> int:
    """The text encoder's bytes on the device while it encodes."""
    if choice.text is TextEncoderPlacement.DEVICE:
        return sizes.text_bytes
    if choice.text is TextEncoderPlacement.STREAMED:  # embeddings and norms + the running and prefetched layers
        return int((TEXT_NON_LAYER_FRACTION + 2 * TEXT_LAYER_FRACTION) * sizes.text_bytes)
    return 0


def _stage_estimates(
    sizes: _Sizes,
    choice: _Choice,
    batch: int,
    fused_norms: bool,
    sequence_parallel: int = 1,
    attention_workspace: int = 0,
    step_cache: bool = False,
) -> tuple[StageEstimate, ...]:
    resident = _resident_weights(sizes, choice)
    text_weights = resident + _text_weights(sizes, choice)
    text_acts = 0 if choice.text is TextEncoderPlacement.CPU else text_activation_bytes(batch)
    dit_weights = resident
    if choice.resident_blocks is not None and choice.resident_blocks < len(sizes.block_bytes):
        dit_weights += 2 * max(sizes.block_bytes[choice.resident_blocks :])  # current + prefetched block
    if sizes.quantized:
        dit_weights += sizes.largest_linear * DEQUANT_BYTES_PER_WEIGHT
    dit_acts = transformer_activation_bytes(
        sizes.video_tokens, sizes.config, batch, choice.ff_chunk, fused_norms, sequence_parallel
    )
    dit_acts += attention_workspace
    if step_cache:
        tokens = math.ceil(sizes.video_tokens / sequence_parallel)
        dit_acts += STEP_CACHE_TENSORS * tokens * sizes.config.hidden_size * ACT_BYTES
    vae_acts = vae_decode_bytes(sizes, choice.vae_tile, choice.vae_frame_by_frame, choice.vae_bands)
    blocks = len(sizes.block_bytes)
    streamed_blocks = "none" if choice.resident_blocks is None else f"{blocks - choice.resident_blocks} of {blocks}"
    # The VAE's measured terms already contain cuDNN's workspace: no workspace reserve for the decode stage.
    stages = [
        ("text", text_weights, text_acts, RESERVE_BYTES, f"text encoder: {choice.text.value}", "-"),
        ("denoise", dit_weights, dit_acts, RESERVE_BYTES, f"transformer blocks: {streamed_blocks}",
         _ff_label(choice.ff_chunk)),
        ("decode", resident, vae_acts, 0, "-", _vae_label(choice)),
    ]  # fmt: skip
    return tuple(
        StageEstimate(name, int((weights + acts) * FRAGMENTATION) + reserve, weights, acts, streamed, chunks)
        for name, weights, acts, reserve, streamed, chunks in stages
    )


_TEXT_PLACES = {
    TextEncoderPlacement.DEVICE: "text encoder on the device",
    TextEncoderPlacement.STREAMED: "text encoder streamed",
    TextEncoderPlacement.CPU: "text encoder on the CPU",
}


def _ff_label(chunk: int | None) -> str:
    return "ff: whole sequence" if chunk is None else f"ff: {chunk} tokens"


def _vae_label(choice: _Choice) -> str:
    frames = "1 frame" if choice.vae_frame_by_frame else "4 frames"
    tile = choice.vae_tile
    where = "whole frame" if tile is None else f"tile {tile.size} (overlap {tile.overlap}) latent px"
    if choice.vae_bands > 1:
        where = f"{choice.vae_bands} exact bands"
    return f"vae: {where}, {frames} at a time"


def plan_memory(
    width: int,
    height: int,
    frames: int,
    transformer_config: TransformerConfig,
    weight_bytes: int,
    text_encoder_bytes: int,
    vae_config: WanVAEConfig,
    budget_bytes: int | None,
    cfg_batch: int = 2,
    device: str = "cuda",
    vae_dtype: torch.dtype = torch.float32,
    fused_norms: bool = False,
    sequence_parallel: int = 1,
    attention_workspace_bytes: int = 0,
    step_cache: bool = False,
) -> Plan:
    """The fastest plan whose estimated peak fits `budget_bytes` (None: no limit, everything resident).

    weight_bytes: the transformer's weights as loaded (packed GGUF bytes count as stored); text_encoder_bytes:
    the T5Gemma2 encoder's. cfg_batch: the most rows per transformer forward the runner can use (2 when it can
    batch the conditional and unconditional predictions, 1 without guidance); each ladder candidate is tried
    with cfg_batch rows, then with 1, and `Plan.cfg_batch` says which fitted. vae_dtype: the
    dtype the VAE is loaded in (`load_vae`'s default float32 doubles the decode memory of bfloat16).
    fused_norms: the transformer runs the fused Triton norm kernels (no float32 RoPE temporaries).
    sequence_parallel: the ranks sharing the video tokens (runtime/parallel.py); the plan is for one of them.
    attention_workspace_bytes: device memory the attention kernel adds inside each call (8-bit attention's
    quantized K/V, `runtime.kernels.attention_workspace_bytes`), counted in the denoise stage.
    step_cache: a step cache (runtime/step_cache.py) holds its tensors through the denoise stage.
    Raises MotifLiteError naming the smallest peak when no plan fits.
    """
    if cfg_batch < 1 or weight_bytes <= 0 or text_encoder_bytes < 0:
        raise ConfigError(f"bad sizes: cfg_batch={cfg_batch}, weight_bytes={weight_bytes}, text={text_encoder_bytes}")
    sizes = _sizes(width, height, frames, transformer_config, weight_bytes, text_encoder_bytes, vae_config, vae_dtype)
    ladder = _ladder(len(sizes.block_bytes))
    plans = []
    # Batching the guidance branches halves the weight traffic of a streamed plan, so at every rung it comes first.
    batches = dict.fromkeys((cfg_batch, 1))  # cfg_batch, then 1 (once when cfg_batch is 1)
    candidates = [(rank, choice, batch) for rank, choice in enumerate(ladder) for batch in batches]
    for rank, choice, batch in candidates:
        stages = _stage_estimates(
            sizes, choice, batch, fused_norms, sequence_parallel, attention_workspace_bytes, step_cache
        )
        plan = Plan(
            width, height, frames, sizes.video_tokens, device, choice.text, choice.resident_blocks,
            choice.ff_chunk, choice.vae_tile, choice.vae_frame_by_frame, choice.vae_bands, stages, budget_bytes, rank,
            len(ladder), batch,
        )  # fmt: skip
        if budget_bytes is None or plan.peak_bytes <= budget_bytes:
            return plan
        plans.append(plan)
    smallest = min(plans, key=lambda p: p.peak_bytes)
    raise MotifLiteError(
        f"{width}x{height}x{frames} needs at least {_gib(smallest.peak_bytes)} of device memory (plan "
        f"{smallest.rank + 1}: everything streamed, {_TEXT_PLACES[smallest.text_placement]}), but the "
        f"budget is {_gib(budget_bytes)}. Lower the resolution or frame count, or allow more memory.\n"
        + smallest.describe()
    )


@dataclass
class PlanHandle:
    """What `apply_plan` installed. `vae_tile`, `vae_frame_by_frame` and `vae_bands` are for
    `vae.decode_frames(z, ...)`; `remove()` takes the hooks and wrappers off (weights stay where the plan put
    them)."""

    vae_tile: VAETile | None
    vae_frame_by_frame: bool = True
    vae_bands: int = 1
    handles: list[StreamingHandle | ChunkingHandle] = field(default_factory=list)

    def remove(self) -> None:
        for handle in reversed(self.handles):
            handle.remove()
        self.handles.clear()


def apply_plan(transformer: nn.Module, vae: nn.Module | None, plan: Plan) -> PlanHandle:
    """Install the plan's runtime features on loaded models.

    transformer: a MotifVideoTransformer; vae: a WanVAE or None. Everything not streamed is moved to
    `plan.device`. The text encoder is placed by the pipeline only while it encodes (`plan.text_placement`).
    """
    handle = PlanHandle(plan.vae_tile, plan.vae_frame_by_frame, plan.vae_bands)
    if plan.ff_chunk_tokens is not None:
        handle.handles.append(apply_ff_chunking(transformer, plan.ff_chunk_tokens))
    if plan.resident_blocks is None:
        transformer.to(plan.device)
    else:
        config = StreamingConfig(plan.device, resident_blocks=plan.resident_blocks)
        handle.handles.append(apply_block_streaming(transformer, config))
    if vae is not None:
        vae.to(plan.device)
    return handle
