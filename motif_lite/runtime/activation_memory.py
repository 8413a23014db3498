"""Activation memory: the peak bytes of the tensors alive together in one transformer forward and in the text
encoder's pass, counted from the model code, for the memory planner (runtime/planner.py) to add to the weights.

Every constant is explained where it is defined; docs/memory.md ("The planner's formulas") derives each term, and
tests/live_memory.py checks the transformer's against the tensors a forward really keeps alive (exact on the CPU).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from motif_lite.config import MAX_PROMPT_TOKENS, TransformerConfig
from motif_lite.encoders.text_config import OFFICIAL_TEXT_ENCODER_CONFIG, check_sizes
from motif_lite.errors import ConfigError
from motif_lite.json_values import read_json_object

ACT_BYTES = 2  # bytes per activation element of a bf16 run (the default; callers pass their dtype's)
# Live activations of one transformer forward, in elements of the activation dtype, counted from the model code
# (what is alive together at each phase of a block) and checked against a tensor-lifetime tracker, exactly, in
# bench/bench_planner.py. L: the tokens a block attends over; c: the tokens of one piece (`token_chunk`; a whole
# stream without chunking); D hidden size, F MLP width. docs/memory.md derives each term.
#   attention call: Q, K, V and the output over all L tokens ........................... ATTENTION_L = 4 (x L D)
#                   a dual block also holds its two normalized inputs .................. + 1 L D
#   projection:     the Q, K, V buffers while pieces are projected into them ............ 3 L D
#                   + one piece's temporaries (normalized piece, projection, norm, its Q/K/V) .. P c, with
#                   P = 5 D with the fused Triton norms; with the torch ops in 16 bits 11 D for pieces with
#                   RoPE (its float32 copies), 9 D without, in float32 8 and 5 (TORCH_NORM_D); the first piece
#                   runs before the buffers exist and never sets the peak. Without pieces a single-stream block's
#                   one piece [video; context] is rotated on its video part only: the torch ops then take
#                   3 D + the norm's peak over a partly rotated piece (`torch_norm_peak`): in the DDT decoder
#                   (half of its 2N tokens rotated) 9 D in 16 bits, 6 in float32: its last block's peak
#   output pass:    attention output + block output 2 L D (one piece: L D, its residual sum is the output), + one
#                   piece's normalized tokens, GELU output and proj_out's [attention | GELU] input ... (2 F + 2 D) c
#   the DDT decoder's last block: attention output, block output and output pass for its first N tokens only
#                   (its context output is not used); Q, K, V still over all L tokens
#   dual-block FF:  both streams after attention L D, the running stream's FF input and output 2 S D (S the
#                   longer stream) + one piece's GELU in/out ................................... (2 F + D) c
#                   (without chunks: L D + (2 F + D) S)
#   text cross-attention (single-stream blocks with pieces; the dual-stream blocks' optional one): see below
#   head groups (single-stream blocks with pieces, a share s of the heads per call): the merged attention output
#                   L D is held from the first group on, next to one group's Q, K, V and output 4 s L D
#                   (projection: 3 s L D + a piece's normalized tokens and s of its other temporaries); the
#                   shared layouts' text K/V buffers (2 T D) exist from the first group on too
# Held outside the blocks: each block's inputs (L D), the embedded context (T' D) and the decoder's copy of the
# patch-embedded video while the encoder runs (N D), in the first decoder block the encoder output's context half
# (T' D), and the float32 RoPE tables (2 N head_dim).
# An 8-bit K/V attention would store K and V in half the bytes: ATTENTION_L and the buffers' 3 become 3 and 2.
ATTENTION_L = 4
# Sequence parallel (runtime/parallel.py) over sp ranks: each rank holds 1/sp of the video tokens (the context stays
# whole); around attention its all-to-all holds a send copy, then the received tensor and the reassembled q/k/v
# (3 D each) next to the q/k/v it started from: up to 6 D more per local token in the attention phase.
SP_EXCHANGE_D = 6
PIECE_PROJECTION_D_FUSED = (5, 5)  # (pieces with RoPE, pieces without)
# The torch `ops.rms_norm_rope`'s own peak per token (its output and temporaries, in D of the activation dtype), by
# activation bytes: (with RoPE, without). In 16 bits it makes float32 copies (2 elements each): 8 D with RoPE (the
# normed heads, their rotation, the two float32 products and their sum), 6 without (F.rms_norm's float32 input,
# square and product); float32 activations need no copies: 5 and 2. The torch ops' phases are made of it: a
# projection piece holds its normalized tokens, Q's normed heads and K's projection next to K's norm (3 D + it),
# the diffusers layout's text K/V projection the text and K's projection (2 D + it, no RoPE), a cross-attention
# query piece its projection (1 D + it, with RoPE). On a piece rotated on its first tokens only, RoPE and the
# concatenation of rotated and plain rows cost less than RoPE everywhere: `torch_norm_peak`.
TORCH_NORM_D = {2: (8, 6), 4: (5, 2)}
# The text cross-attention over T text tokens. In a single-stream block with pieces (without, the MLP phase is
# larger): after the attention call the block holds its output (L D) and the text K/V (2 T D). The shared layouts
# copy that K/V out of the block's own before the call (+ 2 T D in the attention phase); the diffusers layout
# projects it afterwards from the normalized text: text, projection and norm (3 T D) with the fused kernels, 8 T D
# with the torch ops' float32 copies in 16 bits (4 T D in float32). Each query piece then holds its projection,
# normed heads and attention output (Q c): 3 D per token fused, 9 D with the torch norm and RoPE (6 D in float32).
# These phases set the peak only when the context is
# longer than the video. A dual-stream block's cross-attention (optional, off in the released model) projects the
# K/V in every layout, then runs its query pieces the same way (`_dual_cross_phase`).
KV_PROJECTION_D_FUSED, QUERY_PIECE_D_FUSED = 3, 3  # with the torch ops: from TORCH_NORM_D, 8 and 9 in 16 bits
# A step cache (runtime/step_cache.py) at the peak of a forward it computes in full: this call's probe (N D per
# row) and the first blocks' output it started from (video and context: (N + T) D per row), and the stored probe and
# residual (N D each) of the guidance branch not computed in the call, if any (a batch-1 call, or a batched call
# whose other branch is served from its cache and computes one row; the branches computed let go of theirs first).
# With two branches that is 4 N D + T D per row in a batch-2 call and in a batch-1 call alike.
STEP_CACHE_VIDEO_TENSORS = 4
# T5Gemma2 (Motif-Video's text encoder, ~4.3 B parameters, Gemma-3-4B-like; its shape: `TextEncoderShape` below):
# the token embedding (262144 x 2560 = 0.67 B) is ~16 % of the parameters; one text layer ~94 M (~2.2 %).
TEXT_NON_LAYER_FRACTION = 0.16
TEXT_LAYER_FRACTION = 0.022
TEXT_TOKENS = MAX_PROMPT_TOKENS  # the text encoder's pass is planned for the longest prompt


def context_tokens(image_tokens: int) -> int:
    """The context stream's tokens a forward is planned for: the longest prompt's, and for image-to-video the
    first frame's `image_tokens` SigLIP tokens (`ImageTowerShape.tokens`; 0 for text-to-video)."""
    return TEXT_TOKENS + image_tokens


