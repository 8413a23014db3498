"""`python -m motif_lite.quantize` end to end on tiny diffusers checkpoints (inner dim 256 so K-quants apply).

The model's weights are random at a scale where every block matters (`tiny_config.randomize_`): with diffusers'
default init, zeroing every block linear moved the output by only 0.019, so an output check could not tell a
working quantizer from one that writes zeros. The broken-quantizer tests below prove that each check fails when
the file is wrong."""

import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bf16_bounds import rel as _rel
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader
from gguf import quants as gguf_quants
from help_text import examples, help_text
from safetensors.torch import save_file
from tiny_config import randomize_

from motif_lite.quantize import get_recipe, parse_keep, plan_types
from motif_lite.quantize.cli import main
from motif_lite.units import file_size

TINY = dict(
    num_attention_heads=2,
    attention_head_dim=128,
    num_layers=3,
    num_single_layers=3,
    num_decoder_layers=1,
    mlp_ratio=1.0,
    text_embed_dim=256,
    image_embed_dim=256,
    rope_axes_dim=(32, 48, 48),
    enable_text_cross_attention_single=True,
)


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint folder with transformer/, the diffusers model, its state dict)."""
    from diffusers import MotifVideoTransformer3DModel

    torch.manual_seed(0)
    model = randomize_(MotifVideoTransformer3DModel(**TINY).eval())
    root = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(root / "transformer")
    model.save_pretrained(root / "sharded", max_shard_size="2MB")
    return root, model, {k: v.clone() for k, v in model.state_dict().items()}


def _fields(reader: GGUFReader) -> dict:
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _dequantized(reader: GGUFReader) -> dict[str, torch.Tensor]:
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = torch.from_numpy(np.array(gguf_quants.dequantize(t.data, t.tensor_type)).reshape(shape))
    return out


# Largest relative RMSE per tensor each type may give on N(0, 1/fan_in) weights (measured: Q4_K 0.072, Q5_K
# 0.036, Q6_K 0.018, Q8_0 0.0054, F16 2e-4); a tensor stored in a coarser type than its plan says fails.
WEIGHT_ERROR = {Q.Q4_K: 0.085, Q.Q5_K: 0.045, Q.Q6_K: 0.025, Q.Q8_0: 0.008, Q.F16: 1e-3, Q.F32: 0.0}
OUTPUT_ERROR = 0.08  # the Q4_K_M model's velocity vs fp32 (measured 0.048); a zeroed block moves it by >= 0.2


def check_weights(weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor], plan: dict) -> None:
    for name, ref in state.items():
        err = ((weights[name] - ref).norm() / ref.norm().clamp(min=1e-12)).item()
        assert err <= WEIGHT_ERROR[plan[name]], f"{name} ({plan[name].name}): relative RMSE {err:.4f}"


def check_output(weights: dict[str, torch.Tensor], model) -> float:
    """The velocity of the model holding `weights` against the original model's; returns the relative error."""
    from diffusers import MotifVideoTransformer3DModel

    quantized = MotifVideoTransformer3DModel(**TINY).eval()
    quantized.load_state_dict(weights, strict=True)
    with torch.no_grad():
        rel = _rel(quantized(**_inputs()).sample, model(**_inputs()).sample)
    assert 0 < rel < OUTPUT_ERROR, f"output relative error {rel:.4f}"
    return rel


@pytest.fixture(scope="module")
def q4km(tiny, tmp_path_factory):
    root, _, _ = tiny
    out = tmp_path_factory.mktemp("out") / "tiny-Q4_K_M.gguf"
    assert main([str(root), "-o", str(out), "--type", "Q4_K_M", "--keep", "proj_out.*=F16", "--quiet"]) == 0
    return out


def _printed_version(capsys, entry) -> str:
    """What `entry(["--version"])` prints on stdout; it exits 0, as argparse's --version does."""
    with pytest.raises(SystemExit) as exited:
        entry(["--version"])
    printed = capsys.readouterr()
    assert exited.value.code == 0 and printed.err == "", printed.err
    return printed.out


def test_the_file_records_the_motif_lite_version_that_wrote_it(q4km, capsys):
    # A bug report about a file could not say which build wrote it (a video's settings already say theirs): the
    # version is stored as `motif-lite --version` says it.
    from motif_lite import cli

    fields = _fields(GGUFReader(q4km))
    assert f"motif-lite {fields['motif_lite.quantize.version']}\n" == _printed_version(capsys, cli.main)


def test_version_is_printed_as_motif_lite_prints_it(capsys):
    # `python -m motif_lite.quantize --version` asked for SRC ("the following arguments are required") and exited 2.
    from motif_lite import cli

    assert _printed_version(capsys, main) == _printed_version(capsys, cli.main)


def test_k_quant_file_structure(tiny, q4km):
    root, _, state = tiny
    reader = GGUFReader(q4km)
    fields = _fields(reader)
    assert fields["general.architecture"] == "motif_video"
    assert fields["general.file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert fields["motif_lite.quantize.type"] == "Q4_K_M"
    assert json.loads(fields["motif_lite.quantize.recipe"]) == ["proj_out.*=F16"]
    # the source without the folders above it: shared files should not carry the maker's home folder
    assert fields["motif_lite.quantize.source"] == f"{root.name}/transformer"
    assert fields["motif_video.config_json"] == (root / "transformer" / "config.json").read_text()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    plan = plan_types(shapes, get_recipe("Q4_K_M"), parse_keep(["proj_out.*=F16"]))
    assert sorted(t.name for t in reader.tensors) == sorted(state)
    for t in reader.tensors:
        assert tuple(int(d) for d in reversed(t.shape.tolist())) == shapes[t.name]
        assert t.tensor_type == plan[t.name], t.name
    types = {t.tensor_type for t in reader.tensors}
    assert {Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0, Q.F16, Q.F32} <= types
    assert not q4km.with_name(q4km.name + ".tmp").exists()


def _inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return dict(
        hidden_states=torch.randn(1, 33, 2, 4, 4, generator=g),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 6, 256, generator=g),
    )


@pytest.fixture(scope="module")
def q4km_weights(q4km) -> dict[str, torch.Tensor]:
    """The Q4_K_M file's tensors, dequantized by gguf-py."""
    return _dequantized(GGUFReader(q4km))


@pytest.fixture(scope="module")
def q4km_plan(tiny) -> dict:
    shapes = {k: tuple(v.shape) for k, v in tiny[2].items()}
    return plan_types(shapes, get_recipe("Q4_K_M"), parse_keep(["proj_out.*=F16"]))


@pytest.fixture(scope="module")
def dequantized_model(q4km_weights):
    """The diffusers model with the Q4_K_M file's dequantized weights."""
    from diffusers import MotifVideoTransformer3DModel

    model = MotifVideoTransformer3DModel(**TINY).eval()
    model.load_state_dict(q4km_weights, strict=True)
    return model


def test_k_quant_file_values_and_model_output(tiny, q4km_weights, q4km_plan):
    _, model, state = tiny
    check_weights(q4km_weights, state, q4km_plan)
    check_output(q4km_weights, model)


def _block_linears(weights: dict) -> list[str]:
    return [name for name, t in weights.items() if "blocks." in name and t.ndim == 2]


def _requantized(weights: dict, name: str, qtype: Q) -> dict:
    """`name` stored in `qtype` instead of its planned type (a quantizer that ignores the recipe)."""
    x = weights[name].numpy()
    values = gguf_quants.dequantize(gguf_quants.quantize(x, qtype), qtype).reshape(x.shape)
    return {**weights, name: torch.from_numpy(np.array(values))}


BROKEN = {
    # every block linear written as zeros: both checks fail (output error ~0.93)
    "zeros-everywhere": (lambda w: {**w, **{n: torch.zeros_like(w[n]) for n in _block_linears(w)}}, "both"),
    # one tensor redrawn at the same scale: its weight error is ~1.4
    "one-tensor-redrawn": (
        lambda w: {
            **w,
            "transformer_blocks.1.attn.to_q.weight": torch.randn_like(w["transformer_blocks.1.attn.to_q.weight"]) / 16,
        },
        "weights",
    ),
    # one Q6_K tensor stored as Q4_0 (error ~0.09 > the Q6_K bound)
    "coarser-type": (lambda w: _requantized(w, "transformer_blocks.1.attn.to_v.weight", Q.Q4_0), "weights"),
    # one block's output projection zeroed: the velocity moves by ~0.26
    "block-output-zeroed": (
        lambda w: {
            **w,
            "single_transformer_blocks.1.proj_out.weight": torch.zeros_like(
                w["single_transformer_blocks.1.proj_out.weight"]
            ),
        },
        "output",
    ),
}


@pytest.mark.parametrize("broken", BROKEN)
def test_checks_fail_for_a_broken_quantizer(tiny, q4km_weights, q4km_plan, broken):
    """Negative controls: the file a broken quantizer would write fails the check that guards against it."""
    _, model, state = tiny
    corrupt, fails = BROKEN[broken]
    weights = corrupt(q4km_weights)
    if fails in ("weights", "both"):
        with pytest.raises(AssertionError, match="relative RMSE"):
            check_weights(weights, state, q4km_plan)
    if fails in ("output", "both"):
        with pytest.raises(AssertionError, match="output relative error"):
            check_output(weights, model)


def test_file_loads_in_the_motif_lite_runtime(tiny, q4km, dequantized_model):
    from motif_lite.weights import gguf_loader as loader

    _, model, _ = tiny
    runtime = loader.load_gguf_transformer(q4km, dtype=torch.float32)
    x = _inputs()
    with torch.no_grad():
        out = runtime(x["hidden_states"], x["timestep"], x["encoder_hidden_states"])
        same_weights = dequantized_model(**x).sample
        reference = model(**x).sample
    # Packed weights decode to exactly what gguf-py reads: docs/testing.md's GGUF parity, 1e-5 x std at most
    # (measured 1.0e-6, summation order; the relative L2 difference is 3.5e-7).
    assert (out - same_weights).abs().max() <= 1e-5 * same_weights.std()
    assert _rel(out, reference) < OUTPUT_ERROR


