"""`run --quantize TYPE` (quantize/on_load.py): the transformer quantized as it loads is the model the quantizer's
GGUF file of that type loads into, byte for byte, and a run with it makes that file's video. Tiny checkpoint, CPU."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from test_cli import assert_user_error

from motif_lite import cli, load_pipeline
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, ConfigError, DeviceError
from motif_lite.io.latents import read_latents
from motif_lite.preflight import preflight
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.on_load import is_slow_on_cpu, quantize_transformer_tensors
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.weights.gguf_file import read_gguf
from motif_lite.weights.gguf_loader import load_gguf_transformer, load_packed_transformer
from motif_lite.weights.safetensors_header import read_header

RECIPES = ["Q8_0", "Q4_K_M"]


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


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
        assert (packed[name].qtype, packed[name].shape, packed[name].name) == (tensor.qtype, tensor.shape, name), name
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


def test_a_dry_runs_quantizing_estimate_builds_no_transformer_of_its_own(checkpoint, monkeypatch, capsys):
    # The CPU time note's quantizing estimate built the meta transformer once more to count its weights: it counts
    # with the sizes the plan counted, so --quantize builds no more than the dry run without it.
    from motif_lite import sizes

    builds, build = [], sizes.build_model
    monkeypatch.setattr(sizes, "build_model", lambda config: builds.append(config) or build(config))
    run = ["run", "-m", str(checkpoint), "--dry-run", "--device", "cpu", "-W", "48", "-H", "32", "--video-frames", "5"]
    assert cli.main(run) == 0
    without = len(builds)
    builds.clear()
    assert cli.main([*run, "--quantize", "Q8_0"]) == 0
    assert "quantized to Q8_0 as it loads" in capsys.readouterr().out
    assert without >= 1 and len(builds) == without, (without, len(builds))


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
    assert cli.main(["run", "--resume", str(latents), "--quantize", "q8_0", "--dry-run"]) == 0
    assert "the run being resumed had" not in capsys.readouterr().err  # the same recipe, however spelled
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


@pytest.mark.parametrize(
    ("flag", "typed", "said"),
    [
        ("--quantize", "fp8", "unknown quantization type 'fp8'; the nearest recipe is Q8_0, or choose one of: F32, "),
        ("--text-encoder-quantize", "Q4_K_S", "Q4_K_S is a transformer recipe, not one of the text encoder's; the "
         "nearest recipe is Q4_K_M, or choose one of: F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M ("),
    ],
)  # fmt: skip
def test_a_mistyped_type_gets_the_quantizers_suggestion(flag, typed, said, capsys):
    """The run flags read the quantizer's recipe tables, and say what `python -m motif_lite.quantize --type` says."""
    with pytest.raises(SystemExit):
        cli.main(["run", "-p", "x", flag, typed])
    assert f"argument {flag}: {said}" in capsys.readouterr().err


def test_the_k_quants_are_said_to_take_minutes():
    assert is_slow_on_cpu("Q4_K_M") and is_slow_on_cpu("Q6_K") and is_slow_on_cpu("Q3_K_M")
    assert not is_slow_on_cpu("Q8_0") and not is_slow_on_cpu("Q4_0")


def test_an_fp8_copy_is_not_said_to_stay_in_8_bits(checkpoint, tmp_path):
    from fp8_files import fp8_copy

    copy, _ = fp8_copy(checkpoint / "transformer/diffusion_pytorch_model.safetensors", tmp_path, "scaled")
    as_is, _ = preflight(checkpoint, None, "cpu", "torch", weights={"transformer": copy})
    quantized, _ = preflight(checkpoint, None, "cpu", "torch", weights={"transformer": copy}, quantize="Q8_0")
    assert any("stay in 8 bits" in note for note in as_is.notes)  # it does without --quantize
    assert not any("stay in 8 bits" in note for note in quantized.notes), quantized.notes
    assert f"python -m motif_lite.quantize {copy} --type Q8_0" in quantized.notes[-1]


