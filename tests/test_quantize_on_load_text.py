"""`run --text-encoder-quantize TYPE` (quantize/on_load.py for the text encoder): the T5Gemma2 encoder quantized as
it loads is the encoder the quantizer's `--component text_encoder` GGUF file of that type loads into, byte for byte,
and a run with it makes that file's video. Tiny checkpoint (tests/tiny_pipeline.py), and the "wide" text encoder of
tests/test_text_encoder_gguf.py, whose 256-wide rows take the K-quants themselves (the tiny one's fall back). CPU."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from test_cli import assert_user_error
from test_quantize_on_load import frames, run
from test_text_encoder_gguf import PROMPTS, make_wide_text_encoder

from motif_lite import cli, load_pipeline
from motif_lite.encoders.text import load_text_encoder
from motif_lite.encoders.text_gguf import load_text_encoder_gguf, packed_text_encoder
from motif_lite.errors import CheckpointError, ConfigError
from motif_lite.io.latents import read_latents
from motif_lite.preflight import preflight
from motif_lite.quantize.cli import main as quantize_main
from motif_lite.quantize.components import TEXT_ENCODER
from motif_lite.quantize.on_load import is_slow_on_cpu, quantize_text_encoder_tensors
from motif_lite.weights.gguf_file import TEXT_ENCODER_ARCH, read_gguf

RECIPES = ["Q8_0", "Q4_K_M"]


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def read_te(path: Path):
    return read_gguf(path, expected_arch=TEXT_ENCODER_ARCH)


def quantized_file(root: Path, out: Path, recipe: str) -> Path:
    assert quantize_main([str(root), "--component", "text_encoder", "-o", str(out), "--type", recipe,
                          "--quiet"]) == 0  # fmt: skip
    return out


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wide_text")
    make_wide_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def wide_files(wide, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wide_gguf")
    return {recipe: quantized_file(wide, out / f"te-{recipe}.gguf", recipe) for recipe in RECIPES}


@pytest.fixture(scope="module")
def files(checkpoint, tmp_path_factory) -> dict[str, Path]:
    """The quantizer's text encoder GGUF of the tiny checkpoint, per recipe."""
    out = tmp_path_factory.mktemp("te_gguf")
    return {recipe: quantized_file(checkpoint, out / f"te-{recipe}.gguf", recipe) for recipe in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES)
def test_the_tensors_the_encoder_and_its_embeddings_are_the_files(wide, wide_files, recipe):
    packed = quantize_text_encoder_tensors(wide, recipe.lower(), progress=False)
    stored = read_te(wide_files[recipe]).tensors
    assert packed.keys() == stored.keys()
    qtypes = {t.qtype for t in packed.values()}
    assert Q.BF16 in qtypes and (Q.Q4_K in qtypes if recipe == "Q4_K_M" else Q.Q8_0 in qtypes)  # the K-quants ran
    for name, tensor in stored.items():
        assert (packed[name].qtype, packed[name].shape, packed[name].name) == (tensor.qtype, tensor.shape, name), name
        assert torch.equal(packed[name].data, tensor.data), name
    folder = wide / "text_encoder"
    ours = packed_text_encoder(packed, folder / "config.json", recipe, folder)
    assert (ours.recipe, ours.nbytes) == (
        recipe,
        read_te(wide_files[recipe]).nbytes(),
    )
    theirs = load_text_encoder_gguf(wide_files[recipe], torch.float32).state_dict()
    loaded = load_text_encoder_gguf(ours, torch.float32).state_dict()
    assert loaded.keys() == theirs.keys() and all(torch.equal(loaded[k], theirs[k]) for k in loaded)
    embeds, mask = load_text_encoder(wide, dtype=torch.float32, gguf=ours).encode(PROMPTS)
    expected, expected_mask = load_text_encoder(wide, dtype=torch.float32, gguf=wide_files[recipe]).encode(PROMPTS)
    plain, _ = load_text_encoder(wide, dtype=torch.float32).encode(PROMPTS)
    assert torch.equal(mask, expected_mask) and torch.equal(embeds[mask], expected[mask])
    assert not torch.equal(embeds[mask], plain[mask])


