"""cli/prepare.sources_at_hand: the files at hand as the flags name them, with or without --text-encoder-gguf and the
quantize recipes, as each caller needs them."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from motif_lite.cli.prepare import sources_at_hand  # noqa: E402
from motif_lite.errors import MotifLiteError  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def flags(checkpoint: Path, **given) -> argparse.Namespace:
    defaults = dict(gguf=None, text_encoder_gguf=None, weights={}, quantize=None, text_encoder_quantize=None)
    return argparse.Namespace(model=str(checkpoint), **{**defaults, **given})


def test_the_sources_at_hand_keep_or_leave_out_the_text_encoder_gguf_and_the_recipes(checkpoint, tmp_path):
    missing = flags(checkpoint, text_encoder_gguf=str(tmp_path / "none.gguf"))
    with pytest.raises(MotifLiteError, match="none.gguf"):
        sources_at_hand(missing)
    assert sources_at_hand(missing, text_encoder_gguf=False).text_encoder_gguf is None  # the checks name it later
    quantized = flags(checkpoint, quantize="Q8_0")
    assert sources_at_hand(quantized).quantize == "Q8_0"
    assert sources_at_hand(quantized, quantized=False).quantize is None
    serve = argparse.Namespace(model=str(checkpoint), gguf=None, text_encoder_gguf=None, weights={})  # no recipes
    assert sources_at_hand(serve).quantize is None