@pytest.mark.parametrize("planned", [False, True])
def test_the_search_runs_on_the_runs_gpu(checkpoint, monkeypatch, planned):
    # --device cuda:1: the K-quants' search on cuda:1 too, not on the current device (cuda:0, maybe another job's).
    from motif_lite.pipeline import recipe as recipe_module

    asked = []

    def quantize(source, recipe, device):
        asked.append(device)
        raise InterruptedError

    monkeypatch.setattr(recipe_module, "quantize_transformer_tensors", quantize)
    sources, _ = preflight(checkpoint, None, "cpu", "torch", quantize="Q4_K_M")
    gpu = torch.device("cuda:1")
    plan = SimpleNamespace(device=gpu) if planned else None  # a plan loads on the CPU, then places the weights
    recipe = recipe_module.TransformerRecipe(sources, torch.float32, "cpu" if planned else gpu, "torch", "exact",
                                             plan, False, None)  # fmt: skip
    with pytest.raises(InterruptedError):
        recipe_module.load_transformer_stage(recipe, [])
    assert asked == [gpu]


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="Linux's /proc")
def test_the_safetensors_are_read_not_memory_mapped(checkpoint):
    # A mapped file's pages count in the process's resident memory until it closes: quantizing a 1.14 GiB slice of
    # the text encoder took the peak RSS from 0.22 to 2.33 GiB, 1.25 GiB with plain reads (docs/benchmarks.md).
    # The shared checkpoint may still be mapped by what an earlier test loaded (a pipeline not yet collected): the
    # file's mappings are counted before the source opens, and reading through it must add none.
    file = (checkpoint / "transformer/diffusion_pytorch_model.safetensors").resolve()

    def mappings() -> int:
        return sum(line.endswith(" " + str(file)) for line in Path("/proc/self/maps").read_text().splitlines())

    gc.collect()
    before = mappings()
    source = open_source(checkpoint)
    try:
        values = {name: source.read(name) for name in source.shapes}
        during = mappings()
    finally:
        source.close()
    assert during == before, (before, during)
    assert all(values[name].shape == shape for name, shape in source.shapes.items())


def test_a_file_cut_short_while_it_quantizes_is_said_not_a_traceback(checkpoint, tmp_path):
    # Checked whole when it opened, then cut (a copy or a sync that rewrote it meanwhile): the read names the tensor.
    file = tmp_path / "transformer.safetensors"
    file.write_bytes((checkpoint / "transformer/diffusion_pytorch_model.safetensors").read_bytes())
    tensors = read_header(file).tensors
    last = max(tensors, key=lambda name: tensors[name].offset)  # its bytes end the file
    source = open_source(file)
    try:
        os.truncate(file, file.stat().st_size - 1000)
        with pytest.raises(CheckpointError, match=f"cannot read tensor '{last}' from {file}: the file ends at byte"):
            source.read(last)
    finally:
        source.close()