def _config_size(official: dict, key: str) -> int:
    """A shape's field read from `key` of a config.json section (`_read_shape`); its default is the official
    encoder's value. Typed as its value, as `dataclasses.field` is."""
    return field(default=official[key], metadata={"config_key": key})


_Shape = TypeVar("_Shape")


def _read_shape(shape: type[_Shape], section: dict) -> _Shape:
    """`shape` from a config.json section, already checked: the fields whose keys it has; the others keep their
    defaults."""
    keys = {f.name: f.metadata["config_key"] for f in fields(shape)}
    return shape(**{ours: section[theirs] for ours, theirs in keys.items() if theirs in section})


def _checked_text_encoder_config(path: Path) -> dict:
    """A checkpoint's `text_encoder/config.json`; `ConfigError` naming the file for one that is no JSON object, or
    whose sizes the encoder cannot be built from (`text_config.check_sizes`, the check the run makes before it
    loads the encoder)."""
    values = read_json_object(path, "text encoder config")
    check_sizes(values, str(path))
    return values


def _checkpoint_section(root: str | Path | None, section: str) -> dict:
    """`section` of a checkpoint folder's `text_encoder/config.json`, checked (`_checked_text_encoder_config`); {}
    without a folder or without that file, for the official shapes."""
    path = None if root is None else Path(root) / "text_encoder" / "config.json"
    if path is None or not path.is_file():
        return {}
    return _checked_text_encoder_config(path).get(section, {})


