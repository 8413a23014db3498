"""A pipeline copied after its runs: deep-copied (Gradio's gr.State), pickled (multiprocessing's spawn, Ray,
joblib) or sent the way multiprocessing sends it (its tensors in shared memory). The copy drops the caches a run
leaves (the kept encodings, the preview's fit), which were tied to the original's encoders, and makes the same
videos as the original."""

from __future__ import annotations

import copy
import io
import pickle
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite import GenerationRequest, load_pipeline
from motif_lite.io.image import image_sha256
from motif_lite.pipeline.conditioning import first_frame_key
from motif_lite.vae.preview import fit_latent_rgb

TINY = dict(width=48, height=32, frames=5, steps=3, seed=3, negative_prompt="blurry")


def _pickled(pipe):
    return pickle.loads(pickle.dumps(pipe))


def _sent_as_multiprocessing_sends(pipe):
    buffer = io.BytesIO()
    ForkingPickler(buffer).dump(pipe)
    return pickle.loads(buffer.getvalue())


COPIERS = {"deepcopy": copy.deepcopy, "pickle": _pickled, "multiprocessing": _sent_as_multiprocessing_sends}


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    # In bf16, from the float32 checkpoint: its weights are cast into memory of their own. Loaded in the dtype the
    # file holds, they would be views of the mapped file at its offsets, which the CPU's matmuls round otherwise
    # than the same weights in a copy's freshly allocated (aligned) memory: the same video within float rounding,
    # not the same bits, for any two copies of a model so loaded.
    return load_pipeline(shared_checkpoint[0], dtype="bf16", device="cpu", kernels="torch")


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("image") / "red.png"
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


def _request(folder: Path, name: str, image: Path | None) -> GenerationRequest:
    return GenerationRequest("a fox", image=image, output=folder / f"{name}_%03d.png", **TINY)  # PNGs: exact pixels


def _run(pipe, folder: Path, name: str, image: Path | None) -> tuple[torch.Tensor, list]:
    """The frames and the previews of one video."""
    previews = []
    result = pipe.generate(_request(folder, name, image), on_preview=lambda *a: previews.append(a), preview_every=1)
    return torch.from_numpy(result.read_frames()), previews


@pytest.mark.parametrize("copier", COPIERS)
def test_a_pipeline_copied_after_its_runs_makes_the_same_next_videos(pipe, first_frame, tmp_path, copier):
    # After a run, pickle met the weak references that tie the kept encodings and the preview's fit to the encoders
    # and the VAE (a TypeError); a deep copy kept the original's encodings, tied to the original's encoders.
    _run(pipe, tmp_path, "text", None)
    _run(pipe, tmp_path, "image", first_frame)  # encodings kept for both, and the preview fitted
    kept_texts, fit = dict(pipe.encoded_texts), pipe.preview_projection
    twin = COPIERS[copier](pipe)
    key = first_frame_key(image_sha256(first_frame), _request(tmp_path, "image", first_frame))
    # Nothing kept in the copy, not even for the original's encoders; the original keeps its own.
    assert len(twin.encoded_texts) == 0 and twin.preview_projection is None
    assert twin.kept_encodings.image(key, pipe.text_encoder, pipe.vae) is None
    assert pipe.encoded_texts == kept_texts and pipe.preview_projection is fit
    assert pipe.kept_encodings.image(key, pipe.text_encoder, pipe.vae) is not None
    for name, image in (("text", None), ("image", first_frame)):
        frames, previews = _run(pipe, tmp_path, f"{name}_again", image)  # from the kept encodings
        twin_frames, twin_previews = _run(twin, tmp_path, f"{name}_twin", image)  # encoded again
        assert torch.equal(twin_frames, frames), name
        assert len(twin_previews) == len(previews) == TINY["steps"] - 1
        for (done, steps, preview), (twin_done, twin_steps, twin_preview) in zip(previews, twin_previews, strict=True):
            assert (twin_done, twin_steps) == (done, steps) and np.array_equal(twin_preview, preview), name
    assert torch.equal(twin.preview_projection.weight, fit_latent_rgb(twin.vae).weight)


def _memory_held(root: object) -> int:
    """Bytes of the tensor memory reachable from `root` through its attributes and containers, each once."""
    seen, sizes, stack = set(), {}, [root]
    while stack:
        value = stack.pop()
        if id(value) in seen or isinstance(value, type):
            continue
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            sizes[storage.data_ptr()] = storage.nbytes()
        elif isinstance(value, dict):
            stack += [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple | set | frozenset):
            stack += list(value)
        elif hasattr(value, "__dict__"):
            stack.append(vars(value))
    return sum(sizes.values())


@pytest.mark.parametrize("copier", ["deepcopy", "pickle"])
def test_a_copy_holds_its_text_encoders_weights_once_and_runs_them_as_they_are(pipe, first_frame, tmp_path, copier):
    # The text encoder keeps each weight's memory as loaded, to put back after a visit to the device. A copy copied
    # that apart from the weight itself: the copy held the encoder twice, and its first run put back the weights as
    # they were copied, undoing a change made to them since (its encoding was the changed encoder's, its next one
    # the unchanged one's).
    _run(pipe, tmp_path, "image", first_frame)
    twin = COPIERS[copier](pipe)
    assert _memory_held(twin.text_encoder) == _memory_held(pipe.text_encoder)
    with torch.no_grad():
        for weight in twin.text_encoder.model.parameters():
            weight.mul_(1.5)
    _run(twin, tmp_path, "twin", first_frame)
    # The copy encoded with its changed encoder, which it still holds; the original's kept encoding is its own.
    mine, theirs = twin.encoded_texts["a fox"].embeds, pipe.encoded_texts["a fox"].embeds
    assert not torch.equal(mine, theirs)
    assert torch.equal(mine, twin.text_encoder.encode(["a fox"])[0].to(mine.dtype))
    assert torch.equal(theirs, pipe.text_encoder.encode(["a fox"])[0].to(theirs.dtype))


@pytest.mark.filterwarnings("ignore:motif-lite. Triton int8 attention falls back:RuntimeWarning")  # each run's
def test_a_pipeline_with_int8_attention_where_it_falls_back_is_pickled(shared_checkpoint, tmp_path):
    # Where the 8-bit kernel cannot run (the torch kernels, the CPU), its stand-in was a closure, which pickle cannot
    # write: a pipeline loaded with attention="int8" was a pickling error, before or after its runs.
    pipe = load_pipeline(shared_checkpoint[0], dtype="bf16", device="cpu", kernels="torch", attention="int8")
    with pytest.warns(RuntimeWarning, match="int8 attention falls back"):
        _run(pipe, tmp_path, "text", None)
    twin = _pickled(pipe)
    assert twin.attention_used() == pipe.attention_used() != "int8"  # it fell back, and the copy says so too
    assert torch.equal(_run(twin, tmp_path, "twin", None)[0], _run(pipe, tmp_path, "again", None)[0])
