"""KeptEncodings: what a pipeline keeps between videos, each belonging to the encoders that made it."""

import gc
import weakref

import torch

from motif_lite.pipeline.conditioning import TEXTS_KEPT, FirstFrameKey, KeptEncodings, KeptImage
from motif_lite.vae.posterior import DiagonalGaussian


class Encoder:  # stands in for a text encoder or a VAE: only its identity matters here
    pass


def encoding(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((1, 2, 3), float(n)), torch.ones(1, 2, dtype=torch.bool)


def first_frame(key: FirstFrameKey) -> KeptImage:
    posterior = DiagonalGaussian(torch.zeros(1, 32, 1, 2, 2))
    return KeptImage(key, (40, 30), torch.ones(1, 4, 8), posterior)


def test_texts_are_kept_least_recently_used_first_out():
    kept, encoder = KeptEncodings(), Encoder()
    texts = [f"text {n}" for n in range(TEXTS_KEPT)]
    for n, text in enumerate(texts):
        kept.keep_text(text, encoder, *encoding(n), None)
    assert torch.equal(kept.text(texts[0], encoder).embeds, encoding(0)[0])  # used again: now the most recent
    kept.keep_text("one more", encoder, *encoding(TEXTS_KEPT), None)
    assert list(kept.texts) == [*texts[2:], texts[0], "one more"]  # texts[1] went first
    assert kept.has_text(texts[0], encoder) and not kept.has_text(texts[1], encoder)


def test_another_text_encoder_finds_nothing_and_the_kept_texts_do_not_hold_it():
    kept, first, other = KeptEncodings(), Encoder(), Encoder()
    kept.keep_text("a fox", first, *encoding(1), None)
    assert kept.text("a fox", other) is None and list(kept.texts) == []
    kept.keep_text("a fox", other, *encoding(2), None)
    assert torch.equal(kept.text("a fox", other).embeds, encoding(2)[0])  # the new encoder's own are kept
    let_go = weakref.ref(other)
    del other
    gc.collect()
    assert let_go() is None


def test_a_first_frame_is_found_for_its_image_size_and_encoders_only():
    kept, text_encoder, vae = KeptEncodings(), Encoder(), Encoder()
    key = ("sha", "image", 48, 32)
    kept.keep_image(first_frame(key), text_encoder, vae)
    assert kept.image(key, text_encoder, vae).size == (40, 30)
    assert kept.image(("sha", "image", 64, 32), text_encoder, vae) is None  # another size
    assert kept.image(("other", "image", 48, 32), text_encoder, vae) is None  # another file, or the file edited
    assert kept.image(key, Encoder(), vae) is None and kept.image(key, text_encoder, Encoder()) is None
    kept.clear()
    assert kept.image(key, text_encoder, vae) is None


def test_a_first_frame_whose_file_could_not_be_read_is_not_kept():
    kept, text_encoder, vae = KeptEncodings(), Encoder(), Encoder()
    kept.keep_image(first_frame((None, "image", 48, 32)), text_encoder, vae)
    assert kept.image((None, "image", 48, 32), text_encoder, vae) is None


def test_a_kept_first_frame_does_not_hold_its_encoders():
    # A VAE or text encoder the user let go of (another checkpoint loaded) must not stay in memory for the frame.
    kept, text_encoder, vae = KeptEncodings(), Encoder(), Encoder()
    kept.keep_image(first_frame(("sha", "image", 48, 32)), text_encoder, vae)
    let_go = weakref.ref(text_encoder), weakref.ref(vae)
    del text_encoder, vae
    gc.collect()
    assert let_go[0]() is None and let_go[1]() is None