def _section(values: Mapping[str, object] | None, section: str) -> dict:
    """`section` of text_encoder/config.json's values, checked already; {} without them, for the official shapes."""
    return {} if values is None else values.get(section, {})


_OFFICIAL_TEXT = OFFICIAL_TEXT_ENCODER_CONFIG["text_config"]


@dataclass(frozen=True)
class TextEncoderShape:
    """The matmul sizes of the T5Gemma2 text stack, each read from its key in text_encoder/config.json's
    `text_config` (defaults: the official encoder's)."""

    hidden: int = _config_size(_OFFICIAL_TEXT, "hidden_size")
    intermediate: int = _config_size(_OFFICIAL_TEXT, "intermediate_size")
    layers: int = _config_size(_OFFICIAL_TEXT, "num_hidden_layers")
    heads: int = _config_size(_OFFICIAL_TEXT, "num_attention_heads")
    kv_heads: int = _config_size(_OFFICIAL_TEXT, "num_key_value_heads")
    head_dim: int = _config_size(_OFFICIAL_TEXT, "head_dim")

    @classmethod
    def from_json(cls, path: str | Path) -> TextEncoderShape:
        """From a checkpoint's `text_encoder/config.json` (its `text_config`); missing keys keep the defaults.
        `ConfigError` naming the file for one the run would refuse (`_checked_text_encoder_config`)."""
        return _read_shape(cls, _checked_text_encoder_config(Path(path)).get("text_config", {}))

    @classmethod
    def of_checkpoint(cls, root: str | Path | None) -> TextEncoderShape:
        """The text stack of a checkpoint folder's `text_encoder/config.json`, else the official one (`from_json`)."""
        return _read_shape(cls, _checkpoint_section(root, "text_config"))

    @classmethod
    def of_config(cls, values: Mapping[str, object] | None) -> TextEncoderShape:
        """The text stack of text_encoder/config.json's values as a caller read and checked them already (the
        checkpoint's configs keep them), else the official one: the file is not read again."""
        return _read_shape(cls, _section(values, "text_config"))

    @property
    def layer_weights(self) -> int:
        """Weights of the attention (q, k, v, o) and gated MLP (gate, up, down) projections of all layers."""
        attention = self.hidden * self.head_dim * (2 * self.heads + 2 * self.kv_heads)
        return self.layers * (attention + 3 * self.hidden * self.intermediate)


_OFFICIAL_VISION = OFFICIAL_TEXT_ENCODER_CONFIG["vision_config"]


