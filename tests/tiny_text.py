"""A tiny random T5Gemma2 text encoder checkpoint in the official Motif-Video layout.

`make_tiny_text_encoder(dir)` writes `text_encoder/`, `tokenizer/` and `feature_extractor/` under `dir`, the
same folders (and file names) as `Motif-Technologies/Motif-Video-2B`, so both motif_lite and the diffusers
pipelines load them through their normal loaders. Shapes are tiny but keep the structure that matters for
parity: sliding and full attention layers (with a sliding window shorter than the test prompts), grouped KV
heads, a SigLIP vision tower, a right-padding Gemma tokenizer with pad=0, eos=1, bos=2.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from transformers import GemmaTokenizer, SiglipImageProcessor, T5Gemma2Encoder, T5Gemma2EncoderConfig

TINY_TEXT_HIDDEN = 32
TINY_VISION_HIDDEN = 24
TINY_IMAGE_SIZE = 28  # SigLIP input side; patch 7 -> 16 image tokens
TINY_IMAGE_TOKENS = (TINY_IMAGE_SIZE // 7) ** 2


def _tiny_vocab() -> dict[str, int]:
    # Character-level BPE (no merges) with byte fallback: any prompt tokenizes, one token per character.
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "▁"]
    tokens += list(string.ascii_letters + string.digits + string.punctuation)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    return {tok: i for i, tok in enumerate(tokens)}


def _tiny_config(vocab_size: int) -> T5Gemma2EncoderConfig:
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": TINY_TEXT_HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "query_pre_attn_scalar": 16,
        "rms_norm_eps": 1e-6,
        # Shorter than the test prompts, so the two-sided sliding window really cuts keys off.
        "sliding_window": 6,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "max_position_embeddings": 1024,
        # Set by the parent T5Gemma2Config in the official export; the encoder layers read it.
        "dropout_rate": 0.0,
    }
    vision_config = {
        "model_type": "siglip_vision_model",
        "hidden_size": TINY_VISION_HIDDEN,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": TINY_IMAGE_SIZE,
        "patch_size": 7,
        "layer_norm_eps": 1e-6,
        "vision_use_head": False,
    }
    return T5Gemma2EncoderConfig(text_config=text_config, vision_config=vision_config, mm_tokens_per_image=4)


def _save_tokenizer(path: Path) -> None:
    tokenizer = GemmaTokenizer(
        vocab=_tiny_vocab(),
        merges=[],
        add_bos_token=True,  # Gemma: <bos> first, no <eos>
        add_eos_token=False,
        padding_side="right",
        model_max_length=int(1e30),
    )
    # The official tokenizer.json has a fixed 512 padding baked in; mirror it so callers must override it.
    tokenizer.backend_tokenizer.enable_padding(length=512, pad_id=0, pad_token="<pad>")
    tokenizer.save_pretrained(path)


def _save_feature_extractor(path: Path) -> None:
    processor = SiglipImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
        resample=3,
        do_rescale=False,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_convert_rgb=True,
    )
    processor.save_pretrained(path)


def make_tiny_text_encoder(dir: str | Path, seed: int = 0) -> None:
    """Write a tiny random `text_encoder/`, `tokenizer/` and `feature_extractor/` under `dir` (fp32)."""
    root = Path(dir)
    vocab = _tiny_vocab()
    torch.manual_seed(seed)
    model = T5Gemma2Encoder(_tiny_config(len(vocab))).eval()
    # Default init leaves norms at zero (Gemma norms scale by 1 + w); randomize everything so a wrong
    # norm, position or mask cannot hide behind a degenerate weight.
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.3)
    model.save_pretrained(root / "text_encoder")
    _save_tokenizer(root / "tokenizer")
    _save_feature_extractor(root / "feature_extractor")
