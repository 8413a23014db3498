"""A whole tiny Motif-Video checkpoint written by diffusers' own pipelines (`save_pretrained`).

`make_tiny_checkpoint(dir)` builds a random diffusers `MotifVideoPipeline` (tiny T5Gemma2 + SigLIP, tiny
`AutoencoderKLWan` with the real 16 latent channels, tiny transformer, FlowMatchEuler scheduler, a guider) and
saves it in the official layout. The returned pipeline is the reference the tests compare against; the I2V
reference shares its components (`image_to_video`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    MotifVideoImage2VideoPipeline,
    MotifVideoPipeline,
)
from diffusers.guiders import AdaptiveProjectedGuidance, ClassifierFreeGuidance
from tiny_text import TINY_TEXT_HIDDEN, TINY_VISION_HIDDEN, make_tiny_text_encoder
from tiny_transformer import make_reference
from transformers import AutoTokenizer, SiglipImageProcessor, T5Gemma2Encoder

# Wan2.1 structure with few channels; z_dim stays 16 because the transformer takes 16 + 16 + 1 channels.
TINY_VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True])


def official_apg(**overrides) -> AdaptiveProjectedGuidance:
    """The model card's APG guider (scale 8, rescale 12, momentum 0.1, original formulation, per-frame norms)."""
    settings = dict(
        guidance_scale=8.0,
        adaptive_projected_guidance_rescale=12.0,
        adaptive_projected_guidance_momentum=0.1,
        use_original_formulation=True,
        adaptive_projected_guidance_norm_dim=[-1, -2, -4],
    )
    return AdaptiveProjectedGuidance(**{**settings, **overrides})


def cfg_guider(scale: float = 4.0) -> ClassifierFreeGuidance:
    return ClassifierFreeGuidance(guidance_scale=scale)


def tiny_vae(seed: int = 0) -> AutoencoderKLWan:
    return random_vae(seed, **TINY_VAE)


def random_vae(seed: int = 0, **config) -> AutoencoderKLWan:
    """A diffusers Wan VAE (`config`: its arguments) with random weights from `seed`."""
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**config).eval()
    with torch.no_grad():  # default init leaves every RMSNorm gain at 1; randomize those too
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)
    return vae


def tiny_components(seed: int = 0, transformer: dict | None = None) -> dict:
    """Text encoder, tokenizer, feature extractor (via tests/tiny_text.py), VAE and transformer, all fp32.

    transformer: overrides of the tiny transformer config (tests/tiny_config.py), e.g. another rope_theta."""
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_text_encoder(tmp, seed=seed)
        text_encoder = T5Gemma2Encoder.from_pretrained(Path(tmp) / "text_encoder").eval()
        tokenizer = AutoTokenizer.from_pretrained(Path(tmp) / "tokenizer")
        feature_extractor = SiglipImageProcessor.from_pretrained(Path(tmp) / "feature_extractor")
    dims = dict(text_embed_dim=TINY_TEXT_HIDDEN, image_embed_dim=TINY_VISION_HIDDEN)
    return dict(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        feature_extractor=feature_extractor,
        vae=tiny_vae(seed),
        transformer=make_reference(seed, **{**dims, **(transformer or {})}),
    )


def make_tiny_checkpoint(
    root: str | Path, guider=None, shift: float = 15.0, scheduler=None, seed: int = 0, transformer: dict | None = None
) -> MotifVideoPipeline:
    """Save a tiny random T2V pipeline under `root` (official layout) and return it (the reference).

    transformer: overrides of the tiny transformer config (e.g. `rope_theta=256.0`)."""
    pipe = MotifVideoPipeline(
        scheduler=scheduler or FlowMatchEulerDiscreteScheduler(shift=shift),
        guider=guider or official_apg(),
        **tiny_components(seed, transformer),
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(root)
    return pipe


def image_to_video(pipe: MotifVideoPipeline, **replace) -> MotifVideoImage2VideoPipeline:
    """The I2V reference pipeline over the same components (optionally replacing some, e.g. the guider)."""
    i2v = MotifVideoImage2VideoPipeline(**{**pipe.components, **replace})
    i2v.set_progress_bar_config(disable=True)
    return i2v


if __name__ == "__main__":  # docs/usage.md, "Trying it without the weights"
    import argparse

    parser = argparse.ArgumentParser(
        description="Write a tiny random-weight Motif-Video checkpoint in the official layout (about 3.5 MB), made "
        "by diffusers, to try every motif-lite command on the CPU in seconds. Its videos are noise."
    )
    parser.add_argument("folder", help="where to write it (a new or empty folder)")
    folder = Path(parser.parse_args().folder)
    if folder.exists() and any(folder.iterdir()):
        parser.error(f"{folder} is not empty: give a new folder")
    make_tiny_checkpoint(folder)
    example = f"motif-lite run -m {folder} -p 'a red fox' -W 64 -H 64 --video-frames 9 --steps 4 -o fox.mp4"
    print(f"wrote {folder}; try: {example}")