@dataclass(frozen=True)
class ImageTowerShape:
    """The SigLIP image tower inside the text encoder, which encodes image-to-video's first frame, each size read
    from its key in text_encoder/config.json's `vision_config` (defaults: the official encoder's: 896 px in
    patches of 14)."""

    hidden: int = _config_size(_OFFICIAL_VISION, "hidden_size")
    intermediate: int = _config_size(_OFFICIAL_VISION, "intermediate_size")
    image_size: int = _config_size(_OFFICIAL_VISION, "image_size")
    patch_size: int = _config_size(_OFFICIAL_VISION, "patch_size")

    @classmethod
    def of_checkpoint(cls, root: str | Path | None) -> ImageTowerShape:
        """The tower of a checkpoint folder's `text_encoder/config.json` (its `vision_config`), else the official
        one. A key the file lacks keeps the official value: transformers' default tower, which the encoder is then
        built with, is smaller in every size, so the plan errs high. `ConfigError` naming the file for one the run
        would refuse (`_checked_text_encoder_config`)."""
        return _read_shape(cls, _checkpoint_section(root, "vision_config"))

    @classmethod
    def of_config(cls, values: Mapping[str, object] | None) -> ImageTowerShape:
        """The tower of text_encoder/config.json's values as a caller read and checked them already, else the
        official one (`of_checkpoint`, without reading the file again)."""
        return _read_shape(cls, _section(values, "vision_config"))

    @property
    def tokens(self) -> int:
        """The tokens of its last hidden state, which the transformer's context gets: one per patch of the square
        input (SigLIP's embeddings; 4096 for the official tower)."""
        return (self.image_size // self.patch_size) ** 2


OFFICIAL_IMAGE_TOWER = ImageTowerShape()
# The official image-to-video context: the longest prompt and the official tower's image tokens.
OFFICIAL_IMAGE_TOKENS = OFFICIAL_IMAGE_TOWER.tokens
CONTEXT_TOKENS = TEXT_TOKENS + OFFICIAL_IMAGE_TOKENS


def transformer_activation_bytes(
    n: int,
    config: TransformerConfig,
    batch: int,
    token_chunk: int | None,
    fused_norms: bool = False,
    context_tokens: int = CONTEXT_TOKENS,
    act_bytes: int = ACT_BYTES,
    sequence_parallel: int = 1,
    text_tokens: int = TEXT_TOKENS,
    heads_per_call: int | None = None,
) -> int:
    """Peak activation bytes of one transformer forward over n video tokens (the formulas at the top): the
    largest of the dual, encoder single-stream and DDT decoder blocks, each with what is held around it; on each of
    `sequence_parallel` ranks sharing the video tokens. `text_tokens`: the text part of the context (the keys of
    the text cross-attention), at most `context_tokens`; `heads_per_call`: the single-stream blocks' head groups
    (with token pieces only)."""
    d, f = config.hidden_size, int(config.hidden_size * config.mlp_ratio)
    exchange = 0
    if sequence_parallel > 1:
        n, exchange = -(-n // sequence_parallel), SP_EXCHANGE_D
    torch_norm = TORCH_NORM_D[act_bytes]
    piece_d = PIECE_PROJECTION_D_FUSED if fused_norms else (3 + torch_norm[0], 3 + torch_norm[1])
    piece = tuple(p * d for p in piece_d)
    head_share = 1.0
    if heads_per_call is not None and heads_per_call < config.num_attention_heads:
        if token_chunk is None:
            raise ConfigError("head groups are planned with token pieces only")
        head_share = heads_per_call / config.num_attention_heads
    widths = _Widths(token_chunk, d, f, piece, exchange, None if fused_norms else torch_norm, head_share)
    t = context_tokens
    # Held while the encoder runs: the patch-embedded video for the DDT decoder, and the embedded context.
    encoder_held = (n * d if config.num_decoder_layers else 0) + t * d
    rope = 2 * n * config.attention_head_dim * 4 // act_bytes  # cos and sin tables, float32
    cross = _Cross(
        min(text_tokens, t), config.cross_attention_layout != "diffusers", None if fused_norms else torch_norm
    )
    dual_cross = cross if config.enable_text_cross_attention_dual else None
    single_cross = cross if config.enable_text_cross_attention_single else None
    blocks = [
        _dual_block(n, t, widths, dual_cross) + encoder_held if config.num_layers else 0,
        _single_block(n, t, widths, single_cross) + encoder_held if config.num_encoder_single_layers else 0,
        # + the embedded context, and the context half of the last encoder block's output, which the decoder's
        # input (a view of its video half) keeps alive until the first decoder block has run; the last decoder
        # block computes the outputs of its first n tokens only (whole in a sequence-parallel run)
        _single_block(n, n, widths) + 2 * t * d if config.num_decoder_layers > 1 else 0,
        _single_block(n, n, widths, queries=n if sequence_parallel == 1 else None) + 2 * t * d
        if config.num_decoder_layers
        else 0,
    ]
    return batch * act_bytes * (max(blocks) + rope)


@dataclass(frozen=True)
class _Cross:
    """A block's text cross-attention: its text keys, whether a single-stream block reuses its own attention's text
    K/V (the original and PR-era layouts; a dual-stream block always projects them) and the torch norm's peak
    (`TORCH_NORM_D` for the activation dtype; None: the fused kernels)."""

    text: int
    shared: bool
    torch_norm: tuple[int, int] | None

    @property
    def kv_projection_d(self) -> int:
        return KV_PROJECTION_D_FUSED if self.torch_norm is None else 2 + self.torch_norm[1]

    @property
    def query_piece_d(self) -> int:
        return QUERY_PIECE_D_FUSED if self.torch_norm is None else 1 + self.torch_norm[0]


@dataclass(frozen=True)
class _Widths:
    """What every block's formula of one forward shares: tokens per piece (None: a stream at once), hidden size D,
    MLP width F, one projection piece's temporaries per token (with RoPE, without; elements) and the sequence-parallel
    exchange's extra D per token."""

    chunk: int | None
    d: int
    f: int
    piece: tuple[int, int]
    exchange: int
    torch_norm: tuple[int, int] | None  # TORCH_NORM_D for the activation dtype; None: the fused kernels
    head_share: float = 1.0  # the share of the heads in one attention call of the single-stream blocks

    def whole_sequence_piece(self, rotated: int, length: int) -> int:
        """One projection piece's temporaries (elements) over a whole sequence of `length` tokens whose first
        `rotated` get RoPE: a single-stream block without token pieces. The fused kernels' are the same per token
        rotated or not; the torch norm's depend on the rotated share."""
        if self.torch_norm is None:
            return self.piece[0] * length
        return (3 * length + torch_norm_peak(length, rotated, self.torch_norm)) * self.d


def torch_norm_peak(tokens: int, rotated: int, torch_norm: tuple[int, int]) -> int:
    """The torch `rms_norm_rope`'s peak over `tokens` tokens whose first `rotated` are rotated, in hidden sizes D
    (elements / D), from `torch_norm`, its (with RoPE, without) peaks per token (TORCH_NORM_D): the largest of
    F.rms_norm's own, RoPE's over the rotated tokens next to all the normed heads, and the concatenation of the
    rotated and plain rows next to the normed heads. All tokens rotated: the first figure x tokens; none: the
    second."""
    with_rope, plain = torch_norm
    return max(plain * tokens, tokens + (with_rope - 1) * rotated, 2 * tokens + rotated)


def _projection(first: int, second: int, chunk: int | None, d: int, piece: tuple[int, int], share: float = 1.0) -> int:
    """The projection phase over [first; second] tokens (RoPE on the first stream): the Q/K/V buffers and the
    largest piece projected while they exist (the first piece comes before them); with head groups (`share` of
    the heads per call) both for one group, next to the piece's normalized tokens."""
    head = min(chunk or first, first)
    rope_rest, plain = min(head, first - head), min(chunk or second, second)
    widths = [round(d + (p - d) * share) for p in piece]
    return round(3 * share * (first + second) * d) + max(widths[0] * rope_rest, widths[1] * plain)


def _cross_phases(first: int, length: int, w: _Widths, cross: _Cross) -> tuple[int, int]:
    """With pieces: (what the shared layouts' text K/V add to the attention call, the peak of the cross-attention
    after it), in elements. After the call the block holds its attention output (L D) and the text K/V (2 T D);
    the diffusers layout first projects them from the normalized text (T D) with their norm's temporaries; then each
    query piece is projected, normed and attended (QUERY_PIECE_D per token)."""
    d = w.d
    kv_made = 0 if cross.shared else cross.kv_projection_d
    after = length * d + max(
        kv_made * cross.text * d, 2 * cross.text * d + cross.query_piece_d * min(w.chunk, first) * d
    )
    return (2 * cross.text * d if cross.shared else 0), after


def _single_block(first: int, second: int, w: _Widths, cross: _Cross | None = None, queries: int | None = None) -> int:
    """A single-stream block over [first; second] tokens, its inputs included (elements); the sequence-parallel
    all-to-all adds `w.exchange` D per token around the attention call; `cross`: its text cross-attention, if any;
    `queries`: the tokens whose outputs it computes (the DDT decoder's last block: the first stream's; None: all).
    Q, K and V are projected for every token, the attention output, MLP and output projection for the queries."""
    d, f, chunk, piece = w.d, w.f, w.chunk, w.piece
    length = first + second
    queries = length if queries is None else queries
    attention = ((ATTENTION_L - 1 + w.exchange) * length + queries) * d
    if chunk is None:  # one piece: the concatenated tokens, held through the block (the reference's layout)
        # (the output pass's piece is the whole sequence; the cross-attention's phases, under 4 L D + 8 T D, stay
        # below it)
        projection = w.whole_sequence_piece(first, length)
        return 2 * length * d + max(attention, projection, queries * d + (2 * f + 2 * d) * queries)
    widest = max(min(chunk, first), min(chunk, second) if queries > first else 0)
    output = 2 * queries * d + (2 * f + 2 * d) * widest
    held_kv, after_attention = _cross_phases(first, length, w, cross) if cross else (0, 0)
    projection = _projection(first, second, chunk, d, piece)
    if w.head_share < 1:  # head groups: the merged output (queries D) and the text K/V exist from the first group on
        share = w.head_share
        attention = queries * d + round(((ATTENTION_L - 1 + w.exchange) * length + queries) * share * d)
        projection = queries * d + held_kv + _projection(first, second, chunk, d, piece, share)
    phases = (attention + held_kv, projection, output, after_attention)
    return length * d + max(phases)


def _dual_block(n: int, t: int, w: _Widths, cross: _Cross | None = None) -> int:
    """A dual-stream block over n video and t context tokens, its inputs included (elements); `cross`: its text
    cross-attention, if any."""
    d, f, chunk, piece = w.d, w.f, w.chunk, w.piece
    length = n + t
    attention = (ATTENTION_L + 1 + w.exchange) * length * d  # + the normalized inputs it projects from
    # Its pieces are views of the normalized inputs (one D less each), which stay held (+ L D).
    projection = length * d + _projection(n, t, chunk, d, (piece[0] - d, piece[1] - d))
    # The feed-forward runs on the video, then on the context, next to both streams' post-attention values (L D):
    # the stream's FF input and output, and one piece's GELU input and output (the whole stream without pieces).
    stream = max(n, t)
    ff = length * d + (
        2 * stream * d + (2 * f + d) * max(min(chunk, n), min(chunk, t)) if chunk else (2 * f + d) * stream
    )
    return length * d + max(attention, projection, ff, _dual_cross_phase(n, t, w, cross) if cross else 0)


def _dual_cross_phase(n: int, t: int, w: _Widths, cross: _Cross) -> int:
    """The dual-stream block's text cross-attention (elements, inputs excluded). Every layout projects the text
    K/V here (from the normalized context, still held: its text is a slice of it) next to the attention output and
    the updated context; then each query piece runs next to the updated video and the K/V."""
    d = w.d
    project_kv = n * d + 2 * t * d + (cross.kv_projection_d - 1) * cross.text * d  # its normalized text is a view
    attend = 2 * n * d + t * d + 2 * cross.text * d + cross.query_piece_d * min(w.chunk or n, n) * d
    return max(project_kv, attend)


def linear_rows(
    video_tokens: int, token_chunk: int | None, batch: int, text_tokens: int = TEXT_TOKENS, image_tokens: int = 0
) -> set[int]:
    """The row counts of the transformer's linear calls in one forward of `batch` rows (`batch` x the tokens a
    call takes), counted from the model code, for the planner to tell where a kernel autotunes for its row count:
    the per-row modulations and time embedding (1 token each), the text and image embedders, the context and video
    streams whole (the dual-stream blocks' output projections, proj_out), and either the single-stream blocks'
    [video; context] and the DDT decoder's 2N tokens whole or, with token pieces of `token_chunk`, every piece of
    the video and of the context (whole pieces and the last). tests/test_autotune_memory.py records a forward's."""
    context = text_tokens + image_tokens
    tokens = {1, text_tokens, image_tokens, context, video_tokens}
    if token_chunk is None:
        tokens |= {video_tokens + context, 2 * video_tokens}
    else:
        for stream in (video_tokens, context):
            piece = min(token_chunk, stream)
            tokens |= {piece, stream % piece}
    return {batch * count for count in tokens if count}


def adapter_layer_tokens(
    module: str, video_tokens: int, token_chunk: int | None, text_tokens: int = TEXT_TOKENS, image_tokens: int = 0
) -> int:
    """The most tokens per sample one call of the transformer's linear `module` takes, from the model code: 1 for a
    block's modulation (`norm*.linear`, one row per sample); without token pieces, a dual-stream block's stream (the
    video or the context) and a single-stream block's [video; context] or a DDT decoder block's 2N; with pieces of
    `token_chunk`, the dual-stream blocks' output projections (`attn.to_out`, `attn.to_add_out`) still take their
    whole stream, every other layer a piece (or the text, whose K/V are projected whole for the cross-attention);
    outside the blocks, the most any linear call takes (`linear_rows`)."""
    block, _, rest = module.partition(".")
    layer = rest.partition(".")[2]
    context = text_tokens + image_tokens
    if block not in ("transformer_blocks", "single_transformer_blocks"):
        return max(linear_rows(video_tokens, token_chunk, 1, text_tokens, image_tokens))
    if layer.startswith("norm"):
        return 1
    dual = block == "transformer_blocks"
    whole = max(video_tokens, context) if dual else max(video_tokens + context, 2 * video_tokens)
    if token_chunk is None or dual and layer.startswith(("attn.to_out.", "attn.to_add_out")):
        return whole
    return max(min(token_chunk, max(video_tokens, context)), text_tokens)


def adapter_temporary_bytes(
    token_bytes: Mapping[str, int] | None,
    video_tokens: int,
    token_chunk: int | None,
    batch: int,
    image_tokens: int = 0,
    text_tokens: int = TEXT_TOKENS,
) -> int:
    """What the LoRA adapters beside packed layers add to a forward's peak: `token_bytes`, module -> the most bytes
    per token its adapters keep alive beside its output (their update's temporaries, then the update next to the
    sum: `lora_apply.SideAdapters.temporary_bytes_per_token`), times the rows that layer's calls take
    (`adapter_layer_tokens` of `batch` samples): the widest layers, the modulations, run on one row per sample.
    One layer runs at a time and its temporaries are gone when it returns, so the largest layer's count, not the
    sum over layers; counted on top of the forward's peak, as if that call fell at it (an upper bound)."""
    counts = (
        n * adapter_layer_tokens(module, video_tokens, token_chunk, text_tokens, image_tokens)
        for module, n in (token_bytes or {}).items()
    )
    return batch * max(counts, default=0)


def step_cache_bytes(
    video_tokens: int, hidden: int, batch: int, act_bytes: int = ACT_BYTES, context_tokens: int = CONTEXT_TOKENS
) -> int:
    """What a step cache holds at the peak of a forward of `batch` rows (STEP_CACHE_VIDEO_TENSORS), in bytes;
    tests/test_step_cache.py checks it against the tensors alive in a cached forward on the CPU."""
    return (STEP_CACHE_VIDEO_TENSORS * video_tokens + batch * context_tokens) * hidden * act_bytes


def text_activation_bytes(batch: int, act_bytes: int = ACT_BYTES) -> int:
    """The official T5Gemma2 over TEXT_TOKENS: ~6 hidden-size tensors and 3 MLP-size ones in the dtype the encoder
    runs in (`act_bytes` per element: 4 for a float32 encoder, e.g. `--dtype float32`), plus eager fp32 attention
    scores (softmax runs in float32 whatever that dtype)."""
    shape = TextEncoderShape()
    per_token = 6 * shape.hidden + 3 * shape.intermediate
    return batch * (TEXT_TOKENS * per_token * act_bytes + shape.heads * TEXT_TOKENS**2 * 4)


def image_tower_activation_bytes(tower: ImageTowerShape, act_bytes: int = ACT_BYTES) -> int:
    """An estimate, not measured: the SigLIP tower's pass over one first frame, counted like the text encoder's
    (`text_activation_bytes`), ~6 hidden-size tensors and 3 MLP-size ones per image token in the dtype the encoder
    runs in. No scores term: transformers runs this tower's attention through SDPA, whose memory grows with the
    tokens, not their square (an eager fallback would add heads x tokens^2 float32 scores, 1 GiB for the official
    tower). ~0.15 GiB in bf16 for the official 4096 tokens."""
    return tower.tokens * (6 * tower.hidden + 3 * tower.intermediate) * act_bytes
