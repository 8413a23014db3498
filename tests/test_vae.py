"""Parity of motif_lite.vae with diffusers' AutoencoderKLWan on random weights (fp32), and loader errors."""

from __future__ import annotations

import copy
import json
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.pipelines.motif_video.pipeline_motif_video import MotifVideoPipeline
from safetensors.torch import load_file, save_file
from tiny_pipeline import random_vae

from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.vae import VAETile, load_vae
from motif_lite.vae import layers as vae_layers
from motif_lite.vae.bands import LevelShape, plan_bands
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.layers import CausalState, RMSNorm
from motif_lite.vae.model import WanVAE
from motif_lite.vae.tiling import blend_weights, decode_tiled_step, tile_count, tile_grid, tile_spans
from motif_lite.weights.safetensors_files import TensorFiles

TINY = dict(
    base_dim=8,
    z_dim=4,
    dim_mult=[1, 2, 2, 2],
    num_res_blocks=1,
    temperal_downsample=[False, True, True],
    latents_mean=[0.1, -0.2, 0.3, 0.0],
    latents_std=[1.0, 2.0, 0.5, 1.5],
)
WAN21 = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True])
WEIGHTS = "diffusion_pytorch_model.safetensors"


def make_reference(tmp_path: Path, seed: int = 0, **config) -> tuple[AutoencoderKLWan, Path]:
    """A random-weight diffusers VAE saved in the official layout: <tmp>/ckpt/vae/{config.json, weights}."""
    ref = random_vae(seed, **config)
    folder = tmp_path / "ckpt" / "vae"
    ref.save_pretrained(folder)
    return ref, folder


def assert_close(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-5) -> None:
    assert ours.shape == ref.shape
    err, tol = (ours - ref).abs().max().item(), rel * ref.std().item()
    assert err <= tol, f"max|diff| {err:.3g} > {tol:.3g}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ref, folder = make_reference(tmp_path_factory.mktemp("tiny"), **TINY)
    return ref, load_vae(folder.parent)


# -- decode --