@pytest.mark.parametrize(
    ("recipe", "dtype"), [("F16", torch.float32), ("F32", torch.bfloat16), ("Q8_0", torch.bfloat16)]
)
def test_the_sizes_count_the_text_encoder_as_it_loads(checkpoint, tmp_path, recipe, dtype):
    # What the planner is told against the encoder that really loads in the run's dtype, from a file and quantized
    # as it loads: its bytes (float tensors cast to that dtype, packed ones as stored: an F32 file in a bf16 run
    # holds half its size) and whether a linear runs on packed blocks (whose fused GEMM may autotune; an F16 or
    # F32 file holds float linears only).
    from motif_lite.sizes import model_sizes
    from motif_lite.weights.quant_linear import QuantizedLinear

    def packed_linears(encoder) -> bool:
        return any(isinstance(module, QuantizedLinear) for module in encoder.modules())

    file = quantized_file(checkpoint, tmp_path / f"te-{recipe}.gguf", recipe)
    folder = checkpoint / "text_encoder"
    on_load = packed_text_encoder(quantize_text_encoder_tensors(checkpoint, recipe, progress=False),
                                  folder / "config.json", recipe, folder)  # fmt: skip
    for encoder, given in ((file, {"text_encoder_gguf": file}), (on_load, {"text_encoder_quantize": recipe})):
        sources, _ = preflight(checkpoint, None, "cpu", "torch", **given)
        told = model_sizes(sources, dtype)
        loaded = load_text_encoder_gguf(encoder, dtype)
        assert told.text_encoder_bytes == sum(t.nbytes for t in loaded.state_dict().values()), given
        assert told.text_encoder_quantized == packed_linears(loaded) == recipe.startswith("Q"), given


def test_packed_tensors_are_checked_against_the_config(wide):
    packed = quantize_text_encoder_tensors(wide, "Q8_0", progress=False)
    folder = wide / "text_encoder"
    dropped = next(name for name in packed if name.endswith("up_proj.weight"))
    with pytest.raises(CheckpointError, match=f"(?s){folder} does not match the text encoder config.*{dropped}"):
        packed_text_encoder({k: t for k, t in packed.items() if k != dropped}, folder / "config.json", "Q8_0", folder)


def test_a_run_quantized_as_it_loads_makes_the_files_video(checkpoint, files, tmp_path, capsys):
    ours, err = run(capsys, checkpoint, tmp_path / "on_load", "--text-encoder-quantize", "q4_k")
    expected, _ = run(capsys, checkpoint, tmp_path / "file", "--text-encoder-gguf", str(files["Q4_K_M"]))
    plain, _ = run(capsys, checkpoint, tmp_path / "plain")
    assert ours.std() > 10 and np.array_equal(ours, expected) and not np.array_equal(ours, plain)
    assert "note: the text encoder is quantized to Q4_K_M as it loads, in every run" in err
    assert "text encoder: quantized to Q4_K_M as it loaded" in err
    assert (f"python -m motif_lite.quantize {checkpoint} --component text_encoder --type Q4_K_M -o te-Q4_K_M.gguf, "
            "then --text-encoder-gguf te-Q4_K_M.gguf") in err  # fmt: skip


def test_both_components_quantized_as_they_load(checkpoint, tmp_path, capsys):
    both, err = run(capsys, checkpoint, tmp_path / "both", "--quantize", "Q8_0", "--text-encoder-quantize", "Q8_0")
    one, _ = run(capsys, checkpoint, tmp_path / "one", "--quantize", "Q8_0")
    assert not np.array_equal(both, one)
    assert "transformer quantized to Q8_0 as it loaded" in err and "text encoder: quantized to Q8_0" in err


