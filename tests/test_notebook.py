"""The Python API as a notebook user meets it (Colab, Kaggle): the stop button in the middle of a step, then the
same pipeline again; progress bars in a cell; a GPU before Ampere told about bf16 where the command line tells it."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

pytest.importorskip("diffusers")

from motif_lite import load_pipeline  # noqa: E402
from motif_lite.checkpoint import locate_sources  # noqa: E402
from motif_lite.io.latents import read_latents  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402

TINY = dict(width=48, height=32, frames=5, steps=3, seed=3)


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")


def tensors_held(tb) -> int:
    """Tensors in the locals of the frames a traceback keeps alive (as a notebook keeps its last one)."""
    held = 0
    while tb is not None:
        held += sum(isinstance(value, torch.Tensor) for value in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    return held


def test_the_stop_button_mid_step_frees_the_steps_tensors_and_the_pipeline_goes_on(pipe, tmp_path):
    forwards = []

    def stop_in_the_second_step(module, args, output):
        forwards.append(1)
        if len(forwards) == 3:  # two forwards per guided step: this is step 2's first block
            raise KeyboardInterrupt

    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    hook = pipe.transformer.transformer_blocks[0].register_forward_hook(stop_in_the_second_step)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            pipe.generate(request)
    finally:
        hook.remove()
    assert tensors_held(stopped.value.__traceback__.tb_next) == 0  # the test's own frame is still running

    saved = read_latents(tmp_path / "fox.latents.safetensors")  # the state after step 1, as the docs say
    assert saved.progress == (1, TINY["steps"])
    resumed = pipe.generate(GenerationRequest(**saved.request), resume=saved)
    assert resumed.resumed_at == 1 and resumed.output.stat().st_size > 0


def test_load_pipeline_says_bf16_is_a_poor_fit_for_a_t4_before_loading(checkpoint, monkeypatch):
    # A notebook never sees the command line's note: the Python API warns, before any weight is read.
    from motif_lite import pipeline
    from motif_lite.errors import MotifLiteError

    monkeypatch.setattr(pipeline, "preflight", lambda *a, **kw: (locate_sources(checkpoint), torch.device("cuda")))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")

    def loading_starts(*args, **kwargs):
        raise MotifLiteError("loading starts here")

    monkeypatch.setattr(pipeline, "check_loras", loading_starts)
    bf16_advice = r"Tesla T4 \(compute capability 7.5\) has no bfloat16 tensor cores.*fp16"
    with pytest.warns(UserWarning, match=bf16_advice), pytest.raises(MotifLiteError, match="loading starts here"):
        load_pipeline(checkpoint, device="cuda")
    with pytest.raises(MotifLiteError, match="loading starts here"), warnings.catch_warnings():
        warnings.simplefilter("error")  # fp16 is the fit: nothing to say
        load_pipeline(checkpoint, dtype="fp16", device="cuda")


def test_progress_bars_show_each_stage_and_serve_the_next_call_after_a_stop(pipe, tmp_path):
    from motif_lite.pipeline import ProgressBars

    shown = io.StringIO()
    bars = ProgressBars(file=shown)
    request = GenerationRequest("a red fox", output=str(tmp_path / "fox.mp4"), **TINY)
    bars("denoise", 0, 3)
    bars("denoise", 2, 3)  # a stop part way (the stop button), then the same bars for the next call
    pipe.generate(request, on_progress=bars, keep_latents=False)
    text = shown.getvalue()
    assert "encode: 100%" in text and "decode: 100%" in text, text
    assert "denoise: 100%|" in text and f"{TINY['steps']}/{TINY['steps']}" in text, text
    assert bars.bar is None  # closed once the decode is done