def test_a_nan_in_the_weights_is_refused_naming_the_tensor(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(checkpoint / "transformer/diffusion_pytorch_model.safetensors")
    broken = next(name for name, t in state.items() if t.ndim == 2)
    state[broken] = state[broken].clone()
    state[broken][0, 0] = float("nan")
    save_file(state, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match=f"tensor '{broken}' contains NaN or infinite values"):
        quantize_transformer_tensors(tmp_path / "broken.safetensors", "Q8_0", progress=False)


def test_the_progress_counts_every_weight(checkpoint, monkeypatch):
    from motif_lite.quantize import on_load

    bars = []

    class Bar:
        def __init__(self, total, disable, **kwargs):
            self.total, self.disable, self.n = total, disable, 0
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            self.n += n

    monkeypatch.setattr(on_load, "tqdm", Bar)
    quantize_transformer_tensors(checkpoint, "Q8_0")
    quantize_transformer_tensors(checkpoint, "Q8_0", progress=False)
    assert [bar.disable for bar in bars] == [False, True] and bars[0].n == bars[0].total > 10**5


def test_the_note_names_the_recipe_as_the_quantizer_does(checkpoint):
    # From Python the type comes as given ("q4_k"), not as --quantize's argparse type made it.
    sources, _ = preflight(checkpoint, None, "cpu", "torch", quantize="q4_k")
    assert sources.quantize == "Q4_K_M"
    assert sources.notes[-1] == (
        "the transformer is quantized to Q4_K_M as it loads, in every run (its K-quants' search: minutes on a CPU; a "
        f"GPU run searches on the GPU); to do it once: python -m motif_lite.quantize {checkpoint} --type Q4_K_M -o "
        "transformer-Q4_K_M.gguf, then --gguf transformer-Q4_K_M.gguf"
    )
    note = preflight(checkpoint, None, "cpu", "torch", quantize="q8_0")[0].notes[-1]
    assert "in every run (about a minute on a CPU);" in note


def test_the_notes_quantizer_command_quotes_a_checkpoint_path_with_a_space(checkpoint, tmp_path):
    # The command is pasted: unquoted, "my models" became two arguments.
    spaced = tmp_path / "my models" / "checkpoint"
    spaced.parent.mkdir()
    spaced.symlink_to(checkpoint, target_is_directory=True)
    sources, _ = preflight(spaced, None, "cpu", "torch", quantize="q8_0", text_encoder_quantize="q8_0")
    notes = [note for note in sources.notes if "to do it once" in note]
    assert len(notes) == 2 and all(f"python -m motif_lite.quantize '{spaced}' " in note for note in notes), notes


def test_a_gguf_files_size_is_counted_from_its_header_as_gguf_py_counts_it(checkpoint, files, monkeypatch):
    # model_sizes opened the file with gguf-py's reader (a view of every tensor) only to count its bytes.
    import gguf

    from motif_lite.sizes import model_sizes
    from motif_lite.weights.gguf_file import tensor_bytes

    for recipe in RECIPES:  # Q4_K_M: K-quants, Q8_0 and float tensors in one file
        sources, _ = preflight(checkpoint, files[recipe], "cpu", "torch")
        counted = read_gguf(files[recipe]).nbytes()
        with monkeypatch.context() as reader_gone:
            reader_gone.setattr(gguf, "GGUFReader", lambda *args, **kwargs: pytest.fail("the whole file was read"))
            assert tensor_bytes(files[recipe]) == counted == model_sizes(sources, torch.float32).transformer_bytes


def test_the_plan_counts_the_recipes_size(checkpoint, files):
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest
    from motif_lite.sizes import model_sizes

    for recipe in RECIPES:  # the packed bytes of the file that recipe makes
        sources, _ = preflight(checkpoint, None, "cpu", "torch", quantize=recipe)
        assert model_sizes(sources, torch.float32).transformer_bytes == read_gguf(files[recipe]).nbytes()
    request = GenerationRequest(prompt="x", width=48, height=32, frames=5)
    plan = lambda model, **kw: plan_generation(request, model, dtype=torch.float32, device="cpu", **kw).stages  # noqa: E731
    assert plan(checkpoint, quantize="q8_0") == plan(preflight(checkpoint, None, "cpu", "torch", quantize="Q8_0")[0])
    assert plan(checkpoint, quantize="q8_0") != plan(checkpoint)


def test_packed_tensors_are_checked_and_loaded_in_the_runs_dtype(checkpoint, files):
    config = TransformerConfig.from_json(checkpoint / "transformer/config.json")
    packed = quantize_transformer_tensors(checkpoint, "Q8_0", progress=False)
    ours = load_packed_transformer(packed, config, torch.bfloat16).state_dict()
    theirs = load_gguf_transformer(files["Q8_0"], torch.bfloat16, config=config).state_dict()
    assert torch.bfloat16 in {t.dtype for t in ours.values()}
    assert all(ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]) for k in ours)
    dropped = next(name for name in packed if name.endswith(".weight"))
    with pytest.raises(CheckpointError, match="mine"):
        load_packed_transformer({k: t for k, t in packed.items() if k != dropped}, config, source="mine")
    with pytest.raises(DeviceError):  # before anything is built
        load_packed_transformer(packed, config, device="cuda:99")


def test_the_pipeline_quantized_as_it_loads_computes_in_its_dtype(checkpoint):
    pipe = load_pipeline(checkpoint, quantize="Q8_0", device="cpu", dtype=torch.bfloat16, kernels="torch")
    floats = {t.dtype for t in pipe.transformer.state_dict().values() if t.is_floating_point()}
    assert floats == {torch.bfloat16}


def test_a_gguf_variant_with_quantize_is_refused_before_any_download(checkpoint, no_network, capsys):
    code = cli.main(["run", "-m", str(checkpoint), "-p", "x", "--quantize", "Q8_0", "--gguf", "Q4_K_M"])
    assert_user_error(capsys, code, "--quantize Q8_0 quantizes the transformer's safetensors as they load, and --gguf "
                                    "Q4_K_M gives weights quantized already")  # fmt: skip


def test_a_parallel_run_is_planned_quantized_before_it_starts(checkpoint, capsys, monkeypatch):
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.runtime import launcher

    planned = []
    monkeypatch.setattr(PlannedRun, "plan", lambda run, vram_gib=None: planned.append(run.sources.quantize))
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: 0)
    code = cli.main(["run", "-m", str(checkpoint), "-p", "x", "--device", "cpu", "--gpus", "2", "--vram", "4",
                     "--quantize", "q8_0"])  # fmt: skip
    assert code == 0 and planned == ["Q8_0"], capsys.readouterr().err


def test_a_parallel_run_says_each_process_quantizes(checkpoint, capsys):
    # --gpus N: every rank quantizes the transformer itself (docs/parallel.md says why it is not done once for all):
    # the cost is said, with the way to pay it once (a file, as --gguf).
    args = ["run", "-m", str(checkpoint), "-p", "x", "--device", "cpu", "--gpus", "2", "--dry-run"]
    assert cli.main([*args, "--quantize", "q8_0"]) == 0
    err = capsys.readouterr().err
    assert "note: --quantize on several processes: each one quantizes the transformer to Q8_0 itself" in err
    assert "a file made once, given as --gguf, is read by all of them from one copy in the page cache" in err
    assert cli.main(args) == 0 and "--quantize on several" not in capsys.readouterr().err
    one = [arg for arg in args if arg not in ("--gpus", "2")]  # one process quantizes once: no such note
    assert cli.main([*one, "--quantize", "q8_0"]) == 0 and "--quantize on several" not in capsys.readouterr().err


