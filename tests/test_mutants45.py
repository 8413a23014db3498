"""Tests written by the forty-fifth mutation pass (docs/testing.md): each fails with a mutant the suite let through."""

from __future__ import annotations

import base64
import io
import sqlite3

import PIL.Image
import pytest
import torch

from motif_lite.errors import MotifLiteError
from motif_lite.server.job_record import new_job_id
from motif_lite.server.jobs import JobStore
from motif_lite.server.loras import lora_files
from motif_lite.server.schema import MAX_STRENGTH, ApiError, api_frames, check_image, parse_create, parse_loras

SETTINGS = {"prompt": "a cat", "width": 64, "height": 64, "frames": 5, "fps": 24}


def _queued(store: JobStore, count: int) -> list[str]:
    ids = [new_job_id() for _ in range(count)]
    for job_id in ids:
        assert store.add(job_id, "m", SETTINGS, False, max_active=10) is not None
    return ids


def _edited(tmp_path, column: str, value: object) -> None:
    """A data folder with one job whose `column` was set to `value` by hand."""
    store = JobStore(tmp_path / "data")
    (job_id,) = _queued(store, 1)
    store.close()
    with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as db:
        db.execute(f"UPDATE jobs SET {column} = ? WHERE id = ?", (value, job_id))
    db.close()


def test_a_job_created_at_the_epoch_is_readable(tmp_path):
    _edited(tmp_path, "created_at", 0)
    JobStore(tmp_path / "data").close()


def test_a_lora_of_three_values_is_a_damaged_row(tmp_path):
    _edited(tmp_path, "loras", '[["style.safetensors", 1.0, 2.0]]')
    with pytest.raises(MotifLiteError, match="loras is not a list"):
        JobStore(tmp_path / "data")


def test_a_lora_strength_of_exactly_the_limit_is_taken():
    pairs = [{"name": "a.safetensors", "strength": MAX_STRENGTH}, {"name": "b.safetensors", "strength": -MAX_STRENGTH}]
    assert parse_loras(pairs, from_form=False) == [("a.safetensors", MAX_STRENGTH), ("b.safetensors", -MAX_STRENGTH)]


def test_a_lora_named_twice_is_the_only_one_the_refusal_names(tmp_path):
    for name in ("a.safetensors", "b.safetensors"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ApiError, match=r"names a file twice: a\.safetensors, which would apply twice \(at 1 \+ 1\)"):
        lora_files(parse_loras(["a.safetensors", "b.safetensors", "a.safetensors"], from_form=False), tmp_path)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    PIL.Image.new("RGB", (width, height), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def test_a_first_frame_of_exactly_the_limits_is_taken():
    data = _png(8, 4)
    check_image(data, max_bytes=len(data), max_pixels=32)  # neither over its byte nor its pixel limit
    with pytest.raises(ApiError) as bytes_over:
        check_image(data, max_bytes=len(data) - 1, max_pixels=32)
    with pytest.raises(ApiError) as pixels_over:
        check_image(data, max_bytes=len(data), max_pixels=31)
    assert bytes_over.value.status == pixels_over.value.status == 413


def test_row_slices_cover_every_row_once_to_the_last():
    from motif_lite.quantize.convert import CHUNK_VALUES, row_slices

    assert row_slices((4, CHUNK_VALUES)) == [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)]  # a row a slice
    assert row_slices((7, CHUNK_VALUES // 3)) == [slice(0, 3), slice(3, 6), slice(6, 7)]


@pytest.mark.parametrize("seconds", [0, -1, "0"])
def test_seconds_of_zero_or_less_are_refused(seconds):
    with pytest.raises(ApiError, match="seconds must be a positive number"):
        api_frames(seconds, 24)


def test_a_first_frame_sent_as_a_file_and_as_a_data_url_is_refused():
    url = "data:image/png;base64," + base64.b64encode(_png(8, 8)).decode()
    with pytest.raises(ApiError, match="input_reference was sent twice"):
        parse_create({"prompt": "a cat", "input_reference": {"image_url": url}}, _png(8, 8), from_form=True)


def test_a_planned_transformer_runs_on_the_plans_device_not_the_cpu_it_loads_on():
    from types import SimpleNamespace

    from motif_lite.pipeline.recipe import TransformerRecipe

    fields = {"sources": None, "dtype": torch.bfloat16, "load_device": "cpu", "kernels": "torch", "attention": "exact",
              "compile": False, "attention_backend": None}  # fmt: skip
    planned = TransformerRecipe(plan=SimpleNamespace(device="cuda:1"), **fields)  # a memory plan's only field read
    assert planned.run_device == torch.device("cuda:1")
    assert TransformerRecipe(plan=None, **fields).run_device == torch.device("cpu")


def test_a_planned_transformers_kernels_are_chosen_for_the_plans_device(checkpoint, monkeypatch):
    """R3: the kernels are chosen for the device the transformer computes on (the plan's GPU), not the CPU a memory
    plan loads it on: on the CPU `auto` gives torch's ops, so a planned GPU run would lose its Triton kernels."""
    from types import SimpleNamespace

    from motif_lite.pipeline import recipe as recipe_module
    from motif_lite.preflight import preflight

    asked = []

    def apply_kernels(model, backend, *, attention, device):
        asked.append(torch.device(device))
        raise InterruptedError  # what follows would place the weights on the GPU

    monkeypatch.setattr(recipe_module, "apply_kernels", apply_kernels)
    sources, _ = preflight(checkpoint, None, "cpu", "torch")
    gpu = torch.device("cuda:1")
    recipe = recipe_module.TransformerRecipe(sources, torch.float32, "cpu", "auto", "exact",
                                             SimpleNamespace(device=gpu), False, None)  # fmt: skip
    with pytest.raises(InterruptedError):
        recipe_module.load_transformer_stage(recipe, [])
    assert asked == [gpu]
