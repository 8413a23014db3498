"""The official T5Gemma2 text encoder architecture (Motif-Video's `text_encoder/config.json`), for random-weight
measurements and size checks without the real weights."""

from __future__ import annotations

from transformers import T5Gemma2EncoderConfig

OFFICIAL_TEXT = dict(
    vocab_size=262144,
    hidden_size=2560,
    intermediate_size=10240,
    num_hidden_layers=34,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    query_pre_attn_scalar=256,
    rms_norm_eps=1e-6,
    sliding_window=1024,
    # Sliding x 5 then full, repeating: full attention at layers 5, 11, 17, 23, 29.
    layer_types=["full_attention" if i % 6 == 5 else "sliding_attention" for i in range(34)],
    max_position_embeddings=131072,
    rope_parameters={
        "full_attention": {"rope_type": "linear", "rope_theta": 1_000_000.0, "factor": 8.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
    },
    pad_token_id=0,
    eos_token_id=1,
    bos_token_id=2,
    dropout_rate=0.0,
)
OFFICIAL_VISION = dict(
    model_type="siglip_vision_model",
    hidden_size=1152,
    intermediate_size=4304,
    num_hidden_layers=27,
    num_attention_heads=16,
    image_size=896,
    patch_size=14,
    layer_norm_eps=1e-6,
    vision_use_head=False,
)


def official_text_config(**text_overrides) -> T5Gemma2EncoderConfig:
    """The official encoder config; `text_overrides` change the text stack (e.g. fewer layers or a small vocab)."""
    text = {**OFFICIAL_TEXT, **text_overrides}
    if "num_hidden_layers" in text_overrides and "layer_types" not in text_overrides:
        text["layer_types"] = OFFICIAL_TEXT["layer_types"][: text["num_hidden_layers"]]
    return T5Gemma2EncoderConfig(text_config=text, vision_config=dict(OFFICIAL_VISION), mm_tokens_per_image=256)
