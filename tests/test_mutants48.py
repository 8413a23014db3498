"""Tests for the survivors of the forty-eighth mutation pass (docs/testing.md): each fails with its mutant."""

from __future__ import annotations

import pytest
import torch

from motif_lite.vae.bands import LevelShape, crop_rows, largest_band_shares, plan_bands

# The Wan2.1 decoder's up levels: 3 residual blocks (6 convs) each, the first three upsampling.
WAN21_LEVELS = [LevelShape(6, True), LevelShape(6, True), LevelShape(6, True), LevelShape(6, False)]


def _rows(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def test_the_band_share_is_that_of_the_largest_band_a_middle_one():
    # Mutant: the share of the first band taken for all; a middle band has a halo on both sides and is larger.
    latent = 160
    bands = plan_bands(WAN21_LEVELS, 1, latent, 4)
    shares = largest_band_shares(WAN21_LEVELS, latent, bands)
    heights = [latent, 2 * latent, 4 * latent, 8 * latent]
    for level, height in enumerate(heights):
        sizes = [_rows(band.level_rows[level]) for band in bands]
        assert sizes[1] > sizes[0]  # the first band's halo is on one side only
        assert shares[level] == max(sizes) / height


def test_rows_outside_the_tensor_are_refused_in_words():
    # Mutant: the check of the wanted end dropped (torch's narrow then fails with its own RuntimeError).
    x = torch.arange(8.0).view(1, 8)
    assert crop_rows(x, (4, 12), (6, 12), dim=-1).tolist() == [[2.0, 3.0, 4.0, 5.0, 6.0, 7.0]]
    with pytest.raises(ValueError, match=r"rows \(6, 13\) are not inside \(4, 12\)"):
        crop_rows(x, (4, 12), (6, 13), dim=-1)
    with pytest.raises(ValueError, match="not inside"):
        crop_rows(x, (4, 12), (7, 6), dim=-1)


def _tiny_vae():
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.vae.model import WanVAE

    shape = dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True])
    return WanVAE(WanVAEConfig(**shape))


def test_a_video_whose_width_is_no_multiple_of_8_is_refused():
    # Mutant: the width's check dropped (the encoder then makes latents of a width rounded down, unsaid).
    from motif_lite.errors import ConfigError

    vae = _tiny_vae()
    with pytest.raises(ConfigError, match="video size 16x20 must be a multiple of 8"):
        vae.encode(torch.zeros(1, 3, 1, 16, 20))
    with pytest.raises(ConfigError, match="video size 20x16 must be a multiple of 8"):
        vae.encode(torch.zeros(1, 3, 1, 20, 16))


def test_latents_of_no_frames_are_refused():
    # Mutant: the check of T >= 1 dropped (the output of -3 frames then fails inside torch).
    from motif_lite.errors import ConfigError

    with pytest.raises(ConfigError, match=r"latents must be \[B, 4, T>=1, h, w\], got \[1, 4, 0, 2, 2\]"):
        _tiny_vae().decode(torch.zeros(1, 4, 0, 2, 2))


def test_more_bytes_than_a_gguf_tensor_needs_are_refused_naming_it():
    # Mutant: only too few bytes refused (too many then fail inside torch's reshape, naming no tensor).
    from gguf import GGMLQuantizationType as Q

    from motif_lite.errors import CheckpointError
    from motif_lite.weights.dequant import dequantize

    for qtype, block_bytes in ((Q.Q8_0, 34), (Q.F16, 64)):
        packed = torch.zeros(2 * block_bytes, dtype=torch.uint8)  # two rows' bytes for one row of 32
        said = rf"^lin\.weight: {2 * block_bytes} bytes of data, .* needs {block_bytes} bytes"
        with pytest.raises(CheckpointError, match=said):
            dequantize(packed, qtype, (1, 32), name="lin.weight")


def test_a_row_no_block_fits_falls_back_to_the_float_type_not_to_a_32_block_type():
    # Mutant: the 32-block fallback taken without checking that the row holds whole 32-blocks (a row of 4304, as
    # SigLIP's, would then be planned in Q5_0, which cannot store it).
    from gguf import GGMLQuantizationType as Q

    from motif_lite.quantize.recipes import fit_row

    assert fit_row(Q.Q4_K, 4304) == Q.F16
    assert fit_row(Q.Q5_K, 4304, Q.BF16) == Q.BF16
    assert fit_row(Q.Q4_K, 4320) == Q.Q5_0  # 135 blocks of 32: the fallback itself fits


