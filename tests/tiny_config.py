"""The tiny transformer config the tests share (diffusers keys; no diffusers import, so any test may use it)."""

TINY = dict(
    in_channels=33,
    out_channels=16,
    num_attention_heads=2,
    attention_head_dim=32,
    num_layers=2,
    num_single_layers=3,
    num_decoder_layers=1,
    text_embed_dim=24,
    image_embed_dim=20,
    rope_theta=10000.0,
    rope_axes_dim=(8, 12, 12),
    enable_text_cross_attention_dual=False,
    enable_text_cross_attention_single=True,
)
