"""`load_pipeline(attention="int8")` end to end on the tiny checkpoint: exact frames with one warning on the CPU,
and, with the 8-bit kernel running in Triton's interpreter behind the `Ops` seams, frames close to exact."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

pytest.importorskip("diffusers")
from kernels_interp import KernelCall, kernel_runner  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402
from motif_lite.io.settings_file import read_settings  # noqa: E402
from motif_lite.model.ops import TORCH_OPS  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402

SIZE = dict(width=48, height=32, frames=9, steps=2)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def kernel() -> Iterator[KernelCall]:
    yield from kernel_runner()


def generate(pipe, folder: Path) -> tuple[np.ndarray, object]:
    folder.mkdir()
    request = GenerationRequest("a red fox runs through snow", "blurry, static", seed=0, output=folder / "f_%03d.png")
    result = pipe.generate(dataclasses.replace(request, **SIZE))
    frames = [np.asarray(PIL.Image.open(f).convert("RGB")) for f in sorted(folder.glob("f_*.png"))]
    return np.stack(frames).astype(np.int64), result


@pytest.fixture(scope="module")
def exact_frames(checkpoint, tmp_path_factory) -> np.ndarray:
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    frames, result = generate(pipe, tmp_path_factory.mktemp("exact") / "out")
    assert result.attention == "exact" and frames.std() > 10
    return frames


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_cpu_gives_the_exact_video_with_one_warning(checkpoint, exact_frames, tmp_path) -> None:
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", attention="int8")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        frames, result = generate(pipe, tmp_path / "out")
    messages = [str(w.message) for w in record if "int8 attention" in str(w.message)]
    assert len(messages) == 1, messages
    assert result.attention == "exact (int8 fell back: the inputs are not CUDA tensors)"
    assert result.kernel_fallbacks == {}  # not a kernel "with the same math": exact attention is another
    np.testing.assert_array_equal(frames, exact_frames)
    # The file stores the attention that ran: its settings are made after sampling, when the fallback is known.
    assert read_settings(tmp_path / "out" / "f_000.png").values["model"]["attention"] == "exact"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_a_resumed_runs_notes_do_not_depend_on_the_last_runs_fallback(checkpoint, tmp_path) -> None:
    # The notes on a resumed run compared the stopped run's attention with the one the pipeline's last run fell back
    # to (its kernel record began after the notes): one saved run, resumed by a fresh pipeline and by one that had
    # run before, got different notes. Each now compares this run's.
    from motif_lite.io.latents import read_latents

    def stop_after_one_step(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    used = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", attention="int8")
    request = GenerationRequest("a red fox runs through snow", seed=0, output=tmp_path / "fox.mp4", **SIZE)
    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("ignore")
        used.generate(request, on_progress=stop_after_one_step, latents_file=tmp_path / "fox.safetensors")
    saved = read_latents(tmp_path / "fox.safetensors")
    fresh = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", attention="int8")
    notes = []
    for pipe, name in ((fresh, "a.safetensors"), (used, "b.safetensors")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = pipe.generate(GenerationRequest(**saved.request), resume=saved, latents_file=tmp_path / name)
        notes.append([note for note in result.notes if "resumed" in note])
    assert notes[0] == notes[1] and len(notes[0]) == 1


def test_int8_kernel_frames_stay_close_to_exact(checkpoint, exact_frames, kernel, tmp_path) -> None:
    """The 8-bit kernel (FP8 P·V, as on sm_89+) behind every attention seam of the tiny model, through the whole
    sampling loop and the VAE: the video changes (the kernel ran) but stays within a few 8-bit levels."""
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")

    def int8_attention(q, k, v, mask):
        return kernel("attention_int8.int8_attention", q, k, v, mask, pv="fp8")

    pipe.transformer.ops = dataclasses.replace(TORCH_OPS, attention=int8_attention, decoder_attention=int8_attention)
    frames, _ = generate(pipe, tmp_path / "out")
    diff = frames - exact_frames
    psnr = 10 * np.log10(255**2 / (diff.astype(np.float64) ** 2).mean())
    assert np.abs(diff).max() > 0, "no difference: the 8-bit kernel did not run"
    assert psnr > 38 and np.abs(diff).mean() < 2.0, (psnr, np.abs(diff).mean(), np.abs(diff).max())
