"""`run --quantize TYPE` (quantize/on_load.py): the transformer quantized as it loads is the model the quantizer's
GGUF file of that type loads into, byte for byte, and a run with it makes that file's video. Tiny checkpoint, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from test_cli import assert_user_error

from motif_lite import cli, load_pipeline
from motif_lite.config import TransformerConfig
from motif_lite.errors import ConfigError
from motif_lite.io.latents import read_latents
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.on_load import is_slow_on_cpu, quantize_transformer_tensors
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.gguf_loader import load_gguf_transformer, load_packed_transformer

RECIPES = ["Q8_0", "Q4_K_M"]


@pytest.fixture(scope="module")
def files(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The quantizer's GGUF file of the checkpoint's transformer, per recipe."""
    folder = tmp_path_factory.mktemp("gguf")
    made = {}
    for recipe in RECIPES:
        made[recipe] = folder / f"transformer-{recipe}.gguf"
        quantize_checkpoint(open_source(checkpoint), made[recipe], get_recipe(recipe), progress=False)
    return made


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_tensors_and_the_model_are_the_files(checkpoint, files, recipe):
    packed = quantize_transformer_tensors(checkpoint, recipe.lower(), progress=False)
    stored = read_gguf(files[recipe]).tensors
    assert packed.keys() == stored.keys()
    assert len({t.qtype for t in packed.values()}) > 1  # quantized and float tensors, as the recipe plans them
    for name, tensor in stored.items():
        assert (packed[name].qtype, packed[name].shape) == (tensor.qtype, tensor.shape), name
        assert torch.equal(packed[name].data, tensor.data), name
    config = TransformerConfig.from_json(checkpoint / "transformer/config.json")
    ours = load_packed_transformer(packed, config, torch.float32).state_dict()
    theirs = load_gguf_transformer(files[recipe], torch.float32, config=config).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(path)) for path in sorted(folder.glob("*.png"))])


def run(capsys, checkpoint: Path, out: Path, *extra: str) -> tuple[np.ndarray, str]:
    """The frames of a short run, and what it said."""
    out.mkdir()
    args = ["run", "-m", str(checkpoint), "-p", "a red fox runs through snow", "-W", "48", "-H", "32",
            "--video-frames", "5", "--steps", "2", "-s", "7", "--dtype", "fp32", "--device", "cpu", "--kernels",
            "torch", "-o", str(out / "f_%03d.png"), *extra]  # fmt: skip
    code = cli.main(args)
    said = capsys.readouterr()
    assert code == 0, said.err
    return frames(out), said.err + said.out


def test_a_run_quantized_as_it_loads_makes_the_files_video(checkpoint, files, tmp_path, capsys):
    ours, err = run(capsys, checkpoint, tmp_path / "on_load", "--quantize", "q4_k")
    expected, _ = run(capsys, checkpoint, tmp_path / "file", "--gguf", str(files["Q4_K_M"]))
    plain, _ = run(capsys, checkpoint, tmp_path / "plain")
    assert ours.std() > 10 and np.array_equal(ours, expected) and not np.array_equal(ours, plain)
    assert "note: the transformer is quantized to Q4_K_M as it loads, in every run" in err
    assert "ran on: cpu, float32, transformer quantized to Q4_K_M as it loaded" in err
    assert f"python -m motif_lite.quantize {checkpoint} --type Q4_K_M -o transformer-Q4_K_M.gguf" in err


def test_a_dry_run_plans_the_recipes_size(checkpoint, capsys):
    code = cli.main(["run", "-m", str(checkpoint), "--dry-run", "--quantize", "Q8_0", "--device", "cpu", "--vram", "4",
                     "-W", "48", "-H", "32", "--video-frames", "5"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if line.strip().startswith("transformer") and "MiB" in line)
    assert "quantized to Q8_0 as it loads" in line


def test_a_resumed_run_quantizes_again(checkpoint, tmp_path, capsys, monkeypatch):
    # The stopped run's --quantize comes from its latents file: the resumed video is the uninterrupted one's (a
    # resumed run in the float weights would make other frames, as the plain run's differ above).
    whole, _ = run(capsys, checkpoint, tmp_path / "whole", "--quantize", "Q8_0")

    def stop(self, stage, done, total):
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    (tmp_path / "out").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
        args = ["run", "-m", str(checkpoint), "-p", "a red fox runs through snow", "-W", "48", "-H", "32",
                "--video-frames", "5", "--steps", "2", "-s", "7", "--dtype", "fp32", "--device", "cpu", "--kernels",
                "torch", "--quantize", "Q8_0", "-o", str(tmp_path / "out" / "f_%03d.png")]  # fmt: skip
        assert cli.main(args) == cli.EXIT_INTERRUPTED
    latents = tmp_path / "out" / "f.latents.safetensors"
    assert read_latents(latents).run["quantize"] == "Q8_0"
    capsys.readouterr()
    assert cli.main(["run", "--resume", str(latents), "--kernels", "torch"]) == 0
    assert np.array_equal(frames(tmp_path / "out"), whole)


def test_mistakes_are_said_before_any_weights_load(checkpoint, files, tmp_path, capsys, monkeypatch):
    from motif_lite import pipeline

    with pytest.raises(ConfigError, match="leave out one of them"):  # from Python too
        load_pipeline(checkpoint, gguf=files["Q8_0"], quantize="Q8_0", device="cpu")
    with pytest.raises(ConfigError, match="--quantize: unknown quantization type 'Q9'"):
        load_pipeline(checkpoint, quantize="Q9", device="cpu")
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    base = ["run", "-m", str(checkpoint), "-p", "x", "-o", str(tmp_path / "x.mp4")]
    code = cli.main([*base, "--quantize", "Q4_K_M", "--gguf", str(files["Q8_0"])])
    assert_user_error(capsys, code, "--quantize Q4_K_M quantizes the transformer's safetensors as they load, and "
                                    f"--gguf {files['Q8_0']} gives weights quantized already")  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main([*base, "--quantize", "Q9"])
    assert "argument --quantize: unknown quantization type 'Q9'; choose one of: " in capsys.readouterr().err


def test_the_k_quants_are_said_to_take_minutes():
    assert is_slow_on_cpu("Q4_K_M") and is_slow_on_cpu("Q6_K") and is_slow_on_cpu("Q3_K_M")
    assert not is_slow_on_cpu("Q8_0") and not is_slow_on_cpu("Q4_0")
