"""Damaged and hand-edited LoRA files (`--lora FILE`): every mutation in a fixed list (bytes cut or flipped, tensors
of another dtype or shape, PEFT settings of the wrong JSON type) is either applied or refused with `LoRAError`
before any weight is read; the command says so in one line. A one-layer model stands for the transformer. CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fuzz_checks import read_or_refused_naming
from safetensors.torch import save_file
from torch import nn

from motif_lite import cli
from motif_lite.errors import MotifLiteError
from motif_lite.weights.lora import linear_shapes, read_loras
from motif_lite.weights.lora_apply import apply_loras
from motif_lite.weights.lora_errors import LoRAError
from motif_lite.weights.lora_specs import LoRASpec

DOWN, UP = "transformer_blocks.0.attn.to_q.lora_A.weight", "transformer_blocks.0.attn.to_q.lora_B.weight"
ALPHA = "transformer_blocks.0.attn.to_q.alpha"
GOOD = {DOWN: torch.randn(4, 64, generator=torch.Generator().manual_seed(0)),
        UP: torch.randn(64, 4, generator=torch.Generator().manual_seed(1))}  # fmt: skip
UNEDITED = GOOD[UP] @ GOOD[DOWN]  # its change to the layer's weight, but for the scale
WRONG_VALUES = ["12", [1], None, float("nan"), float("inf"), 1e308, 10**400, -5, 0, True, {"a": 1}, "x" * 100_000]


class OneBlock(nn.Module):
    """The transformer's names for one attention's query projection: transformer_blocks.0.attn.to_q."""

    def __init__(self) -> None:
        super().__init__()
        attention = nn.Module()
        attention.to_q = nn.Linear(64, 64)
        block = nn.Module()
        block.attn = attention
        self.transformer_blocks = nn.ModuleList([block])


def change(path: Path) -> torch.Tensor:
    """What applying `path` as a LoRA of `OneBlock` adds to its query projection's weight."""
    model = OneBlock()
    before = model.transformer_blocks[0].attn.to_q.weight.detach().clone()
    apply_loras(model, read_loras([LoRASpec(path)], linear_shapes(model)), torch.float32)
    return model.transformer_blocks[0].attn.to_q.weight.detach() - before  # a new weight: merged


def applied_or_refused(path: Path, *needles: str, alpha_zero: bool = False) -> None:
    """`path` is refused with `MotifLiteError` naming the file and the `needles` (the setting edited), or applied:
    then its change is the unedited LoRA's (`GOOD`, alpha 8), up to its scale (an edited alpha) and the rounding of
    another float dtype, and holds numbers only. `alpha_zero`: the edit is an alpha of 0, whose change is none;
    any other applied file must change the weight (a reader that dropped a 16-bit LoRA's scale changed nothing)."""
    with read_or_refused_naming(MotifLiteError, str(path), *needles):
        applied = change(path).flatten()
        assert torch.isfinite(applied).all(), f"{needles}: the change holds inf or NaN"
        if alpha_zero:
            assert not applied.any(), f"{needles}: an alpha of 0 changed the weight"
            return
        assert applied.any(), f"{needles}: applied, but the weight did not change"
        similar = torch.nn.functional.cosine_similarity(applied, UNEDITED.flatten(), dim=0)
        assert similar.abs() > 0.99, f"{needles}: the change is another LoRA's (cosine {similar:.3f})"


def written(path: Path, tensors: dict[str, torch.Tensor], peft: object = None) -> Path:
    metadata = None if peft is None else {"lora_adapter_metadata": peft if isinstance(peft, str) else json.dumps(peft)}
    save_file(tensors, str(path), metadata=metadata)
    return path


DTYPES = [torch.int8, torch.int32, torch.bool, torch.uint8, torch.float16, torch.bfloat16, torch.float64,
          torch.float8_e4m3fn]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tensors_of_every_dtype_are_applied_or_refused(tmp_path, dtype):
    path = tmp_path / "lora.safetensors"
    for tensors in [{**GOOD, DOWN: GOOD[DOWN].to(dtype)}, {**GOOD, UP: GOOD[UP].to(dtype)},
                    {**GOOD, ALPHA: torch.tensor(8.0).to(dtype)}]:  # fmt: skip
        applied_or_refused(written(path, tensors))


def test_tensors_of_every_shape_are_applied_or_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    shapes = [((0, 64), (64, 0)), ((1, 4, 64), (64, 4)), ((4, 32), (64, 4)), ((64,), (64,)), ((), ()), ((4, 64),)]
    for shape in shapes:
        applied_or_refused(written(path, {name: torch.zeros(s) for name, s in zip((DOWN, UP), shape, strict=False)}))
    for alpha in [torch.zeros(3), torch.zeros(0), torch.tensor(float("nan"))]:
        applied_or_refused(written(path, {**GOOD, ALPHA: alpha}))
    applied_or_refused(written(path, {**GOOD, ALPHA: torch.tensor(0.0)}), alpha_zero=True)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool])
def test_weights_that_are_not_floats_are_refused(tmp_path, dtype):
    """Read before as their integers: another LoRA, or none (booleans)."""
    path = written(tmp_path / "lora.safetensors", {**GOOD, UP: GOOD[UP].to(dtype)})
    with pytest.raises(LoRAError, match=f"the up \\(lora_B\\) weight of transformer_blocks.0.attn.to_q is {dtype}"):
        read_loras([LoRASpec(path)], linear_shapes(OneBlock()))


