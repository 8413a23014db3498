"""The memory plan counts the LoRA adapters kept beside packed (GGUF) linears, where they live: with their block,
resident or streamed; a LoRA merged into float weights adds nothing; LoHa and LoKr factors count as kept."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tiny_pipeline import make_tiny_checkpoint
from torch import nn

from motif_lite.config import TransformerConfig
from motif_lite.memory_plan import packed_adapter_macs, plan_generation
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.preflight import check_loras, locate_sources
from motif_lite.quantize.convert import quantize_checkpoint
from motif_lite.quantize.recipes import get_recipe
from motif_lite.quantize.sources import open_source
from motif_lite.request import GenerationRequest
from motif_lite.runtime.activation_memory import TEXT_TOKENS, adapter_temporary_bytes
from motif_lite.runtime.generation_sizes import generation_sizes
from motif_lite.runtime.planner import GiB, PlannerInputs, plan_memory
from motif_lite.vae.config import WanVAEConfig
from motif_lite.weights.lora import linear_shapes
from motif_lite.weights.lora_apply import SideAdapters, side_adapter_bytes, side_adapter_temporary_bytes
from motif_lite.weights.lora_specs import LoRASpec
from motif_lite.weights.shapes import build_model

RANK = 8
REQUEST = GenerationRequest("a fox", width=48, height=32, frames=9, steps=2, seed=0)


def write_lora(path, shapes: dict[str, tuple[int, int]], modules: list[str]) -> None:
    """A kohya-style LoRA of rank RANK on `modules` (random, float32)."""
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name in modules:
        out_features, in_features = shapes[name]
        tensors[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(RANK, in_features, generator=g)
        tensors[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(out_features, RANK, generator=g)
    save_file(tensors, path)


def lora_bytes(path, dtype: torch.dtype, prefix: str = "") -> int:
    """The adapter bytes, from the file's own tensors (those of modules under `prefix`): down and up in `dtype`, and
    a float32 scale per rank (each down's rows)."""
    with safe_open(str(path), "pt") as f:
        names = [k for k in f.keys() if k.startswith(f"diffusion_model.{prefix}")]  # noqa: SIM118
        shapes = {k: f.get_slice(k).get_shape() for k in names}
    weights = sum(rows * columns for rows, columns in shapes.values()) * dtype.itemsize
    scales = sum(shape[0] for k, shape in shapes.items() if k.endswith("lora_down.weight")) * 4
    return weights + scales


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny checkpoint, its transformer as a Q8_0 GGUF, and a LoRA on block and non-block linears."""
    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoint(root)
    gguf = tmp_path_factory.mktemp("gguf") / "tiny-Q8_0.gguf"
    quantize_checkpoint(open_source(root / "transformer"), gguf, get_recipe("Q8_0"), progress=False)
    config = locate_sources(root).transformer.value
    shapes = linear_shapes(build_model(config))
    modules = [n for n in shapes if n.startswith(("transformer_blocks.0.", "single_transformer_blocks.1."))]
    modules += [n for n in shapes if not n.startswith(("transformer_blocks.", "single_transformer_blocks."))][:2]
    lora = tmp_path_factory.mktemp("lora") / "style.safetensors"
    write_lora(lora, shapes, modules)
    return root, gguf, lora


def resident_weights(plan) -> int:
    return next(s.weight_bytes for s in plan.stages if s.name == "decode")


def test_a_plan_on_gguf_weights_counts_the_adapters_bytes(checkpoint):
    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    loras = check_loras([LoRASpec(lora, 0.8)], sources)
    dtype = torch.bfloat16
    without = plan_generation(REQUEST, sources, dtype=dtype, device="cpu")
    with_lora = plan_generation(REQUEST, sources, dtype=dtype, device="cpu", loras=loras)
    assert with_lora.resident_blocks is None  # everything resident on the CPU without a budget
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, dtype) > 0


def test_the_plans_denoise_activations_count_the_temporaries_of_the_adapters_beside_gguf_linears(checkpoint):
    # An adapter's update and the sum it is added into live beside its layer's output (measured against a real
    # forward in tests/test_lora_packed.py): the denoise stage's activations count the largest layer's, at the rows
    # that layer's calls take, with the rows the plan runs per forward.
    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    loras = check_loras([LoRASpec(lora, 0.8)], sources)
    dtype = torch.bfloat16
    plans = [plan_generation(REQUEST, sources, dtype=dtype, device="cpu", loras=files) for files in ([], loras)]
    without, with_lora = (next(s.activation_bytes for s in plan.stages if s.name == "denoise") for plan in plans)
    token_bytes = side_adapter_temporary_bytes(loras, dtype)  # every adapted linear is packed here
    tokens = plans[1].video_tokens
    counted = adapter_temporary_bytes(token_bytes, tokens, plans[1].token_chunk, plans[1].cfg_batch)
    assert with_lora - without == counted > 0


OFFICIAL = TransformerConfig()
Q4_K_M = int(1.13e9)  # the official transformer as a Q4_K_M GGUF
TEXT_ENCODER = int(8.6e9)  # the official text encoder in bf16


def rank_8_on_every_block_linear(dtype: torch.dtype) -> dict[str, SideAdapters]:
    """What a rank-8 LoRA on every linear of the official transformer's blocks keeps beside each (all packed), from
    a meta-device build: the planner needs no weights."""
    with torch.device("meta"):
        model = MotifVideoTransformer(OFFICIAL)
    return {
        name: SideAdapters((layer.out_features, layer.in_features), rank=8)
        for name, layer in model.named_modules()
        if isinstance(layer, nn.Linear) and name.startswith(("transformer_blocks.", "single_transformer_blocks."))
    }


def official_plan(adapters: dict[str, SideAdapters] | None, budget_gib: float | None, cfg_batch: int = 1, **options):
    dtype = torch.bfloat16
    inputs = PlannerInputs(
        1280, 704, 121, OFFICIAL, Q4_K_M, TEXT_ENCODER, WanVAEConfig(), cfg_batch, vae_dtype=dtype, fused_norms=True,
        adapter_bytes={m: a.tensor_bytes(dtype) for m, a in adapters.items()} if adapters else None,
        adapter_token_bytes={m: a.temporary_bytes_per_token(dtype) for m, a in adapters.items()} if adapters else None,
    )  # fmt: skip
    return plan_memory(inputs, None if budget_gib is None else int(budget_gib * GiB), **options)


def denoise_activations(plan) -> int:
    return next(s.activation_bytes for s in plan.stages if s.name == "denoise")


def test_the_adapters_temporaries_count_each_layer_at_the_rows_it_runs_on():
    # The widest adapted layers, the modulations (out 9216), run on one row per sample; in token pieces the MLPs
    # run on a piece, and only the narrow output projections on a whole stream. Counting the widest layer at the
    # most rows any call takes made an 8 GiB plan of the official video stream every block for a rank-8 LoRA.
    adapters = rank_8_on_every_block_linear(torch.bfloat16)
    without, with_lora = official_plan(None, 8), official_plan(adapters, 8)
    assert without.resident_blocks is None and without.token_chunk  # every block resident, in token pieces
    assert with_lora.token_chunk == without.token_chunk
    chunk, tokens, context = with_lora.token_chunk, with_lora.video_tokens, TEXT_TOKENS

    def rows(module: str) -> int:  # from the model code: blocks.py, attention.py, runtime/chunking.py
        layer = module.split(".", 2)[2]
        if layer.startswith("norm"):
            return 1
        if layer.startswith(("attn.to_out.", "attn.to_add_out")) and module.startswith("transformer_blocks."):
            return max(tokens, context)
        return max(min(chunk, tokens), TEXT_TOKENS)

    largest = max(a.temporary_bytes_per_token(torch.bfloat16) * rows(m) for m, a in adapters.items())
    grown = denoise_activations(with_lora) - denoise_activations(without)
    assert largest <= grown <= 2 * largest
    assert with_lora.resident_blocks is None  # the few MiB of adapters and their temporaries fit beside them


def test_the_adapters_temporaries_grow_with_the_rows_per_forward_and_shrink_with_sequence_parallel_ranks():
    adapters = rank_8_on_every_block_linear(torch.bfloat16)

    def grown(**options) -> tuple[int, int | None]:
        plans = [official_plan(files, None, **options) for files in (None, adapters)]
        assert plans[0].token_chunk == plans[1].token_chunk
        return denoise_activations(plans[1]) - denoise_activations(plans[0]), plans[1].token_chunk

    one_row, chunk = grown()
    assert one_row > 0
    assert grown(cfg_batch=2) == (2 * one_row, chunk)  # the guidance predictions batched: twice the rows per call
    # Two ranks share the video tokens: each runs half of every video and single-stream call (N even here).
    assert grown(sequence_parallel=2) == (one_row // 2, chunk)


def test_a_lora_merged_into_float_weights_adds_nothing_to_the_plan(checkpoint):
    root, _, lora = checkpoint
    sources = locate_sources(root)
    loras = check_loras([LoRASpec(lora, 0.8)], sources)
    without = plan_generation(REQUEST, sources, dtype=torch.bfloat16, device="cpu")
    with_lora = plan_generation(REQUEST, sources, dtype=torch.bfloat16, device="cpu", loras=loras)
    assert resident_weights(with_lora) == resident_weights(without)


def test_the_adapters_count_with_their_block(checkpoint):
    # Streamed blocks carry their adapters (buffers of the block): each block's bytes grow by its own adapters'.
    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    config: TransformerConfig = sources.transformer.value
    dtype = torch.bfloat16
    adapters = side_adapter_bytes(check_loras([LoRASpec(lora, 1.0)], sources), dtype)
    args = (48, 32, 9, config, 10**6, 0, WanVAEConfig(), dtype, False, dtype)
    plain, with_lora = generation_sizes(*args), generation_sizes(*args, adapter_bytes=adapters)
    grown = [b - a for a, b in zip(plain.block_bytes, with_lora.block_bytes, strict=True)]
    assert grown[0] == lora_bytes(lora, dtype, "transformer_blocks.0.") > 0
    assert grown[config.num_layers + 1] == lora_bytes(lora, dtype, "single_transformer_blocks.1.") > 0
    assert sum(grown) == grown[0] + grown[config.num_layers + 1]
    outside = lora_bytes(lora, dtype) - sum(grown)
    assert with_lora.non_block_bytes - plain.non_block_bytes == outside > 0
    assert all(b >= a for a, b in zip(plain.block_pinned_bytes, with_lora.block_pinned_bytes, strict=True))


def test_the_plan_a_run_keeps_for_its_advice_counts_the_adapters_too(checkpoint):
    # PlannedRun plans again when a run runs out of memory: with the run's LoRAs, as its first plan.
    from motif_lite.memory_advice import PlannedRun

    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    loras = tuple(check_loras([LoRASpec(lora, 0.8)], sources))
    without = PlannedRun(REQUEST, sources, torch.bfloat16, "cpu").plan()
    with_lora = PlannedRun(REQUEST, sources, torch.bfloat16, "cpu", loras=loras).plan()
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, torch.bfloat16)


SERVE_FLAGS = ("--device", "cpu", "--dtype", "fp32", "--kernels", "torch", "--vram", "4")


def command_args(*words: str):
    """The parsed flags of a `motif-lite` command, with its weight flags taken as the CLI takes them."""
    from motif_lite import cli
    from motif_lite.cli.run_flags import take_weight_flags

    args = cli.build_parser().parse_args(list(words))
    args.weights = take_weight_flags(args)
    return args


def test_serve_plans_its_lora_files_at_start(checkpoint):
    from motif_lite.cli.serve_loading import load_served_pipeline
    from motif_lite.server.app import ServerConfig

    root, gguf, lora = checkpoint
    args = command_args("serve", "-m", str(root), "--gguf", str(gguf), *SERVE_FLAGS, "--max-video", "48x32x9")
    config = ServerConfig("tiny", max_video=args.max_video)
    _, without = load_served_pipeline(args, config, [])
    _, with_lora = load_served_pipeline(args, config, [(lora, 0.8)])
    grown = resident_weights(with_lora.plan) - resident_weights(without.plan)
    assert grown == lora_bytes(lora, torch.float32) > 0


def test_a_parallel_runs_plan_before_launch_counts_the_lora_files(checkpoint):
    from motif_lite.cli.launch import _plan_before_launch
    from motif_lite.runtime.parallel import ParallelLayout

    root, gguf, lora = checkpoint
    words = ("run", "-m", str(root), "--gguf", str(gguf), *SERVE_FLAGS, "-p", "a fox")
    layout = ParallelLayout(cfg=1, sp=2)
    [without] = _plan_before_launch(command_args(*words), REQUEST, layout)
    [with_lora] = _plan_before_launch(command_args(*words, "--lora", f"{lora}:0.8"), REQUEST, layout)
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, torch.float32) > 0


def test_the_plan_before_a_download_counts_the_lora_files(checkpoint):
    from motif_lite.cli.prepare import refuse_what_no_plan_fits

    root, gguf, lora = checkpoint
    words = ("run", "-m", str(root), "--gguf", str(gguf), *SERVE_FLAGS, "-p", "a fox")
    without = refuse_what_no_plan_fits(command_args(*words), REQUEST, "cpu")
    with_lora = refuse_what_no_plan_fits(command_args(*words, "--lora", str(lora)), REQUEST, "cpu")
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, torch.float32) > 0


def test_a_server_job_whose_loras_do_not_fit_the_loaded_plan_is_refused(checkpoint):
    # The server loads once with one placement; a job's LoRAs load the transformer again with that same plan.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError

    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    files = check_loras([LoRASpec(lora, 0.8)], sources)
    dtype = torch.float32
    unplanned = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=1e6).plan()
    tight = unplanned.peak_bytes / 2**30  # the whole model resident, not a byte to spare
    planned = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=tight)
    plan = planned.plan()
    assert plan.ladder_index == unplanned.ladder_index
    check_loras_fit_plan([], planned, plan)  # no LoRAs: the plan as loaded
    with pytest.raises(ApiError) as refused:
        check_loras_fit_plan(files, planned, plan)
    assert refused.value.status == 400 and "no room" in refused.value.message, refused.value.message
    with_files = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=1e6, loras=tuple(files)).plan()
    roomy = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=with_files.peak_bytes / 2**30)
    check_loras_fit_plan(files, roomy, roomy.plan())  # room for the adapters: the same placement, taken


def test_a_server_job_with_smaller_adapters_than_the_servers_own_loras_is_taken(checkpoint, tmp_path):
    # A plan made again with a job's smaller LoRA finds a faster placement than the one loaded for the server's
    # larger --lora; the check once asked for the same placement and refused the job as if it had no room.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan

    root, gguf, _ = checkpoint
    sources = locate_sources(root, gguf)
    shapes = linear_shapes(build_model(sources.transformer.value))
    blocks = [n for n in shapes if n.startswith(("transformer_blocks.", "single_transformer_blocks."))]
    write_lora(tmp_path / "big.safetensors", shapes, blocks)  # the server's --lora: every block linear
    write_lora(tmp_path / "small.safetensors", shapes, blocks[:1])  # the job's: one linear
    big = check_loras([LoRASpec(tmp_path / "big.safetensors")], sources)
    small = check_loras([LoRASpec(tmp_path / "small.safetensors")], sources)
    fastest_small = PlannedRun(REQUEST, sources, torch.float32, "cpu", vram_gib=1e6, loras=tuple(small)).plan()
    served = PlannedRun(
        REQUEST, sources, torch.float32, "cpu", vram_gib=fastest_small.peak_bytes / 2**30, loras=tuple(big)
    )
    plan = served.plan()
    assert plan.ladder_index > fastest_small.ladder_index  # the big LoRA's plan is a slower one
    check_loras_fit_plan(small, served, plan)


def test_a_lora_on_a_linear_the_gguf_keeps_in_f16_merges_and_adds_nothing(checkpoint, tmp_path):
    # The tiny Q8_0 file keeps the image embedder's linears in F16 (checked below from the file): they load as float
    # layers, which merge the LoRA; only the block layer's adapter stays beside its packed weight.
    from motif_lite.weights.gguf_file import read_gguf
    from motif_lite.weights.gguf_loader import model_tensors

    root, gguf, _ = checkpoint
    sources = locate_sources(root, gguf)
    tensors, _ = model_tensors(read_gguf(gguf))
    shapes = linear_shapes(build_model(sources.transformer.value))
    kept_float = [n for n in shapes if not tensors[f"{n}.weight"].is_quantized]
    packed = [n for n in shapes if n.startswith("transformer_blocks.0.")][:1]
    assert kept_float and tensors[f"{packed[0]}.weight"].is_quantized
    lora = tmp_path / "mixed.safetensors"
    write_lora(lora, shapes, packed + kept_float)
    dtype = torch.bfloat16
    loras = check_loras([LoRASpec(lora, 0.8)], sources)
    without = plan_generation(REQUEST, sources, dtype=dtype, device="cpu")
    with_lora = plan_generation(REQUEST, sources, dtype=dtype, device="cpu", loras=loras)
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, dtype, packed[0]) > 0
    # and `run` takes a full difference of such a layer (load_pipeline applies it), not only of a file's every layer
    from motif_lite.cli.prepare import checked_lora_files

    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{kept_float[0]}.diff": torch.randn(*shapes[kept_float[0]])}, diff)
    assert checked_lora_files([(diff, 1.0)], sources)


def test_the_weights_that_load_packed_are_the_quantized_ones_of_the_file_or_recipe(checkpoint, tmp_path):
    # `run` once took every linear of any GGUF or --quantize run as packed: a full difference (.diff) on an F16
    # GGUF's plain layer was refused though load_pipeline applies it, and the plan counted adapters for LoRAs that
    # merge. Which weights load packed is now the file's (its header) or the recipe's (what it would write).
    from motif_lite.cli.prepare import checked_lora_files
    from motif_lite.quantize_settings import with_quantize
    from motif_lite.sizes import packed_weight_names
    from motif_lite.weights.lora_errors import LoRAError

    root, q8, _ = checkpoint
    f16 = tmp_path / "tiny-F16.gguf"
    quantize_checkpoint(open_source(root / "transformer"), f16, get_recipe("F16"), progress=False)
    plain = locate_sources(root)
    q8_names = packed_weight_names(locate_sources(root, q8))
    assert q8_names and packed_weight_names(plain) == packed_weight_names(locate_sources(root, f16)) == frozenset()
    assert packed_weight_names(with_quantize(plain, "F16")) == frozenset()
    assert packed_weight_names(with_quantize(plain, "Q8_0")) == q8_names  # the recipe's plan is the file it writes
    # an official variant not at hand yet (the plan before its download): the plan of its recipe
    assert packed_weight_names(dataclasses.replace(plain, gguf_request="Q8_0")) == q8_names

    linear = next(n for n in sorted(q8_names) if n.startswith("transformer_blocks.0."))
    shape = build_model(plain.transformer.value).get_parameter(linear).shape
    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{linear.removesuffix('.weight')}.diff": torch.randn(*shape)}, diff)
    assert checked_lora_files([(diff, 1.0)], locate_sources(root, f16))  # a plain layer takes the difference
    assert checked_lora_files([(diff, 1.0)], with_quantize(plain, "BF16"))
    # each refusal names what packs the weight, and its own way out, as `run` and Python each give it
    without_gguf = r"leave out --gguf \(in Python gguf=None\)"
    refusals = [
        (locate_sources(root, q8), f"which the GGUF file {q8.name} holds quantized: .*; {without_gguf}"),
        (
            with_quantize(plain, "Q8_0"),
            r"which --quantize Q8_0 packs .*; leave out --quantize \(in Python quantize=None",
        ),
        (dataclasses.replace(plain, gguf_request="Q8_0"), f"which a Q8_0 GGUF holds quantized: our .*; {without_gguf}"),
    ]
    for packed, said in refusals:
        with pytest.raises(LoRAError, match=said):
            checked_lora_files([(diff, 1.0)], packed)


def test_a_server_jobs_full_difference_of_a_packed_weight_is_refused_in_the_clients_words(checkpoint, tmp_path):
    # The refusal's way out was the flags the server was started with ("leave out --gguf"), which a client sending
    # a job cannot change: a client is told to send another LoRA, and what packs the weight, without the folder.
    from types import SimpleNamespace

    from motif_lite.quantize_settings import with_quantize
    from motif_lite.server.loras import check_loras_fit
    from motif_lite.server.schema import ApiError
    from motif_lite.sizes import packed_weight_names

    root, q8, _ = checkpoint
    linear = next(n for n in sorted(packed_weight_names(locate_sources(root, q8))) if n.startswith("transformer_"))
    shape = build_model(locate_sources(root).transformer.value).get_parameter(linear).shape
    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{linear.removesuffix('.weight')}.diff": torch.randn(*shape)}, diff)
    served = {
        f"which the GGUF file {q8.name} holds quantized": locate_sources(root, q8),
        "which --quantize Q8_0 packs as it loads": with_quantize(locate_sources(root), "Q8_0"),
    }
    for what, sources in served.items():
        with pytest.raises(ApiError) as refused:
            check_loras_fit(SimpleNamespace(sources=sources), [(diff, 1.0)], tmp_path)
        said = refused.value.message
        assert refused.value.status == 400 and said.startswith("diff.safetensors: its full difference "), said
        assert f"{what}: a full difference applies to plain tensors only; send a LoRA without full" in said, said
        assert "leave out" not in said, said


def test_two_loras_on_one_packed_layer_count_as_one_adapter_of_their_summed_rank(checkpoint, tmp_path):
    # apply_loras keeps one adapter per packed layer, its files' ranks concatenated: the plan counts both files'
    # tensors, not the last file's alone.
    root, gguf, lora = checkpoint
    config = locate_sources(root).transformer.value
    shapes = linear_shapes(build_model(config))
    second = tmp_path / "detail.safetensors"
    write_lora(second, shapes, [n for n in shapes if n.startswith("transformer_blocks.0.")])
    files = check_loras([LoRASpec(lora, 1.0), LoRASpec(second, 0.5)], locate_sources(root, gguf))
    dtype = torch.bfloat16
    adapters = side_adapter_bytes(files, dtype)
    assert sum(sum(pair) for pair in adapters.values()) == lora_bytes(lora, dtype) + lora_bytes(second, dtype)


def test_a_plan_on_an_fp8_file_counts_the_adapters_beside_its_8_bit_linears(checkpoint, tmp_path):
    # A ComfyUI fp8 file keeps its linear weights in 8 bits (Float8Linear): a LoRA's adapter stays beside each, as
    # on a GGUF. The rule for which weights load packed once left fp8 files out, planning no adapter bytes there.
    from fp8_files import fp8_copy

    from motif_lite.sizes import packed_weight_names

    root, _, lora = checkpoint
    fp8, _ = fp8_copy(root / "transformer/diffusion_pytorch_model.safetensors", tmp_path, "e4m3")
    sources = locate_sources(root, weights={"transformer": fp8}, download=False)
    linears = linear_shapes(build_model(sources.transformer.value))
    assert packed_weight_names(sources) == {f"{name}.weight" for name in linears}
    # the same file as ComfyUI saves it, under its "model.diffusion_model." prefix: the names motif-lite reads
    folder = tmp_path / "prefixed"
    folder.mkdir()
    with safe_open(fp8, "pt") as stored:
        prefixed = {f"model.diffusion_model.{name}": stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118
    save_file(prefixed, folder / fp8.name)
    in_comfy_names = locate_sources(root, weights={"transformer": folder / fp8.name}, download=False)
    assert packed_weight_names(in_comfy_names) == packed_weight_names(sources)
    dtype = torch.bfloat16
    loras = check_loras([LoRASpec(lora, 0.8)], sources)
    without = plan_generation(REQUEST, sources, dtype=dtype, device="cpu")
    with_lora = plan_generation(REQUEST, sources, dtype=dtype, device="cpu", loras=loras)
    assert resident_weights(with_lora) - resident_weights(without) == lora_bytes(lora, dtype) > 0
    # and `run` refuses a full difference on one of them before loading, as on a GGUF's packed weight
    from motif_lite.cli.prepare import checked_lora_files
    from motif_lite.weights.lora_errors import LoRAError

    linear = next(iter(sorted(linears)))
    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{linear}.diff": torch.randn(*linears[linear])}, diff)
    with pytest.raises(LoRAError, match="which the fp8 transformer file keeps in 8 bits: .*; use a bf16 or fp16"):
        checked_lora_files([(diff, 1.0)], sources)


def test_a_queued_job_whose_loras_a_restarted_servers_plan_has_no_room_for_fails_before_anything_loads(
    checkpoint, tmp_path
):
    # A job's LoRAs were checked against the memory plan only at submission: restarted with a tighter plan, the
    # server took the queued job and loaded the transformer again with adapters that plan has no room for.
    from motif_lite import load_pipeline
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.app import ServerConfig
    from motif_lite.server.job_record import FAILED, new_job_id
    from motif_lite.server.jobs import JobStore
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError, job_request_fields
    from motif_lite.server.worker import NO_LONGER_FITS, Worker

    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    dtype = torch.float32
    files = check_loras([LoRASpec(lora, 0.8)], sources)
    tight = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=1e6).plan().peak_bytes / 2**30  # no byte to spare
    planned = PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=tight)
    plan = planned.plan()
    with pytest.raises(ApiError) as refused:  # what a submission to the restarted server is told
        check_loras_fit_plan(files, planned, plan)
    config = ServerConfig("tiny", lora_dir=lora.parent, planned=planned, plan=plan)
    pipe = load_pipeline(root, gguf, dtype=dtype, device="cpu", kernels="torch")
    store = JobStore(tmp_path / "data")
    try:
        log: list[str] = []
        worker = Worker(store, pipe, log.append, lora_dir=lora.parent, planned=planned, plan=plan, limits=config)
        settings = job_request_fields(REQUEST)
        job = store.add(new_job_id(), "tiny", settings, False, 10, loras=[(lora.name, 0.8)])  # queued before
        worker.run_job(store.claim_next())
        failed = store.get(job.id)
        assert (failed.status, failed.error_code) == (FAILED, "invalid_request")
        assert failed.error_message == f"{NO_LONGER_FITS}: {refused.value.message}"
        assert len(log) == 1 and log[0].startswith(f"{job.id}: failed"), log  # nothing loaded: one line
        assert pipe.loras is None
    finally:
        store.close()


def test_a_plan_on_gguf_weights_counts_a_lokrs_and_a_lohas_factors(checkpoint, tmp_path):
    # LoHa and LoKr files were refused on packed layers; kept beside them now, their tensors count as a LoRA's do:
    # the LoKr's w1 and w2 in the run's dtype, the LoHa as a LoRA of rank r1·r2 (down, up and a float32 scale).
    root, gguf, _ = checkpoint
    sources = locate_sources(root, gguf)
    ff = "transformer_blocks.0.ff.net.0.proj"
    out_features, in_features = linear_shapes(build_model(sources.transformer.value))[ff]
    g = torch.Generator().manual_seed(0)
    lokr, loha = tmp_path / "lokr.safetensors", tmp_path / "loha.safetensors"
    w1, w2 = torch.randn(8, 2, generator=g), torch.randn(out_features // 8, in_features // 2, generator=g)
    save_file({f"lora_unet_{ff.replace('.', '_')}.lokr_w1": w1, f"lora_unet_{ff.replace('.', '_')}.lokr_w2": w2}, lokr)
    hada = {"hada_w1_a": (out_features, 2), "hada_w1_b": (2, in_features), "hada_w2_a": (out_features, 3),
            "hada_w2_b": (3, in_features)}  # fmt: skip
    save_file({f"lora_unet_{ff.replace('.', '_')}.{n}": torch.randn(*s, generator=g) for n, s in hada.items()}, loha)
    dtype = torch.bfloat16
    without = resident_weights(plan_generation(REQUEST, sources, dtype=dtype, device="cpu"))
    for path, expected in [
        (lokr, (w1.numel() + w2.numel()) * 2),
        (loha, 6 * (in_features + out_features) * 2 + 6 * 4),
    ]:
        loras = check_loras([LoRASpec(path, 0.8)], sources)
        with_file = resident_weights(plan_generation(REQUEST, sources, dtype=dtype, device="cpu", loras=loras))
        assert with_file - without == expected, path.name


def lora_macs(path) -> dict[str, int]:
    """Multiply-adds per token of each module's adapter, from the file's own tensors: down·x and up·(down·x)."""
    with safe_open(str(path), "pt") as f:
        shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
    macs: dict[str, int] = {}
    for key, (rows, columns) in shapes.items():
        module = key.removeprefix("diffusion_model.").rsplit(".", 2)[0]
        macs[module] = macs.get(module, 0) + rows * columns
    return macs


def test_the_time_estimate_counts_the_work_of_the_adapters_beside_gguf_linears(checkpoint):
    from motif_lite.run_estimates import run_flops
    from motif_lite.settings import resolve_settings

    root, gguf, lora = checkpoint
    dtype = torch.bfloat16
    packed, plain = locate_sources(root, gguf), locate_sources(root)
    macs = packed_adapter_macs(packed, check_loras([LoRASpec(lora, 0.8)], packed), dtype)
    assert macs == lora_macs(lora)
    assert packed_adapter_macs(plain, check_loras([LoRASpec(lora, 0.8)], plain), dtype) == {}  # merged: free
    settings = resolve_settings(REQUEST, packed.configs, packed.transformer)
    assert run_flops(REQUEST, settings, packed.configs, macs) > run_flops(REQUEST, settings, packed.configs)


def test_a_server_jobs_refusal_names_whether_the_adapters_weights_or_their_temporaries_do_not_fit(checkpoint):
    # The refusal blamed the adapters' weights, and advised a lower rank, also where it was their temporaries (the
    # update beside a layer's output, for every token of a call: as large at rank 1 as at rank 64) that had no room.
    # A LoRA on the context's MLP, which takes every text token at once: its temporaries outweigh its weights.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError
    from motif_lite.units import memory_size

    root, gguf, _ = checkpoint
    sources = locate_sources(root, gguf)
    layer = "transformer_blocks.0.ff_context.net.0.proj"
    lora = root.parent / "context-mlp.safetensors"
    write_lora(lora, linear_shapes(build_model(sources.transformer.value)), [layer])
    files = tuple(check_loras([LoRASpec(lora)], sources))
    dtype = torch.float32

    def run(budget: int, loras: tuple = ()) -> PlannedRun:
        return PlannedRun(REQUEST, sources, dtype, "cpu", vram_gib=budget / GiB, loras=loras)

    def denoise_peak(plan) -> int:
        return next(s.peak_bytes for s in plan.stages if s.name == "denoise")

    # A placement whose peak is its denoise stage (the text encoder off the device), which the adapters add to.
    placement = run(denoise_peak(run(10**12, files).plan()), files).plan()
    assert max(placement.stages, key=lambda s: s.peak_bytes).name == "denoise"
    temporaries = adapter_temporary_bytes(
        side_adapter_temporary_bytes(list(files), dtype), placement.video_tokens, placement.token_chunk, 1
    )
    weights = lora_bytes(lora, dtype)
    assert temporaries > 10 * weights > 0

    def refusal(budget: int) -> str:
        planned = run(budget)
        plan = planned.plan()
        assert plan.ladder_index == placement.ladder_index
        with pytest.raises(ApiError) as refused:
            check_loras_fit_plan(list(files), planned, plan)
        return refused.value.message

    # A byte short of that placement with the LoRA: its weights fit, its temporaries do not.
    said = refusal(denoise_peak(placement) - 1)
    assert "the weights fit" in said and "the temporaries do not" in said and "a smaller --max-video" in said, said
    assert f"{memory_size(weights)} of adapter weights" in said and f"{memory_size(temporaries)} of temp" in said
    # Not a byte to spare without the LoRA: its weights do not fit, whatever room its temporaries had.
    without = run(denoise_peak(placement) - 1).plan()
    said = refusal(denoise_peak(without))
    assert "no room for the adapter weights" in said and "fewer LoRAs or ones of lower rank" in said, said


def test_a_refusal_names_the_temporaries_where_the_plan_one_vae_mode_faster_decodes_over_the_budget(checkpoint):
    # The refusal once asked whether the weights fit by planning again with the budget raised by the temporaries.
    # There the planner could pick a faster VAE mode whose decode stage is over the loaded budget: the weights took
    # the blame, with the advice to lower the rank, though they fit the loaded placement and the temporaries did not.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError

    root, gguf, _ = checkpoint
    sources = locate_sources(root, gguf)
    lora = root.parent / "context-mlp-vae.safetensors"  # its temporaries outweigh its weights (the test above)
    write_lora(
        lora, linear_shapes(build_model(sources.transformer.value)), ["transformer_blocks.0.ff_context.net.0.proj"]
    )
    files = tuple(check_loras([LoRASpec(lora)], sources))
    dtype = torch.float32
    request = GenerationRequest("a fox", width=192, height=256, frames=33, steps=2, seed=0)

    def run(budget: int, loras: tuple = ()) -> PlannedRun:
        # Without the text encoder (as a parallel run's other ranks plan), whose encode stage would set the tiny
        # model's peak at every rung with it on the device: here the decode and denoise stages do.
        return PlannedRun(request, sources, dtype, "cpu", vram_gib=budget / GiB, loras=loras, text_encoder=False)

    fastest = run(10**12).plan()
    decode = next(s.peak_bytes for s in fastest.stages if s.name == "decode")
    planned = run(decode - 1)  # a byte short of the fastest plan's decode: the next VAE mode down is loaded
    plan = planned.plan()
    assert plan.ladder_index == fastest.ladder_index + 1 and plan.vae != fastest.vae
    assert plan.text_placement == fastest.text_placement and plan.resident_blocks == fastest.resident_blocks
    # The adapter weights stay on the device through every stage: with them each stage still fits the budget.
    assert max(s.peak_bytes for s in plan.stages) + lora_bytes(lora, dtype) <= plan.budget_bytes
    with pytest.raises(ApiError) as refused:
        check_loras_fit_plan(list(files), planned, plan)
    said = refused.value.message
    assert "the weights fit" in said and "the temporaries do not" in said, said
    assert "no room for the adapter weights" not in said, said


def test_a_cpu_servers_refusal_names_its_ram_budget_not_a_vram_one(checkpoint):
    # A CPU server has no device budget: its --ram refused the job. The refusal said "a budget of 0 B" and advised
    # a larger --vram, which a CPU run has no use for.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError
    from motif_lite.units import memory_size

    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    files = check_loras([LoRASpec(lora)], sources)
    dtype = torch.float32
    host_peak = PlannedRun(REQUEST, sources, dtype, "cpu").plan().host.peak_bytes
    planned = PlannedRun(REQUEST, sources, dtype, "cpu", ram_gib=host_peak / GiB)  # not a byte to spare
    plan = planned.plan()
    assert plan.budget_bytes is None
    with pytest.raises(ApiError) as refused:
        check_loras_fit_plan(files, planned, plan)
    said = refused.value.message
    assert f"a host memory budget (--ram) of {memory_size(host_peak)}" in said and "a larger --ram" in said, said
    assert "--vram" not in said and "a budget of 0" not in said, said


def test_a_refused_server_job_reads_the_gguf_header_once(checkpoint, monkeypatch):
    # The server keeps its sources without the GGUF header: each look at which weights load packed read it again,
    # three or four times per refused job, in the threadpool, holding the GIL.
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.server.loras import check_loras_fit_plan
    from motif_lite.server.schema import ApiError
    from motif_lite.weights import gguf_file

    root, gguf, lora = checkpoint
    sources = locate_sources(root, gguf)
    files = check_loras([LoRASpec(lora)], sources)
    unplanned = PlannedRun(REQUEST, sources, torch.float32, "cpu", vram_gib=1e6).plan()
    planned = PlannedRun(REQUEST, sources.without_header(), torch.float32, "cpu", vram_gib=unplanned.peak_bytes / GiB)
    plan = planned.plan()
    reads = []
    read_gguf = gguf_file.read_gguf
    monkeypatch.setattr(
        gguf_file, "read_gguf", lambda *args, **kwargs: reads.append(args) or read_gguf(*args, **kwargs)
    )
    with pytest.raises(ApiError):
        check_loras_fit_plan(files, planned, plan)
    assert len(reads) == 1, reads