def test_the_plan_counts_the_recipes_size(checkpoint, files, capsys):
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest
    from motif_lite.sizes import model_sizes

    for recipe in RECIPES:  # the packed bytes of the file that recipe makes
        sources, _ = preflight(checkpoint, None, "cpu", "torch", text_encoder_quantize=recipe)
        loaded = load_text_encoder_gguf(files[recipe], torch.float32).state_dict().values()
        assert model_sizes(sources, torch.float32).text_encoder_bytes == sum(t.nbytes for t in loaded)
    request = GenerationRequest(prompt="x", width=48, height=32, frames=5)

    def plan(**kw):
        made = plan_generation(request, checkpoint, dtype=torch.float32, device="cpu", ram_gib=64, **kw)
        return made.stages, made.host

    assert plan(text_encoder_quantize="q8_0") == plan(text_encoder_gguf=files["Q8_0"])
    assert plan(text_encoder_quantize="q8_0") != plan()
    code = cli.main(["run", "-m", str(checkpoint), "--dry-run", "--text-encoder-quantize", "Q8_0", "--device", "cpu",
                     "--ram", "4", "-W", "48", "-H", "32", "--video-frames", "5"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    line = next(line for line in out.splitlines() if line.strip().startswith("text encoder") and "iB" in line)
    assert "quantized to Q8_0 as it loads: our quantizer's recipe over text_encoder/*.safetensors headers" in line


def test_the_official_sizes_are_the_recipes_over_the_official_encoder(monkeypatch):
    from full_size_text import official_text_config

    from motif_lite.encoders.text_config import meta_encoder
    from motif_lite.quantize.on_load import planned_split
    from motif_lite.quantize.recipes import plan_bytes
    from motif_lite.quantize.text_recipes import TEXT_RECIPES
    from motif_lite.sizes import OFFICIAL_TEXT_ENCODER_SPLIT, quantized_text_encoder_bytes

    shapes = {k: tuple(v.shape) for k, v in meta_encoder(official_text_config()).state_dict().items()}
    assert {name: planned_split(shapes, name, TEXT_ENCODER) for name in TEXT_RECIPES} == OFFICIAL_TEXT_ENCODER_SPLIT
    packed, floats = OFFICIAL_TEXT_ENCODER_SPLIT["Q6_K"]
    official = "the official T5Gemma2 (built-in), weights not at hand"
    assert quantized_text_encoder_bytes([], "q6_k", torch.bfloat16) == (packed + 2 * floats, official)
    # The file itself stores its floats as F32 (vectors) or BF16; the loaded encoder holds them in the run's dtype.
    stored = plan_bytes(shapes, TEXT_ENCODER.plan(shapes, TEXT_ENCODER.get_recipe("Q6_K"), []))  # the file's data
    assert packed + 2 * floats < stored < packed + 4 * floats


def test_a_resumed_run_quantizes_again(checkpoint, tmp_path, capsys, monkeypatch):
    # The stopped run's --text-encoder-quantize comes from its latents file, as its model flags do.
    whole, _ = run(capsys, checkpoint, tmp_path / "whole", "--text-encoder-quantize", "Q8_0")

    def stop(self, stage, done, total):
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    (tmp_path / "out").mkdir()
    with monkeypatch.context() as patch:
        patch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
        args = ["run", "-m", str(checkpoint), "-p", "a red fox runs through snow", "-W", "48", "-H", "32",
                "--video-frames", "5", "--steps", "2", "-s", "7", "--dtype", "fp32", "--device", "cpu", "--kernels",
                "torch", "--text-encoder-quantize", "Q8_0", "-o", str(tmp_path / "out" / "f_%03d.png")]  # fmt: skip
        assert cli.main(args) == cli.EXIT_INTERRUPTED
    latents = tmp_path / "out" / "f.latents.safetensors"
    assert read_latents(latents).run["text_encoder_quantize"] == "Q8_0"
    capsys.readouterr()
    assert cli.main(["run", "--resume", str(latents), "--text-encoder-quantize", "q8_0", "--dry-run"]) == 0
    assert "the run being resumed had" not in capsys.readouterr().err  # the same recipe, however spelled
    assert cli.main(["run", "--resume", str(latents), "--dry-run"]) == 0
    assert "the text encoder is quantized to Q8_0 as it loads" in capsys.readouterr().err  # kept from the file
    assert cli.main(["run", "--resume", str(latents), "--dry-run", "--text-encoder-quantize", "Q4_K_M"]) == 0
    assert ("the run being resumed had --text-encoder-quantize Q8_0: the rest of the video is sampled with what this "
            "command gives") in capsys.readouterr().err  # fmt: skip
    assert cli.main(["run", "--resume", str(latents), "--kernels", "torch"]) == 0
    assert np.array_equal(frames(tmp_path / "out"), whole)


def test_a_video_records_it_for_settings_from(checkpoint, tmp_path, capsys):
    made = tmp_path / "made.webp"
    base = ["run", "-m", str(checkpoint), "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1", "--dtype",
            "fp32", "--device", "cpu", "--kernels", "torch"]  # fmt: skip
    assert cli.main([*base, "-p", "a fox", "--text-encoder-quantize", "Q8_0", "-o", str(made)]) == 0
    capsys.readouterr()
    assert cli.main([*base, "--settings-from", str(made), "--dry-run"]) == 0
    assert ("made.webp was made with --text-encoder-quantize Q8_0, this run has no --text-encoder-gguf, "
            "--text-encoder or --text-encoder-quantize: its video differs") in capsys.readouterr().err  # fmt: skip
    assert cli.main([*base, "--settings-from", str(made), "--dry-run", "--text-encoder-quantize", "q8_0"]) == 0
    assert "made.webp was made with" not in capsys.readouterr().err


def test_mistakes_are_said_before_any_weights_load(checkpoint, files, tmp_path, capsys, monkeypatch, no_network):
    from motif_lite import pipeline

    with pytest.raises(ConfigError, match="leave out one of them"):  # from Python too
        load_pipeline(checkpoint, text_encoder_gguf=files["Q8_0"], text_encoder_quantize="Q8_0", device="cpu")
    for wrong in ("Q9", "Q4_0", "Q3_K_M"):  # unknown, and the transformer's recipes the text encoder has not
        with pytest.raises(ConfigError, match="--text-encoder-quantize: .*choose one of: F32, F16, BF16, Q8_0, Q6_K, "):
            load_pipeline("Motif-Technologies/Motif-Video-2B", text_encoder_quantize=wrong)  # before any download
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded a model for a bad request"))
    base = ["run", "-m", str(checkpoint), "-p", "x", "-o", str(tmp_path / "x.mp4")]
    code = cli.main([*base, "--text-encoder-quantize", "Q4_K_M", "--text-encoder-gguf", str(files["Q8_0"])])
    said = f"as they load, and --text-encoder-gguf {files['Q8_0']} gives weights quantized already"
    assert_user_error(capsys, code, f"--text-encoder-quantize Q4_K_M quantizes the text encoder's safetensors {said}")
    code = cli.main([*base, "--text-encoder-quantize", "Q8_0", "--text-encoder", str(files["Q8_0"])])  # a .gguf
    assert_user_error(capsys, code, f"and --text-encoder-gguf {files['Q8_0']} gives weights quantized already")
    for wrong in ("Q9", "Q4_0"):
        with pytest.raises(SystemExit):
            cli.main([*base, "--text-encoder-quantize", wrong])
        err = capsys.readouterr().err
        assert "argument --text-encoder-quantize: " in err and "choose one of: F32, F16, BF16, Q8_0, Q6_K, " in err


def test_the_note_names_the_recipe_and_its_cost(checkpoint):
    sources, _ = preflight(checkpoint, None, "cpu", "torch", text_encoder_quantize="q5_k")
    assert sources.text_encoder_quantize == "Q5_K_M"
    assert sources.notes[-1] == (
        "the text encoder is quantized to Q5_K_M as it loads, in every run (its K-quants' search: minutes on a CPU; a "
        f"GPU run searches on the GPU); to do it once: python -m motif_lite.quantize {checkpoint} --component "
        "text_encoder --type Q5_K_M -o te-Q5_K_M.gguf, then --text-encoder-gguf te-Q5_K_M.gguf"
    )
    quick = preflight(checkpoint, None, "cpu", "torch", text_encoder_quantize="q8_0")[0].notes[-1]
    assert "in every run (about a minute on a CPU);" in quick
    assert is_slow_on_cpu("Q4_K_M", TEXT_ENCODER) and is_slow_on_cpu("Q6_K", TEXT_ENCODER)
    assert not is_slow_on_cpu("Q8_0", TEXT_ENCODER) and not is_slow_on_cpu("BF16", TEXT_ENCODER)


def test_your_own_file_is_quantized_and_the_notes_command_makes_its_file(checkpoint, tmp_path):
    # --text-encoder FILE: the run quantizes it from the folder linking it beside -m's config, and the note's
    # command (the quantizer needs that config) makes the file whose tensors the run made.
    mine = tmp_path / "my_text_encoder.safetensors"
    shutil.copyfile(checkpoint / "text_encoder/model.safetensors", mine)
    sources, _ = preflight(checkpoint, None, "cpu", "torch", weights={"text_encoder": mine},
                           text_encoder_quantize="Q8_0")  # fmt: skip
    command = shlex.split(sources.notes[-1].split("to do it once: ")[1].split(", then")[0])
    assert command[:3] == ["python", "-m", "motif_lite.quantize"] and Path(command[3]) == sources.root
    out = tmp_path / "te-Q8_0.gguf"
    assert quantize_main([*command[3:-1], str(out), "--quiet"]) == 0
    packed = quantize_text_encoder_tensors(sources.root, "Q8_0", progress=False)
    stored = read_te(out).tensors
    assert packed.keys() == stored.keys() and all(torch.equal(packed[k].data, stored[k].data) for k in stored)


@pytest.mark.parametrize("device", ["cpu", "cuda:1"])
def test_the_search_runs_on_the_runs_gpu(checkpoint, monkeypatch, device):
    from motif_lite.pipeline import loading
    from motif_lite.quantize import on_load

    asked = []

    def quantize(source, recipe, device, config_values):
        asked.append(device)
        raise InterruptedError

    monkeypatch.setattr(on_load, "quantize_text_encoder_tensors", quantize)
    sources, _ = preflight(checkpoint, None, "cpu", "torch", text_encoder_quantize="Q4_K_M")
    with pytest.raises(InterruptedError):
        loading._load_text_encoder(sources, torch.float32, "torch", None, None, torch.device(device))
    assert asked == [torch.device(device) if device != "cpu" else "cpu"]


def test_a_parallel_run_is_planned_quantized_before_it_starts(checkpoint, capsys, monkeypatch):
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.runtime import launcher

    planned = []
    monkeypatch.setattr(
        PlannedRun, "plan", lambda run, vram_gib=None: planned.append(run.sources.text_encoder_quantize)
    )
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: 0)
    code = cli.main(["run", "-m", str(checkpoint), "-p", "x", "--device", "cpu", "--gpus", "2", "--vram", "4",
                     "--text-encoder-quantize", "q8_0"])  # fmt: skip
    assert code == 0 and set(planned) == {"Q8_0"}, capsys.readouterr().err


def test_each_components_bar_is_named(checkpoint, monkeypatch):
    # Both components quantized in one run draw two bars: each says which it counts.
    from motif_lite.quantize import on_load
    from motif_lite.quantize.on_load import quantize_transformer_tensors

    names = []

    class Bar:
        def __init__(self, total, desc, **kwargs):
            names.append(desc)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            pass

    monkeypatch.setattr(on_load, "tqdm", Bar)
    quantize_text_encoder_tensors(checkpoint, "Q8_0")
    quantize_transformer_tensors(checkpoint, "Q8_0")
    assert names == ["quantize text encoder", "quantize transformer"]


def test_a_recipe_given_as_an_object_is_slow_for_a_k_quant_in_any_of_its_classes():
    # `is_slow_on_cpu` takes the recipe itself too: a K-quant only in a class other than the base still searches.
    from motif_lite.quantize.recipes import Recipe
    from motif_lite.quantize.text_recipes import TextRecipe

    for kquant in range(1, 4):
        types = [Q.Q8_0] * 4
        types[kquant] = Q.Q6_K
        assert is_slow_on_cpu(TextRecipe("mix", *types), TEXT_ENCODER), types
    for kquant in range(1, 5):
        types = [Q.Q8_0] * 5
        types[kquant] = Q.Q4_K
        assert is_slow_on_cpu(Recipe("mix", *types)), types
    assert not is_slow_on_cpu(TextRecipe("round", Q.Q8_0, Q.Q8_0, Q.BF16, Q.F32), TEXT_ENCODER)


def test_the_cpu_time_estimate_counts_the_checkpoints_own_weights(checkpoint):
    # The run's CPU time estimate adds the quantizing as it loads: each component's weights (from the headers at
    # hand) at the rate measured for its recipe's kind (docs/benchmarks.md, "Quantizing as it loads").
    from safetensors import safe_open

    from motif_lite.cli.run_time import quantizing_seconds
    from motif_lite.quantize.on_load import ROUNDING_WEIGHTS_PER_SECOND, SEARCH_WEIGHTS_PER_SECOND

    def weights(file: Path) -> int:
        with safe_open(str(file), framework="pt") as f:
            return sum(f.get_tensor(name).numel() for name in f.keys())  # noqa: SIM118 (safe_open is no dict)

    sources, _ = preflight(checkpoint, None, "cpu", "torch", quantize="Q8_0", text_encoder_quantize="Q4_K_M")
    transformer = weights(checkpoint / "transformer/diffusion_pytorch_model.safetensors")
    text = sum(weights(file) for file in (checkpoint / "text_encoder").glob("*.safetensors"))
    assert quantizing_seconds(sources) == {
        "the transformer to Q8_0": pytest.approx(transformer / ROUNDING_WEIGHTS_PER_SECOND),
        "the text encoder to Q4_K_M": pytest.approx(text / SEARCH_WEIGHTS_PER_SECOND),
    }
    plain, _ = preflight(checkpoint, None, "cpu", "torch")
    assert quantizing_seconds(plain) == {}


def test_an_empty_tensor_is_left_out_of_the_packed_encoder(checkpoint):
    # As a text encoder file's empty tensors are (no model has one): not refused as a tensor the encoder lacks.
    from motif_lite.weights.gguf_file import PackedTensor

    packed = quantize_text_encoder_tensors(checkpoint, "Q8_0", progress=False)
    empty = PackedTensor(data=torch.empty(0, 4), qtype=Q.F32, shape=(0, 4), name="text_model.unused.weight")
    folder = checkpoint / "text_encoder"
    ours = packed_text_encoder({**packed, empty.name: empty}, folder / "config.json", "Q8_0", folder)
    assert ours.tensors.keys() == packed.keys()


def test_the_plan_of_a_scaled_fp8_text_encoder_counts_its_weights_not_their_scales(checkpoint, tmp_path):
    # A checkpoint whose text_encoder/ holds ComfyUI's fp8_scaled copy: the quantizer reads each weight times its
    # scale, and the scales and the marker stored beside them are no tensors of the encoder: the plan counts none.
    from fp8_files import fp8_copy

    from motif_lite.sizes import model_sizes

    scaled = tmp_path / "scaled"
    shutil.copytree(checkpoint, scaled)
    copy, _ = fp8_copy(checkpoint / "text_encoder/model.safetensors", tmp_path, "scaled")
    shutil.move(copy, scaled / "text_encoder/model.safetensors")

    def text_bytes(root):
        sources, _ = preflight(root, None, "cpu", "torch", text_encoder_quantize="Q8_0")
        return model_sizes(sources, torch.float32).text_encoder_bytes

    packed = quantize_text_encoder_tensors(scaled, "Q8_0", progress=False)
    folder = scaled / "text_encoder"
    loaded = load_text_encoder_gguf(packed_text_encoder(packed, folder / "config.json", "Q8_0", folder), torch.float32)
    assert text_bytes(scaled) == text_bytes(checkpoint) == sum(t.nbytes for t in loaded.state_dict().values())


def test_a_gguf_besides_is_refused_before_the_hub_checkpoint_is_fetched(files, no_network):
    with pytest.raises(ConfigError, match="leave out one of them"):
        load_pipeline("Motif-Technologies/Motif-Video-2B", text_encoder_gguf=files["Q8_0"],
                      text_encoder_quantize="Q8_0")  # fmt: skip


def test_the_host_memory_advice_knows_the_text_encoder_is_quantized_already(checkpoint):
    # A --ram too small for the tiny model: a Q8_0 copy of the text encoder is not offered to a run that quantizes it.
    from motif_lite.errors import MotifLiteError
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest

    request = GenerationRequest("a fox", width=48, height=32, frames=9)
    with pytest.raises(MotifLiteError, match="host memory") as refused:
        plan_generation(request, checkpoint, device="cpu", ram_gib=1e-4, text_encoder_quantize="Q8_0")
    assert "--component text_encoder" not in str(refused.value) and "already quantized" in str(refused.value)
