"""Memory planner: estimate the peak device memory of each stage of a generation (and the host memory of the
process), and pick the fastest runtime setup that fits the budgets.

Stable API (used by the CLI's `--vram GiB`, `--ram GiB` and `--dry-run`):

    inputs = PlannerInputs(width, height, frames, transformer_config, weight_bytes, text_encoder_bytes, vae_config,
                           cfg_batch=2, vae_dtype=torch.float32, fused_norms=False, image=False)
    plan = plan_memory(inputs, budget_bytes, device="cuda", ram_budget_bytes=None)
                                                         # budget_bytes None: no limit (CPU) -> all resident
                                                         # cfg_batch: most rows per forward (2: batched guidance)
    print(plan.describe())                               # the --dry-run table, host memory included
    handle = apply_plan(transformer, vae, plan)          # the pipeline places the text encoder while encoding
    vae.decode_frames(z, handle.vae.tile, handle.vae.frame_by_frame, handle.vae.bands)  # arguments, not hooks
    budget = default_budget("cuda")                      # free bytes on the CUDA device, None on CPU

Candidates are tried from fastest to slowest (a fixed ladder, so more budget never gives a slower plan):
    1. everything resident on the device;
    2. the text encoder's layers streamed;
    3. + the transformer's per-token steps in pieces of 16384 tokens (attention projections, MLPs: near free);
    4. + the transformer's blocks streamed, keeping k = 35 .. 0 blocks resident;
    5. + pieces of 4096 tokens; then no prefetch (one streamed block on the device instead of two);
    6. + the VAE decoding in smaller spatial tiles;
    7. the text encoder run on the CPU, with the smallest settings of 3-6;
    8. the single-stream blocks attending 6, then 4, then 3 of their 12 heads per call (head groups: only the
       group's Q, K, V exist), with the text encoder streamed or on the CPU and each VAE setting again.
Within each untiled candidate the VAE tries its modes, fastest first: 4 frames at once through the upper levels,
one frame at a time, then 2, 3 or 4 exact bands (a few percent more VAE work each: far cheaper than streaming).
The host memory (runtime/host_memory.py) then decides whether streamed blocks get page-locked homes or go
through staging buffers, and refuses the plan before anything loads if even staging exceeds `ram_budget_bytes`.
The formulas live in their own modules: the transformer's and the text encoder's activations in
runtime/activation_memory.py, the VAE's in runtime/vae_memory.py, and the sizes they read (video tokens, block
bytes) in runtime/generation_sizes.py; runtime/stage_memory.py adds them up per stage with the weights, and
runtime/budget_advice.py words what to do when nothing fits (the --vram that would, the sizes that fit); this
module orders the candidates and picks one. Every constant is explained where it is defined; docs/memory.md
derives the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.errors import Audience, ConfigError, MemoryBudgetError, MotifLiteError
from motif_lite.gpu_memory import gpu_memory
from motif_lite.runtime.activation_memory import (
    OFFICIAL_IMAGE_TOWER,
    TEXT_LAYER_FRACTION,
    ImageTowerShape,
    text_activation_bytes,
)
from motif_lite.runtime.budget_advice import decode_advice, more_budget, vram_for, what_fits
from motif_lite.runtime.chunking import ChunkingHandle, apply_token_chunking
from motif_lite.runtime.generation_sizes import GenerationSizes, generation_sizes, size_multiple
from motif_lite.runtime.host_memory import (
    HostEstimate,
    HostNeeds,
    available_ram,
    plan_host,
    staging_bytes,
)
from motif_lite.runtime.stage_memory import ESTIMATE_MARGIN, Choice, StageEstimate, stage_estimates, streamed_bytes
from motif_lite.runtime.streaming import (
    StreamingConfig,
    StreamingHandle,
    TextEncoderPlacement,
    apply_block_streaming,
)
from motif_lite.runtime.vae_memory import vae_decode_cpu_workspace_bytes
from motif_lite.units import RESERVED_RATIO, memory_size
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.tiling import VAEMode, VAETile

GiB = 1024**3
MiB = 1024**2
TOKEN_CHUNKS = (16384, 4096)
VAE_TILES = (VAETile(32, 8), VAETile(16, 4))
VAE_BANDS = (2, 3, 4)  # exact bands: 3.8 %, 7.5 %, 11.3 % more VAE work at 720p (bench/bench_vae_band_work.py)
# The untiled VAE modes, fastest first: decoding 4 frames at once saves ~1-2 s per video at 720p, every band adds
# ~3.8 % to the decode.
VAE_MODES = (VAEMode(frame_by_frame=False), VAEMode(), *(VAEMode(bands=bands) for bands in VAE_BANDS))


@dataclass(frozen=True)
class Plan:
    """A runtime setup and its estimates. `resident_blocks=None` means no block streaming (all resident).

    `token_chunk`: tokens per piece of every per-token step of the transformer (None: a stream at once).
    `prefetch`: copy the next streamed block while one computes (one block more on the device).
    `host`: the host memory estimate, with whether streamed blocks get page-locked homes or go through staging.
    """

    width: int
    height: int
    frames: int
    video_tokens: int
    device: str
    text_placement: TextEncoderPlacement
    resident_blocks: int | None
    token_chunk: int | None
    vae: VAEMode  # the VAE's tiles, frames at a time and exact bands (the decoder's, and the encoder's for I2V)
    stages: tuple[StageEstimate, ...]
    budget_bytes: int | None
    ladder_index: int  # position in the ladder of plans: 0 is the fastest
    ladder_size: int
    prefetch: bool = True
    host: HostEstimate | None = None
    cfg_batch: int = 1  # rows per transformer forward the estimates allow: 2 = guidance branches batched
    cfg_batch_asked: int = 1  # the rows per forward the runner could use (`plan_memory`'s cfg_batch)
    batched_vram_gib: float | None = None  # where fewer rows fitted: the least larger --vram that plans them all
    image: bool = False  # image-to-video: the first frame goes through the VAE encoder (in `vae.bands` bands)
    image_tokens: int = 0  # the first frame's SigLIP tokens the context was planned with (0: text-to-video)
    heads_per_call: int | None = None  # single-stream blocks attend this many heads at a time (None: all at once)
    streamed_bytes: int = 0  # the streamed transformer blocks' weights: copied to the device at every forward
    num_blocks: int = 0  # the transformer's streamable blocks
    # What the estimates count that the pipeline must load with (`load_pipeline` refuses another): a step cache's
    # tensors through the denoising (a threshold > 0), and the attention ("int8": its quantized K/V workspace; set
    # by `plan_generation`, which knows it by name: `plan_memory` is given the workspace alone).
    step_cache: bool = False
    attention: str = "exact"

    @property
    def peak_bytes(self) -> int:
        return max(stage.peak_bytes for stage in self.stages)

    @property
    def reserved_bytes(self) -> int:
        """What the caching allocator is expected to reserve at the peak (an estimate, see RESERVED_RATIO)."""
        return int(self.peak_bytes * RESERVED_RATIO)

    def uncovered_note(self, width: int, height: int, frames: int, image: bool) -> str | None:
        """A note for a video this plan's estimates do not cover: more pixels a frame or more frames than it was
        made for (as the server's --max-video counts them), or image-to-video (`image`) on a text-to-video plan.
        None when it is covered. A note, not an error: the estimates have a margin, and the caller may know better."""
        larger = width * height > self.width * self.height or frames > self.frames
        if not larger and (self.image or not image):
            return None
        kinds = ("text-to-video", "image-to-video")
        return (
            f"this {width}x{height}x{frames} {kinds[image]} is beyond the {self.width}x{self.height}x{self.frames} "
            f"{kinds[self.image]} the memory plan was made for, so it may run out of device memory: a plan made for "
            "the largest video asked for counts what it needs"
        )

    def in_words(self) -> str:
        """The plan for a GPU in one line for its user: the peak against the budget, and what is moved or cut to
        fit, each with its cost next to keeping everything on the GPU (the fastest plan)."""
        fits = self.budget_bytes is None or self.peak_bytes <= self.budget_bytes  # the smallest plan of a refusal
        budget = "" if self.budget_bytes is None else f" the {memory_size(self.budget_bytes)} budget"
        budget = f" {'of' if fits else 'over'}{budget}" if budget else ""
        # The budget is checked against the allocated estimate; the reserved one is what must be free on the GPU.
        peak = (
            f"est. peak {memory_size(self.peak_bytes)} allocated{budget} (~{memory_size(self.reserved_bytes)} "
            "reserved: what the GPU needs free)"
        )
        moves = self._what_moves()
        if not moves:
            return f"In short: everything on the GPU, the fastest plan; {peak}"
        return f"In short: {peak}; {'to fit,' if fits else 'even with'} " + "; ".join(moves)

    def _what_moves(self) -> list[str]:
        """What this plan does that the fastest one does not, each with what it costs."""
        moves = {
            TextEncoderPlacement.DEVICE: [],
            TextEncoderPlacement.STREAMED: ["the text encoder streamed layer by layer while it encodes (seconds)"],
            TextEncoderPlacement.CPU: ["the text encoder run on the CPU (a slower encoding)"],
        }[self.text_placement]
        if self.resident_blocks is not None:
            overlap = "while the block before computes" if self.prefetch else "not overlapped with the computation"
            moves.append(
                f"{self.num_blocks - self.resident_blocks} of {self.num_blocks} transformer blocks streamed from host "
                f"memory ({memory_size(self.streamed_bytes)} copied per forward, {overlap})"
            )
        if self.token_chunk is not None:
            moves.append(f"per-token steps in pieces of {self.token_chunk} tokens (near free)")
        if self.heads_per_call is not None:
            moves.append(f"attention over {self.heads_per_call} heads per call (a little more work per step)")
        if self.cfg_batch < self.cfg_batch_asked:
            copies = "" if self.resident_blocks is None else " (the streamed blocks copied for each)"
            moves.append(f"the two guidance predictions one after the other, not batched in one forward{copies}")
        if self.vae.tile is not None:
            moves.append("the VAE decoding in tiles (slower decode)")
        elif self.vae.bands > 1:
            # Image-to-video's first frame goes through the VAE encoder in the same bands.
            encode = ", and the first frame's encoding," if self.image else ""
            moves.append(f"the VAE decoding{encode} in {self.vae.bands} exact bands (a few % more VAE work per band)")
        elif self.vae.frame_by_frame:  # implied by bands and tiles; alone, the one thing the fastest plan does not
            moves.append("the VAE decoding one frame at a time, not 4 at once (~1-2 s more per video at 720p)")
        return moves

    @property
    def rank(self) -> str:
        """Where this plan stands in the ladder, in words: "plan 2 of 9 (1 = fastest)"."""
        return f"plan {self.ladder_index + 1} of {self.ladder_size} (1 = fastest)"

    def describe(self) -> str:
        """A human-readable table of the plan (the CLI's --dry-run output)."""
        budget = "none" if self.budget_bytes is None else memory_size(self.budget_bytes)
        lines = [
            f"Memory plan for {self.width}x{self.height}x{self.frames}: N = {self.video_tokens:,} video tokens "
            f"(2N = {2 * self.video_tokens:,} in the DDT decoder), budget {budget}, "
            f"{self.rank}, {self.cfg_batch} row{'s' if self.cfg_batch > 1 else ''} per transformer forward",
            *([self.in_words()] if torch.device(self.device).type != "cpu" else []),
            f"{'stage':<9} {'est. peak':>10} {'weights':>10} {'activations':>12}  {'streamed':<34} chunks",
        ]
        for s in self.stages:
            lines.append(
                f"{s.name:<9} {memory_size(s.peak_bytes):>10} {memory_size(s.weight_bytes):>10} "
                f"{memory_size(s.activation_bytes):>12}  {s.streamed:<34} {s.chunks}"
            )
        if torch.device(self.device).type == "cpu":  # no device allocator: the stages live in the process's RSS
            lines.append(f"peak of the stages {memory_size(self.peak_bytes)}: on the CPU, part of the host peak below")
        else:
            lines.append(
                f"device peak {memory_size(self.peak_bytes)} allocated (x{ESTIMATE_MARGIN:.2f} margin and workspaces "
                f"included), ~{memory_size(self.reserved_bytes)} reserved"
            )
        if self.host is not None:
            lines.append(self.host.describe())
        return "\n".join(lines)

    def __str__(self) -> str:
        """`print(plan)`: the table `motif-lite run` prints (`describe`), not the dataclass's fields (`repr`)."""
        return self.describe()


def positive_budget(gib: object) -> bool:
    """Whether a `--vram` / `--ram` value is a finite number of GiB > 0 (a str such as "4", or a bool, is not)."""
    return not isinstance(gib, bool) and isinstance(gib, int | float) and math.isfinite(gib) and gib > 0


def default_budget(device: torch.device | str) -> int | None:
    """The device memory a plan may allocate: the CUDA device's free memory (what other processes and this one's
    tensors hold is excluded) less the allocator's expected reserve on top; None on other devices ("no limit")."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = gpu_memory(device)
    # What this process's allocator keeps cached (a notebook's pipeline let go with `del pipe`) the driver counts
    # as held, but the allocator gives it to the next tensors, and frees it itself before it would run out.
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int((free + cached) / RESERVED_RATIO)


def _head_groups(heads: int) -> list[int]:
    """Heads per call the ladder tries, most first (12 heads: 6, 4, 3): below a quarter of the heads the
    DDT decoder's output pass, not its attention, sets the floor."""
    return sorted({heads // parts for parts in (2, 3, 4) if 0 < heads // parts < heads}, reverse=True)


def _ladder(num_blocks: int, heads: int, sequence_parallel: int) -> list[Choice]:
    """Every candidate, fastest first (see the module docstring). Head groups come last (after the text encoder
    moves to the CPU): they cost a little every step; never with sequence parallelism, whose all-to-all splits the
    heads itself."""
    dev, stream, cpu = TextEncoderPlacement.DEVICE, TextEncoderPlacement.STREAMED, TextEncoderPlacement.CPU
    large, small = TOKEN_CHUNKS
    tiles = [VAEMode(tile) for tile in VAE_TILES]
    outer = [Choice(text, None, None) for text in (dev, stream)]
    outer += [Choice(stream, None, large)]  # token chunks cost next to nothing: before any streaming
    outer += [Choice(stream, k, large) for k in range(num_blocks - 1, -1, -1)]
    outer += [Choice(stream, 0, small), Choice(stream, 0, small, prefetch=False)]
    outer += [Choice(stream, 0, small, vae, prefetch=False) for vae in tiles]
    outer += [Choice(cpu, 0, small, vae, prefetch=False) for vae in (VAEMode(), *tiles)]
    for group in _head_groups(heads) if sequence_parallel == 1 else []:
        for text in (stream, cpu):
            outer += [Choice(text, 0, small, vae, prefetch=False, heads=group) for vae in (VAEMode(), *tiles)]
    # Within each, the untiled VAE modes, fastest first: they cost far less than streaming more of anything.
    return [
        replace(choice, vae=vae) for choice in outer for vae in (VAE_MODES if choice.vae.tile is None else [choice.vae])
    ]


_TEXT_PLACES = {
    TextEncoderPlacement.DEVICE: "text encoder on the device",
    TextEncoderPlacement.STREAMED: "text encoder streamed",
    TextEncoderPlacement.CPU: "text encoder on the CPU",
}


def _host_needs(
    sizes: GenerationSizes,
    choice: Choice,
    device: str,
    stages: tuple[StageEstimate, ...],
    text_quantized: bool,
    sequence_parallel: int = 1,
) -> HostNeeds:
    cuda = torch.device(device).type == "cuda"
    streamed = [] if choice.resident_blocks is None else list(range(choice.resident_blocks, len(sizes.block_bytes)))
    text_layer = int(TEXT_LAYER_FRACTION * sizes.text_bytes)  # + the SigLIP tower's list, ~1/6 of a text layer
    text_staging = staging_bytes(text_layer) + staging_bytes(text_layer // 6)
    pixels_per_frame = 3 * sizes.vae_pixels * sizes.vae_element_bytes
    held_frames = sizes.frames if choice.vae.bands > 1 else sizes.vae_config.temporal_factor  # clip or one chunk
    video_bytes = held_frames * pixels_per_frame
    if sequence_parallel > 1 and choice.vae.tile is None:
        # The ranks split the decode into bands (`Parallel.decode_frames`): each holds its bands of the whole clip
        # on the host, and rank 0, whose plan this is (the others' is then an over-estimate), the clip it
        # assembles from everyone's too.
        clip = sizes.frames * pixels_per_frame
        video_bytes = clip + math.ceil(clip / sequence_parallel)
    # On the CPU the stages' device memory is host memory: their peaks (margin and workspaces included, less the
    # weights, counted once below) are what generating adds, so the host peak holds the peak of the stages.
    # The decode's convolutions on the CPU add PyTorch's native im2col buffer (vae_memory.py); cuDNN's workspace on
    # CUDA is inside the VAE's measured working term.
    conv_workspace = {"decode": vae_decode_cpu_workspace_bytes(sizes, choice.vae)} if not cuda else {}
    host_acts = max(s.peak_bytes - s.weight_bytes + conv_workspace.get(s.name, 0) for s in stages) if not cuda else 0
    if cuda and choice.text is TextEncoderPlacement.CPU:
        host_acts = text_activation_bytes(1, sizes.text_act_bytes)
    return HostNeeds(
        cuda=cuda,
        text_bytes=sizes.text_bytes,
        text_staging_bytes=text_staging if choice.text is TextEncoderPlacement.STREAMED else 0,
        transformer_bytes=sizes.non_block_bytes + sum(sizes.block_bytes),
        streamed_bytes=sum(sizes.block_bytes[i] for i in streamed),
        streamed_pinned_bytes=sum(sizes.block_pinned_bytes[i] for i in streamed),
        block_staging_bytes=staging_bytes(max((sizes.block_bytes[i] for i in streamed), default=0)),
        vae_bytes=sizes.vae_bytes,
        video_bytes=video_bytes,
        activation_bytes=host_acts,
        transformer_quantized=sizes.quantized,
        text_quantized=text_quantized,
    )


@dataclass(frozen=True)
class PlannerInputs:
    """What the planner's estimates (`plan_memory`, `unplanned_peak_bytes`) take about a generation: the video's
    size, the models' sizes and dtypes, the rows per forward and what the kernels save or cost.

    weight_bytes: the transformer's weights as loaded (packed GGUF bytes count as stored); text_encoder_bytes:
    the text encoder's as loaded (any dtype or quantization: only its size matters; 0: this process never loads
    it). cfg_batch: the most rows per transformer forward the runner can use (2 when it can batch the conditional
    and unconditional predictions, 1 without guidance); each ladder candidate is tried with cfg_batch rows, then
    with 1, and `Plan.cfg_batch` says which fitted. vae_dtype: the dtype the VAE is loaded in (`load_vae`'s default
    float32 doubles the decode memory of bfloat16). fused_norms: the transformer runs the fused Triton norm
    kernels (no float32 RoPE temporaries). image: image-to-video (the first frame is VAE-encoded); image_tower: the
    checkpoint's SigLIP tower (`ImageTowerShape.of_checkpoint`), whose tokens its context holds.
    adapter_bytes: the LoRA adapters kept beside packed (GGUF, fp8) layers, module name -> each adapter tensor's
    bytes (`weights.lora_apply.side_adapter_bytes`; None: none): counted with their block, resident or streamed.
    adapter_token_bytes: packed layer -> the most bytes per token its adapters keep alive at once beside its output
    (`weights.lora_apply.side_adapter_temporary_bytes`; None: none), counted in the denoise stage's activations for
    the largest layer call, at the rows that layer runs on (`activation_memory.adapter_temporary_bytes`).
    activation_dtype: the transformer's compute dtype. text_encoder_dtype: the text encoder's (None: what
    `load_pipeline` gives it next to `activation_dtype`, `dtypes.text_encoder_dtype`).
    attention_workspace_bytes: rows per forward -> device memory the attention kernel adds inside each call
    (8-bit attention's quantized K/V, `runtime.kernels.attention_workspace_bytes`), counted in the denoise stage
    for the rows each candidate runs; None: nothing (exact attention).
    text_encoder_quantized: the text encoder's linears run on packed blocks (a GGUF file or one quantized as it
    loads, with a block type: `sizes.ModelSizes.text_encoder_quantized`); the host memory advice then does not offer
    one, and the encode stage counts its fused GEMM's tuning buffer.
    autotune_bytes: the buffer Triton's autotuner holds on the device while it times a kernel at a new tuning key
    (`runtime.kernels.autotune_buffer_bytes`; 0: none of our Triton kernels run), counted in the stages where one of
    ours can autotune (`stage_estimates`).
    triton_attention: the exact attention can be our dense Triton kernel, which autotunes in the attention phase
    (`--attention-backend triton`, or `auto` with Triton on CUDA: its trial times the kernel).
    """

    width: int
    height: int
    frames: int
    transformer_config: TransformerConfig
    weight_bytes: int
    text_encoder_bytes: int
    vae_config: WanVAEConfig
    cfg_batch: int = 2
    vae_dtype: torch.dtype = torch.float32
    fused_norms: bool = False
    image: bool = False
    activation_dtype: torch.dtype = torch.bfloat16
    attention_workspace_bytes: Callable[[int], int] | None = None
    text_encoder_dtype: torch.dtype | None = None
    autotune_bytes: int = 0
    text_encoder_quantized: bool = False
    triton_attention: bool = False
    image_tower: ImageTowerShape = OFFICIAL_IMAGE_TOWER
    adapter_bytes: Mapping[str, tuple[int, ...]] | None = None
    adapter_token_bytes: Mapping[str, int] | None = None

    def sizes(self) -> GenerationSizes:
        """The sizes of this generation (`generation_sizes`)."""
        return generation_sizes(
            self.width, self.height, self.frames, self.transformer_config, self.weight_bytes, self.text_encoder_bytes,
            self.vae_config, self.vae_dtype, self.image, self.activation_dtype, self.text_encoder_dtype,
            self.image_tower, self.adapter_bytes, self.adapter_token_bytes,
        )  # fmt: skip


def plan_memory(
    inputs: PlannerInputs,
    budget_bytes: int | None,
    *,
    device: str = "cuda",
    ram_budget_bytes: int | None = None,
    sequence_parallel: int = 1,
    step_cache: bool = False,
) -> Plan:
    """The fastest plan for `inputs` whose estimated device peak fits `budget_bytes` (None: no limit, everything
    resident), with its host memory checked against `ram_budget_bytes` (None: no limit).

    sequence_parallel: the ranks sharing the video tokens (runtime/parallel.py); the plan is for one of them.
    step_cache: a step cache (runtime/step_cache.py) holds its tensors through the denoise stage.
    Raises MemoryBudgetError naming the smallest peak when no plan fits the device, or the host need when the host
    memory does not fit.
    """
    cfg_batch = inputs.cfg_batch
    if cfg_batch < 1 or inputs.weight_bytes <= 0 or inputs.text_encoder_bytes < 0:
        raise ConfigError(
            f"bad sizes: cfg_batch={cfg_batch}, weight_bytes={inputs.weight_bytes}, text={inputs.text_encoder_bytes}"
        )
    ladder = _Ladder(budget_bytes, device, sequence_parallel, step_cache)
    plans = []
    for plan, sizes, choice in ladder.candidates(inputs):
        if budget_bytes is None or plan.peak_bytes <= budget_bytes:
            needs = _host_needs(sizes, choice, device, plan.stages, inputs.text_encoder_quantized, sequence_parallel)
            host = plan_host(needs, ram_budget_bytes, available_ram())
            if plan.cfg_batch < cfg_batch:
                batched = _batched_vram((p for p, _, _ in ladder.candidates(inputs)), budget_bytes)
                plan = replace(plan, batched_vram_gib=batched)
            return replace(plan, host=host, step_cache=step_cache)
        plans.append(plan)
    smallest = min(plans, key=lambda p: p.peak_bytes)
    raise _no_plan_fits(inputs, smallest, ladder)


@dataclass(frozen=True)
class _Ladder:
    """`plan_memory`'s settings for every case it plans (its inputs, and the other sizes the error on a video too
    large tries): the device budget (None: no limit), the device, the ranks sharing the video tokens, and whether a
    step cache holds its tensors through the denoise stage."""

    budget_bytes: int | None
    device: str
    sequence_parallel: int
    step_cache: bool

    def candidates(self, case: PlannerInputs) -> Iterator[tuple[Plan, GenerationSizes, Choice]]:
        """Every plan of the ladder for `case` (`plan_memory`'s inputs, or those at another size, or without the
        tuning buffer), fastest first, with the sizes and the ladder's choice it was made from."""
        sizes = case.sizes()
        rungs = _ladder(len(sizes.block_bytes), case.transformer_config.num_attention_heads, self.sequence_parallel)
        # Batching the guidance branches halves the weight traffic of a streamed plan, so at every rung it comes
        # first: cfg_batch, then 1 (once when cfg_batch is 1).
        for index, choice in enumerate(rungs):
            for batch in dict.fromkeys((case.cfg_batch, 1)):
                stages = stage_estimates(
                    sizes, choice, batch, case.fused_norms, self.sequence_parallel, case.attention_workspace_bytes,
                    self.step_cache, case.autotune_bytes, case.text_encoder_quantized, case.triton_attention,
                )  # fmt: skip
                plan = Plan(
                    width=case.width,
                    height=case.height,
                    frames=case.frames,
                    video_tokens=sizes.video_tokens,
                    device=self.device,
                    text_placement=choice.text,
                    resident_blocks=choice.resident_blocks,
                    token_chunk=choice.token_chunk,
                    vae=choice.vae,
                    stages=stages,
                    budget_bytes=self.budget_bytes,
                    ladder_index=index,
                    ladder_size=len(rungs),
                    prefetch=choice.prefetch,
                    cfg_batch=batch,
                    cfg_batch_asked=case.cfg_batch,
                    image=sizes.image,
                    image_tokens=sizes.image_tokens,
                    heads_per_call=choice.heads,
                    streamed_bytes=streamed_bytes(sizes, choice),
                    num_blocks=len(sizes.block_bytes),
                )
                yield plan, sizes, choice


def _no_plan_fits(inputs: PlannerInputs, smallest: Plan, ladder: _Ladder) -> MemoryBudgetError:
    """The error for `inputs` when no plan of `ladder` fits its budget: the `smallest` plan's peak, the sizes that
    fit (`what_fits`, trying the ladder at each) and how to get more memory."""
    budget_bytes = ladder.budget_bytes

    def fits(width: int, height: int, frames: int, tuning: bool) -> bool:
        """Whether a plan of this size fits the budget; tuning=False: without Triton's tuning buffer."""
        case = replace(inputs, width=width, height=height, frames=frames)
        if not tuning:
            case = replace(case, autotune_bytes=0)
        try:
            return any(plan.peak_bytes <= budget_bytes for plan, _, _ in ladder.candidates(case))
        except MotifLiteError:  # a size the pipeline cannot make at all
            return False

    multiple = size_multiple(inputs.transformer_config, inputs.vae_config)
    advice = what_fits(fits, inputs.width, inputs.height, inputs.frames, inputs.vae_config, multiple)
    more = more_budget(smallest.peak_bytes, torch.device(smallest.device).type == "cuda")
    return _too_large(smallest, budget_bytes, f"{advice} {more}")


def _batched_vram(ladder: Iterable[Plan], above: int) -> float | None:
    """The least --vram (GiB, 2 decimals) above `above` bytes whose plan (the first of `ladder` that fits) has every
    row asked for per forward; None if none has. Such a plan is first for a budget of its peak (rounded up to the
    flag's figure) only while every candidate before it peaks higher: a larger budget can bring back a faster rung
    with fewer rows, so not every budget above works."""
    least, lowest_before = None, math.inf
    for plan in ladder:
        vram = vram_for(plan.peak_bytes)
        budget = int(vram * GiB)  # what --vram with that figure plans for (memory_plan)
        if plan.cfg_batch == plan.cfg_batch_asked and above < budget < lowest_before:
            least = vram if least is None else min(least, vram)
        lowest_before = min(lowest_before, plan.peak_bytes)
    return least


def _too_large(smallest: Plan, budget_bytes: int, advice: str) -> MemoryBudgetError:
    """The error for a video that no plan fits into the device budget: the smallest plan's peak and table, and
    `advice` (`what_fits`)."""
    groups = "" if smallest.heads_per_call is None else f", {smallest.heads_per_call} heads per attention call"
    return MemoryBudgetError(
        f"{smallest.width}x{smallest.height}x{smallest.frames} needs at least {memory_size(smallest.peak_bytes)} of "
        f"device memory (plan {smallest.ladder_index + 1}: everything streamed, "
        f"{_TEXT_PLACES[smallest.text_placement]}{groups}), but the budget is {memory_size(budget_bytes)}. {advice}\n"
        + smallest.describe(),
        smallest_vram_gib=vram_for(smallest.peak_bytes),
    )


def unplanned_peak_bytes(inputs: PlannerInputs) -> int:
    """The estimated device peak of a run without a plan (`load_pipeline(plan=None)`): everything resident on the
    device, the VAE's upper levels one frame at a time, `inputs.cfg_batch` rows per transformer forward."""
    unplanned = Choice(TextEncoderPlacement.DEVICE, None, None)  # the pipeline's defaults
    stages = stage_estimates(
        inputs.sizes(), unplanned, inputs.cfg_batch, inputs.fused_norms,
        attention_workspace=inputs.attention_workspace_bytes, autotune_bytes=inputs.autotune_bytes,
        text_quantized=inputs.text_encoder_quantized, triton_attention=inputs.triton_attention,
    )  # fmt: skip
    return max(stage.peak_bytes for stage in stages)


@dataclass(frozen=True)
class DecodePlan:
    """The VAE setup of a decode on its own (`motif-lite decode`: only the VAE on the device) and its estimate."""

    width: int
    height: int
    frames: int
    device: str
    vae: VAEMode
    stage: StageEstimate  # the decode stage's estimate, weights = the VAE's
    budget_bytes: int | None

    def describe(self) -> str:
        """One line for the `motif-lite decode` output."""
        budget = "none" if self.budget_bytes is None else memory_size(self.budget_bytes)
        s = self.stage
        return (
            f"Memory plan for decoding {self.width}x{self.height}x{self.frames}: budget {budget}, est. peak "
            f"{memory_size(s.peak_bytes)} (VAE weights {memory_size(s.weight_bytes)}, "
            f"activations {memory_size(s.activation_bytes)}); {s.chunks}"
        )

    def __str__(self) -> str:
        """`print(plan)`: the line `motif-lite decode` prints (`describe`), not the dataclass's fields (`repr`)."""
        return self.describe()


def plan_decode(
    width: int,
    height: int,
    frames: int,
    vae_config: WanVAEConfig,
    budget_bytes: int | None,
    device: str = "cuda",
    vae_dtype: torch.dtype = torch.float32,
    advice: str | None = None,
    audience: Audience = Audience.RUN_OR_PYTHON,
) -> DecodePlan:
    """The fastest VAE setup whose decode fits `budget_bytes` (None: no limit) with nothing but the VAE on the
    device: `plan_memory`'s decode-stage estimate without the transformer, over the same VAE modes and tiles in the
    same order. Raises MemoryBudgetError naming the smallest peak, then `advice` (None: `decode_advice`) and the --vram
    that holds it, settings in `audience`'s words, when none fits."""
    # No transformer or text encoder on the device: 0 bytes of theirs. The built-in transformer config only sets
    # the token count, which the decode stage does not read.
    sizes = generation_sizes(width, height, frames, TransformerConfig(), 0, 0, vae_config, vae_dtype, False, vae_dtype)
    cpu = TextEncoderPlacement.CPU
    choices = [Choice(cpu, None, None, vae) for vae in (*VAE_MODES, *(VAEMode(tile) for tile in VAE_TILES))]
    plans = []
    for choice in choices:
        stage = next(s for s in stage_estimates(sizes, choice, 1, fused_norms=False) if s.name == "decode")
        plan = DecodePlan(width, height, frames, device, choice.vae, stage, budget_bytes)
        if budget_bytes is None or stage.peak_bytes <= budget_bytes:
            return plan
        plans.append(plan)
    smallest = min(plans, key=lambda p: p.stage.peak_bytes)
    more = more_budget(smallest.stage.peak_bytes, torch.device(device).type == "cuda", audience)  # the figure that fits
    advice = advice if advice is not None else decode_advice(audience)
    raise MemoryBudgetError(
        f"decoding {width}x{height}x{frames} needs at least {memory_size(smallest.stage.peak_bytes)} of device memory "
        f"({smallest.stage.chunks}), but the budget is {memory_size(budget_bytes)}: {advice}. {more}",
        smallest_vram_gib=vram_for(smallest.stage.peak_bytes),
    )


@dataclass
class PlanHandle:
    """What `apply_plan` installed. `vae` is the VAE setup for `vae.decode_frames(z, ...)` (and its `bands` for
    `vae.encode`); `remove()` takes the hooks and wrappers off:
    a streamed transformer's weights go back where they were before streaming (the CPU, where a plan loads them),
    an unstreamed one's stay on the device."""

    vae: VAEMode = VAEMode()
    handles: list[StreamingHandle | ChunkingHandle] = field(default_factory=list)

    def release_loaded(self) -> None:
        """Send back to host memory the streamed blocks a stopped forward left on the device
        (`LayerStreamer.release_loaded`)."""
        for handle in self.handles:
            if isinstance(handle, StreamingHandle):
                handle.release_loaded()

    def remove(self) -> None:
        for handle in reversed(self.handles):
            handle.remove()
        self.handles.clear()


def apply_plan(transformer: nn.Module, vae: nn.Module | None, plan: Plan) -> PlanHandle:
    """Install the plan's runtime features on loaded models.

    transformer: a MotifVideoTransformer; vae: a WanVAE or None. Everything not streamed is moved to
    `plan.device`. The text encoder is placed by the pipeline only while it encodes (`plan.text_placement`).
    """
    handle = PlanHandle(plan.vae)
    if plan.token_chunk is not None:
        handle.handles.append(apply_token_chunking(transformer, plan.token_chunk, plan.heads_per_call))
    if plan.resident_blocks is None:
        transformer.to(plan.device)
    else:
        staging = plan.host is not None and plan.host.pinned_blocks is False
        config = StreamingConfig(plan.device, plan.resident_blocks, prefetch=plan.prefetch, staging=staging)
        handle.handles.append(apply_block_streaming(transformer, config))
    if vae is not None:
        vae.to(plan.device)
    return handle