@pytest.mark.parametrize("setting", ["lora_alpha", "alpha_pattern", "use_rslora", "use_dora", "r"])
def test_peft_settings_of_every_json_type_are_applied_or_refused(tmp_path, setting):
    for value in WRONG_VALUES:
        path = written(tmp_path / "lora.safetensors", GOOD, {"lora_alpha": 8, setting: value})
        applied_or_refused(path, setting, alpha_zero=setting == "lora_alpha" and value == 0)


@pytest.mark.parametrize(
    ("peft", "says"),
    [
        ({"lora_alpha": "8"}, "lora_alpha in its lora_adapter_metadata is '8', not a number"),
        ({"alpha_pattern": [1]}, "alpha_pattern in its lora_adapter_metadata is [1], not an object"),
        ({"alpha_pattern": {"to_q": "x"}}, "not an object of layer name patterns and numbers"),
        ({"alpha_pattern": {"(": 2}}, "holds '(', which is no regular expression"),
        ({"lora_alpha": True}, "lora_alpha in its lora_adapter_metadata is True, not a number"),
        ({"alpha_pattern": {"to_q": True}}, "not an object of layer name patterns and numbers"),
        # read before: "false" and [1] as true (another strength), 1e308 made the weight inf, NaN was unnamed
        ({"use_rslora": "false"}, "use_rslora in its lora_adapter_metadata is 'false', not true or false"),
        ({"use_rslora": 1}, "use_rslora in its lora_adapter_metadata is 1, not true or false"),
        # alpha 1e308 / rank 4:
        ({"lora_alpha": 1e308}, "(scale 2.5e+307, alpha 1e+308 (lora_alpha, alpha_pattern or its .alpha tensor))"),
        ({"lora_alpha": float("nan")}, "lora_alpha in its lora_adapter_metadata is nan, not a number"),
        ({"alpha_pattern": {"to_q": 10**400}}, "not an object of layer name patterns and numbers"),
    ],
)
def test_peft_settings_no_peft_writes_are_named(tmp_path, peft, says):
    path = written(tmp_path / "lora.safetensors", GOOD, {"lora_alpha": 8, **peft})
    with pytest.raises(LoRAError, match="export the LoRA again") as raised:
        read_loras([LoRASpec(path)], linear_shapes(OneBlock()))
    assert says in str(raised.value)


def test_peft_settings_without_lora_alpha_are_read(tmp_path):
    path = written(tmp_path / "lora.safetensors", GOOD, {"r": 4})
    read_loras([LoRASpec(path)], linear_shapes(OneBlock()))  # no error


def test_a_long_peft_setting_is_cut_short_in_the_message(tmp_path):
    path = written(tmp_path / "lora.safetensors", GOOD, {"lora_alpha": "x" * 1000})
    with pytest.raises(LoRAError) as raised:
        read_loras([LoRASpec(path)], linear_shapes(OneBlock()))
    assert len(str(raised.value)) < 400


def test_float8_tensors_are_checked_for_inf_and_nan(tmp_path):
    nan = torch.full((4, 64), float("nan")).to(torch.float8_e4m3fn)
    path = written(tmp_path / "lora.safetensors", {**GOOD, DOWN: nan})
    with pytest.raises(LoRAError, match="holds inf or NaN"):
        read_loras([LoRASpec(path)], linear_shapes(OneBlock()))


def test_an_adapter_config_that_is_not_utf8_is_named(tmp_path):
    written(tmp_path / "adapter_model.safetensors", GOOD)
    (tmp_path / "adapter_config.json").write_bytes(b'{"lora_alpha": 8, "\xff": 1}')
    with pytest.raises(LoRAError, match="adapter_config.json is not valid JSON"):
        read_loras([LoRASpec(tmp_path / "adapter_model.safetensors")], linear_shapes(OneBlock()))


def test_cut_and_flipped_bytes_are_applied_or_refused(tmp_path):
    """Refused naming the file, or applied as the whole file: the very change of the unedited file. (Through
    `applied_or_refused`, a reader that skipped a damaged file passed: no change at all is right for an alpha of 0,
    which no byte damage here makes.)"""
    path = written(tmp_path / "lora.safetensors", GOOD)
    unedited = change(path)
    whole = path.read_bytes()
    header_end = 8 + int.from_bytes(whole[:8], "little")
    cuts = [whole[:n] for n in (0, 1, 8, 20, header_end, header_end + 1, len(whole) - 1)]
    flips = [whole[:i] + bytes([whole[i] ^ 0xFF]) + whole[i + 1 :] for i in range(0, header_end, 5)]
    for damaged in [*cuts, *flips]:
        path.write_bytes(damaged)
        with read_or_refused_naming(MotifLiteError, str(path)):
            assert torch.equal(change(path), unedited), f"{len(damaged)} bytes applied as another change"


def test_the_command_refuses_a_damaged_lora_in_one_line(tmp_path, capsys, no_network):
    path = written(tmp_path / "lora.safetensors", GOOD, {"lora_alpha": [8]})
    code = cli.main(["run", "-p", "a fox", "--lora", str(path), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "lora_alpha in its lora_adapter_metadata is [8], not a number" in err