def test_file_loads_in_diffusers_as_a_gguf_single_file(tiny, q4km, dequantized_model):
    # The official GGUF repo's files load in diffusers (`from_single_file` with a GGUFQuantizationConfig): ours, the
    # same architecture and names, must too, its K-quants decoded by diffusers' own decoders to the model that
    # gguf-py's decoding gives. diffusers decodes in float16, rounding each sub-block's scale and min there (8e-4 of
    # a Q4_K/Q5_K weight): measured 1.0e-3 on the output, against the 0.048 of the quantizing itself.
    from diffusers import GGUFQuantizationConfig, MotifVideoTransformer3DModel

    root, model, _ = tiny
    loaded = MotifVideoTransformer3DModel.from_single_file(
        str(q4km),
        config=str(root / "transformer"),
        quantization_config=GGUFQuantizationConfig(compute_dtype=torch.float32),
        torch_dtype=torch.float32,
    ).eval()
    quant_types = {getattr(p, "quant_type", None) for p in loaded.parameters()}
    assert {Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0} <= quant_types, quant_types  # read packed, not as floats
    x = _inputs()
    with torch.no_grad():
        out, same_weights = loaded(**x).sample, dequantized_model(**x).sample
    assert _rel(out, same_weights) < 3e-3, _rel(out, same_weights)