def test_a_checkpoint_in_the_original_layout_loads_in_it(tmp_path):
    # The layout comes from the tensors' names, as a GGUF file's does: the config.json says nothing of it.
    from tiny_transformer import make_reference, save_shared_layout, tie_cross_attention_to_block

    reference = make_reference(enable_text_cross_attention_dual=True, enable_text_cross_attention_single=False)
    tie_cross_attention_to_block(reference)
    blocks = [f"transformer_blocks.{i}" for i, b in enumerate(reference.transformer_blocks) if b.cross_attn]
    root = save_shared_layout(reference, tmp_path, "original", {b: (torch.ones(64), torch.zeros(64)) for b in blocks})
    config = TransformerConfig.from_json(root / "transformer/config.json")
    model = load_packed_transformer(quantize_transformer_tensors(root, "Q8_0", progress=False), config)
    assert model.config.cross_attention_layout == "original"


def test_each_slice_of_rows_reads_the_values_safetensors_gives(tmp_path):
    # The plain reads compute each slice's offset and size from the header: checked against safetensors' own reads
    # for every dtype, a scalar and a vector (which the quantizer reads with slice(None)), empty and clipped slices.
    from safetensors import safe_open
    from safetensors.torch import save_file

    from motif_lite.quantize.sources import SafetensorsSource

    torch.manual_seed(0)
    tensors = {
        "matrix.bf16": torch.randn(7, 5).bfloat16(),
        "matrix.f16": torch.randn(6, 3).half(),
        "cube.f32": torch.randn(5, 2, 3),
        "matrix.fp8": torch.randn(4, 8).to(torch.float8_e4m3fn),
        "vector.f32": torch.randn(9),
        "scalar.f32": torch.tensor(3.5),
        "steps.i64": torch.arange(4),
    }
    save_file(tensors, tmp_path / "t.safetensors")
    source = SafetensorsSource([tmp_path / "t.safetensors"], None)
    try:
        with safe_open(tmp_path / "t.safetensors", framework="pt") as reference:
            for name, tensor in tensors.items():
                if not tensor.is_floating_point():
                    with pytest.raises(CheckpointError, match=f"'{name}' has dtype I64; only float tensors can be"):
                        source.read(name)
                    continue
                assert torch.equal(source.read(name), tensor.float()), name
                rows = (
                    [slice(None)]
                    if tensor.ndim == 0
                    else [slice(None), slice(1, 3), slice(2, 100), slice(3, 3), slice(4, 2)]
                )
                for part in rows:
                    expected = reference.get_tensor(name) if tensor.ndim == 0 else reference.get_slice(name)[part]
                    assert torch.equal(source.read(name, part), expected.float()), (name, part)
        with pytest.raises(ValueError, match="rows must be contiguous"):
            source.read("matrix.f16", slice(0, 6, 2))
    finally:
        source.close()


def test_a_file_cut_short_by_one_byte_while_it_quantizes_is_said_too(checkpoint, tmp_path):
    # One byte short, the last read comes back one byte short and the next finds the end: not a tensor read whole.
    file = tmp_path / "transformer.safetensors"
    file.write_bytes((checkpoint / "transformer/diffusion_pytorch_model.safetensors").read_bytes())
    tensors = read_header(file).tensors
    last = max(tensors, key=lambda name: tensors[name].offset)
    source = open_source(file)
    try:
        os.truncate(file, file.stat().st_size - 1)
        with pytest.raises(CheckpointError, match=f"cannot read tensor '{last}' from {file}: the file ends at byte"):
            source.read(last)
    finally:
        source.close()


def test_a_single_file_checkpoint_with_one_other_tensor_names_it_in_the_singular(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = load_file(checkpoint / "transformer" / "diffusion_pytorch_model.safetensors")
    single = {f"model.diffusion_model.{name}": t for name, t in tensors.items()}
    save_file({**single, "first_stage_model.scale": torch.ones(1)}, tmp_path / "all_in_one.safetensors")
    source = open_source(tmp_path / "all_in_one.safetensors")
    try:
        assert source.notes[-1].endswith("the rest is left out: 1 tensor under 'first_stage_model.' (the VAE)"), (
            source.notes
        )
    finally:
        source.close()
