"""The Wan2.1 video VAE (encoder for image-to-video, streamed and tiled decoder)."""

from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.loader import load_vae
from motif_lite.vae.model import WanVAE
from motif_lite.vae.posterior import DiagonalGaussian
from motif_lite.vae.tiling import VAETile

__all__ = ["DiagonalGaussian", "VAETile", "WanVAE", "WanVAEConfig", "load_vae"]
