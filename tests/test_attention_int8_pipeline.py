"""`load_pipeline(attention="int8")` end to end on the tiny checkpoint: exact frames with one warning on the CPU,
and, with the 8-bit kernel running in Triton's interpreter behind the `Ops` seams, the frames of its float64
emulation behind the same seams."""

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
from motif_lite.kernels.int8_scheme import emulate_int8_attention  # noqa: E402
from motif_lite.model.ops import TORCH_OPS  # noqa: E402
from motif_lite.request import GenerationRequest  # noqa: E402

SIZE = dict(width=48, height=32, frames=9, steps=2)
# 8-bit levels the kernel's frames may be from its emulation's: float32 against float64 rounding (2 measured in the
# interpreter on the CPUs of earlier sessions, 3 on an AMD EPYC, whose BLAS rounds the model's float32 products
# otherwise; the interpreter's exp2 is the emulation's; a compiled kernel's hardware exp2 moves a few FP8 roundings
# of P, tests/test_kernels_int8.py's EMULATION_FP8). A softmax scale 5 % off or an output 3 % low: 28 and 20
# levels.
LEVELS = 4 if torch.cuda.is_available() else 3


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


def generate_with(checkpoint: Path, folder: Path, attention) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Frames of a guided run with batched guidance (both predictions in one batch-2 call), the prompt and the
    negative prompt of different lengths, so that the joint attention gets a key mask (the shorter one's padding),
    with `attention` behind every attention seam; and the key masks it was given."""
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", batch_guidance=True)
    masks = []

    def seen(q, k, v, mask):
        masks.append(mask)
        return attention(q, k, v, mask)

    pipe.transformer.ops = dataclasses.replace(TORCH_OPS, attention=seen, decoder_attention=seen)
    frames, _ = generate(pipe, folder)
    return frames, masks


def emulated(scale: float = 1.0):
    """The 8-bit scheme's float64 emulation (FP8 P·V) as an attention function; `scale`: a mutant's softmax scale."""

    def attention(q, k, v, mask):
        return emulate_int8_attention(q * scale, k, v, mask, pv="fp8").to(q.dtype)

    return attention


@pytest.fixture(scope="module")
def emulated_frames(checkpoint, tmp_path_factory) -> np.ndarray:
    frames, masks = generate_with(checkpoint, tmp_path_factory.mktemp("emulated") / "out", emulated())
    assert any(mask is not None and not bool(mask.all()) for mask in masks), "no key mask reached attention"
    return frames


def test_int8_kernel_frames_equal_its_emulations(checkpoint, exact_frames, emulated_frames, kernel, tmp_path):
    """The 8-bit kernel (FP8 P·V, as on sm_89+) behind every attention seam of the tiny model, through the whole
    sampling loop (batched guidance: a key mask reaches it) and the VAE, gives the frames of the same scheme's
    float64 emulation behind the same seams, within a level or two (float32 against float64 rounding). Before,
    the kernel was held to PSNR > 38 against exact frames, which a kernel with its softmax scale 5 % off (44.3)
    or its output 3 % low (43.6) passed better than the real one (42.2)."""

    def int8_attention(q, k, v, mask):
        return kernel("attention_int8.int8_attention", q, k, v, mask, pv="fp8")

    frames, _ = generate_with(checkpoint, tmp_path / "out", int8_attention)
    assert np.abs(emulated_frames - exact_frames).max() > 0, "the scheme changed nothing: the comparison is blind"
    gap = np.abs(frames - emulated_frames)
    assert gap.max() <= LEVELS, (gap.max(), gap.mean())


def test_the_emulation_bound_catches_a_softmax_scale_5_percent_off(checkpoint, emulated_frames, tmp_path):
    # Negative control for the bound above: the same scheme with its softmax scale 5 % off is many levels away.
    frames, _ = generate_with(checkpoint, tmp_path / "out", emulated(scale=1.05))
    assert np.abs(frames - emulated_frames).max() > 4 * LEVELS