def test_decode_matches_reference(tiny):
    ref, vae = tiny
    z = torch.randn(1, 4, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.decode(z).sample
    assert torch.equal(vae.decode(z, frame_by_frame=False), expected)  # the reference's exact computation
    assert_close(vae.decode(z), expected)  # the default, one frame at a time through the upper levels


def test_decode_frames_streams_frame_groups(tiny):
    _, vae = tiny
    z = torch.randn(1, 4, 3, 4, 6, generator=torch.Generator().manual_seed(2))
    chunks = list(vae.decode_frames(z))
    assert [c.shape[2] for c in chunks] == [1, 4, 4]
    # Whole clip: every layer sees all frames at once (no causal caching across calls) -> same math.
    state = CausalState()
    with torch.no_grad():
        whole = vae.decoder(vae.post_quant_conv(z, state), state).clamp(-1, 1)
    assert_close(torch.cat(chunks, dim=2), whole)
    assert_close(torch.cat(list(vae.decode_frames(z, frame_by_frame=False)), dim=2), whole)


def test_frame_by_frame_keeps_causal_order(tiny):
    # Sharper than parity at small sizes: swapping two frames inside a chunk would change every later frame.
    _, vae = tiny
    z = torch.randn(1, 4, 4, 4, 6, generator=torch.Generator().manual_seed(5))
    plain, one_by_one = vae.decode(z, frame_by_frame=False), vae.decode(z)
    assert_close(one_by_one, plain)
    assert (plain[:, :, 5:] - plain[:, :, 4:-1]).abs().max() > 100 * (one_by_one - plain).abs().max()


def test_causal_caches_hold_only_real_frames(tiny):
    # After the first frame a conv's past is one real frame: no cached zeros (half the first step's caches).
    _, vae = tiny
    z = torch.randn(1, 4, 2, 4, 6, generator=torch.Generator().manual_seed(6))
    state = CausalState()
    with torch.no_grad():
        vae._decode_step(z[:, :, :1], state, frame_by_frame=True)
        first = {conv: cache.shape[2] for conv, cache in state.frames.items()}
        vae._decode_step(z[:, :, 1:], state, frame_by_frame=True)
    convs = [m for m in vae.decoder.modules() if getattr(m, "past_frames", 0) == 2]
    assert convs and all(first.get(conv) == 1 for conv in convs if conv in first)
    top = [m for m in vae.decoder.up_blocks[-1].modules() if m in convs]  # these have seen 1 + 4 frames now
    assert top and all(state.frames[conv].shape[2] == 2 for conv in top)


def test_tiled_decode(tiny):
    _, vae = tiny
    z = torch.randn(1, 4, 2, 8, 10, generator=torch.Generator().manual_seed(3))
    plain = vae.decode(z)
    # A tile that covers the frame is the untiled decode, bit for bit.
    assert torch.equal(vae.decode(z, tile=VAETile(size=10, overlap=4)), plain)
    # Real tiles: each tile sees zero padding at its borders and attends only over itself, so pixels near the
    # borders differ. With 48-pixel tiles and random weights (which spread border effects far) the mean error
    # measures ~0.16 std; a misplaced tile would be several times worse.
    tiled = torch.cat(list(vae.decode_frames(z, tile=VAETile(size=6, overlap=2))), dim=2)
    assert tiled.shape == plain.shape
    assert torch.equal(vae.decode(z, tile=VAETile(size=6, overlap=2)), tiled)  # tiles-outer path, same blend
    assert (tiled - plain).abs().mean() < 0.25 * plain.std()
    misplaced = torch.cat([tiled[..., 8:], tiled[..., :8]], dim=-1)  # shift by one latent column
    assert (misplaced - plain).abs().mean() > 2 * (tiled - plain).abs().mean()


def largest_seam(vae: WanVAE) -> float:
    """Across each pixel row and column boundary, the tiled frame's mean step against the untiled frame's: the
    largest ratio over both axes (1 where tiling adds no seam)."""
    z = torch.randn(1, 4, 2, 8, 10, generator=torch.Generator().manual_seed(3))
    plain, tiled = vae.decode(z), vae.decode(z, tile=VAETile(size=6, overlap=2))  # tiles overlap in both axes
    ratios = []
    for axis in (-2, -1):
        others = tuple(d for d in range(plain.dim()) if d != plain.dim() + axis)
        step_tiled = tiled.diff(dim=axis).abs().mean(dim=others)
        step_plain = plain.diff(dim=axis).abs().mean(dim=others)
        ratios.append((step_tiled / step_plain).max().item())
    return max(ratios)


def test_tiled_decode_has_no_seams(tiny):
    # The linear ramps keep the largest seam at most 1.12x (measured; the borders' errors change smoothly).
    assert largest_seam(tiny[1]) < 1.4


@pytest.mark.parametrize(
    "ramp",
    [
        lambda length: (torch.arange(length) >= length / 2).float() + 1e-6,  # a hard switch halfway (2.29x)
        lambda length: torch.ones(length),  # plain averaging in the overlap (1.92x at its edges)
    ],
    ids=["hard-switch", "plain-average"],
)
def test_the_seam_check_fails_blends_without_a_ramp(tiny, monkeypatch, ramp):
    # docs/testing.md's negative controls of the tiled decode: a blend without the linear ramp fails the seam check.
    from motif_lite.vae import tiling

    monkeypatch.setattr(tiling, "_ramp", ramp)
    assert largest_seam(tiny[1]) >= 1.4


@pytest.fixture(scope="module")
def tiny_both(tmp_path_factory):
    """The tiny VAE (the same random weights as `tiny`) in float32 and in bfloat16."""
    folder = make_reference(tmp_path_factory.mktemp("tiny_both"), **TINY)[1]
    return {dtype: load_vae(folder.parent, dtype=dtype) for dtype in (torch.float32, torch.bfloat16)}


def blended_by_hand(vae: WanVAE, z: torch.Tensor, tile: VAETile) -> torch.Tensor:
    """The tiled decode written out plainly: each tile decoded alone through every frame, times its weights (in the
    VAE's dtype), summed into the frame in grid order with the weights beside it, then one division and the clamp."""
    dtype, scale = vae.post_quant_conv.weight.dtype, vae.config.spatial_factor
    z = z.to(dtype)
    grid = tile_grid(z.shape[3], z.shape[4], tile, scale)
    total = weights = None
    for place in grid:
        state = CausalState()
        crops = [z[:, :, t : t + 1, place.latent[0], place.latent[1]] for t in range(z.shape[2])]
        pixels = torch.cat([vae._decode_step(crop, state, True) for crop in crops], dim=2)
        if total is None:
            total = pixels.new_zeros(*pixels.shape[:3], z.shape[3] * scale, z.shape[4] * scale)
            weights = pixels.new_zeros(z.shape[3] * scale, z.shape[4] * scale)
        total[..., place.pixels[0], place.pixels[1]] += pixels * place.weight.to(dtype)
        weights[place.pixels[0], place.pixels[1]] += place.weight.to(dtype)
    return (total / weights).clamp(-1.0, 1.0)


# 15 tiles, overlapping unevenly: 7 latent rows in 4/2 tiles start at 0, 2, 3 (overlaps 2 and 3; the last tile
# adds one row, fewer than the overlap) and 11 columns at 0, 2, 4, 5, 7 (overlaps 2, 2, 3, 2).
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_both_tiled_decodes_are_the_plain_blend_bit_for_bit(tiny_both, dtype):
    vae, tile = tiny_both[dtype], VAETile(4, 2)
    z = torch.randn(1, 4, 2, 7, 11, generator=torch.Generator().manual_seed(5))
    tiled = vae.decode(z, tile=tile)  # tiles outer, time inner
    assert tiled.dtype == dtype
    assert torch.equal(torch.cat(list(vae.decode_frames(z, tile=tile)), dim=2), tiled)  # time outer, same blend
    # Bit for bit the plain blend: in bf16 too, where summing the weights in fp32 or multiplying by their reciprocal
    # changes the last bits.
    assert torch.equal(tiled, blended_by_hand(vae, z, tile))
    plain = vae.decode(z).float()
    # Within tolerance of the untiled decode, as in test_tiled_decode: 0.23 std measured (32-pixel tiles).
    assert (tiled.float() - plain).abs().mean() < 0.3 * plain.std()


@pytest.fixture(scope="module")
def tiny64(tiny):
    # float64: the band decode then equals the whole-frame decode to float64 rounding (a conv over another shape may
    # round the last bit differently), far below any halo error; in float32 that rounding is not that far below.
    return copy.deepcopy(tiny[1]).to(torch.float64)


def float64_equal(ours: torch.Tensor, whole: torch.Tensor) -> bool:
    """Equal up to float64 rounding: within 1e-12 of the largest value (a wrong halo row is off by ~1)."""
    return ours.shape == whole.shape and (ours - whole).abs().max().item() <= 1e-12 * whole.abs().max().item()


@pytest.mark.parametrize("shape", [(2, 12, 7), (3, 6, 11)])  # taller than wide (row bands), wider (columns)
def test_bands_are_exact(tiny, tiny64, shape):
    ref, vae = tiny
    t, h, w = shape
    z = torch.randn(1, 4, t, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    whole = tiny64.decode(z, frame_by_frame=False)
    for count in (2, 3, max(h, w)):
        for frame_by_frame in (False, True):
            assert float64_equal(tiny64.decode(z, frame_by_frame=frame_by_frame, bands=count), whole), count
    with torch.no_grad():
        expected = ref.decode(z.float()).sample
    assert_close(vae.decode(z.float(), bands=3), expected)


def test_band_halo_is_needed(tiny64):
    # The halo is not slack: a band one conv short of it gets wrong pixels next to the cut.
    z = torch.randn(1, 4, 1, 8, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    decoder = tiny64.decoder
    shapes = decoder.level_shapes()
    with torch.no_grad():
        state = CausalState()
        mid = decoder.lower(tiny64.post_quant_conv(z, state), state)
    for head_convs, exact in ((1, True), (0, False)):
        band = plan_bands(shapes, head_convs, 8, 2)[0]
        with torch.no_grad():
            banded = decoder.upper(mid, CausalState(), band=band)
            whole = decoder.upper(mid, CausalState())[..., : band.out_rows[1], :]
        assert float64_equal(banded, whole) == exact


def test_bands_partition_the_frame():
    shapes = [LevelShape(6, True), LevelShape(6, True), LevelShape(6, True), LevelShape(6, False)]
    for latent, count in ((92, 2), (92, 3), (160, 7), (5, 5)):
        bands = plan_bands(shapes, 1, latent, count)
        assert [b.out_rows[0] for b in bands[1:]] == [b.out_rows[1] for b in bands[:-1]]
        assert bands[0].out_rows[0] == 0 and bands[-1].out_rows[1] == latent * 8
        for band in bands:
            heights = [latent, 2 * latent, 4 * latent, 8 * latent]
            assert all(0 <= a < b <= n for (a, b), n in zip(band.level_rows, heights, strict=True))
            assert band.head_rows[0] <= band.out_rows[0] < band.out_rows[1] <= band.head_rows[1]


def test_bands_stream_with_progress_and_keep_one_band_of_caches(tiny):
    _, vae = tiny
    z = torch.randn(1, 4, 3, 8, 6, generator=torch.Generator().manual_seed(9))
    steps = []
    chunks = list(vae.decode_frames(z, bands=2, on_step=lambda done, total: steps.append((done, total))))
    assert [c.shape[2] for c in chunks] == [1, 4, 4] and chunks[0].device.type == "cpu"
    assert torch.equal(torch.cat(chunks, dim=2), vae.decode(z, bands=2))
    assert steps == [(i, 6) for i in range(1, 7)]

    # The causal caches of one band against the whole frame's: the memory the bands save.
    def cache_elements(band):
        state = CausalState()
        with torch.no_grad():
            mid = vae.decoder.lower(vae.post_quant_conv(z[:, :, :1], state), state)
            for _ in range(2):
                vae.decoder.upper(mid, state, band=band)
        return sum(v.numel() for k, v in state.frames.items() if k not in (vae.decoder.conv_in,))

    whole, half = cache_elements(None), max(cache_elements(b) for b in vae.decoder.plan_bands((8, 6), 2))
    assert half < 0.8 * whole


def test_tile_blend_weights_sum_to_one():
    for length, tile in [(40, VAETile(16, 4)), (33, VAETile(8, 3)), (12, VAETile(12, 6))]:
        spans = tile_spans(length, tile)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(b[0] - a[1] <= -tile.overlap for a, b in pairwise(spans))
        total = torch.zeros(length * 8)
        for i, (start, end) in enumerate(spans):
            total[start * 8 : end * 8] += blend_weights(spans, i, 8)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-6), (length, tile)


def test_tile_blend_weights_ramp_linearly_across_each_overlap():
    # docs/vae.md: the overlaps are blended with linear ramps. Pixel i of an overlap L pixels long weighs
    # (i + 0.5) / L in the tile that starts there and the rest in the tile that ends there.
    scale = 8
    for length, tile in [(40, VAETile(16, 4)), (33, VAETile(8, 3))]:
        spans = tile_spans(length, tile)
        for i, ((_, end), (start, _)) in enumerate(pairwise(spans)):
            overlap = (end - start) * scale
            rising = blend_weights(spans, i + 1, scale)[:overlap]
            falling = blend_weights(spans, i, scale)[-overlap:]
            assert torch.allclose(rising, (torch.arange(overlap) + 0.5) / overlap, atol=1e-6)
            assert (rising.diff() > 0).all() and torch.allclose(rising + falling, torch.ones(overlap), atol=1e-6)


def test_tile_grid_weights_sum_to_one_over_a_frame_wider_than_high():
    # Rows and columns have different spans here: each tile's weight must take its row's ramps and its column's.
    tile, scale = VAETile(8, 3), 4
    total = torch.zeros(20 * scale, 33 * scale)
    for place in tile_grid(20, 33, tile, scale):
        total[place.pixels] += place.weight
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def test_tile_count_counts_the_grid_without_building_it():
    for tile in (VAETile(2, 0), VAETile(4, 2), VAETile(6, 2), VAETile(8, 3)):
        for height in range(1, 20, 3):
            for width in range(1, 20, 2):
                assert tile_count(height, width, tile) == len(tile_grid(height, width, tile, 8)), (height, width, tile)


def test_tiled_step_of_a_pointwise_decoder_is_the_whole_frames_decode():
    # A decoder that upsamples each latent pixel on its own gives the same pixels whichever tile computes them,
    # so the blend must give back the untiled output, at any spatial factor (a VAE with fewer stages has 4).
    scale = 4

    def step(z: torch.Tensor, state: object) -> torch.Tensor:
        return z[:, :3].repeat_interleave(scale, dim=3).repeat_interleave(scale, dim=4)

    z = torch.randn(1, 4, 1, 11, 19)
    tiled = decode_tiled_step(step, z, {}, VAETile(6, 2), scale)
    assert torch.allclose(tiled, step(z, None), atol=1e-6)


def test_bad_tile_and_latents(tiny):
    _, vae = tiny
    with pytest.raises(ConfigError, match="overlap"):
        VAETile(size=8, overlap=5)
    with pytest.raises(ConfigError, match="latents must be"):
        vae.decode(torch.zeros(1, 3, 2, 4, 4))
    z = torch.zeros(1, 4, 2, 4, 6)
    for bands, message in ((0, "integer >= 1"), (True, "integer >= 1"), (7, "more than the 6")):
        with pytest.raises(ConfigError, match=message):
            vae.decode(z, bands=bands)
    with pytest.raises(ConfigError, match="not both"):
        list(vae.decode_frames(z, tile=VAETile(4, 1), bands=2))


# -- encode and latent normalization --


def test_encode_matches_reference(tiny):
    ref, vae = tiny
    video = torch.rand(2, 3, 9, 16, 24, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        expected = ref.encode(video).latent_dist
    posterior = vae.encode(video)
    assert_close(posterior.mean, expected.mean)
    assert_close(posterior.mode(), expected.mode())
    assert_close(posterior.std, expected.std)
    for seeds in ([7], [7, 8]):  # one generator, and one per batch item
        ours = posterior.sample([torch.Generator().manual_seed(s) for s in seeds])
        theirs = expected.sample([torch.Generator().manual_seed(s) for s in seeds])
        assert_close(ours, theirs)
    assert posterior.sample(torch.Generator().manual_seed(1)).shape == (2, 4, 3, 2, 3)


def test_encode_first_frame_like_i2v(tiny):
    ref, vae = tiny
    frame = torch.rand(1, 3, 1, 24, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        expected = ref.encode(frame).latent_dist.sample(torch.Generator().manual_seed(0))
    assert_close(vae.encode(frame).sample(torch.Generator().manual_seed(0)), expected)
    with pytest.raises(ConfigError, match="frames"):
        vae.encode(torch.zeros(1, 3, 3, 24, 32))
    with pytest.raises(ConfigError, match="multiple of 8"):
        vae.encode(torch.zeros(1, 3, 1, 20, 32))


def test_latent_normalization_matches_pipeline(tiny):
    ref, vae = tiny
    z = torch.randn(1, 4, 2, 3, 3)
    mean, std = ref.config.latents_mean, ref.config.latents_std
    assert torch.equal(vae.normalize_latents(z), MotifVideoPipeline._normalize_latents(z, mean, std))
    assert torch.equal(vae.denormalize_latents(z), MotifVideoPipeline._denormalize_latents(z, mean, std))
    half = z.to(torch.bfloat16)
    assert torch.equal(vae.normalize_latents(half), MotifVideoPipeline._normalize_latents(half, mean, std))


# -- loading --


@pytest.fixture
def saved(tmp_path):
    """A tiny checkpoint's vae/ folder that a test may damage."""
    return make_reference(tmp_path, seed=1, **TINY)[1]


def rewrite_weights(folder: Path, edit) -> None:
    state = load_file(folder / WEIGHTS)
    edit(state)
    save_file(state, folder / WEIGHTS, metadata={"format": "pt"})


def test_loads_vae_folder_sharded_and_bf16(tmp_path):
    ref, folder = make_reference(tmp_path, **TINY)
    sharded = tmp_path / "sharded"
    ref.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / (WEIGHTS + ".index.json")).is_file()
    z = torch.randn(1, 4, 2, 4, 4)
    expected = load_vae(folder).decode(z)  # the vae/ folder itself
    assert torch.equal(load_vae(sharded).decode(z), expected)
    read = []
    with pytest.MonkeyPatch.context() as patch:  # which tensors are read: a decode-only VAE reads no encoder's
        patch.setattr(TensorFiles, "load", lambda _, ref, *c: read.append(ref.name) or load_file(ref.file)[ref.name])
        decode_only = load_vae(folder, encoder=False)
    assert read and not [name for name in read if name.startswith(("encoder.", "quant_conv."))]
    assert decode_only.encoder is None and torch.equal(decode_only.decode(z), expected)
    with pytest.raises(ConfigError, match="encoder=False"):
        decode_only.encode(torch.zeros(1, 3, 1, 16, 16))
    half = load_vae(folder, dtype=torch.bfloat16)
    assert half.decoder.conv_in.weight.dtype == torch.bfloat16
    # bf16 is diffusers' bf16 computation, bit for bit on the CPU (both are 0.034 from the fp32 decode here).
    ref_half = AutoencoderKLWan.from_pretrained(folder, torch_dtype=torch.bfloat16)
    with torch.no_grad():
        expected_half = ref_half.decode(z.to(torch.bfloat16)).sample
    for frame_by_frame in (False, True):
        assert torch.equal(half.decode(z, frame_by_frame=frame_by_frame), expected_half), frame_by_frame


def test_missing_and_unexpected_tensors_listed_together(saved):
    def edit(state):
        del state["decoder.conv_in.weight"]
        state["decoder.extra.weight"] = torch.zeros(2)

    rewrite_weights(saved, edit)
    with pytest.raises(CheckpointError) as info:
        load_vae(saved)
    assert "missing tensor decoder.conv_in.weight" in str(info.value)
    assert "unexpected tensor decoder.extra.weight" in str(info.value)
    with pytest.raises(CheckpointError, match="missing tensor decoder.conv_in.weight"):
        load_vae(saved, encoder=False)


def test_wrong_shape(saved):
    rewrite_weights(saved, lambda state: state.update({"quant_conv.bias": torch.zeros(5)}))
    with pytest.raises(CheckpointError, match=r"wrong shape for quant_conv.bias: \[5\], expected \[8\]"):
        load_vae(saved)


def test_integer_weights_are_refused_before_any_is_read(saved, monkeypatch):
    # An int8 export without its scales has the float weights' names and shapes: cast to floats it made noise.
    def edit(state):
        state["decoder.conv_in.weight"] = (state["decoder.conv_in.weight"] * 100).round().to(torch.int32)
        state["decoder.conv_in.bias"] = state["decoder.conv_in.bias"] > 0

    rewrite_weights(saved, edit)
    monkeypatch.setattr(TensorFiles, "load", lambda *_: pytest.fail("read a tensor of a refused VAE"))
    with pytest.raises(CheckpointError) as info:
        load_vae(saved)
    assert "2 VAE tensors not stored as floats" in str(info.value)
    assert "decoder.conv_in.bias (BOOL), decoder.conv_in.weight (I32)" in str(info.value)


def test_truncated_file(saved):
    data = (saved / WEIGHTS).read_bytes()
    (saved / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_vae(saved)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("z_dim", 0, "z_dim=0"),
        ("dim_mult", [1, 2], "temperal_downsample"),
        ("latents_std", [1.0, 2.0], "latents_std"),
        ("is_residual", True, "Wan2.2"),
        ("_class_name", "AutoencoderKL", "_class_name"),
    ],
)
def test_bad_config_value(saved, key, value, message):
    config = json.loads((saved / "config.json").read_text())
    config[key] = value
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        load_vae(saved)


def test_a_config_is_hashable_and_names_a_bad_list_as_written(saved):
    config = WanVAEConfig.from_json(saved / "config.json")
    assert config.dim_mult == (1, 2, 2, 2) and config == WanVAEConfig(**TINY)
    assert hash(config) == hash(WanVAEConfig(**TINY))
    assert {WanVAEConfig(): 1}[WanVAEConfig(dim_mult=[1, 2, 4, 4])] == 1  # a cache key, lists given or not
    with pytest.raises(ConfigError, match=r"latents_std=\[1.0, 2.0\] must be a list of z_dim=4 numbers"):
        WanVAEConfig.from_dict({**TINY, "latents_std": [1.0, 2.0]})


def test_an_unknown_config_key_is_named_in_a_warning(saved, recwarn):
    load_vae(saved)  # diffusers' own config.json: every key known, nothing said
    assert not [w for w in recwarn if "VAE config" in str(w.message)]
    config = json.loads((saved / "config.json").read_text())
    # diffusers' key is misspelt ("temperal"): spelt right, it is not read, and the default [False, True, True] is used
    config["temporal_downsample"] = [True, True, False]
    del config["temperal_downsample"]
    (saved / "config.json").write_text(json.dumps({**config, "_private": 1}))
    said = r"config.json: ignoring unknown VAE config keys \['temporal_downsample'\]$"
    with pytest.warns(UserWarning, match=said):
        assert WanVAEConfig.from_json(saved / "config.json").temperal_downsample == (False, True, True)


def test_latent_shapes():
    config = WanVAEConfig()
    assert config.latent_shape(1280, 736, 121) == (1, 16, 31, 92, 160)
    assert [config.latent_frames(f) for f in (1, 5, 121)] == [1, 2, 31]
    assert [config.video_frames(n) for n in (1, 2, 31)] == [1, 5, 121]
    assert WanVAEConfig(**TINY).latent_shape(64, 32, 9) == (1, 4, 3, 4, 8)
    # the first frame alone, then one latent frame per temporal_factor frames, for any factor
    halved = WanVAEConfig(**{**TINY, "temperal_downsample": [False, True, False]})
    assert halved.temporal_factor == 2 and [halved.latent_frames(f) for f in (1, 2, 3, 9)] == [1, 1, 2, 5]
    assert [halved.video_frames(n) for n in (1, 2, 5)] == [1, 3, 9]
    assert [config.latent_frames(f) for f in (2, 4, 8)] == [1, 1, 2]  # frame counts that are not 4k+1 too


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="not a folder"):
        load_vae(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json"):
        load_vae(tmp_path)
    (saved / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match="no diffusion_pytorch_model.safetensors .*index.json"):
        load_vae(saved)
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_vae(saved)


# -- the real architecture --


@pytest.mark.slow
def test_full_wan21_config_parity(tmp_path):
    # ~25 s on an idle 2-core CPU, ~60 s under load; 64x64x5 pixels, about 1.1 GB peak RSS.
    ref, folder = make_reference(tmp_path, **WAN21)
    vae = load_vae(folder)
    video = torch.rand(1, 3, 5, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = ref.encode(video).latent_dist
    posterior = vae.encode(video)
    assert_close(posterior.mean, expected.mean)
    z = expected.mean
    with torch.no_grad():
        decoded = ref.decode(z).sample
    # 4 frames at once is the reference's computation: bit for bit in fp32 (docs/vae.md), not only close.
    assert torch.equal(vae.decode(z, frame_by_frame=False), decoded)
    # Frame by frame, CPU convolutions over 1 frame instead of 4 round differently: measured 1.2e-5 std.
    assert_close(vae.decode(z), decoded, rel=1e-4)
    assert_close(vae.decode(z, bands=2), decoded, rel=1e-4)


@pytest.mark.slow
def test_full_wan21_bands_are_exact():
    # The real decoder's halo (6 convs per level, 3 upsamplers): equal in float64 over two latent frames,
    # so the banded causal caches carry over too. ~35 s on an idle 2-core CPU; 160x48 pixels, 5 frames.
    torch.manual_seed(0)
    vae = WanVAE(WanVAEConfig()).eval().to(torch.float64)
    vae.drop_encoder()
    z = torch.randn(1, 16, 2, 20, 6, dtype=torch.float64)
    whole = vae.decode(z, frame_by_frame=False)
    for bands in (2, 3):
        assert float64_equal(vae.decode(z, frame_by_frame=False, bands=bands), whole), bands


def test_half_precision_norm_in_bands_is_the_reference_formula(monkeypatch):
    # The band loop bounds the float32 temporary; per-pixel math, so any band height gives identical bits.
    norm = RMSNorm(8).to(torch.bfloat16)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 3, 7, 5).to(torch.bfloat16)
    expected = F.normalize(x.float(), dim=1).to(torch.bfloat16) * norm.scale * norm.gamma  # diffusers' formula
    monkeypatch.setattr(vae_layers, "FLOAT32_BAND_ELEMENTS", 2 * 8 * 3 * 5 * 2)  # two rows per band
    assert torch.equal(norm(x), expected)


def test_float64_normalizes_in_float64_as_the_reference(tmp_path):
    # diffusers normalizes in float32 only for half precision; float64 (the exactness tests' dtype) stays float64.
    ref, folder = make_reference(tmp_path, **TINY)
    video = torch.rand(1, 3, 5, 16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        expected = ref.double().encode(video).latent_dist.mean
    assert torch.equal(load_vae(folder, dtype=torch.float64).encode(video).mean, expected)


def test_a_posterior_of_extreme_log_variances_and_its_generators_as_diffusers_takes_them():
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from motif_lite.vae import DiagonalGaussian

    # A log-variance far out of range (an fp16 encoder's overflow) is clamped as diffusers clamps it: a finite std.
    params = torch.randn(2, 8, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    params[:, 4:] *= 100
    ours, theirs = DiagonalGaussian(params), DiagonalGaussianDistribution(params)
    assert_close(ours.std, theirs.std)
    assert_close(ours.sample(torch.Generator().manual_seed(3)), theirs.sample(torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="got 3 generators for a batch of 2"):  # not one per sample
        ours.sample([torch.Generator().manual_seed(s) for s in range(3)])
    # Moving it makes a copy: the posterior a run keeps on the CPU stays there.
    moved = ours.to("meta")
    assert moved.mean.device.type == "meta" and ours.mean.device.type == "cpu"
