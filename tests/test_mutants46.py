"""Tests written by the forty-sixth mutation pass (docs/testing.md): each fails with a mutant the suite let through."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite.flag_spelling import ValueNamingParser, first_clause
from motif_lite.model.ops import sdpa_attention
from motif_lite.runtime.attention import AutoAttention, _shape_text
from motif_lite.runtime.attention_choices import RememberedChoices


def _qkv(lk: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(2, 2, n, 16, generator=g) for n in (24, lk, lk))


def _mask(lengths: list[int], lk: int) -> torch.Tensor:
    return (torch.arange(lk)[None] < torch.tensor(lengths)[:, None])[:, None, None]  # [B, 1, 1, Lk]


def _auto_whose_flash_fails_on_padded_keys(failure: Exception, memory: RememberedChoices | None = None):
    """`auto` over SDPA and a `flash` that is fastest and right where every key is kept, and raises `failure` where
    keys are padded; its calls are counted."""
    calls = []

    def flash(q, k, v, mask):
        calls.append(tuple(k.shape))
        if not bool(mask.all()):
            raise failure
        return sdpa_attention(q, k, v, mask)

    def timer(name, call):
        call()
        return {"sdpa": 2e-3, "flash": 1e-3}[name]

    return AutoAttention({"sdpa": sdpa_attention, "flash": flash}, timer, memory), calls


def test_a_chosen_kernel_failing_with_any_exception_falls_back():
    # A kernel's failure need not be a RuntimeError (a ValueError for a layout it takes not, Triton's
    # CompilationError): `auto` gives up on it all the same, rather than stopping the run.
    q, k, v = _qkv(30)
    auto, _ = _auto_whose_flash_fails_on_padded_keys(ValueError("no kernel for this layout"))
    auto(q, k, v, _mask([30, 30], 30))
    with pytest.warns(RuntimeWarning, match="flash attention falls back to torch's SDPA"):
        out = auto(q, k, v, _mask([30, 21], 30))
    assert torch.equal(out, sdpa_attention(q, k, v, _mask([30, 21], 30)))
    assert auto.failed == {"flash": "the kernel failed (ValueError: no kernel for this layout)"}


def test_a_kernel_given_up_is_not_taken_from_memory_for_a_new_shape(tmp_path):
    # An earlier run remembered flash for a longer shape, on which flash works: once given up in this run, the new
    # shape's trial runs (it drops flash) rather than taking flash from memory and calling plain SDPA unchecked.
    q, k, v = _qkv(30)
    longer = _qkv(40)
    full_longer = _mask([40, 40], 40)
    memory = RememberedChoices("env", tmp_path / "choices.json")
    key = (tuple(longer[0].shape), tuple(longer[1].shape), torch.float32, q.device, tuple(full_longer.shape))
    memory.put(_shape_text(key), "flash")
    auto, calls = _auto_whose_flash_fails_on_padded_keys(RuntimeError("no kernel"), memory)
    auto(q, k, v, _mask([30, 30], 30))
    with pytest.warns(RuntimeWarning):
        auto(q, k, v, _mask([30, 21], 30))
    before = len(calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto(*longer, full_longer)
    trial = list(auto.trials.values())[-1]
    assert trial.remembered is None and trial.dropped == {"flash": "failed after an earlier trial chose it"}
    assert len(calls) == before  # not tried again, not even as a remembered choice's check


def _parser() -> ValueNamingParser:
    parser = ValueNamingParser(prog="tool")
    parser.add_argument("-o", "--output", metavar="FILE", help="output file: .mp4 or .mkv")
    parser.add_argument("--fps", type=int, default=24, help="frames per second (default %(default)s); more")
    return parser


def _error(parser: argparse.ArgumentParser, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    return capsys.readouterr().err


def test_a_flag_without_its_value_is_named_by_its_long_spelling(capsys):
    said = _error(_parser(), ["-o"], capsys)
    assert "argument -o/--output: expected one argument: --output FILE (output file)" in said, said


def test_a_flags_help_is_quoted_as_help_prints_it(capsys):
    said = _error(_parser(), ["--fps"], capsys)
    assert "expected one argument: --fps FPS (frames per second (default 24))\n" in said, said


def test_the_first_clause_is_not_cut_inside_parentheses():
    assert first_clause("a b c (d e f; g h) i: j") == "a b c (d e f; g h) i"


def test_a_big_endian_16_bit_tiff_keeps_its_levels(tmp_path):
    # A big-endian 16-bit TIFF opens as "I;16B", not "I;16": the scaling to 8 bits is for every 16-bit mode.
    from motif_lite.io.image import load_image

    levels = (np.arange(12).reshape(3, 4) * 5000).astype(">u2")
    PIL.Image.frombytes("I;16B", (4, 3), levels.tobytes()).save(tmp_path / "gray16b.tiff")
    with PIL.Image.open(tmp_path / "gray16b.tiff") as opened:
        assert opened.mode == "I;16B"  # what Pillow makes of it
    image = np.asarray(load_image(tmp_path / "gray16b.tiff")).astype(int)
    assert np.array_equal(image[..., 0], np.round(levels / 257.0).astype(int))


def test_a_32_bit_image_of_8_bit_levels_keeps_them():
    # Levels up to 255 exactly are 8-bit levels already (Pillow converts them as they are): not scaled down to 0..1.
    from motif_lite.io.rgb import to_rgb8

    image = PIL.Image.fromarray(np.array([[0, 128, 255]], dtype=np.int32), "I")
    assert np.asarray(to_rgb8(image))[0, :, 0].tolist() == [0, 128, 255]


def test_a_lora_read_for_this_model_passes_the_check_on_a_layer_that_is_not_square():
    from motif_lite.weights.lora import check_read_loras
    from motif_lite.weights.lora_errors import LoRAError
    from motif_lite.weights.lora_specs import LoRASpec
    from motif_lite.weights.lora_updates import LoRAFile, LoRAUpdate

    targets = {"blocks.0.ff.net.0.proj": (8, 4)}  # (out_features, in_features)
    fits = LoRAUpdate("blocks.0.ff.net.0.proj", torch.ones(2, 4), torch.ones(8, 2), 1.0)  # down [r, in], up [out, r]
    check_read_loras([LoRAFile(LoRASpec("a.safetensors"), "peft", [fits])], targets)
    turned = LoRAUpdate("blocks.0.ff.net.0.proj", torch.ones(2, 8), torch.ones(4, 2), 1.0)
    with pytest.raises(LoRAError, match="read for another model"):
        check_read_loras([LoRAFile(LoRASpec("a.safetensors"), "peft", [turned])], targets)


def test_a_vram_of_exactly_1024_gib_is_refused():
    from motif_lite.cli.flag_numbers import MOST_VRAM_GIB, vram_gib

    assert vram_gib(str(MOST_VRAM_GIB - 1)) == MOST_VRAM_GIB - 1
    with pytest.raises(argparse.ArgumentTypeError, match="1024 GiB is more than any GPU holds; for 1024 MiB"):
        vram_gib(str(MOST_VRAM_GIB))


def test_the_official_negative_prompt_given_and_then_another_is_refused(tmp_path, capsys):
    # A value given counts as given even where it equals the default: `-n OFFICIAL -n x` is two values, refused
    # by the command's parser, with its usage (not only by the check of the flags given, in a bare parser's words).
    from motif_lite import cli
    from motif_lite.request import REQUEST_DEFAULTS

    official = "".join(REQUEST_DEFAULTS.negative_prompt)  # a new string, as a command line gives: equal, not the same
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "-p", "a fox", "-n", official, "-n", "blurry", "--dry-run", "-o", str(tmp_path / "a.mp4")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "usage: motif-lite run" in err, err
    assert "motif-lite run: error: argument -n/--negative-prompt: given twice, as 'text overlay" in err, err


@pytest.mark.parametrize("flag", ["--last-frame", "--end-img"])
def test_a_last_frame_flag_is_told_that_only_the_first_frame_can_be_given(capsys, flag):
    from motif_lite import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "-p", "x", flag, "e.png"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"({flag}: only the first frame can be given (-i IMAGE)" in err, err


def test_a_job_over_the_largest_size_and_length_is_told_of_its_size_first():
    # The message names the size first; the field it points the client to is the size's too.
    from motif_lite.request import GenerationRequest
    from motif_lite.server.schema import ApiError
    from motif_lite.server.submission import _check_planned_size

    request = GenerationRequest(prompt="a fox", width=96, height=64, frames=9)
    with pytest.raises(ApiError) as refused:
        _check_planned_size(request, (64, 64, 5), None, True)
    assert refused.value.param == "size" and "96x64x9 is larger than the 64x64x5" in str(refused.value)


def test_a_job_of_0_fps_is_a_damaged_row(tmp_path):
    import sqlite3

    from motif_lite.errors import MotifLiteError
    from motif_lite.server.job_record import new_job_id
    from motif_lite.server.jobs import JobStore

    store = JobStore(tmp_path / "data")
    job_id = new_job_id()
    assert store.add(job_id, "m", {"prompt": "a", "width": 64, "height": 64, "frames": 5, "fps": 24}, False, 10)
    store.close()
    with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET settings = ? WHERE id = ?", ('{"prompt": "a", "width": 64, "height": 64, '
                                                                 '"frames": 5, "fps": 0}', job_id))  # fmt: skip
    db.close()
    with pytest.raises(MotifLiteError, match="settings is not an object with the prompt, size, frames and fps"):
        JobStore(tmp_path / "data")


def test_progress_stays_within_its_stage():
    # A stage's count past its total stays at the stage's end, never in the next one; a stage of no steps divides
    # by nothing.
    from motif_lite.server.worker import STAGE_SPANS, percent

    assert percent("denoise", 6, 4) == percent("denoise", 4, 4) == STAGE_SPANS["denoise"][1]
    assert percent("decode", 0, 0) == STAGE_SPANS["decode"][0]