def test_overwrite_refused_then_forced(tiny, tmp_path, capsys):
    root, _, _ = tiny
    out = tmp_path / "o.gguf"
    out.write_bytes(b"keep me")
    assert main([str(root), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main([str(root), "-o", str(out), "--type", "Q8_0", "--quiet", "--force"]) == 0
    summary = capsys.readouterr().out
    assert "bits/weight" in summary and "modulation" in summary and "embed/head" in summary
    assert len(GGUFReader(out).tensors) == len(tiny[2])


def test_a_gguf_windows_will_not_replace_is_kept_beside_it(tiny, tmp_path, capsys, monkeypatch):
    # Windows refuses to replace a file another program has open (a run or server reading that GGUF): --force then
    # failed at the very end, "cannot write o.gguf: Permission denied", and removed the finished file with the work.
    root, _, _ = tiny
    out = tmp_path / "o.gguf"
    out.write_bytes(b"open in another program")
    replace = os.replace

    def in_use(source, target):
        if Path(target) == out:
            raise PermissionError(13, "Permission denied", str(out))
        return replace(source, target)

    monkeypatch.setattr(os, "replace", in_use)
    assert main([str(root), "-o", str(out), "--type", "Q8_0", "--quiet", "--force"]) == 0
    beside = tmp_path / "o-2.gguf"
    said = capsys.readouterr().out
    assert f"note: {out} could not be replaced (Permission denied; on Windows a file another program" in said
    assert f"wrote {beside} instead" in said and f"wrote {beside} (" in said
    assert out.read_bytes() == b"open in another program" and len(GGUFReader(beside).tensors) == len(tiny[2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o-2.gguf", "o.gguf"]  # no o.gguf.tmp left


def test_a_gguf_name_windows_refuses_is_refused_there_before_quantizing(tiny, tmp_path, capsys, monkeypatch):
    # `-o nul.gguf` on Windows quantized into the NUL device (its OUT.tmp, nul.gguf.tmp, is that device too up to
    # Windows 10), then failed to rename it after minutes of work.
    import sys

    monkeypatch.setattr(sys, "platform", "win32")
    out = tmp_path / "nul.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: nul.gguf is the name of Windows' NUL device, not of a file: give another, e.g. -o ")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_in_python_names_the_argument_that_replaces_it(tiny, tmp_path):
    # docs/quantize.md's Python example run twice: "--force" alone is no argument of quantize_checkpoint
    from motif_lite.errors import MotifLiteError
    from motif_lite.quantize import open_source, quantize_checkpoint

    root, _, _ = tiny
    out = tmp_path / "o.gguf"
    out.write_bytes(b"keep me")
    with pytest.raises(MotifLiteError, match=r"already exists; pass --force to overwrite it \(in Python force=True\)"):
        quantize_checkpoint(open_source(root), out, get_recipe("Q8_0"), progress=False)
    assert out.read_bytes() == b"keep me"


def test_output_folder_is_refused_before_quantizing(tiny, tmp_path, capsys):
    """A folder given as -o: a one-line error naming a file to write, with or without --force (which cannot replace
    a folder: it used to end in a traceback after the whole quantization)."""
    root, _, _ = tiny
    for force in ([], ["--force"]):
        assert main([str(root), "-o", str(tmp_path), "--type", "Q8_0", "--quiet", *force]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "is a folder; name the .gguf file" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_or_missing_is_refused_before_quantizing(tiny, tmp_path, capsys):
    """-o fox.mp4/q.gguf with fox.mp4 a file: what is in the way, not that the folder does not exist (mkdir -p
    fails on it); a missing folder gets the mkdir command. A folder as -o names a file of the --type asked for."""
    (tmp_path / "fox.mp4").write_bytes(b"a video")
    assert main([str(tiny[0]), "-o", str(tmp_path / "fox.mp4" / "q.gguf"), "--type", "Q8_0", "--quiet"]) == 2
    assert f"{tmp_path / 'fox.mp4'} is a file, not a folder: write to another folder" in capsys.readouterr().err
    assert main([str(tiny[0]), "-o", str(tmp_path / "new" / "q.gguf"), "--type", "Q8_0", "--quiet"]) == 2
    assert f"create it first (mkdir -p {tmp_path / 'new'})" in capsys.readouterr().err
    assert main([str(tiny[0]), "-o", str(tmp_path), "--type", "Q8_0", "--quiet"]) == 2
    assert f"e.g. {tmp_path / 'model-Q8_0.gguf'}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fox.mp4"]


def test_a_missing_output_says_the_command_with_an_o_that_runs(tiny, tmp_path, capsys, monkeypatch):
    # It was argparse's usage line and "the following arguments are required: -o/--output": nothing on what to name.
    import shlex

    root = tiny[0]
    monkeypatch.chdir(tmp_path)
    assert main([str(root), "--type", "Q8_0", "--quiet"]) == 2
    err = capsys.readouterr().err
    command = shlex.join(["python", "-m", "motif_lite.quantize", str(root), "--type", "Q8_0", "--quiet"])
    assert err == f"error: -o is missing: name the .gguf file to write, e.g. {command} -o {root.name}-Q8_0.gguf\n"
    assert list(tmp_path.iterdir()) == []
    suggested = shlex.split(err.split("e.g. ", 1)[1])[3:]  # the line as pasted, without `python -m ...`
    assert main(suggested) == 0 and (tmp_path / f"{root.name}-Q8_0.gguf").is_file()
    capsys.readouterr()
    # The text encoder's file says so; a type that is refused leaves the type's place in the name to fill in.
    for flags, name in ((["--component", "text_encoder"], "-text-encoder-Q8_0.gguf"), (["--type", "Q9"], "-TYPE.gguf")):
        assert main([str(root), *flags]) == 2
        assert capsys.readouterr().err.endswith(f" -o {root.name}{name}\n")


def test_an_output_folder_not_there_yet_is_named_as_a_folder(tiny, tmp_path, capsys):
    # `-o gguf/` (the folder meant) was told to name the file gguf.gguf, the folder's name as the file's.
    assert main([str(tiny[0]), "-o", f"{tmp_path / 'gguf'}/", "--type", "Q8_0", "--quiet"]) == 2
    folder = tmp_path / "gguf"
    assert capsys.readouterr().err == (
        f"error: {folder} is not a folder; create it first (mkdir -p {folder}) and name the .gguf file to write in "
        f"it, e.g. {folder / 'model-Q8_0.gguf'}\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_an_output_not_named_gguf_is_refused_before_quantizing(tiny, tmp_path, capsys):
    # The loaders tell a GGUF by its name: a GGUF written as x.safetensors would later be read as safetensors.
    assert main([str(tiny[0]), "-o", str(tmp_path / "x.safetensors"), "--type", "Q8_0", "--quiet"]) == 2
    assert "the quantizer writes a GGUF file; name it .gguf, e.g. " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_source_or_output_is_a_usage_error(tmp_path, empty, capsys):
    """A script's unset "$SRC" was the current folder, read as a checkpoint."""
    for argv in ([empty, "-o", str(tmp_path / "q8.gguf")], [str(tmp_path), "-o", empty]):
        with pytest.raises(SystemExit) as exited:
            main([*argv, "--type", "Q8_0", "--quiet"])
        assert exited.value.code == 2
        assert f"is empty ({empty!r}; an unset variable in a script?)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_quoted_tilde_in_the_source_is_the_home_folder(tiny, tmp_path, monkeypatch):
    # "~/Motif-Video-2B" in quotes (or from a script) reaches the quantizer unexpanded: it is still the home folder.
    monkeypatch.setenv("HOME", str(tiny[0].parent))
    out = tmp_path / "q8.gguf"
    assert main([f"~/{tiny[0].name}", "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    assert out.is_file()


def test_a_quoted_tilde_in_the_output_is_the_home_folder(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main([str(tiny[0]), "-o", "~/q8.gguf", "--type", "Q8_0", "--quiet"]) == 0
    out = tmp_path / "q8.gguf"
    assert out.is_file()
    summary = capsys.readouterr().out
    assert f"--gguf {out}" in summary  # the next commands name the real file
    assert f"wrote {out} ({file_size(out.stat().st_size)}, " in summary  # the docs' decimal units, not MiB


def test_requantizing_onto_the_source_file_is_refused_even_with_force(q4km, tmp_path, capsys):
    before = q4km.read_bytes()
    link = tmp_path / "link.gguf"  # the same file under another name
    link.symlink_to(q4km)
    for output in (q4km, link):
        assert main([str(q4km), "-o", str(output), "--type", "Q8_0", "--quiet", "--force"]) == 2
        assert "is the source file; write the new file under another name" in capsys.readouterr().err
    assert q4km.read_bytes() == before


def test_a_keep_type_that_rows_cannot_take_is_noted(checkpoint, tmp_path, capsys):
    out = tmp_path / "k.gguf"
    assert main([str(checkpoint), "-o", str(out), "--type", "Q8_0", "--keep", "image_embedder.*=Q4_K", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "note: --keep 'image_embedder.*=Q4_K': " in err and "not whole Q4_K blocks: stored as " in err, err


def test_keep_takes_the_fp16_spelling():
    shapes = {"proj_out.weight": (64, 256)}
    assert parse_keep(["proj_out.*=fp16"]) == [("proj_out.*", Q.F16)]
    assert plan_types(shapes, get_recipe("Q8_0"), parse_keep(["proj_out.*=fp32"])) == {"proj_out.weight": Q.F32}


def test_sharded_index_and_single_file_give_identical_tensors(tiny, tmp_path):
    root, _, _ = tiny
    (index,) = (root / "sharded").glob("*.index.json")
    assert len(list((root / "sharded").glob("*.safetensors"))) > 1
    single = root / "transformer" / "diffusion_pytorch_model.safetensors"
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    assert main([str(index), "-o", str(a), "--type", "Q4_0", "--quiet"]) == 0
    assert main([str(single), "-o", str(b), "--type", "Q4_0", "--quiet"]) == 0
    tensors_a = {t.name: t.data.tobytes() for t in GGUFReader(a).tensors}
    tensors_b = {t.name: t.data.tobytes() for t in GGUFReader(b).tensors}
    assert tensors_a == tensors_b


def test_sources_named_in_upper_case_are_quantized_as_their_kind(tiny, q4km, tmp_path):
    """T.SAFETENSORS and X.GGUF (names some Windows tools write) are a safetensors and a GGUF source, and give the
    tensors the lower-case names give."""
    root, _, _ = tiny
    for lower, upper in (
        (root / "transformer" / "diffusion_pytorch_model.safetensors", tmp_path / "T.SAFETENSORS"),
        (q4km, tmp_path / "X.GGUF"),
    ):
        shutil.copy(lower, upper)
        want, got = tmp_path / f"{upper.stem}-want.gguf", tmp_path / f"{upper.stem}-got.gguf"
        assert main([str(lower), "-o", str(want), "--type", "Q8_0", "--quiet"]) == 0
        assert main([str(upper), "-o", str(got), "--type", "Q8_0", "--quiet"]) == 0
        tensors = [{t.name: t.data.tobytes() for t in GGUFReader(file).tensors} for file in (want, got)]
        assert tensors[0] == tensors[1]


def test_requantize_gguf_warns_and_keeps_config(tiny, q4km, tmp_path, capsys):
    root, _, state = tiny
    out = tmp_path / "re.gguf"
    assert main([str(q4km), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    said = capsys.readouterr()
    assert "requantizing" in said.err and "a larger type does not bring back what the file lost" in said.err
    reader = GGUFReader(out)
    assert _fields(reader)["motif_video.config_json"] == (root / "transformer" / "config.json").read_text()
    assert {t.tensor_type for t in reader.tensors} == {Q.Q8_0, Q.F32}
    w = _dequantized(reader)["transformer_blocks.1.attn.to_q.weight"]
    ref = state["transformer_blocks.1.attn.to_q.weight"]
    assert (w - ref).norm() / ref.norm() < WEIGHT_ERROR[Q.Q4_K]  # dominated by the first Q4_K pass (~0.072)
    # The summary's errors are against the GGUF read: Q8_0 of Q4_K values reads ~0.005, not the ~0.07 they carry.
    heading = "relative RMSE per tensor class (weight space, against the source GGUF: its own loss from the original"
    assert f"{heading} weights comes on top):" in said.out, said.out


def test_requantizing_copies_the_tensors_already_of_their_planned_type(q4km, tmp_path, capsys):
    # Requantizing a file to change a few tensors (--keep) rounded every other tensor again: a Q5_K or Q6_K block
    # re-encoded from its own decoded values is not always the same block (llama.cpp's search is not idempotent),
    # so the untouched tensors lost quality too. They are now copied, byte for byte.
    out = tmp_path / "re.gguf"
    assert (
        main([str(q4km), "-o", str(out), "--type", "Q4_K_M", "--keep", "transformer_blocks.1.*=Q8_0", "--quiet"]) == 0
    )
    assert "are copied as they are" in capsys.readouterr().err
    before = {t.name: t for t in GGUFReader(q4km).tensors}
    after = {t.name: t for t in GGUFReader(out).tensors}
    same_type = [name for name, t in after.items() if t.tensor_type == before[name].tensor_type]
    assert {after[name].tensor_type for name in same_type} >= {Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0}
    for name in same_type:
        assert np.array_equal(after[name].data, before[name].data), name
    assert after["transformer_blocks.1.attn.to_q.weight"].tensor_type == Q.Q8_0  # the rule did change its tensors


def test_an_output_refused_is_not_preceded_by_the_requantizing_warning(q4km, tmp_path, capsys):
    """The warning about quality came first, then the refusal: read as if the work had begun."""
    out = tmp_path / "taken.gguf"
    out.write_bytes(b"kept")
    assert main([str(q4km), "-o", str(out), "--type", "Q4_0", "--quiet"]) == 2
    assert (
        capsys.readouterr().err == f"error: {out} already exists; pass --force to overwrite it (in Python force=True)\n"
    )
    assert out.read_bytes() == b"kept"


def test_dequantizing_a_gguf_to_f32_is_not_called_a_loss(tiny, q4km, tmp_path, capsys):
    # float32 holds every dequantized value exactly: "requantizing ... loses quality" was not true there.
    assert main([str(q4km), "-o", str(tmp_path / "f32.gguf"), "--type", "F32", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "loses quality" not in err and "keeps its values exactly" in err
    source, copy = _dequantized(GGUFReader(q4km)), _dequantized(GGUFReader(tmp_path / "f32.gguf"))
    assert source.keys() == copy.keys() and all(torch.equal(source[name], copy[name]) for name in source)


def test_a_flag_without_its_value_is_told_what_value_it_takes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["Motif-Video-2B", "-o", "out.gguf", "--type"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "usage: python -m motif_lite.quantize SRC -o OUT.gguf" in err, err
    assert "error: argument --type: expected one argument: --type TYPE (recipe, one per run)" in err, err


@pytest.mark.parametrize("named", ["vae", "VAE"])  # as other converters and the checkpoint's folder name it
def test_the_vae_is_said_to_stay_as_it_is(tiny, tmp_path, capsys, named):
    root, _, _ = tiny
    with pytest.raises(SystemExit) as exit_:
        main([str(root), "-o", str(tmp_path / "vae.gguf"), "--component", named])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "the VAE (0.25 GB) is not quantized" in err and "invalid choice" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--type", "Q9_K"], "unknown quantization type"),
        # llama.cpp types it does not make: named as such, with whether motif-lite runs such files
        (["--type", "iq4_xs"], "IQ4_XS is a GGUF type this quantizer does not make (motif-lite runs files made"),
        (["--type", "TQ1_0"], "TQ1_0 is a GGUF type this quantizer does not make (motif-lite cannot run it)"),
        # a type the transformer's recipes have is named as one, not as unknown
        (
            ["--type", "Q2_K", "--component", "text_encoder"],
            "Q2_K is a transformer recipe, not one of the text "
            "encoder's; the nearest recipe is Q4_K_M, or choose one of: F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M",
        ),
        # a name that says only its bits gets the recipe it most likely means
        (["--type", "fp8"], "unknown quantization type 'fp8'; the nearest recipe is Q8_0, or choose one of: "),
        (["--type", "q4"], "unknown quantization type 'q4'; the nearest recipe is Q4_K_M, or choose one of: "),
        (["--keep", "nothing.*=Q8_0"], "matches no tensor"),
        (["--keep", "proj_out.weight"], "PATTERN=TYPE"),
        (["--threads", "0"], "--threads must be"),
        (["--device", "nonsense"], "--device: unknown device 'nonsense'"),
        # torch knows these names, but the search cannot run on them here (mps: another machine; meta: no data)
        (["--device", "mps"], "--device: device 'mps', an Apple silicon GPU (mps), is not supported"),
        (["--device", "meta"], "--device: device 'meta' is not supported"),
    ],
)
def test_user_errors_exit_2(tiny, tmp_path, capsys, args, message):
    root, _, _ = tiny
    out = tmp_path / "x.gguf"
    assert main([str(root), "-o", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and not out.exists()


def test_bad_sources_exit_2(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    (tmp_path / "bad.gguf").write_bytes(b"GGUX" + b"\x00" * 32)
    (tmp_path / "empty").mkdir()
    (tmp_path / "gone.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "gone-1.safetensors"}}))
    (tmp_path / "void.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    cases = {
        "missing": "does not exist",
        "notes.txt": "unsupported source",
        "bad.safetensors": "download the file again",
    }
    cases.update({"bad.gguf": "cannot read GGUF", "empty": "no diffusion_pytorch_model.safetensors"})
    cases.update({"gone.safetensors.index.json": "lists shards that are not in"})
    cases.update({"void.safetensors.index.json": "empty"})
    (tmp_path / "fox.latents.safetensors").write_bytes(b"\x00" * 16)  # a run's saved latents: not weights
    cases["fox.latents.safetensors"] = "it is the latents a run saved, not weights to quantize: motif-lite run --resume"
    for name, message in cases.items():
        assert main([str(tmp_path / name), "-o", str(tmp_path / "o.gguf"), "--quiet"]) == 2
        assert message in capsys.readouterr().err, name


@pytest.mark.parametrize(("component", "folder"), [("transformer", "transformer"), ("text_encoder", "text_encoder")])
def test_a_checkpoint_folder_without_the_component_is_named_with_its_download(tmp_path, capsys, component, folder):
    # An incomplete download: diffusers' model_index.json and the other components, but not the one to quantize.
    # It was "no diffusion_pytorch_model.safetensors ... in CHECKPOINT", as if the weights belonged at its top.
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "MotifVideoPipeline"}))
    for other in ("vae", "transformer", "text_encoder"):
        if other != folder:
            (tmp_path / other).mkdir()
    out = tmp_path / "o.gguf"
    assert main([str(tmp_path), "--component", component, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a checkpoint folder without {folder}/" in err, err
    assert f"hf download Motif-Technologies/Motif-Video-2B --include '{folder}/*' --local-dir {tmp_path}" in err
    assert "Traceback" not in err and not out.exists()


def test_partial_or_truncated_gguf_source_is_refused(tiny, q4km, tmp_path, capsys):
    from gguf_helpers import write_test_gguf

    root, _, state = tiny
    config = (root / "transformer" / "config.json").read_text()
    two = {name: (state[name].numpy(), Q.F32, state[name].shape) for name in ("proj_out.weight", "proj_out.bias")}
    write_test_gguf(tmp_path / "two.gguf", two, extra_metadata={"motif_video.config_json": config})
    write_test_gguf(tmp_path / "two-no-config.gguf", two)
    data = q4km.read_bytes()
    (tmp_path / "cut.gguf").write_bytes(data[: len(data) // 2])
    cases = {"two.gguf": "missing tensors", "two-no-config.gguf": "cannot infer the transformer config"}
    cases["cut.gguf"] = "truncated"
    for name, message in cases.items():
        out = tmp_path / f"out-{name}"
        assert main([str(tmp_path / name), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and not out.exists(), (name, err)


def test_failure_midway_leaves_no_output(tiny, tmp_path, capsys):
    root, _, state = tiny
    names = list(state)
    broken = names[len(names) // 2]  # a tensor in the middle: others are written before it fails
    folder = tmp_path / "transformer"
    folder.mkdir()
    save_file({**state, broken: torch.full_like(state[broken], math.nan)}, folder / "model.safetensors")
    (folder / "config.json").write_text((root / "transformer" / "config.json").read_text())
    out = tmp_path / "o.gguf"
    assert main([str(folder), "-o", str(out), "--type", "Q4_K_S", "--quiet"]) == 2
    assert broken in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == [folder]


def test_weights_of_another_model_are_not_written_as_a_transformer(checkpoint, tmp_path, capsys):
    """The VAE's or the text encoder's folder or file given as SRC (without --component): refused with what they
    are, before anything is written; they used to become a `motif_video` GGUF that only a run would refuse."""
    lone = tmp_path / "lone"  # files without a config.json beside them (downloaded one by one)
    lone.mkdir()
    shutil.copy(checkpoint / "vae" / "diffusion_pytorch_model.safetensors", lone / "vae.safetensors")
    shutil.copy(checkpoint / "text_encoder" / "model.safetensors", lone / "te.safetensors")
    cases = {
        checkpoint / "vae": "describes AutoencoderKLWan, not the Motif-Video transformer",
        checkpoint / "vae" / "diffusion_pytorch_model.safetensors": "describes AutoencoderKLWan",
        checkpoint / "text_encoder": "the text encoder's weights (config.json: t5gemma2_encoder); quantize them with "
        "--component text_encoder",
        lone / "vae.safetensors": "not a whole Motif-Video transformer",
        lone / "te.safetensors": "not a whole Motif-Video transformer",
    }
    out = tmp_path / "out.gguf"
    for src, message in cases.items():
        assert main([str(src), "-o", str(out), "--quiet"]) == 2, src
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (src, err)
        assert not out.exists() and not out.with_name("out.gguf.tmp").exists()


def test_other_components_given_as_the_text_encoder_are_named(checkpoint, tmp_path, capsys):
    """The transformer's or the VAE's folder with --component text_encoder: what they are, not a missing field."""
    cases = {
        checkpoint / "transformer": "these are the transformer's weights (config.json: MotifVideoTransformer3DModel); "
        "to quantize them, leave out --component text_encoder",
        checkpoint / "vae": "describes AutoencoderKLWan, not the T5Gemma2 text encoder",
    }
    out = tmp_path / "te.gguf"
    for src, message in cases.items():
        assert main([str(src), "--component", "text_encoder", "-o", str(out), "--quiet"]) == 2, src
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (src, err)
        assert not out.exists()


def test_a_transformer_file_comfyui_saved_is_read_without_its_prefix(tiny, tmp_path):
    """ComfyUI names a model it saves `model.diffusion_model.<name>`; city96's converter strips that, so do we."""
    root, _, state = tiny
    prefixed = tmp_path / "motif_video_comfy.safetensors"
    save_file({f"model.diffusion_model.{name}": tensor for name, tensor in state.items()}, prefixed)
    plain, stripped = tmp_path / "plain.gguf", tmp_path / "stripped.gguf"
    assert main([str(root / "transformer"), "-o", str(plain), "--type", "Q8_0", "--quiet"]) == 0
    assert main([str(prefixed), "-o", str(stripped), "--type", "Q8_0", "--quiet"]) == 0
    tensors = {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(plain).tensors}
    assert {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(stripped).tensors} == tensors


def test_a_single_file_checkpoint_gives_its_transformer(checkpoint, tmp_path, capsys):
    """ComfyUI's all-in-one file (the transformer under `model.diffusion_model.`, the VAE under `first_stage_model.`,
    text encoders beside) was refused as "tensor 'x_embedder.proj.weight' is missing": the prefix was dropped only
    when every name had it. Its transformer is quantized, and the rest is named as left out."""
    from safetensors.torch import load_file

    parts = {
        "model.diffusion_model.": checkpoint / "transformer" / "diffusion_pytorch_model.safetensors",
        "first_stage_model.": checkpoint / "vae" / "diffusion_pytorch_model.safetensors",
        "text_encoders.t5gemma2.": checkpoint / "text_encoder" / "model.safetensors",
    }
    tensors = {prefix: load_file(file) for prefix, file in parts.items()}
    single = tmp_path / "motif_video_all_in_one.safetensors"
    save_file({prefix + name: t for prefix, named in tensors.items() for name, t in named.items()}, single)
    plain, from_single = tmp_path / "plain.gguf", tmp_path / "single.gguf"
    assert main([str(checkpoint), "-o", str(plain), "--type", "Q8_0", "--quiet"]) == 0
    capsys.readouterr()
    assert main([str(single), "-o", str(from_single), "--type", "Q8_0", "--quiet"]) == 0
    counts = {prefix: len(named) for prefix, named in tensors.items()}
    assert capsys.readouterr().err == (
        f"note: {single.name} is a single-file checkpoint; its transformer is quantized (the "
        f"{counts['model.diffusion_model.']} tensors under 'model.diffusion_model.'), the rest is left out: "
        f"{counts['first_stage_model.']} tensors under 'first_stage_model.' (the VAE), "
        f"{counts['text_encoders.t5gemma2.']} tensors under 'text_encoders.' (text encoders)\n"
    )
    written = {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(plain).tensors}
    assert {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(from_single).tensors} == written

    # Its text encoder part is not read (its names and config are not known here): said, not "config.json missing".
    assert main([str(single), "--component", "text_encoder", "-o", str(tmp_path / "te.gguf"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {single} is a single-file checkpoint (its transformer under 'model.diffusion_")
    assert "its text encoder part is not read; give the official checkpoint folder or its text_encoder/ folder" in err
    # A transformer alone that ComfyUI saved, with --component text_encoder: what it is.
    alone = tmp_path / "comfy_transformer.safetensors"
    save_file({f"model.diffusion_model.{name}": t for name, t in tensors["model.diffusion_model."].items()}, alone)
    assert main([str(alone), "--component", "text_encoder", "-o", str(tmp_path / "te.gguf"), "--quiet"]) == 2
    assert "is the transformer's file (every tensor named 'model.diffusion_model.<name>', as ComfyUI saves it); to " \
        "quantize it, leave out --component text_encoder" in capsys.readouterr().err  # fmt: skip
    assert not (tmp_path / "te.gguf").exists()


def test_a_partial_output_of_a_stopped_run_is_named_as_such(tmp_path, capsys):
    """OUT.tmp, left by a run that kill -9 or a crash stopped, given as the source was an "unsupported source"."""
    partial = tmp_path / "model-Q4_K_M.gguf.tmp"
    partial.write_bytes(b"GGUF" + b"\x00" * 64)
    assert main([str(partial), "-o", str(tmp_path / "o.gguf"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: {partial} is the partial file of a quantizer run that stopped before it finished (a run writes "
        "OUT.tmp and renames it to OUT when done): delete it and quantize again, from the safetensors it was being "
        f"made from (-o {tmp_path / 'model-Q4_K_M.gguf'})\n"
    )


def test_a_gguf_of_the_other_component_names_the_component_flag(checkpoint, tmp_path, capsys):
    transformer, text_encoder = tmp_path / "t.gguf", tmp_path / "te.gguf"
    assert main([str(checkpoint), "-o", str(transformer), "--type", "Q8_0", "--quiet"]) == 0
    assert main([str(checkpoint), "--component", "text_encoder", "-o", str(text_encoder), "--quiet"]) == 0
    out = tmp_path / "re.gguf"
    assert main([str(text_encoder), "-o", str(out), "--quiet"]) == 2
    assert "to requantize a text encoder GGUF, add --component text_encoder" in capsys.readouterr().err
    assert main([str(transformer), "--component", "text_encoder", "-o", str(out), "--quiet"]) == 2
    assert "to requantize a transformer GGUF, leave out --component text_encoder" in capsys.readouterr().err
    assert not out.exists()


def test_a_truncated_download_is_named_with_its_fix(tiny, tmp_path, capsys):
    single = tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors"
    cut = tmp_path / "transformer" / single.name
    cut.parent.mkdir()
    cut.write_bytes(single.read_bytes()[: single.stat().st_size // 2])
    assert main([str(cut.parent), "-o", str(tmp_path / "o.gguf"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and err.rstrip().endswith("download the file again"), err


@pytest.mark.parametrize(
    ("typed", "recipe"),
    [
        ("Q4_K", "Q4_K_M"),
        ("q4_K", "Q4_K_M"),
        ("Q5_K", "Q5_K_M"),
        ("q3_k", "Q3_K_M"),
        ("q8_0", "Q8_0"),
        ("bf16", "BF16"),
        ("fp16", "F16"),  # as `motif-lite run --dtype fp16` spells it
        ("FP32", "F32"),
    ],  # noqa: E501
)
def test_recipe_names_take_llama_cpp_aliases_in_any_case(typed, recipe):
    assert get_recipe(typed).name == recipe


def test_help_lists_the_recipes_and_aliases(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Q4_K_M" in out and "Q2_K" in out and "Q4_K = Q4_K_M" in out and "Q3_K = Q3_K_M" in out
    assert "any letter case" in out and "recipe, one per run;" in out


def test_help_lists_every_recipe_with_the_size_of_its_file(capsys, monkeypatch):
    # llama-quantize's and sd.cpp's users pick a type by its size; --help named the recipes without one. Each is
    # said with the size and bits per weight of the file it makes of the 2.04B transformer, as `motif-lite run
    # --dry-run` counts it (the figures of docs/quantize.md's recipe table).
    import re

    from motif_lite.config import TransformerConfig
    from motif_lite.quantize import RECIPES
    from motif_lite.sizes import estimated_gguf_bytes, transformer_weights

    text = help_text(capsys, monkeypatch, main)
    listed = dict((name, (size, bits)) for name, size, bits in re.findall(r"\b(\w+) +([\d.]+) GB +([\d.]+) bpw", text))
    assert set(listed) == set(RECIPES), listed
    weights = transformer_weights(TransformerConfig())
    for name in RECIPES:
        packed, _ = estimated_gguf_bytes(TransformerConfig(), name)
        assert listed[name] == (f"{packed / 1e9:.2f}", f"{8 * packed / weights:.2f}"), name


def test_help_says_every_default():
    # --device said "e.g. cuda" and not that the search runs on the CPU unless told
    import argparse

    from motif_lite.quantize.cli import build_parser

    silent = [
        action.option_strings
        for action in build_parser()._actions
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in (action.help or "default")
    ]
    assert not silent


def test_help_shows_examples_that_parse(capsys, monkeypatch):
    from motif_lite.quantize.cli import build_parser

    found = examples(help_text(capsys, monkeypatch, main), "python -m motif_lite.quantize")
    assert len(found) >= 3 and any("text_encoder" in example for example in found), found
    for example in found:
        assert build_parser().parse_args(example).output.endswith(".gguf"), example


def test_progress_counts_weights_slice_by_slice(tiny, tmp_path, monkeypatch):
    """The bar advances by weights as each row slice is done: counted in tensors it sat still on the large ones
    (the text encoder's token table is 16 % of its weights) and its rate and time left meant nothing."""
    from motif_lite.quantize import convert

    bars = []

    class Bar:
        def __init__(self, *, total, **kwargs):
            self.total, self.updates = total, []
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.updates.append(n)

    monkeypatch.setattr(convert, "tqdm", Bar)
    monkeypatch.setattr(convert, "CHUNK_VALUES", 4096)  # the 256 x 256 matrices in 16 slices each
    root, _, state = tiny
    assert main([str(root), "-o", str(tmp_path / "o.gguf"), "--type", "Q8_0"]) == 0
    (bar,) = bars
    weights = sum(t.numel() for t in state.values())
    assert bar.total == weights and sum(bar.updates) == weights
    assert len(bar.updates) > len(state) and max(bar.updates) <= 4096


def test_ctrl_c_leaves_no_file_and_no_traceback(tiny, tmp_path, capsys, monkeypatch):
    from motif_lite.quantize import convert

    encode, calls = convert.encode_checked, []

    def interrupted_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(*args, **kwargs)

    monkeypatch.setattr(convert, "encode_checked", interrupted_on_the_third)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == f"interrupted: {out} was not written"
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_torch_loads_is_the_quantizers_line_not_a_traceback(tmp_path):
    # `python -m motif_lite.quantize` spends seconds importing torch before main runs: Ctrl-C there was a traceback
    # ending in KeyboardInterrupt. The import is interrupted here where Ctrl-C lands then: at torch's.
    import signal
    import subprocess
    import sys

    interrupt_torch = (
        "import runpy, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['quantize', 'SRC', '-o', 'out.gguf']\n"
        "runpy.run_module('motif_lite.quantize', run_name='__main__', alter_sys=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", interrupt_torch], cwd=tmp_path, capture_output=True, text=True)
    # Ended by the SIGINT itself, as Python ends on Ctrl-C, so that a shell's loop stops too (a shell shows 130).
    assert (done.returncode, done.stderr.strip()) == (-signal.SIGINT, "interrupted: nothing was written"), done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_kill_or_a_closed_terminal_leaves_no_partial_file(tiny, tmp_path, capsys, monkeypatch, name):
    """`kill PID` or closing the terminal halfway ended the process where it was and left OUT.tmp (as large as the
    file: GBs for the 2B model): they now stop the quantizer as Ctrl-C does, and it exits with 128 + the signal."""
    import os
    import signal

    from motif_lite.quantize import convert

    signum, out = getattr(signal, name), tmp_path / "o.gguf"
    encode, calls = convert.encode_checked, []

    def signalled_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            if signal.getsignal(signum) is signal.SIG_DFL:  # the signal would end pytest too
                pytest.fail(f"{name} would end the quantizer where it is, leaving {out}.tmp")
            os.kill(os.getpid(), signum)
            os.kill(os.getpid(), signum)  # a second one (Slurm signals every process) does not cut the clean-up
        return encode(*args, **kwargs)

    monkeypatch.setattr(convert, "encode_checked", signalled_on_the_third)
    # As from a terminal: pytest started under nohup, or by a scheduler or a background job that ignores SIGHUP,
    # passes the ignored SIGHUP on, and the quantizer rightly keeps it ignored (the nohup test below) and finishes.
    inherited = signal.signal(signum, signal.SIG_DFL)
    try:
        assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 128 + signum
        assert signal.getsignal(signum) is signal.SIG_DFL  # the handler is put back
    finally:
        signal.signal(signum, inherited)
    assert capsys.readouterr().err.strip() == f"terminated ({name}): {out} was not written"
    assert list(tmp_path.iterdir()) == []


def test_a_stop_signal_after_the_file_is_written_does_not_change_the_exit_status(monkeypatch):
    """A SIGTERM landing while Python tears torch down, after the file was renamed into place, ended the process
    with status 143: a script took the finished file for a failure."""
    import signal

    from motif_lite.quantize import cli
    from motif_lite.stopping import STOP_SIGNALS

    monkeypatch.setattr(cli, "main", lambda: 0)  # the file written
    signums = (signal.SIGINT, *STOP_SIGNALS)
    before = {signum: signal.getsignal(signum) for signum in signums}
    try:
        with pytest.raises(SystemExit) as exit_:
            cli.entry()
        assert exit_.value.code == 0
        assert all(signal.getsignal(signum) is signal.SIG_IGN for signum in signums)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_signal_ignored_from_the_start_stays_ignored(tiny, tmp_path):
    """`nohup python -m motif_lite.quantize ...` must outlive the SSH session that started it."""
    import signal

    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main([str(tiny[0]), "-o", str(tmp_path / "o.gguf"), "--type", "Q8_0", "--quiet"]) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        from motif_lite.stopping import signals_interrupt

        with signals_interrupt():  # while the work runs too, not only once it is done
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_full_disk_midway_is_a_user_error_and_leaves_nothing(tiny, tmp_path, capsys, monkeypatch):
    import errno

    from gguf import GGUFWriter

    write, calls = GGUFWriter.write_tensor_data, []

    def disk_full_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(GGUFWriter, "write_tensor_data", disk_full_on_the_third)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}: No space left on device") and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_whose_free_space_cannot_be_read_then_is_still_one_line(tiny, tmp_path, capsys, monkeypatch):
    # The message's free space came from shutil.disk_usage inside the handler: a folder gone or a share no longer
    # answering by then raised there, a traceback in place of the full disk's line. Now the free space is left out.
    import errno
    import shutil

    from gguf import GGUFWriter

    write, calls, disk_usage = GGUFWriter.write_tensor_data, [], shutil.disk_usage

    def disk_full_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(self, *args, **kwargs)

    def gone_once_full(path):
        if len(calls) >= 3:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
        return disk_usage(path)

    monkeypatch.setattr(GGUFWriter, "write_tensor_data", disk_full_on_the_third)
    monkeypatch.setattr(shutil, "disk_usage", gone_once_full)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot write {out}: No space left on device (another program may have taken what the check before "
        "the work saw): free some space or write it elsewhere (-o)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_second_quantizer_writing_the_same_output_is_refused(tiny, tmp_path, capsys, monkeypatch):
    """Two runs with the same -o (the command started again in another terminal) wrote into the same OUT.tmp, and
    the file renamed into place mixed both. The second is refused, and the first one's OUT.tmp left alone."""
    import fcntl

    from motif_lite.quantize import convert

    monkeypatch.setattr(convert, "encode_checked", lambda *args: pytest.fail("no tensor should be quantized"))
    out = tmp_path / "o.gguf"
    tmp = tmp_path / "o.gguf.tmp"
    with tmp.open("wb") as first:  # the first run, holding its OUT.tmp
        first.write(b"the first run's tensors")
        first.flush()
        fcntl.flock(first, fcntl.LOCK_EX)
        assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: another quantizer is writing {out} now (o.gguf.tmp is in use): wait for it to finish, " \
        "or write elsewhere (-o)\n"  # fmt: skip
    assert tmp.read_bytes() == b"the first run's tensors" and not out.exists()


def test_an_out_tmp_left_by_a_killed_run_is_no_obstacle(tiny, tmp_path):
    (tmp_path / "o.gguf.tmp").write_bytes(b"left by kill -9")  # its lock went with its process
    assert main([str(tiny[0]), "-o", str(tmp_path / "o.gguf"), "--type", "Q8_0", "--quiet"]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["o.gguf"]


def test_on_windows_no_descriptor_of_out_tmp_is_open_when_it_is_renamed(tiny, tmp_path, monkeypatch):
    # Windows refuses to rename (or remove) a file that is open without FILE_SHARE_DELETE, as Python's descriptors
    # are; there OUT.tmp holds no lock, so no descriptor of it may be left open when it is renamed into place.
    import os
    from pathlib import Path

    from motif_lite.quantize import convert

    pytest.importorskip("fcntl")  # the emulation reads /proc/self/fd
    proc = Path("/proc/self/fd")
    if not proc.is_dir():
        pytest.skip("needs /proc/self/fd")
    rename = Path.replace

    def as_windows_renames(self, target):
        held = [fd for fd in os.listdir(proc) if os.path.realpath(proc / fd) == str(self.resolve())]
        if held:
            raise PermissionError(32, "The process cannot access the file because it is being used by another process")
        return rename(self, target)

    monkeypatch.setattr(convert, "fcntl", None)
    monkeypatch.setattr(Path, "replace", as_windows_renames)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    assert [path.name for path in tmp_path.iterdir()] == ["o.gguf"]


def test_two_claims_of_one_output_exclude_each_other(tmp_path):
    # Each run takes the lock the same way: a shared lock would let a second run write into the first one's OUT.tmp.
    import os

    pytest.importorskip("fcntl")  # Windows has no advisory locks here

    from motif_lite.errors import ConfigError
    from motif_lite.quantize import convert

    first = convert._claim(tmp_path / "o.gguf.tmp", tmp_path / "o.gguf")
    try:
        with pytest.raises(ConfigError, match="another quantizer is writing"):
            convert._claim(tmp_path / "o.gguf.tmp", tmp_path / "o.gguf")
    finally:
        os.close(first)


def test_a_used_up_disk_quota_midway_is_said_as_such_and_leaves_nothing(tiny, tmp_path, capsys, monkeypatch):
    # EDQUOT (a quota on a shared server's home) was "cannot write OUT: Disk quota exceeded; choose another -o", as
    # for a permission: the out-of-space rule of the video writer and the latents saver counts it, and so does this.
    import errno

    from gguf import GGUFWriter

    write, calls = GGUFWriter.write_tensor_data, []

    def quota_used_up_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(GGUFWriter, "write_tensor_data", quota_used_up_on_the_third)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot write {out}: Disk quota exceeded (your disk quota there is used up): free some of your files "
        "or write it elsewhere (-o)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_permission_error_on_a_nearly_full_disk_is_not_called_full(tiny, tmp_path, capsys, monkeypatch):
    import collections
    import errno

    from gguf import GGUFWriter

    from motif_lite.quantize import convert

    usage = collections.namedtuple("usage", "total used free")
    free = iter([10**9])  # room for the check before the work, then under 1 MiB
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda path: usage(10**9, 10**9, next(free, 4000)))

    def denied(self, *args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(GGUFWriter, "write_tensor_data", denied)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: cannot write {out}: Permission denied; choose another -o\n"


def test_a_disk_filled_by_another_program_meanwhile_is_named(tiny, tmp_path, capsys, monkeypatch):
    """On a full tmpfs numpy's tofile fails with "4096 requested and 3680 written" (no errno), which the error
    gave as it was: the full disk is now named, with what to do."""
    import collections

    from gguf import GGUFWriter

    from motif_lite.quantize import convert

    usage = collections.namedtuple("usage", "total used free")
    free = iter([10**9])  # the check before the work sees room; another program takes it meanwhile
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda path: usage(10**9, 10**9, next(free, 4000)))
    write, calls = GGUFWriter.write_tensor_data, []

    def short_write_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("4096 requested and 3680 written")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(GGUFWriter, "write_tensor_data", short_write_on_the_third)
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}: No space left on device (4.0 kB free in {tmp_path}; ") and (
        err.endswith("free some space or write it elsewhere (-o)\n")
    ), err
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_is_refused_before_the_work(tiny, tmp_path, capsys, monkeypatch):
    import collections

    from motif_lite.quantize import convert

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(convert.shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    monkeypatch.setattr(convert, "encode_checked", lambda *args: pytest.fail("no tensor should be quantized"))
    assert main([str(tiny[0]), "-o", str(tmp_path / "o.gguf"), "--type", "Q8_0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} has {file_size(1000)} free; o.gguf needs about " in err and "write it elsewhere (-o)" in err, (
        err
    )
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_output_folder_is_a_user_error(tiny, tmp_path, capsys, monkeypatch):
    from motif_lite.quantize import convert

    os_open = convert.os.open

    def refused(path, *args, **kwargs):  # tests may run as root, who may write anywhere
        if str(path).endswith(".gguf.tmp"):
            raise PermissionError(13, "Permission denied")
        return os_open(path, *args, **kwargs)

    monkeypatch.setattr(convert.os, "open", refused)
    monkeypatch.setattr(convert, "encode_checked", lambda *args: pytest.fail("no tensor should be quantized"))
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: cannot write {out}: Permission denied; choose another -o\n"


@pytest.mark.parametrize(
    "args, hint",
    [
        (["OUT.gguf", "Q4_K_M"], "(OUT.gguf: the output goes after -o; Q4_K_M: the type goes after --type)"),
        (["-o", "OUT.gguf", "q8_0"], "(q8_0: the type goes after --type)"),
        (["--outfile", "OUT.gguf", "--outtype", "q8_0"], "(--outfile: here -o; --outtype: here --type)"),
        (["-m", "-o", "OUT.gguf"], "(-m: the source needs no flag, it comes first"),
        (["-M", "convert", "-o", "OUT.gguf"], "(-M: not needed, this program only converts: "),  # sd -M convert
        (["-o", "OUT.gguf", "-t", "4"], "(-t: here --threads)"),  # sd's threads
        (
            ["--allow-requantize", "Q8_0", "-o", "OUT.gguf"],
            "(--allow-requantize: not needed: a GGUF given as SRC is "
            "requantized, with a warning; Q8_0: the type goes after --type)",
        ),  # fmt: skip
        (["-o", "OUT.gguf", "--imatrix", "x.dat"], "(--imatrix: not taken: no importance matrix is used"),
        (["-o", "OUT.gguf", "--type", "Q4_K_M", "Q8_0"], "(Q8_0: one type per run: run again for it)"),
        (["-o", "OUT.gguf", "--overwrite", "Q8_0"], "(--overwrite: here --force; Q8_0: the type goes after --type)"),
        (["-y", "-o", "OUT.gguf"], "(-y: here --force)"),  # ffmpeg's
        # per-tensor types of llama-quantize and sd.cpp (no hint before; --output-tensor-type's value got "the type
        # goes after --type", which would change every tensor)
        (["-o", "OUT.gguf", "--tensor-type", "attn_v=q8_0"], "(--tensor-type: here --keep PATTERN=TYPE, one rule"),
        (["-o", "OUT.gguf", "--tensor-type-rules", "^vae.=f16"], "(--tensor-type-rules: here --keep PATTERN=TYPE"),
        (
            ["-o", "OUT.gguf", "--output-tensor-type", "q8_0"],
            "(--output-tensor-type: the quantized recipes keep the embedders",
        ),
        (["--leave-output-tensor", "-o", "OUT.gguf"], "another type: --keep 'proj_out.*=F16')"),
        (["--pure", "-o", "OUT.gguf"], "(--pure: one type for every matrix is --keep '*=TYPE'"),
        # our own flags misspelled: the flag meant, not the value's place
        (["-o", "OUT.gguf", "--componet", "text_encoder"], "(--componet: did you mean --component?)"),
        (["-o", "OUT.gguf", "--Type", "Q8_0"], "(--Type: did you mean --type?)"),
        (["-o", "OUT.gguf", "--typ=q8_0", "--quite"], "(--typ=q8_0: did you mean --type?; --quite: did you mean"),
    ],
)
def test_other_converters_arguments_get_a_hint(tmp_path, capsys, args, hint):
    """llama-quantize's SRC OUT TYPE, convert_hf_to_gguf.py's --outfile/--outtype, sd.cpp's -m MODEL."""
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err and hint in err, err
    assert not (tmp_path / "OUT.gguf").exists()


@pytest.mark.parametrize("types", [["Q4_K_M", "Q8_0"], ["q4_k_m,q8_0"]])
def test_several_types_are_refused_before_any_tensor_is_read(tiny, tmp_path, capsys, monkeypatch, types):
    """A repeated --type wrote a file of the last type only, without a word; a list was called an unknown type."""
    from motif_lite.quantize import convert

    monkeypatch.setattr(convert, "encode_checked", lambda *args: pytest.fail("no tensor should be quantized"))
    typed = [arg for name in types for arg in ("--type", name)]
    assert main([str(tiny[0]), "-o", str(tmp_path / "o.gguf"), *typed]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --type takes one type per run, got 2 (") and "Traceback" not in err, err
    assert "each with its own -o (-o model-Q4_K_M.gguf --type " in err and ", then -o model-Q8_0.gguf --type " in err
    assert list(tmp_path.iterdir()) == []


def test_an_abbreviated_flag_is_not_expanded(tmp_path, capsys):
    """argparse read --ty as --type (and any prefix of a flag as that flag): flags are spelled whole."""
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "-o", str(tmp_path / "o.gguf"), "--ty", "Q8_0"])
    assert exit_.value.code == 2 and "unrecognized arguments: --ty Q8_0" in capsys.readouterr().err
    assert not (tmp_path / "o.gguf").exists()


def test_the_summary_ends_with_the_commands_that_use_the_file(checkpoint, tmp_path, capsys):
    for component, flag in (("transformer", "--gguf"), ("text_encoder", "--text-encoder-gguf")):
        out = tmp_path / f"{component}.gguf"
        assert main([str(checkpoint), "--component", component, "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
        use = f"-m {checkpoint} {flag} {out}"
        last = capsys.readouterr().out.splitlines()[-1]
        assert last == f'next: motif-lite check {use}, then motif-lite run {use} -p "..."'


def test_the_summary_says_how_long_the_quantizing_took(tiny, tmp_path, capsys, monkeypatch):
    """The time is what a user compares with the docs' figures (minutes for Q4_K_M of the 2B model) before
    choosing --threads or --device; the summary gave size and bits/weight but not the time."""
    from motif_lite.quantize import convert

    clock = iter([100.0, 100.0 + 7 * 60 + 5.4])  # the start and the end of the work
    monkeypatch.setattr(convert.time, "perf_counter", lambda: next(clock))
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"wrote {out} (") and first.endswith(" bits/weight) in 7 min 05 s"), first


@pytest.mark.parametrize(
    "seconds, said", [(0.42, "0.4 s"), (42.4, "42 s"), (59.6, "1 min 00 s"), (3725, "62 min 05 s")]
)
def test_durations_read_as_seconds_or_minutes(seconds, said):
    from motif_lite.quantize.convert import duration

    assert duration(seconds) == said


def test_a_reader_that_stops_early_is_no_failure(tiny, tmp_path, capsys, monkeypatch):
    """`python -m motif_lite.quantize ... | head -1`: the summary's later lines met a closed pipe, and the file just
    written ended in a BrokenPipeError traceback and exit status 1."""
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    out = tmp_path / "o.gguf"
    assert main([str(tiny[0]), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    assert out.is_file() and "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("command", ["quantize", "convert"])
def test_motif_lite_quantize_or_convert_points_to_the_quantizer(command, capsys):
    """What stable-diffusion.cpp (`-M convert`) and llama.cpp (llama-quantize) users type first: the `motif-lite`
    script (cli.main) answers with the quantizer's command line, not argparse's "invalid choice"."""
    from motif_lite import cli

    assert cli.main([command, "ckpt", "-o", "x.gguf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"motif-lite: error: there is no '{command}' command; the GGUF quantizer is a ")
    assert "python -m motif_lite.quantize SRC -o OUT.gguf --type Q4_K_M" in err, err


def test_a_hub_repo_id_is_read_from_the_hugging_face_cache(tiny, tmp_path, capsys, monkeypatch):
    """`motif-lite run -m REPO` downloads into the Hugging Face cache, where users cannot find the files: the
    quantizer takes the same repo id (it used to say only 'does not exist'), and never downloads."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    repo, out = "someone/tiny-motif", tmp_path / "o.gguf"
    assert main([repo, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not in the Hugging Face cache (the quantizer does not download): hf download someone/tiny-motif " in err
    here = os.path.abspath("tiny-motif")  # absolute: the download may be typed in another folder
    assert f"--include 'transformer/*' --local-dir {here}, then quantize {here}" in err, err

    folder = tmp_path / "cache" / "models--someone--tiny-motif"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    shutil.copytree(tiny[0] / "transformer", folder / "snapshots" / "0123abcd" / "transformer")
    assert main([repo, "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"next: motif-lite check -m {repo} --gguf {out}")
    assert main([repo, "--component", "text_encoder", "-o", str(tmp_path / "te.gguf"), "--quiet"]) == 2
    assert "has no text_encoder/ in the cache" in capsys.readouterr().err

    # The repo's web address, copied from the browser, is read as its repo id: it was "does not exist", with the
    # address's "//" made one "/"
    for address in (f"https://huggingface.co/{repo}", f"https://huggingface.co/{repo}/blob/main/transformer/x.json"):
        assert main([address, "-o", str(tmp_path / "web.gguf"), "--type", "Q8_0", "--quiet", "--force"]) == 0
    assert capsys.readouterr().err.count(" is read from the Hugging Face cache: ") == 2
    missing = "https://huggingface.co/someone/other"
    assert main([missing, "-o", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.startswith(f"error: source {missing} is neither a local file nor a folder, and the "
                                              "Hub repo someone/other is not in the Hugging Face cache")  # fmt: skip
    # A GGUF file's address: that file's download, and the path to quantize then (it was "does not exist").
    assert main([f"{missing}/blob/main/motif-Q4_K_M.gguf", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: source {missing}/blob/main/motif-Q4_K_M.gguf is neither a local file"), err
    other = os.path.abspath("other")
    assert f"hf download someone/other --include 'motif-Q4_K_M.gguf' --local-dir {other}, then quantize " in err, err
    assert err.endswith(f"{other}/motif-Q4_K_M.gguf\n"), err


def test_the_file_is_named_after_the_model_not_a_folder_or_a_cache_hash(tiny, q4km, tmp_path, monkeypatch):
    # general.name (what gguf-dump, ComfyUI-GGUF and llama.cpp's tools show as the model) was the commit hash of the
    # Hugging Face cache's snapshot for a repo id, ComfyUI's "diffusion_models" for a file there, and the file name
    # ("tiny-Q4_K_M") of a GGUF requantized, whose own general.name llama-quantize keeps.
    from huggingface_hub import constants

    def names(path: Path) -> tuple[str, str]:
        fields = _fields(GGUFReader(path))
        return fields["general.name"], fields["motif_lite.quantize.source"]

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models--someone--tiny-motif"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    shutil.copytree(tiny[0] / "transformer", folder / "snapshots" / "0123abcd" / "transformer")
    assert main(["someone/tiny-motif", "-o", str(tmp_path / "hub.gguf"), "--type", "Q8_0", "--quiet"]) == 0
    assert names(tmp_path / "hub.gguf") == ("tiny-motif", "tiny-motif/transformer")

    comfy = tmp_path / "models" / "diffusion_models" / "motif_video_2b_bf16.safetensors"
    comfy.parent.mkdir(parents=True)
    shutil.copy(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors", comfy)
    assert main([str(comfy), "-o", str(tmp_path / "comfy.gguf"), "--type", "Q8_0", "--quiet"]) == 0
    assert names(tmp_path / "comfy.gguf") == ("motif_video_2b_bf16", "motif_video_2b_bf16.safetensors")

    assert main([str(q4km), "-o", str(tmp_path / "again.gguf"), "--type", "Q8_0", "--quiet"]) == 0
    assert names(tmp_path / "again.gguf") == (tiny[0].name, q4km.name)
    assert names(q4km) == (tiny[0].name, f"{tiny[0].name}/transformer")  # the checkpoint folder's name, as before


@pytest.mark.parametrize("component", ["transformer", "text_encoder"])
def test_another_models_file_is_named_with_the_official_source(tmp_path, capsys, component):
    """A Stable Diffusion checkpoint from ComfyUI's folder was refused as "tensor 'x_embedder.proj.weight' is
    missing": it is named, with the command that quantizes the official file instead."""
    sd15 = tmp_path / "v1-5-pruned-emaonly.safetensors"
    names = ("model.diffusion_model.input_blocks.0.0.weight", "first_stage_model.decoder.conv_in.weight",
             "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")  # fmt: skip
    save_file({name: torch.zeros(2, 2) for name in names}, sd15)
    out = tmp_path / "out.gguf"
    assert main([str(sd15), "--component", component, "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    what = component.replace("_", " ")
    flag = " --component text_encoder" if component == "text_encoder" else ""
    command = f"python -m motif_lite.quantize Motif-Technologies/Motif-Video-2B{flag} -o OUT.gguf"
    assert f"{sd15} is not Motif-Video's {what}: it is a Stable Diffusion 1.x checkpoint; " in err, err
    assert f"quantize the official one: {command} (read from the Hugging Face cache;" in err, err
    assert not out.exists()


def test_web_addresses_of_a_folder_or_file_of_a_cached_repo_read_it(tiny, tmp_path, capsys, monkeypatch):
    """.../tree/main/transformer was "does not exist" and .../blob/main/text_encoder/model.safetensors read the
    transformer/ folder: each names what it reads now, or the download of just that part."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "models--someone--tiny-motif"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    snapshot = folder / "snapshots" / "0123abcd"
    shutil.copytree(tiny[0] / "transformer", snapshot / "transformer")
    web, out = "https://huggingface.co/someone/tiny-motif", tmp_path / "o.gguf"
    read = {
        f"{web}/tree/main": snapshot,
        f"{web}/tree/main/transformer": snapshot / "transformer",
        f"{web}/blob/main/transformer/diffusion_pytorch_model.safetensors?download=true": snapshot
        / "transformer/diffusion_pytorch_model.safetensors",
        f"{web}/blob/main/transformer/config.json": snapshot / "transformer",  # the folder of the file clicked
    }
    for address, path in read.items():
        assert main([address, "-o", str(out), "--type", "Q8_0", "--quiet", "--force"]) == 0, address
        assert f"note: {address} is read from the Hugging Face cache: {path}\n" in capsys.readouterr().err
    motif, gguf = os.path.abspath("tiny-motif"), os.path.abspath("gguf")  # absolute: typed in another folder too
    absent = {
        f"{web}/tree/main/text_encoder": "has no text_encoder/ in the cache (the quantizer does not download): hf "
        f"download someone/tiny-motif --include 'text_encoder/*' --local-dir {motif}, then quantize "
        f"{motif}/text_encoder\n",
        # a weights file in a folder: the folder's download, its config.json with it
        f"{web}/blob/main/text_encoder/model.safetensors": "hf download someone/tiny-motif --include "
        f"'text_encoder/*' --local-dir {motif}, then quantize {motif}/text_encoder/model.safetensors\n",
        "https://huggingface.co/someone/gguf/blob/main/x-Q8_0.gguf": "hf download someone/gguf --include "
        f"'x-Q8_0.gguf' --local-dir {gguf}, then quantize {gguf}/x-Q8_0.gguf\n",
        f"{web}/blob/dev/transformer/config.json": "is on the 'dev' revision of someone/tiny-motif, and the quantizer "
        "reads the Hugging Face cache's main revision only: hf download someone/tiny-motif --revision dev "
        f"--local-dir {motif}, then quantize {motif}/transformer\n",
    }
    for address, said in absent.items():
        assert main([address, "-o", str(out), "--quiet", "--force"]) == 2, address
        err = capsys.readouterr().err
        assert err.startswith(f"error: source {address} ") and said in err, err


def test_a_folder_of_shards_without_their_index_is_read_whole_or_named(tiny, tmp_path, capsys):
    """A folder of model-0000N-of-0000M shards without the .index.json was "holds several .safetensors files and no
    .index.json": complete, its shards are read (a note says so); one shard given alone, or a folder missing some,
    names the shards and what to do; unrelated files are named with the one to pass."""
    from safetensors.torch import load_file

    state = load_file(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors")
    names = sorted(state)
    shards = tmp_path / "shards"
    shards.mkdir()
    parts = [names[: len(names) // 2], names[len(names) // 2 :]]
    files = [shards / f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    for file, part in zip(files, parts, strict=True):
        save_file({name: state[name] for name in part}, file)
    whole, out = tmp_path / "whole.gguf", tmp_path / "shards.gguf"
    assert main([str(tiny[0] / "transformer"), "-o", str(whole), "--type", "Q8_0", "--quiet"]) == 0
    assert main([str(shards), "-o", str(out), "--type", "Q8_0", "--quiet"]) == 0
    assert capsys.readouterr().err.startswith(f"note: {shards} has no .safetensors.index.json; its 2 shards (")
    written = {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(whole).tensors}
    assert {t.name: (t.tensor_type, t.data.tobytes()) for t in GGUFReader(out).tensors} == written
    alone = tmp_path / "alone"  # one shard of one is the whole file: read as it is, without a note
    alone.mkdir()
    shutil.copy(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors", alone / "m-00001-of-00001.safetensors")
    assert main([str(alone), "-o", str(tmp_path / "alone.gguf"), "--type", "Q8_0", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    only = alone / "m-00001-of-00001.safetensors"  # and given as the file: no shard of several to refuse
    assert main([str(only), "-o", str(tmp_path / "only.gguf"), "--type", "Q8_0", "--quiet"]) == 0, capsys.readouterr()
    assert capsys.readouterr().err == ""

    assert main([str(files[0]), "-o", str(tmp_path / "one.gguf"), "--quiet"]) == 2
    said = f"{files[0]} is shard 1 of 2: the quantizer reads them all from their folder: python -m motif_lite."
    assert said in capsys.readouterr().err
    files[1].rename(tmp_path / "elsewhere.safetensors")
    assert main([str(shards), "-o", str(tmp_path / "one.gguf"), "--quiet"]) == 2
    said = "holds 1 of the 2 shards of diffusion_pytorch_model (missing: diffusion_pytorch_model-00002-of-00002."
    assert said in capsys.readouterr().err
    assert main([str(files[0]), "-o", str(tmp_path / "one.gguf"), "--quiet"]) == 2  # alone, the other not there
    said = f"{files[0]} is shard 1 of 2, and diffusion_pytorch_model-00002-of-00002.safetensors is not beside it: "
    assert said + "download every shard (and the index) into its folder, then quantize" in capsys.readouterr().err
    second = tmp_path / "second"  # the first shard missing
    second.mkdir()
    shutil.copy(tmp_path / "elsewhere.safetensors", second / files[1].name)
    assert main([str(second), "-o", str(tmp_path / "one.gguf"), "--quiet"]) == 2
    said = "holds 1 of the 2 shards of diffusion_pytorch_model (missing: diffusion_pytorch_model-00001-of-00002."
    assert said in capsys.readouterr().err
    (shards / "other.safetensors").write_bytes((tmp_path / "elsewhere.safetensors").read_bytes())
    assert main([str(shards), "-o", str(tmp_path / "one.gguf"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds several .safetensors files (diffusion_pytorch_model-00001-of-00002.safetensors, other." in err, err
    assert f"pass the file to quantize, e.g. python -m motif_lite.quantize {files[0]} -o OUT.gguf" in err
    two = tmp_path / "two"  # two files, neither a shard: which one is the user's to say
    two.mkdir()
    for name in ("a.safetensors", "b.safetensors"):
        shutil.copy(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors", two / name)
    assert main([str(two), "-o", str(tmp_path / "two.gguf"), "--quiet"]) == 2
    assert "holds several .safetensors files (a.safetensors, b.safetensors) and no .safetensors.index.json" in (
        capsys.readouterr().err
    )
    # Beside the weights file a run reads, another file is no question: the folder is read as a run reads it.
    shutil.copy(tiny[0] / "transformer" / "diffusion_pytorch_model.safetensors", two)
    assert main([str(two), "-o", str(tmp_path / "two.gguf"), "--type", "Q8_0", "--quiet"]) == 0


@pytest.mark.parametrize(
    ("given", "component"),
    [("text-encoder", "text_encoder"), ("Text_Encoder", "text_encoder"), ("TRANSFORMER", "transformer")],
)
def test_a_component_is_taken_with_a_dash_or_in_any_case(given, component):
    # --component text-encoder (as --text-encoder-gguf spells it) was argparse's "invalid choice".
    from motif_lite.quantize.cli import build_parser

    assert build_parser().parse_args(["ckpt", "-o", "out.gguf", "--component", given]).component == component


def test_an_output_path_that_stdouts_encoding_lacks_is_printed_escaped(checkpoint, tmp_path):
    # Windows' console (cp1252) or an ASCII locale: the summary naming "C:\Users\...\狐\t.gguf" failed after the file
    # was written, with a traceback and exit code 1. The path is written as Python writes stderr: escaped.
    import os
    import subprocess
    import sys

    out = tmp_path / "\u72d0 caf\xe9" / "t.gguf"
    out.parent.mkdir()
    command = [sys.executable, "-m", "motif_lite.quantize", str(checkpoint), "-o", str(out), "--type", "Q8_0"]
    environment = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    done = subprocess.run(command, capture_output=True, text=True, encoding="cp1252", env=environment, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "\\u72d0 caf\xe9" in done.stdout and out.is_file()


def test_comfyui_ggufs_convert_flags_get_a_hint(tmp_path, capsys):
    # ComfyUI-GGUF's `convert.py --src MODEL --dst OUT.gguf`: it was "unrecognized arguments: --src --dst out.gguf
    # (out.gguf: the output goes after -o)", which left --src unsaid.
    with pytest.raises(SystemExit) as exit_:
        main(["--src", str(tmp_path), "--dst", "OUT.gguf"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --src --dst OUT.gguf (--src: the source needs no flag, it comes first: " in err
    assert err.rstrip().endswith("; --dst: here -o)"), err


def test_comfyui_ggufs_convert_flags_with_their_values_attached_get_the_hint(tmp_path, capsys):
    # `--src=MODEL --dst=OUT.gguf` (argparse's other spelling, which convert.py takes too) left SRC missing, and the
    # error was argparse's "the following arguments are required: src" alone.
    with pytest.raises(SystemExit) as exit_:
        main([f"--src={tmp_path}", "--dst=OUT.gguf"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"arguments are required: src (--src={tmp_path}: the source needs no flag, it comes first: " in err
    assert err.rstrip().endswith("; --dst=OUT.gguf: here -o)"), err


def test_a_folder_of_a_split_ggufs_parts_names_their_merge(tmp_path, capsys):
    # A folder holding the parts llama.cpp's gguf-split left was "no diffusion_pytorch_model.safetensors", where
    # --gguf given the same folder names the merge that makes one file of them.
    from gguf_helpers import write_split_gguf

    parts = tmp_path / "parts"
    parts.mkdir()
    write_split_gguf(parts / "mv-Q8_0.gguf", ["x_embedder.proj.weight", "context_embedder.linear_1.weight"])
    assert main([str(parts), "-o", str(tmp_path / "o.gguf"), "--quiet"]) == 2
    merge = f"llama-gguf-split --merge {parts / 'mv-Q8_0-00001-of-00002.gguf'} {parts / 'mv-Q8_0.gguf'}"
    assert f"merge the parts into one with llama.cpp's tool: {merge}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "cut", "said"),
    [
        (
            "x.gguf.part",
            0,
            "is named as an unfinished download (its name ends in .part), though its size says it is whole",
        ),
        ("x.gguf.incomplete", 64, "is an unfinished download (its name ends in .incomplete), and its size says it is"),
    ],
)
def test_a_gguf_named_as_an_unfinished_download_is_said_by_run_check_and_the_quantizer(
    checkpoint, tmp_path, capsys, no_network, name, cut, said
):
    # A browser's x.gguf.part (or huggingface_hub's .incomplete) loaded in a run without a word, though a download
    # may still be writing it, while the quantizer called the name unsupported.
    from gguf_helpers import write_test_gguf

    from motif_lite.checkup import check_setup
    from motif_lite.errors import CheckpointError
    from motif_lite.io.gguf_source import find_gguf

    whole = write_test_gguf(tmp_path / "x.gguf", {"a": (np.zeros((2, 32), np.float32), Q.F32, (2, 32))})
    given = tmp_path / name
    given.write_bytes(whole.read_bytes()[: len(whole.read_bytes()) - cut])
    with pytest.raises(CheckpointError, match=f"^{re.escape(f'{given}: {said}')}"):
        find_gguf(str(given))
    assert [f.message.startswith(said) for f in check_setup(checkpoint, gguf=given).problems] == [True]
    te_problems = check_setup(checkpoint, text_encoder_gguf=given).problems
    assert [f.message.startswith(said) for f in te_problems] == [True]
    assert main([str(given), "-o", str(tmp_path / "o.gguf"), "--quiet"]) == 2
    assert f"error: source {given} {said}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["-o", "OUT.gguf"], ["--type", "Q8_0"]])
def test_a_source_left_out_is_said_by_argparse_alone(argv, capsys):
    # With no other converter's flag given, the hint for them was asked of nothing, and it raised a ValueError (zip of
    # unequal lengths): a traceback where argparse says that SRC is missing.
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.rstrip().endswith("error: the following arguments are required: src")


def test_an_unfinished_download_name_is_read_in_any_case_and_the_fix_names_the_file_without_it(tmp_path):
    # Mutation pass 71: the ending matched in lower case only, a folder so named read as a file, the name given back
    # with its ending still on.
    from gguf_helpers import write_test_gguf

    from motif_lite.io.gguf_source import unfinished_download_problem
    from motif_lite.shell_syntax import quoted

    whole = write_test_gguf(tmp_path / "x.gguf", {"a": (np.zeros((2, 32), np.float32), Q.F32, (2, 32))})
    given = tmp_path / "X.GGUF.CRDOWNLOAD"
    given.write_bytes(whole.read_bytes())
    problem, fix = unfinished_download_problem(given)
    assert problem.startswith("is named as an unfinished download (its name ends in .crdownload)")
    assert fix == f"rename it to {quoted(str(tmp_path / 'X.GGUF'))} once no download is writing it, and pass that"
    (tmp_path / "folder.gguf.part").mkdir()
    assert unfinished_download_problem(tmp_path / "folder.gguf.part") is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
@pytest.mark.parametrize("closed_path", ["source", "-o"])
def test_a_source_or_output_under_a_folder_this_process_may_not_enter_is_refused_with_that_folder(
    checkpoint, closed_path
):
    # Python 3.10-3.13 raise PermissionError from Path.exists, is_dir and resolve under such a folder: the
    # quantizer's source and -o were a traceback from their first check, before anything was read.
    # Not tmp_path: pytest's folder for root's tests is one only root may enter (the check runs as another user).
    import contextlib
    import io

    from another_user import as_another_user, folder_closed_to_others

    with folder_closed_to_others("in") as (base, closed):
        source = base / "ckpt"
        shutil.copytree(checkpoint, source)  # readable by the other user: the run gets as far as -o
        for folder, _, files in os.walk(source):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        argv = {
            "source": [str(closed / "in" / "ckpt"), "-o", str(base / "out.gguf")],
            "-o": [str(source), "-o", str(closed / "in" / "out.gguf")],
        }[closed_path]

        def quantize() -> tuple[int, str]:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main([*argv, "--type", "Q8_0"])
            return code, err.getvalue()

        said = as_another_user(quantize)
        refusal = f"this process may not enter {closed} (it needs x, search permission there): give this user"
        assert said.startswith("(2, ") and "Traceback" not in said, said
        assert re.search(rf"error: {re.escape(str(closed))}/\S* cannot be reached: {re.escape(refusal)}", said), said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX permissions, as another user")
def test_an_output_folder_closed_during_the_work_says_out_was_not_written(checkpoint):
    # The folder of -o closed (chmod 000) while the tensors were written: the final rename, and the removal of
    # OUT.tmp, failed under it, and the error said only that OUT.tmp "cannot be reached", not that OUT was not written.
    import contextlib
    import io

    from another_user import as_another_user, folder_closed_to_others

    import motif_lite.quantize.convert as convert

    with folder_closed_to_others("in", base_mode=0o777) as (base, _):
        source = base / "ckpt"
        shutil.copytree(checkpoint, source)
        for folder, _, files in os.walk(source):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        mine = base / "mine"
        out = mine / "out.gguf"

        def quantize() -> tuple[int, str, list[str]]:
            mine.mkdir()  # the other user's: it may close it
            rename = convert.replace_or_beside

            def close_then_rename(*args, **kwargs):
                mine.chmod(0o000)
                return rename(*args, **kwargs)

            convert.replace_or_beside = close_then_rename
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main([str(source), "-o", str(out), "--type", "Q8_0"])
            mine.chmod(0o755)
            return code, err.getvalue(), sorted(os.listdir(mine))

        said = as_another_user(quantize)
        assert said.startswith("(2, ") and "Traceback" not in said, said
        assert f"error: {out} was not written: {out}.tmp cannot be reached: this process may not enter {mine} " in said
        # what it says is left is there, and the command it gives removes it once the folder is open again
        assert f"its partial file is left there: remove it once it can be reached (rm {out}.tmp)" in said, said
        assert said.endswith("['out.gguf.tmp'])"), said