def test_q2_k_tries_every_candidate_grid_of_llama_cpp():
    # Mutant: Q2_K's search stops one candidate grid early (15 after the first, as llama.cpp, not 14). The sub-blocks
    # whose fit the last grid decides must decode to llama.cpp's values (elsewhere up to 2 % may tie either way).
    import llama_kquants
    from gguf import GGMLQuantizationType as Q
    from gguf import quants as gguf_quants
    from round_trips import data

    from motif_lite.quantize import quantize_tensor, search

    x = data("gauss")[:8]
    sub = torch.from_numpy(x).reshape(-1, 16)
    fits = [search.affine_scale_min(sub, sub.abs(), 3, -0.5, 0.1, n, True) for n in (14, 15)]
    decided = ((fits[0][0] != fits[1][0]) | (fits[0][1] != fits[1][1])).flatten()
    assert decided.any()  # the last grid wins somewhere here (5 of 2048 sub-blocks)
    ours = gguf_quants.dequantize(quantize_tensor(x, Q.Q2_K), Q.Q2_K).reshape(-1, 16)
    reference = llama_kquants.decoded_reference(x, Q.Q2_K).reshape(-1, 16)
    assert (ours[decided.numpy()] == reference[decided.numpy()]).all()


def test_q3_k_scales_take_llama_cpps_five_passes():
    # Mutant: 4 passes of the level moves instead of llama.cpp's 5. Where the fifth pass still moves a level (14 of
    # these 20,000 sub-blocks), it brings the scale to llama.cpp's in some (6; the others differ from both, as the
    # moves before tied within float32 rounding), where the fourth pass's scale is llama.cpp's in none.
    import llama_kquants

    from motif_lite.quantize import search

    x = torch.rand(20000, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    four, default = search.q3_scale(x, 4, n_iter=4), search.q3_scale(x)
    moved = (four != default).flatten().nonzero().flatten().tolist()
    assert moved  # the fifth pass moves levels in a few sub-blocks of uniform values
    reference = [llama_kquants.q3_scale(x[row].numpy()) for row in moved]
    after_five = sum(default[row].item() == ref for row, ref in zip(moved, reference, strict=True))
    after_four = sum(four[row].item() == ref for row, ref in zip(moved, reference, strict=True))
    assert after_five > after_four


def test_a_header_of_negative_dimensions_is_refused_as_malformed(tmp_path):
    # Mutant: the header's numbers taken without their sign checked: [-2, -2] holds 4 values by its product, so the
    # byte count and ranges agree and the tensor was listed with a shape no tensor has.
    import json
    import struct

    from motif_lite.errors import CheckpointError
    from motif_lite.weights.safetensors_header import read_header

    header = json.dumps({"a": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}).encode()
    path = tmp_path / "negative.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    with pytest.raises(CheckpointError, match="malformed header entry for tensor 'a'"):
        read_header(path)


# Two sub-blocks of heavy-tailed values (a ratio of normals) where llama.cpp's last candidate scale, -(32 + 0.9) / max,
# fits best by far: 6.02 against 6.22, and -2.48 against -2.56, for a search without it.
HEAVY_TAILED_SUB_BLOCKS = [
    [-0.412553995847702, -1.7392691373825073, -0.38179782032966614, 0.26545971632003784, -192.76409912109375,
     -1.250383973121643, -5.473972797393799, 0.15629297494888306, -0.45206236839294434, -1.7396876811981201,
     -0.7543134689331055, -0.21674880385398865, 1.6076020002365112, -2.9296791553497314, -0.6916741132736206,
     0.9838855266571045],
    [-1.2538186311721802, -1.0159047842025757, 0.33977627754211426, -0.29773592948913574, -2.4260711669921875,
     -3.1044111251831055, 0.6256002187728882, -1.2051447629928589, -0.029053185135126114, -0.5739620327949524,
     0.9653298854827881, 1.1269148588180542, 0.5358673930168152, -1.3197599649429321, 79.27674102783203,
     0.5301536917686462],
]  # fmt: skip


def test_the_symmetric_scale_search_tries_llama_cpps_last_candidate():
    # Mutant: the candidates run from -(nmax - 0.9) to -(nmax + 0.8), one short of llama.cpp's 19.
    import llama_kquants

    from motif_lite.quantize import search

    x = torch.tensor(HEAVY_TAILED_SUB_BLOCKS, dtype=torch.float32)
    scales = search.symmetric_scale(x, 32).flatten().tolist()
    assert scales == [llama_kquants.q6_scale(row.numpy()) for row in x]
