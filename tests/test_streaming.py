"""Block streaming and token-chunked feed-forward equal the plain model, and leave nothing behind."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import quants as gguf_quants
from speed_helpers import conditioning, pipeline, sample, sampling_request, tiny_transformer
from tiny_config import TINY as TINY_KWARGS
from tiny_config import forward, inputs, randomize_
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.pipeline.conditioning import text_encoder_placed
from motif_lite.runtime.chunking import ChunkedFeedForward, apply_token_chunking
from motif_lite.runtime.planner import PlanHandle
from motif_lite.runtime.streaming import (
    LayerStreamer,
    StreamingConfig,
    TextEncoderPlacement,
    apply_block_streaming,
    layer_nbytes,
    place_text_encoder,
    text_encoder_layer_lists,
)
from motif_lite.weights.quant_linear import QuantizedLinear

TINY = TransformerConfig(**TINY_KWARGS)
NUM_BLOCKS = TINY.num_layers + TINY.num_single_layers


def storage_ptrs(module: nn.Module) -> list[int]:
    return [t.data_ptr() for t in [*module.parameters(), *module.buffers()]]


@pytest.mark.parametrize(
    ("quantized", "resident", "prefetch"), [(False, 0, True), (True, 2, True), (True, 0, False), (False, 2, False)]
)
def test_streaming_is_bit_identical_and_restores(quantized, resident, prefetch):
    model = tiny_transformer(quantized=quantized)
    x = inputs(image=3, frames=2, height=4, width=6)
    plain = forward(model, x)
    before = storage_ptrs(model)
    handle = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=resident, prefetch=prefetch))
    for _ in range(2):  # a second forward must work the same (nothing left over from the first)
        assert torch.equal(forward(model, x), plain)
    streamed = NUM_BLOCKS - resident
    assert handle.stats.loads == handle.stats.releases == 2 * streamed
    # Every streamed block after the first is served from a prefetch (including the first when resident > 0).
    assert handle.stats.prefetch_hits == (2 * (streamed - (resident == 0)) if prefetch else 0)
    handle.remove()
    assert storage_ptrs(model) == before
    assert torch.equal(forward(model, x), plain)


@pytest.mark.parametrize("prefetch", [True, False])
def test_staging_keeps_the_weights_where_they_are(prefetch):
    # Homes are the loaded tensors themselves (no copy, memory-mapped stays memory-mapped); every layer goes
    # through one of two staging buffers sized to the largest layer.
    model = tiny_transformer(quantized=True)
    x = inputs(image=3, frames=2, height=4, width=6)
    plain = forward(model, x)
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    before = storage_ptrs(model)
    handle = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=1, prefetch=prefetch, staging=True))
    staging = handle.streamers[0].staging
    largest = max(layer_nbytes([*b.parameters(), *b.buffers()]) for b in blocks[1:])
    assert [b.numel() for b in staging.buffers] == [largest, largest]
    for _ in range(2):
        assert torch.equal(forward(model, x), plain)
        assert storage_ptrs(model) == before  # between forwards the parameters are their own storage again
    assert handle.stats.loads == 2 * (NUM_BLOCKS - 1)
    handle.remove()
    assert storage_ptrs(model) == before and torch.equal(forward(model, x), plain)


def test_hooks_swap_weights_in_and_out_in_order():
    model = tiny_transformer(quantized=True)
    handle = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=1))
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    homes = [storage_ptrs(b) for b in blocks]
    events = []

    def check_in(i):  # registered after ours: runs once our pre-hook has swapped the block in
        def hook(module, args):
            live = storage_ptrs(module)
            swapped = [a != b for a, b in zip(live, homes[i], strict=True)]
            events.append(("in", i, all(swapped) if i >= 1 else not any(swapped)))

        return hook

    def check_out(i):
        def hook(module, args, output):
            events.append(("out", i, storage_ptrs(module) == homes[i]))

        return hook

    for i, block in enumerate(blocks):
        block.register_forward_pre_hook(check_in(i))
        block.register_forward_hook(check_out(i))
    forward(model, inputs())
    expected = [e for i in range(NUM_BLOCKS) for e in (("in", i, True), ("out", i, i >= 1))]
    # Resident block 0 is never swapped (always on the device; here device == home == cpu, so "out" is ptr-equal
    # only by accident of placement: we check it was not swapped in).
    assert [(k, i, ok) for k, i, ok in events if not (k == "out" and i == 0)] == [
        e for e in expected if not (e[0] == "out" and e[1] == 0)
    ]
    handle.remove()


def test_a_forward_after_a_partial_one_loads_the_right_weights():
    # The step cache runs only the first block on a reused step: the prefetch of the next block is then never
    # used, and the following forward must not take it for a block it was not copied for.
    model = tiny_transformer()
    x = inputs()
    plain = forward(model, x)
    handle = apply_block_streaming(model, StreamingConfig("cpu"))
    with torch.no_grad():
        s = model.embed(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
        model.run_encoder_blocks(s.x, s.context, s.ctx, 0, 1)
    assert torch.equal(forward(model, x), plain)
    handle.remove()


def test_a_prefetch_a_partial_forward_left_is_used_not_copied_again():
    # With a resident block, the step cache's reused steps run it alone: its hook prefetches the first streamed
    # block, which nothing uses. The next forward's prefetch of that block takes that copy instead of making
    # another (on CUDA, overwriting it freed a side-stream copy without the compute stream waiting for it).
    model = tiny_transformer()
    x = inputs()
    plain = forward(model, x)
    handle = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=1))
    streamer = handle.streamers[0]

    def first_block_only() -> None:
        with torch.no_grad():
            s = model.embed(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
            model.run_encoder_blocks(s.x, s.context, s.ctx, 0, 1)

    first_block_only()
    left = streamer._pending
    first_block_only()
    assert left is not None and streamer._pending is left
    assert torch.equal(forward(model, x), plain)
    assert streamer._pending is None
    handle.remove()


def test_streamed_weights_are_not_the_parameters_between_forwards():
    model = tiny_transformer()
    params = {name: p for name, p in model.named_parameters()}
    handle = apply_block_streaming(model, StreamingConfig("cpu"))
    # The Parameter objects are unchanged (optimizers, state_dict keys and references stay valid).
    assert {name: p for name, p in model.named_parameters()} == params
    assert handle.streamers[0]._pending is None
    forward(model, inputs())
    assert handle.streamers[0]._pending is None  # no prefetched copy survives the forward
    handle.remove()


def test_sampling_stopped_inside_a_block_leaves_no_streamed_block_loaded():
    # Ctrl-C or out of memory inside a block: that block and the next one's prefetch must not stay on the device,
    # where the next run would hold them beside its own copies (a block more than its plan counted).
    model = tiny_transformer()
    handle = apply_block_streaming(model, StreamingConfig("cpu"))
    pipe = pipeline(model, PlanHandle(handles=[handle]))
    blocks = [*model.transformer_blocks, *model.single_transformer_blocks]
    homes = [storage_ptrs(block) for block in blocks]

    def stop(module, args):  # registered after ours: block 3 is loaded and block 4 prefetched
        raise KeyboardInterrupt

    blocks[3].register_forward_pre_hook(stop)
    with pytest.raises(KeyboardInterrupt):
        sample(pipe, conditioning(), sampling_request(steps=2))
    assert [storage_ptrs(block) for block in blocks] == homes
    assert handle.streamers[0]._pending is None


def test_too_many_resident_blocks_is_an_error():
    with pytest.raises(ConfigError, match="resident_blocks"):
        apply_block_streaming(tiny_transformer(), StreamingConfig("cpu", resident_blocks=NUM_BLOCKS + 1))
    with pytest.raises(ConfigError, match="resident_blocks"):
        StreamingConfig("cpu", resident_blocks=-1)


def test_layer_streaming_on_a_plain_module_list():
    torch.manual_seed(0)
    layers = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.GELU()) for _ in range(4))
    x = torch.randn(3, 8)

    def run():
        h = x
        for layer in layers:
            h = layer(h)
        return h

    plain = run()
    streamer = LayerStreamer(list(layers), StreamingConfig("cpu"))
    assert torch.equal(run(), plain)
    assert streamer.stats.loads == 4 and streamer.stats.prefetch_hits == 3
    streamer.remove()
    assert torch.equal(run(), plain)


def test_text_encoder_streamed_equals_plain(tmp_path):
    from tiny_text import make_tiny_text_encoder

    from motif_lite.encoders.text import load_text_encoder

    make_tiny_text_encoder(tmp_path)
    encoder = load_text_encoder(tmp_path, dtype=torch.float32)
    plain, mask = encoder.encode(["a red fox", "snow"])
    handle = place_text_encoder(encoder.model, TextEncoderPlacement.STREAMED, StreamingConfig("cpu"))
    streamed, _ = encoder.encode(["a red fox", "snow"])
    assert torch.equal(streamed[mask], plain[mask])
    text_layers = len(encoder.model.text_model.layers)
    assert handle.stats.loads >= text_layers  # the text layers ran through the streamer
    # Two lists streamed (text and vision layers): the handle's stats are each counter summed over both.
    each = [dataclasses.asdict(streamer.stats) for streamer in handle.streamers]
    assert len(each) == 2 and dataclasses.asdict(handle.stats) == {k: each[0][k] + each[1][k] for k in each[0]}
    handle.remove()
    assert place_text_encoder(encoder.model, TextEncoderPlacement.CPU, StreamingConfig("cpu")) is None


def test_a_text_encoder_that_fails_to_reach_the_device_is_offloaded():
    # Out of memory while the encoder moves to the GPU leaves the part already moved there: it must go back all the
    # same (`TextEncoder.offload`), or those gigabytes stay held for the rest of the session.
    class MoveFails(nn.Linear):
        def to(self, *args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory")

    offloaded = []
    encoder = SimpleNamespace(model=MoveFails(2, 2), offload=lambda: offloaded.append(True))
    with pytest.raises(torch.OutOfMemoryError), text_encoder_placed(encoder, TextEncoderPlacement.DEVICE, "cpu"):
        pass
    assert offloaded == [True]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def test_a_streamed_text_encoder_gets_its_tensors_as_loaded_back_without_a_copy(tmp_path, monkeypatch, device):
    # Streamed, the embeddings and norms visit the device once. The pipeline then removes the streaming and
    # offloads the encoder, which swaps its tensors as loaded back in: a copy of them to the host in between (the
    # real encoder's 1.3 GB embedding table) would be thrown away at once, a wasted device-to-host copy and a
    # rise of host memory at the switch to sampling. On the CPU a move is no copy, so the moves are recorded (in
    # this test only): on a GPU each one of a tensor outside the layers would be that copy. On CUDA each tensor
    # must be the very one loaded.
    from tiny_text import make_tiny_text_encoder

    from motif_lite.encoders.text import load_text_encoder

    make_tiny_text_encoder(tmp_path)
    encoder = load_text_encoder(tmp_path, dtype=torch.float32)
    plain, mask = encoder.encode(["a red fox"])
    before = storage_ptrs(encoder.model)
    config = StreamingConfig(device, staging=True)  # as the pipeline streams it (`text_encoder_placed`)
    handle = place_text_encoder(encoder.model, TextEncoderPlacement.STREAMED, config)
    assert encoder.model.text_model.embed_tokens.weight.device.type == device  # it did visit the device
    in_layers = {t.data_ptr() for layers in text_encoder_layer_lists(encoder.model) for t in layers.parameters()}
    outside = {t.data_ptr() for t in encoder.model.parameters()} - in_layers
    moved, move = [], torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda t, *a, **k: moved.append(t.data_ptr()) or move(t, *a, **k))
    handle.remove()
    monkeypatch.undo()
    assert not outside & set(moved)  # no tensor outside the layers was copied back
    assert storage_ptrs(encoder.model) == before  # the tensors as loaded, not copies of them
    encoder.offload()
    assert storage_ptrs(encoder.model) == before
    assert torch.equal(encoder.encode(["a red fox"])[0][mask], plain[mask])


def assert_rounding_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    # Same math per token; only the GEMM's M-dependent kernel choice may round differently (see chunking.py).
    err = (a - b).abs().max().item()
    assert err <= 1e-6 * b.abs().max().item(), err


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_chunked_ff_equals_plain(chunk):
    model = tiny_transformer(quantized=True)
    x = inputs(frames=3, height=8, width=10)  # 60 video tokens
    plain = forward(model, x)
    handle = apply_token_chunking(model, chunk)
    assert isinstance(model.transformer_blocks[0].ff, ChunkedFeedForward)
    out = forward(model, x)
    assert_rounding_equal(out, plain)
    if chunk >= 2 * 60:
        assert torch.equal(out, plain)  # one chunk everywhere (the decoder's 2N tokens included)
    handle.remove()
    assert not isinstance(model.transformer_blocks[0].ff, ChunkedFeedForward)
    assert all(block.token_chunk is None for block in model.single_transformer_blocks)
    assert torch.equal(forward(model, x), plain)


def test_chunked_image_to_video_equals_plain():
    # With image tokens the context stream is [image; text]: the chunked single-stream blocks normalize the text
    # for their cross-attention apart from the rest, and must leave the image tokens out as the one-piece path does.
    model = tiny_transformer()
    x = inputs(image=3, frames=3, height=8, width=10)  # 60 video tokens, 3 image + 7 text
    plain = forward(model, x)
    handle = apply_token_chunking(model, 7)
    assert_rounding_equal(forward(model, x), plain)
    handle.remove()


def test_chunked_ff_really_chunks():
    calls = []
    ff = nn.Linear(4, 6)
    ff.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[1]))
    x = torch.randn(2, 10, 4)
    assert_rounding_equal(ChunkedFeedForward(ff, 4)(x), ff(x))
    assert calls[:3] == [4, 4, 2]


def test_single_blocks_chunk_their_mlp_and_projections():
    model = tiny_transformer(quantized=False)
    decoder = model.single_transformer_blocks[-1]
    rows = {"mlp": [], "q": []}
    decoder.proj_mlp.register_forward_hook(lambda m, a, out: rows["mlp"].append(a[0].shape[1]))
    decoder.attn.to_q.register_forward_hook(lambda m, a, out: rows["q"].append(a[0].shape[1]))
    apply_token_chunking(model, 16)
    forward(model, inputs(frames=3, height=8, width=10))  # the decoder block sees 2 x 60 tokens
    # Pieces never straddle the two streams (decoder tokens | encoder output): 60 = 16 + 16 + 16 + 12 each. The
    # projections run on both streams (keys and values); the MLP only on the decoder's, since the last decoder
    # block's encoder-stream output is not used.
    assert rows["q"] == [16, 16, 16, 12] * 2 and rows["mlp"] == [16, 16, 16, 12]


def test_chunked_cross_attention_projects_the_text_once_per_block():
    # The query runs per video piece; the text K/V are projected once per block, not once per piece.
    model = tiny_transformer(quantized=False)
    block = model.encoder_single_blocks[0]
    assert block.cross_attn is not None and TINY.cross_attention_layout == "diffusers"
    rows = {"q": [], "k": [], "v": []}
    for name in rows:
        getattr(block.cross_attn, f"to_{name}").register_forward_hook(
            lambda m, a, out, name=name: rows[name].append(a[0].shape[1])
        )
    apply_token_chunking(model, 16)
    x = inputs(frames=3, height=8, width=10)  # 60 video tokens
    forward(model, x)
    assert rows["q"] == [16, 16, 16, 12]
    assert rows["k"] == rows["v"] == [x["text_embeds"].shape[1]]


@pytest.mark.parametrize("layout", ["diffusers", "original"])
def test_chunked_dual_stream_cross_attention_equals_plain(layout):
    # The optional cross-attention of the dual-stream blocks: its query runs per piece too, added to the video
    # stream's rows in place.
    flags = {"enable_text_cross_attention_dual": True, "cross_attention_layout": layout}
    config = TransformerConfig(**{**TINY_KWARGS, **flags})
    model = randomize_(MotifVideoTransformer(config).eval().requires_grad_(False), 0)
    rows = []
    cross = model.transformer_blocks[0].cross_attn
    query = cross.to_q if layout == "diffusers" else cross.query_proj
    query.register_forward_hook(lambda m, a, out: rows.append(a[0].shape[1]))
    x = inputs(frames=3, height=8, width=10)  # 60 video tokens
    plain = forward(model, x)
    assert rows == [60]
    handle = apply_token_chunking(model, 16)
    assert_rounding_equal(forward(model, x), plain)
    assert rows[1:] == [16, 16, 16, 12]
    handle.remove()


def test_chunking_and_streaming_compose():
    model = tiny_transformer(quantized=True)
    x = inputs()
    plain = forward(model, x)
    chunks = apply_token_chunking(model, 5)
    stream = apply_block_streaming(model, StreamingConfig("cpu", resident_blocks=1))
    assert_rounding_equal(forward(model, x), plain)
    stream.remove()
    chunks.remove()
    with pytest.raises(ConfigError):
        apply_token_chunking(model, 0)


def test_chunking_refuses_no_head_count_and_a_second_application():
    model = tiny_transformer()
    # 0 heads per call would read as None (every head at once): refused, as 0 tokens per chunk is.
    with pytest.raises(ConfigError, match=r"heads_per_call=0 must be a positive integer or None"):
        apply_token_chunking(model, 5, heads_per_call=0)
    handle = apply_token_chunking(model, 5)
    # A second handle would wrap the wrappers, and its remove() would leave the first ones installed.
    with pytest.raises(ConfigError, match="already applied to this model"):
        apply_token_chunking(model, 7)
    handle.remove()
    assert not isinstance(model.transformer_blocks[0].ff, ChunkedFeedForward)
    apply_token_chunking(model, 7).remove()  # once removed, it applies again


@pytest.mark.cuda
@pytest.mark.parametrize("staging", [False, True])
def test_cuda_streaming_matches_and_frees_memory(staging):
    model = tiny_transformer(quantized=True)
    x = inputs()
    plain = forward(model, x)
    cuda_x = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    baseline = torch.cuda.memory_allocated()
    handle = apply_block_streaming(model, StreamingConfig("cuda", resident_blocks=0, staging=staging))
    with_rest = torch.cuda.memory_allocated()  # embedders and head only
    out = forward(model, cuda_x)
    torch.cuda.synchronize()
    torch.testing.assert_close(out.cpu(), plain, rtol=1e-4, atol=1e-4)  # CUDA vs CPU kernels
    del out
    # The first forward leaves only cuBLAS workspaces (held by PyTorch per stream, ~32 MiB each on Hopper) ...
    after_first = torch.cuda.memory_allocated()
    assert after_first - with_rest < 128 * 2**20
    # Pinned homes, or with staging the loaded (pageable) tensors themselves.
    homes = [p for b in model.transformer_blocks for p in b.parameters()]
    assert all(p.device.type == "cpu" and p.is_pinned() != staging for p in homes)
    # ... and later forwards leave nothing at all: no block stays on the device.
    forward(model, cuda_x)  # result dropped at once
    assert torch.cuda.memory_allocated() == after_first
    handle.remove()
    assert torch.cuda.memory_allocated() - baseline == after_first - with_rest


def grouped_model(layout: str, packed: bool) -> MotifVideoTransformer:
    """4 heads of 16 (head groups of 1 and 3 leave an uneven last group); with `packed`, the single-stream blocks'
    Q/K/V projections hold Q8_0 blocks, one of them beside an unmerged LoRA."""
    from motif_lite.weights.lora_apply import LoRALinear

    flags = dict(num_attention_heads=4, attention_head_dim=16, rope_axes_dim=(4, 6, 6), cross_attention_layout=layout)
    model = randomize_(MotifVideoTransformer(TransformerConfig(**{**TINY_KWARGS, **flags})).eval(), 0)
    model.requires_grad_(False)
    if packed:
        for block in model.single_transformer_blocks:
            for name in ("to_q", "to_k", "to_v"):
                linear = getattr(block.attn, name)
                blocks = torch.from_numpy(gguf_quants.quantize(linear.weight.numpy(), Q.Q8_0))
                layer = QuantizedLinear.from_packed(blocks, Q.Q8_0, linear.in_features, linear.bias.data)
                setattr(block.attn, name, layer)
        attn = model.single_transformer_blocks[0].attn
        g = torch.Generator().manual_seed(3)
        attn.to_v = LoRALinear(attn.to_v, 0.3 * torch.randn(4, 64, generator=g), 0.3 * torch.randn(64, 4, generator=g))
    return model


@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize(("layout", "packed", "chunk", "image"), [
    ("diffusers", False, 7, 0), ("original", True, 7, 3), ("pr", False, None, 0), ("diffusers", True, None, 3),
])  # fmt: skip
def test_head_groups_equal_one_call(heads, layout, packed, chunk, image):
    # The single-stream blocks (the DDT decoder's included) attend `heads` heads per call, each group projected
    # from its rows of Q/K/V (packed and LoRA rows included): the one-call result up to the GEMMs' rounding.
    model = grouped_model(layout, packed)
    x = inputs(frames=3, height=8, width=10, image=image)  # 60 video tokens
    plain = forward(model, x)
    calls = []

    def recording(q, k, v, mask):
        calls.append(q.shape[1])
        return sdpa(q, k, v, mask)

    sdpa = model.ops.attention
    model.ops = dataclasses.replace(model.ops, attention=recording, decoder_attention=recording)
    handle = apply_token_chunking(model, chunk or 10_000, heads_per_call=heads)
    grouped = forward(model, x)
    assert_rounding_equal(grouped, plain)
    single_calls = [c for c in calls if c != 4]  # the dual blocks' joint attention and the cross-attention: 4 heads
    groups = [1, 1, 1, 1] if heads == 1 else [3, 1]
    assert single_calls == groups * len(model.single_transformer_blocks)
    handle.remove()
    assert all(block.heads_per_call is None for block in model.single_transformer_blocks)
    calls.clear()
    assert torch.equal(forward(model, x), plain) and 1 not in calls and 3 not in calls
