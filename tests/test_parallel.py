"""Parallel generation (runtime/parallel.py) on the CPU with gloo: the layout rules, the sequence-parallel forward
and whole generations on 2, 3 and 4 processes equal to the single-process run, and failures that end every rank.

The tiny checkpoint has a 6-head transformer (`SIX_HEADS`), so that sp 2 and 3 (and cfg 2 x sp 2) are possible,
and a video of 2 x 2 x 5 = 20 tokens, which sp 3 splits unevenly (7, 7, 6). The process tests are few and bounded:
one `torch.multiprocessing` run of 4 processes covers every layout; the launcher tests start `motif-lite run
--gpus 2` (torch's elastic launcher) and inject a failure on rank 1 through a test-only `sitecustomize`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from huggingface_hub import constants
from tiny_config import TINY, inputs
from video_frames import read_png_frames

from motif_lite import memory_plan
from motif_lite.cli import main as cli_main
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, MemoryBudgetError, MotifLiteError
from motif_lite.gpu_memory import GpuReading, GpuUse
from motif_lite.gpus import NVIDIA, GpuFacts
from motif_lite.memory_advice import PlannedRun
from motif_lite.model.transformer import MotifVideoTransformer
from motif_lite.runtime import launcher
from motif_lite.runtime.activation_memory import context_tokens, transformer_activation_bytes
from motif_lite.runtime.parallel import (
    Parallel,
    ParallelError,
    ParallelLayout,
    SequenceParallel,
    check_same_dtype,
    choose_layout,
    split_tokens,
)
from motif_lite.units import RESERVED_RATIO, memory_size

SIX_HEADS = {**TINY, "num_attention_heads": 6, "attention_head_dim": 16, "rope_axes_dim": (4, 6, 6)}
PROMPT, NEGATIVE = "a red fox runs through snow", "blurry, static"
SIZE = dict(width=80, height=32, frames=5, steps=2)  # latents 2 x 4 x 10 -> 20 video tokens
LAYOUTS = {"cfg 2": (2, 1), "sp 2": (1, 2), "cfg 2 x sp 2": (2, 2), "sp 3": (1, 3)}
PROCESS_TIMEOUT = 240  # seconds for any group of processes, start to end (a loaded 2-core machine)
# Seconds from a rank's failure (or Ctrl-C) to the end of `--gpus 2`: every rank stopped at once, not left waiting
# for its lost peer until the collective's timeout (parallel.DEFAULT_STEP_TIMEOUT_S, 600 s). A failure on rank 1 took
# 22-28 s on a 2-core machine under a load of 10-16 (its injected slow end included), where the bound was 30 s.
ENDS_PROMPTLY_SECONDS = 120


# ------------------------------------------------------------------------------------------------ layout


def test_default_layout_splits_guidance_then_tokens():
    assert choose_layout(4, guided=True, heads=12) == ParallelLayout(cfg=2, sp=2)
    assert choose_layout(8, guided=True, heads=12) == ParallelLayout(cfg=2, sp=4)
    assert choose_layout(4, guided=False, heads=12) == ParallelLayout(cfg=1, sp=4)
    assert choose_layout(3, guided=True, heads=12) == ParallelLayout(cfg=1, sp=3)  # odd: no guidance split
    assert choose_layout(4, guided=True, heads=12, sp=4) == ParallelLayout(cfg=1, sp=4)
    assert choose_layout(2, guided=True, heads=12, sp=1) == ParallelLayout(cfg=2, sp=1)


@pytest.mark.parametrize(
    "world, guided, sp, message",
    [
        (8, True, 8, "degree 8 does not divide the transformer's 12 attention heads; possible degrees: 1, 2, 3, 4"),
        # A process count that cannot work names the counts that can (the user chose no degree).
        (8, False, None, "all of them share the video tokens, and 8 does not divide the transformer's 12 attention"),
        (8, False, None, "heads; possible counts (--gpus N, torchrun's processes): 1, 2, 3, 4, 6, 12"),
        (16, True, None, "each branch gets 8 of them, which share its video tokens, and 8 does not divide"),
        (5, True, None, "5 does not divide the transformer's 12 attention heads; possible counts"),
        (5, True, None, "possible counts (--gpus N, torchrun's processes): 1, 2, 3, 4, 6, 8, 12, 24"),
        (4, True, 3, "--sp 3 does not divide the 4 ranks; on 4: --sp 2 or --sp 4"),
        (6, False, 4, "--sp 4 does not divide the 6 ranks; on 6: --sp 6"),
        (8, False, 3, "--sp 3 does not divide the 8 ranks; on 8: no degree works (leave --sp out to see the counts"),
        # --sp without as many processes (a single one: --gpus forgotten)
        (1, True, 2, "--sp 2 shares the video tokens among 2 processes, but this run has 1: run it on 2 or 4"),
        (1, True, 2, "run it on 2 or 4 (cfg 2 x sp 2) processes (--gpus N, or torchrun --nproc-per-node N)"),
        (2, False, 3, "this run has 2: run it on 3 processes"),
        (4, True, 1, "makes 4 guidance groups, but at most 2"),
        (4, False, 2, "guidance is off (a cfg scale that changes nothing) or has no step left: use --sp 4"),
    ],
)
def test_impossible_layouts_are_clear_errors(world, guided, sp, message):
    with pytest.raises(ParallelError, match=re.escape(message)):
        choose_layout(world, guided, heads=12, sp=sp)


def test_the_planner_plans_one_rank_of_the_sequence():
    config, tokens = TransformerConfig(), 114080  # 720p
    whole = transformer_activation_bytes(tokens, config, 1, None)
    quarter = transformer_activation_bytes(tokens, config, 1, None, sequence_parallel=4)
    assert whole / 4 < quarter < whole / 2  # a quarter of the tokens, plus the all-to-all buffers


def test_the_per_rank_memory_table_of_the_docs_is_the_planners():
    # docs/parallel.md once said activations divide by sp; with token pieces sp 2 needs more per rank than sp 1.
    docs = (Path(__file__).parents[1] / "docs" / "parallel.md").read_text()
    rows = re.findall(r"^\| (\d+)[^|]* \| (\d+\.\d\d) GiB \| (\d+\.\d\d) GiB", docs, re.MULTILINE)
    assert [int(sp) for sp, _, _ in rows] == [1, 2, 3, 4, 6, 12]
    for sp, activations, _ in rows:  # a text-to-video run: no image tokens in the context
        counted = transformer_activation_bytes(
            114080, TransformerConfig(), 1, 16384, True, context_tokens(0), sequence_parallel=int(sp)
        )
        assert f"{counted / 2**30:.2f}" == activations, sp
    assert float(rows[1][1]) > float(rows[0][1]) and float(rows[1][2]) > float(rows[0][2])


def test_tokens_split_contiguously_and_nearly_evenly():
    assert split_tokens(20, 3) == (7, 7, 6)
    assert split_tokens(114080, 4) == (28520,) * 4


def test_fewer_video_tokens_than_sequence_ranks_is_a_clear_error():
    # Raised on every rank before any collective: 1 x 3 x 5 = 15 tokens for 16 ranks would leave one without any.
    model, x = _six_head_model(), inputs(frames=1, height=6, width=10)
    with pytest.raises(ParallelError, match="15 video tokens are fewer than the 16 sequence-parallel ranks"):
        SequenceParallel(model, group=None, rank=0, sp=16)(**x)


# -------------------------------------------------------------------------------------- the checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny official-layout checkpoint (diffusers' own save) whose transformer has 6 heads."""
    pytest.importorskip("diffusers")
    from diffusers import FlowMatchEulerDiscreteScheduler, MotifVideoPipeline
    from tiny_pipeline import official_apg, tiny_components
    from tiny_text import TINY_TEXT_HIDDEN, TINY_VISION_HIDDEN
    from tiny_transformer import make_reference

    root = tmp_path_factory.mktemp("six_heads")
    components = tiny_components(seed=0)
    dims = dict(text_embed_dim=TINY_TEXT_HIDDEN, image_embed_dim=TINY_VISION_HIDDEN)
    heads = {k: SIX_HEADS[k] for k in ("num_attention_heads", "attention_head_dim", "rope_axes_dim")}
    components["transformer"] = make_reference(0, **heads, **dims)
    pipe = MotifVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=15.0), guider=official_apg(), **components
    )
    pipe.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def single(checkpoint, tmp_path_factory) -> np.ndarray:
    """The frames of the ordinary single-process run."""
    from motif_lite import load_pipeline
    from motif_lite.request import GenerationRequest

    folder = tmp_path_factory.mktemp("single")
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    pipe.generate(GenerationRequest(PROMPT, NEGATIVE, seed=0, output=folder / "out_%03d.png", **SIZE))
    frames = read_png_frames(folder)
    assert frames.shape == (SIZE["frames"], SIZE["height"], SIZE["width"], 3) and frames.std() > 10
    return frames


def assert_same_frames(ours: np.ndarray, single: np.ndarray) -> None:
    assert ours.shape == single.shape
    assert np.abs(ours.astype(int) - single.astype(int)).max() <= 1  # 1/255


# ------------------------------------------------------------------- every layout in one group of processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _six_head_model() -> MotifVideoTransformer:
    torch.manual_seed(0)
    model = MotifVideoTransformer(TransformerConfig.from_dict(SIX_HEADS)).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0, 0.15)
    return model


class _LocalPositions(SequenceParallel):
    """Broken on purpose (the negative control): RoPE rows of the local instead of the global positions."""

    def _sharded(self, ctx, mine, counts, copies):
        return super()._sharded(ctx, slice(0, mine.stop - mine.start), counts, copies)


def _fail_on_rank_0() -> None:
    raise CheckpointError("cannot read first_frame.png")


def _worker(rank: int, world: int, port: int, checkpoint: Path, out: Path) -> None:
    from motif_lite import load_pipeline
    from motif_lite.request import GenerationRequest

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        try:  # an error while rank 0 produces what the others wait for reaches all of them
            Parallel.create(ParallelLayout(2, 2), torch.device("cpu"), 60).share(_fail_on_rank_0)
        except MotifLiteError as exc:
            (out / f"share_error{rank}.txt").write_text(f"{type(exc).__name__}: {exc}")
        check_same_dtype(torch.float32)  # alike: no error
        try:  # ranks 0, 1 on GPUs with bf16, ranks 2, 3 on older ones (fp16)
            check_same_dtype(torch.bfloat16 if rank < 2 else torch.float16)
        except ParallelError as exc:
            (out / f"dtype_error{rank}.txt").write_text(str(exc))
        # The transformer alone, on text of two lengths (masked), image tokens and 2 x 3 x 5 = 30 video tokens.
        model, x = _six_head_model(), inputs(frames=2, height=6, width=10, image=5)
        for sp in (2, 3):
            parallel = Parallel.create(ParallelLayout(1, sp), torch.device("cpu"), 60, ranks=range(sp))
            if parallel is not None:
                with torch.no_grad():
                    velocity = parallel.transformer(model)(**x)
                    broken = _LocalPositions(model, parallel.sp_group, parallel.sp_rank, sp)(**x)
                if parallel.is_main:
                    torch.save(velocity, out / f"velocity_sp{sp}.pt")
                    torch.save(broken, out / f"broken_sp{sp}.pt")
        pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
        for name, (cfg, sp) in LAYOUTS.items():
            parallel = Parallel.create(ParallelLayout(cfg, sp), torch.device("cpu"), 60, ranks=range(cfg * sp))
            if parallel is None:
                continue
            pipe.parallel = parallel
            folder = out / name.replace(" ", "")
            folder.mkdir(exist_ok=True)
            result = pipe.generate(GenerationRequest(PROMPT, NEGATIVE, seed=0, output=folder / "out_%03d.png", **SIZE))
            assert result.parallel == f"{parallel.describe()}"
        _stop_and_resume(pipe, out)
        pair = dist.new_group([0, 1])  # (made by every rank of the group, used by ranks 0 and 1)
        if rank < 2:  # last: it wraps this process's collectives
            _ulysses_in_a_compiled_function(rank, pair, out)
    finally:
        dist.destroy_process_group()


def _stop_and_resume(pipe, out: Path) -> None:
    """cfg 2 x sp 2: every rank stops after step 1 (as Ctrl-C on the group would), rank 0 keeps the state, every
    rank reads it and goes on."""
    from motif_lite.io.latents import read_latents
    from motif_lite.request import GenerationRequest

    pipe.parallel = Parallel.create(ParallelLayout(2, 2), torch.device("cpu"), 60)
    folder = out / "resumed"
    folder.mkdir(exist_ok=True)

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    request = GenerationRequest(PROMPT, NEGATIVE, seed=0, output=folder / "out_%03d.png", **SIZE)
    with contextlib.suppress(KeyboardInterrupt):  # (a run that did not stop leaves no file: read_latents fails)
        pipe.generate(request, on_progress=stop)
    dist.barrier()
    saved = read_latents(folder / "out.latents.safetensors")
    (folder / f"saved{dist.get_rank()}.txt").write_text(str(saved.progress))
    pipe.generate(GenerationRequest(**saved.request), resume=saved)


@pytest.fixture(scope="module")
def four_processes(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parallel")
    _spawn_and_wait(_worker, (4, _free_port(), checkpoint, out), processes=4)
    return out


def _spawn_and_wait(fn, args: tuple, processes: int) -> None:
    """`fn(rank, *args)` in `processes` spawned processes; fails the test if any is not done in PROCESS_TIMEOUT."""
    context = mp.start_processes(fn, args=args, nprocs=processes, join=False, start_method="spawn")
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {processes} processes did not finish in time")


def test_an_error_on_rank_0_reaches_every_rank(four_processes):
    assert (four_processes / "share_error0.txt").read_text() == "CheckpointError: cannot read first_frame.png"
    for rank in (1, 2, 3):
        message = (four_processes / f"share_error{rank}.txt").read_text()
        assert message == "ParallelError: rank 0 failed: cannot read first_frame.png"


def test_ranks_whose_gpus_default_to_different_dtypes_all_stop_naming_dtype(four_processes):
    for rank in range(4):
        message = (four_processes / f"dtype_error{rank}.txt").read_text()
        assert "different compute dtypes (rank 0 bfloat16, rank 1 bfloat16, rank 2 float16, rank 3 float16;" in message
        assert "give --dtype fp16 to run all of them in fp16" in message


def test_sequence_parallel_forward_equals_the_model(four_processes):
    model, x = _six_head_model(), inputs(frames=2, height=6, width=10, image=5)
    with torch.no_grad():
        expected = model(**x)
    for sp in (2, 3):
        velocity = torch.load(four_processes / f"velocity_sp{sp}.pt")
        assert (velocity - expected).abs().max() <= 1e-5 * expected.std()
        broken = torch.load(four_processes / f"broken_sp{sp}.pt")  # RoPE by local positions: 10x the tolerance
        assert (broken - expected).abs().max() > 1e-4 * expected.std()


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_layout_gives_the_single_process_frames(four_processes, single, name):
    assert_same_frames(read_png_frames(four_processes / name.replace(" ", "")), single)


def test_a_stopped_parallel_run_resumed_gives_the_single_process_frames(four_processes, single):
    folder = four_processes / "resumed"
    assert [(folder / f"saved{rank}.txt").read_text() for rank in range(4)] == ["(1, 2)"] * 4
    assert_same_frames(read_png_frames(folder), single)
    assert not (folder / "out.latents.safetensors").exists()  # rank 0 removed it once the video was written


# ------------------------------------------------------------------------------- sequence parallel, compiled


def _recording(collective: Callable, eagerly: list[bool]) -> Callable:
    """`collective`, appending to `eagerly` whether each call runs eagerly (False: traced by torch.compile)."""

    def call(*args, **kwargs):
        eagerly.append(not torch.compiler.is_compiling())
        return collective(*args, **kwargs)

    return call


def _ulysses_in_a_compiled_function(rank: int, group: dist.ProcessGroup, out: Path) -> None:
    """A Ulysses attention over `group` (ranks 0 and 1 of `_worker`'s processes) called inside a function
    torch.compile traces, as a compiled block calls it: records, for each collective, whether it ran eagerly
    (False: traced into the compiled graph), and the output against the eager call's."""
    from motif_lite.model.ops import sdpa_attention
    from motif_lite.runtime.ulysses import UlyssesAttention

    eagerly: list[bool] = []
    for name in ("all_to_all_single", "all_gather"):  # (this process only: the test's own spawned worker)
        setattr(dist, name, _recording(getattr(dist, name), eagerly))
    counts, replicated = (3, 2), 4  # uneven video shares, then context tokens every rank holds
    torch.manual_seed(rank)
    q, k, v = (torch.randn(1, 4, counts[rank] + replicated, 8) for _ in range(3))  # [B, H, n_r + R, D]
    attention = UlyssesAttention(sdpa_attention, group, rank, counts, copies=1)
    expected = attention(q, k, v, None)
    eagerly.clear()
    compiled = torch.compile(lambda q, k, v: 2 * attention(q, k, v, None), backend="eager")(q, k, v)
    torch.save({"eagerly": eagerly, "equal": torch.equal(compiled, 2 * expected)}, out / f"ulysses{rank}.pt")


def test_ulysses_attention_runs_its_collectives_eagerly_inside_compiled_code(four_processes):
    # --compile with sequence parallelism: the blocks are compiled, the attention runs as it would without
    # --compile, between the compiled pieces (runtime/compile.py), so the all-to-alls and the all-gather are
    # torch.distributed's own calls, not collectives traced into a graph.
    for rank in (0, 1):
        result = torch.load(four_processes / f"ulysses{rank}.pt")
        assert result["eagerly"] == [True, True, True]  # to heads, to tokens, the replicated tokens' gather
        assert result["equal"]


# ------------------------------------------------------------------------------------- the command line


def cli_args(checkpoint: Path, output: Path, *extra: str) -> list[str]:
    size = ["-W", str(SIZE["width"]), "-H", str(SIZE["height"]), "--video-frames", str(SIZE["frames"])]
    return ["run", "-m", str(checkpoint), "--device", "cpu", "--dtype", "fp32", "-p", PROMPT, "-n", NEGATIVE,
            *size, "--steps", str(SIZE["steps"]), "-s", "0", "-o", str(output), *extra]  # fmt: skip


def test_impossible_layout_fails_before_any_process_starts(checkpoint, tmp_path, capsys):
    # Without guidance all 4 ranks share the tokens, but 4 does not divide the 6 heads.
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "4", "--cfg-scale", "0")) == 2
    assert (
        "4 does not divide the transformer's 6 attention heads; possible counts (--gpus N, torchrun's processes): "
        "1, 2, 3, 6" in capsys.readouterr().err
    )
    if not torch.cuda.is_available():
        assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "auto")) == 2
        assert "--gpus 2 starts 2 processes, one per GPU, but this machine has no CUDA" in capsys.readouterr().err


def test_a_vram_nothing_fits_is_refused_once_before_any_process_starts(checkpoint, tmp_path, capsys, monkeypatch):
    # Every rank would plan the same --vram budget and print the same refusal, plan table and all.
    devices, plan = [], PlannedRun.plan
    monkeypatch.setattr(
        PlannedRun, "plan", lambda run, *args, **kw: devices.append(run.device) or plan(run, *args, **kw)
    )
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--vram", "0.0001")) == 2
    err = capsys.readouterr().err
    assert err.count("error: 80x32x5 needs at least") == 1 and "[rank" not in err
    assert devices == ["cpu"]  # planned for the device the ranks run on (--device cpu)


def test_a_lora_of_another_model_is_refused_once_before_any_process_starts(checkpoint, tmp_path, capsys, monkeypatch):
    # Each rank read the LoRA as it loaded, after starting: N copies of the same refusal, then "rank 0 failed".
    from safetensors.torch import save_file

    wan = tmp_path / "wan.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.ones(2, 8),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.ones(8, 2)}, wan)  # fmt: skip
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot run"))
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--lora", f"{wan}:0.8")) == 2
    err = capsys.readouterr().err
    assert err.count("none of its layers (1) matches a linear layer of the Motif-Video transformer") == 1, err
    assert "[rank" not in err


def test_a_full_difference_of_a_weight_quantize_packs_is_refused_once_before_any_process_starts(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # The launcher read the LoRA against the checkpoint's float weights, leaving out --quantize: a `.diff` of a weight
    # it packs passed, and each rank refused it once started.
    from safetensors import safe_open
    from safetensors.torch import save_file

    layer = "transformer_blocks.0.attn.to_q"
    with safe_open(str(checkpoint / "transformer" / "diffusion_pytorch_model.safetensors"), "pt") as weights:
        shape = weights.get_slice(f"{layer}.weight").get_shape()
    diff = tmp_path / "diff.safetensors"
    save_file({f"diffusion_model.{layer}.diff": torch.zeros(*shape)}, diff)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot run"))
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--lora", str(diff), "--quantize", "Q8_0")
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("which --quantize Q8_0 packs as it loads") == 1 and "[rank" not in err, err


def test_the_lora_and_the_plan_are_checked_before_launch_with_the_checkpoint_not_downloaded_yet(
    tmp_path, capsys, monkeypatch, no_network
):
    # The official checkpoint not here yet: the LoRA is read as a file alone (another model's names), before the
    # processes start, as a run reads it before its download; each rank used to download, then refuse it.
    from safetensors.torch import save_file

    from motif_lite.choices import MOTIF_REPO

    sd = tmp_path / "sd-style.safetensors"
    save_file({"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": torch.ones(2, 8),
               "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": torch.ones(8, 2)}, sd)  # fmt: skip
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot run"))
    assert cli_main(cli_args(MOTIF_REPO, tmp_path / "a.mp4", "--gpus", "2", "--lora", str(sd))) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: {sd}: none of its layers (1) matches a linear layer of the Motif-Video") == 1, err
    assert "[rank" not in err
    # Its memory plan too, from the official configs bundled with motif-lite.
    assert cli_main(cli_args(MOTIF_REPO, tmp_path / "a.mp4", "--gpus", "2", "--vram", "0.0001")) == 2
    err = capsys.readouterr().err
    assert err.count("error: 80x32x5 needs at least") == 1 and "[rank" not in err, err


def test_a_full_difference_of_a_weight_quantize_packs_is_refused_before_launch_and_before_the_download(
    tmp_path, capsys, monkeypatch, no_network
):
    # The launcher's other branch: the official checkpoint not here yet, the LoRA read against its bundled configs
    # with --quantize's packed weights, refused once before any process starts (each rank would download, then
    # refuse it).
    from safetensors.torch import save_file

    from motif_lite.choices import MOTIF_REPO

    diff = tmp_path / "diff.safetensors"
    save_file(
        {"diffusion_model.transformer_blocks.0.attn.to_q.diff": torch.zeros(1536, 1536, dtype=torch.float16)}, diff
    )
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot run"))
    args = cli_args(MOTIF_REPO, tmp_path / "a.mp4", "--gpus", "2", "--lora", str(diff), "--quantize", "Q8_0")
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("which --quantize Q8_0 packs as it loads") == 1 and "[rank" not in err, err


def test_a_full_difference_of_a_weight_an_fp8_diffusion_model_keeps_is_refused_before_launch(
    tmp_path, capsys, monkeypatch, no_network
):
    # The launcher checked the LoRA against the official configs before the download, leaving out the user's fp8
    # --diffusion-model: each rank refused the `.diff` of a weight it keeps in 8 bits, once it had downloaded.
    from fp8_files import official_transformer_file
    from safetensors.torch import save_file

    from motif_lite.choices import MOTIF_REPO

    fp8 = official_transformer_file(tmp_path / "motif_fp8_e4m3fn.safetensors", float8=True)
    diff = tmp_path / "diff.safetensors"
    save_file({"diffusion_model.transformer_blocks.0.attn.to_q.diff": torch.zeros(1536, 1536)}, diff)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot run"))
    args = cli_args(MOTIF_REPO, tmp_path / "a.mp4", "--gpus", "2", "--lora", str(diff), "--diffusion-model", str(fp8))
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("which the fp8 transformer file keeps in 8 bits") == 1 and "[rank" not in err, err


@pytest.fixture
def planned(monkeypatch) -> list[tuple[bool, float | None]]:
    """(text_encoder, budget in GiB) of each plan the launcher makes before starting the processes (made as before):
    --vram's, else the free memory's of the GPU reading it is planned on."""
    planned, plan = [], PlannedRun.plan

    def recorded(run: PlannedRun, vram_gib: float | None = None):
        budget = vram_gib or run.vram_gib
        planned.append((run.text_encoder, budget if budget or run.gpu is None else run.gpu.free_budget_bytes / 2**30))
        return plan(run, vram_gib)

    monkeypatch.setattr(PlannedRun, "plan", recorded)
    return planned


def gpu_readings(*free: int, total: int = 80 * 2**30) -> list[GpuReading]:
    """GPUs as the launcher's child process reads them: H100s with `free` bytes free each."""
    return [GpuReading(GpuFacts(NVIDIA, "NVIDIA H100 80GB HBM3", (9, 0)), GpuUse(total, n)) for n in free]


@pytest.fixture
def gpu_machine(monkeypatch) -> None:
    """A machine whose CUDA says it has GPUs, and that fails a test that starts CUDA in this process: its memory or
    facts asked of torch (each starts a CUDA context, which on a real GPU holds memory for the whole run). The trap
    is at the seam, torch.cuda's calls (`_lazy_init` is where every one of them starts CUDA): on a CPU-only build
    `torch.cuda.is_initialized()` stays False whatever the code asks."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    started_cuda = ("mem_get_info", "get_device_properties", "get_device_name", "get_device_capability", "init",
                    "_lazy_init", "current_device", "set_device", "is_bf16_supported", "synchronize")  # fmt: skip
    for started in started_cuda:
        monkeypatch.setattr(torch.cuda, started, lambda *a, _name=started, **kw: pytest.fail(f"torch.cuda.{_name}"))


@pytest.mark.parametrize("short", [0, 1], ids=["main-rank", "other-rank"])
def test_without_vram_each_gpus_free_memory_is_planned_before_the_processes_start(
    checkpoint, tmp_path, capsys, monkeypatch, short, planned, gpu_machine
):
    # Before: without --vram each rank planned its own GPU's free memory, and N of them printed the same refusal.
    # The launcher plans what the ranks will plan: the main rank (with the text encoder) on cuda:0's budget, the
    # others on the smallest of theirs.
    plenty, none = 64 * 2**30, 2**20
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    short_gpu = gpu_readings(plenty, none if short else plenty) if short else gpu_readings(none, plenty)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: short_gpu)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda")) == 2
    err = capsys.readouterr().err
    budget = memory_size(int(none / RESERVED_RATIO))  # the free memory / 1.08, as a rank plans it
    assert err.count("error: 80x32x5 needs at least") == 1 and f"but the budget is {budget}" in err, err
    budgets = [gpu.free_budget_bytes / 2**30 for gpu in short_gpu]
    tried = [(True, budgets[0]), (False, budgets[1])] if short else [(True, budgets[0])]
    assert planned == tried  # rank 0 with the text encoder on cuda:0's budget, then the others on theirs
    launched = []
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: gpu_readings(*[plenty] * n))
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda")) == 0
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: None)  # not read (the child failed): the ranks plan
    capsys.readouterr()
    # A --vram that fits: the free memory's plan is the ranks', and the launcher says so, it does not check in silence
    # (one no plan fits is refused: test_a_vram_no_plan_fits_is_refused_before_launch_when_the_gpus_cannot_be_read).
    for vram in ([], ["--vram", "8"]):
        assert cli_main([*cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda"), *vram]) == 0
        assert "note: the GPUs could not be read before the processes start" in capsys.readouterr().err
    assert launched == [2, 2, 2]
    # CPU processes: no GPU is read (a child that starts CUDA for nothing, and budgets no rank plans with)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: pytest.fail("read the GPUs of a CPU run"))
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cpu")) == 0
    assert launched == [2, 2, 2, 2] and "note: the GPUs" not in capsys.readouterr().err
    assert not torch.cuda.is_initialized()


def test_the_other_ranks_are_planned_with_the_smallest_of_their_gpus_budgets(
    checkpoint, tmp_path, capsys, monkeypatch, planned, gpu_machine
):
    # cfg 2 x sp 2 on 4 GPUs: cuda:2 has the least free memory of the ranks other than the main one.
    plenty, none = 64 * 2**30, 2**20
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    read = gpu_readings(plenty, plenty, none, plenty)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: read)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "4", "--device", "cuda")) == 2
    assert f"but the budget is {memory_size(read[2].free_budget_bytes)}" in capsys.readouterr().err
    assert planned == [(True, read[0].free_budget_bytes / 2**30), (False, read[2].free_budget_bytes / 2**30)]


def test_kernels_triton_on_gpus_triton_cannot_use_is_refused_once_before_launch(
    checkpoint, tmp_path, capsys, monkeypatch, gpu_machine
):
    # Planned from the GPUs' readings, "triton" was not checked against them: on two GTX 1080s both ranks started
    # and each refused it. The launcher refuses it once, as `use_triton` would on the GPU, and starts nothing.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    pascal = GpuReading(GpuFacts(NVIDIA, "NVIDIA GeForce GTX 1080", (6, 1)), GpuUse(8 * 2**30, 7 * 2**30))
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: [pascal] * n)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a refused run"))
    for vram in ([], ["--vram", "6"]):
        args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--kernels", "triton")
        assert cli_main([*args, *vram]) == 2
        err = capsys.readouterr().err
        assert err.count("error: kernel backend 'triton' is not possible here: Triton builds kernels for") == 1, err


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_under_vram_the_other_ranks_are_planned_on_the_gpu_with_the_smallest_budget_not_the_busiest(
    checkpoint, tmp_path, capsys, monkeypatch, planned, gpu_machine
):
    # cuda:1 has the least free memory but holds --vram 8 (its rank plans 8 GiB); cuda:2, a 40 MiB card, is smaller
    # than --vram, so its rank plans for its free memory, which nothing fits. Planned on the busiest card (cuda:1),
    # the run started 4 processes and rank 2 refused it.
    plenty = 64 * 2**30
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    tiny = gpu_readings(39 * 2**20, total=40 * 2**20)
    read = [*gpu_readings(plenty, 20 * 2**20), *tiny, *gpu_readings(plenty)]
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: read)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "4", "--device", "cuda", "--vram", "8")
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "is more than this GPU's whole memory, 40 MiB" in err and err.count("error: 80x32x5 needs at least") == 1
    assert planned == [(True, 8), (False, 8)]  # rank 2's plan: --vram asked, its free memory planned
    assert f"but the budget is {memory_size(tiny[0].free_budget_bytes)}" in err, err


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_the_launcher_never_starts_cuda_and_plans_each_rank_with_its_own_gpus_reading(
    checkpoint, tmp_path, capsys, monkeypatch, planned, gpu_machine
):
    # It planned in its own process, asking torch for cuda:0's memory (~6 times) and facts: on a real GPU that starts
    # a CUDA context, a few hundred MiB of cuda:0 held for the whole run while docs/parallel.md said the launcher
    # holds none, and rank 0 then had less than planned. The GPUs are read once, in a child process (mocked here at
    # that seam: `gpu_readings`), and each rank is planned with its own GPU's figures.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    reads = []
    h100, small = gpu_readings(70 * 2**30), gpu_readings(2**20, total=2 * 2**20)  # cuda:1: 1 MiB free of 2 MiB
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: reads.append(n) or [*h100, *small])
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    # --vram 8 is more than cuda:1's whole memory: rank 1 plans for its free memory instead, which nothing fits.
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--vram", "8")
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "--vram 8 GiB (8192 MiB) is more than this GPU's whole memory, 2 MiB" in err, err
    assert err.count("error: 80x32x5 needs at least") == 1, err
    assert reads == [2] and planned == [(True, 8), (False, 8)] and not torch.cuda.is_initialized()
    # The same --vram on two GPUs that hold it: planned, read once, started.
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: reads.append(n) or [*h100, *h100])
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: 0)
    assert cli_main(args) == 0
    assert reads == [2, 2] and planned[2:] == [(True, 8), (False, 8)] and not torch.cuda.is_initialized()


def test_a_vram_no_plan_fits_is_refused_before_launch_when_the_gpus_cannot_be_read(
    checkpoint, tmp_path, capsys, monkeypatch, planned, gpu_machine
):
    # GPUs here that the child process could not read: the launcher left --vram to the ranks, and each of them
    # refused it once started. A rank's budget is never above --vram's, so a --vram no plan fits is refused here,
    # planned as for a GPU not here (no CUDA started in this process).
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: None)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda")
    assert cli_main([*args, "--vram", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: 80x32x5 needs at least") == 1 and "[rank" not in err, err
    assert planned == [(True, 0.0001)] and not torch.cuda.is_initialized()
    # One that fits is planned, and the ranks started, each planning with its own GPU's memory.
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    assert cli_main([*args, "--vram", "8"]) == 0
    assert launched == [2] and planned[1:] == [(True, 8)] and not torch.cuda.is_initialized()
    assert "note: the GPUs could not be read before the processes start" in capsys.readouterr().err


def test_unread_gpus_are_planned_with_the_kernels_the_ranks_run_here(checkpoint, tmp_path, monkeypatch, gpu_machine):
    # GPUs that could not be read were planned as a GPU not here, with Triton's kernels; where Triton cannot run on
    # this machine (no C compiler for its launcher, say) each rank runs torch's ops, whose smallest plan is smaller
    # (no tuning buffers): a --vram between the two was refused, though every rank fits it.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: None)
    least, plan = {}, PlannedRun.plan

    def recorded(run: PlannedRun, vram_gib: float | None = None):
        try:
            return plan(run, vram_gib)
        except MemoryBudgetError as error:
            least[run.kernels] = error.smallest_vram_gib
            raise

    monkeypatch.setattr(PlannedRun, "plan", recorded)
    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: None)  # Triton runs here: as a GPU not here
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--vram", "0.0001")
    for kernels in ("auto", "torch"):
        assert cli_main([*args, "--kernels", kernels]) == 2
    assert least["torch"] < least["auto"], least  # the --vram each rank fits, below Triton's plan's
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)
    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: "no C compiler to build Triton's launcher")
    assert cli_main([*args, "--vram", str(least["torch"])]) == 0
    assert launched == [2] and not torch.cuda.is_initialized()


def test_the_gpus_are_read_in_a_child_process(monkeypatch):
    # The launcher never starts CUDA itself (a context would hold memory on the ranks' GPUs for the whole run).
    if not torch.cuda.is_available():
        assert launcher.gpu_readings(2) is None  # the child fails: no CUDA here
    two = json.dumps([gpu.to_json() for gpu in gpu_readings(1, 2)])
    outputs = {f"{two}\n": gpu_readings(1, 2), "[1, 2]\n": None, f"CUDA warning\n{two}\n": gpu_readings(1, 2),
               "oops\n": None, "": None, '[{"free": 1}]\n': None}  # fmt: skip
    for stdout, expected in outputs.items():
        done = subprocess.CompletedProcess([], 0, stdout=stdout, stderr="")
        monkeypatch.setattr(subprocess, "run", lambda *a, done=done, **kw: done)
        assert launcher.gpu_readings(2) == expected, stdout
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: subprocess.CompletedProcess([], 1, stdout=two))
    assert launcher.gpu_readings(2) is None  # a failed child

    def hung(*args, timeout: float, **kwargs):  # a child that hangs (a driver stuck at its start)
        assert timeout <= 60  # a few seconds' work: the command does not wait minutes in silence
        raise subprocess.TimeoutExpired(args[0], timeout)

    monkeypatch.setattr(subprocess, "run", hung)
    assert launcher.gpu_readings(2) is None


def test_the_child_process_reads_each_gpu_a_rank_runs_on(monkeypatch):
    # The child's program run here, with the GPUs faked: one reading per device cuda:0 .. cuda:N-1, from the last
    # line of its output (CUDA may print warnings first).
    import io

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (100 + index, 1000))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU {index}")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (8, index))

    def child(argv, **kwargs):
        assert argv[:2] == [sys.executable, "-c"]
        out = io.StringIO()
        with monkeypatch.context() as m, contextlib.redirect_stdout(out):
            m.setattr(sys, "argv", ["-c", *argv[3:]])
            print("a warning the CUDA driver printed")
            exec(argv[2], {})
        return subprocess.CompletedProcess(argv, 0, stdout=out.getvalue(), stderr="")

    monkeypatch.setattr(subprocess, "run", child)
    read = launcher.gpu_readings(3)
    assert [(gpu.facts.name, gpu.facts.capability, gpu.use.free_bytes) for gpu in read] == [
        ("GPU 0", (8, 0), 100), ("GPU 1", (8, 1), 101), ("GPU 2", (8, 2), 102)
    ]  # fmt: skip
    assert read[1].use.total_bytes == 1000 and len(launcher.gpu_readings(1)) == 1


def test_a_child_that_read_fewer_gpus_than_asked_or_no_gpu_reading_gives_no_readings(monkeypatch):
    # Fewer readings than ranks (a GPU the child could not see, CUDA_VISIBLE_DEVICES narrower than --gpus) would
    # plan the ranks without theirs; a reading whose name is not text is no reading.
    one = json.dumps([gpu.to_json() for gpu in gpu_readings(1)])
    nameless = json.dumps([{**gpu.to_json(), "name": 7} for gpu in gpu_readings(1, 2)])
    for stdout in (one, nameless):
        done = subprocess.CompletedProcess([], 0, stdout=stdout + "\n", stderr="")
        monkeypatch.setattr(subprocess, "run", lambda *a, done=done, **kw: done)
        assert launcher.gpu_readings(2) is None, stdout


def test_choosing_the_gpu_with_the_smallest_budget_says_no_warning_of_its_own():
    # The plan made on the GPU chosen says its warnings (a --vram over a card's whole memory); choosing it said them
    # first, once more for each card looked at.
    import warnings

    from motif_lite.memory_plan import smallest_budget_gpu

    tiny = gpu_readings(39 * 2**20, total=40 * 2**20)
    read = [*gpu_readings(64 * 2**30), *tiny]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert smallest_budget_gpu(read, 8) is tiny[0]
    assert not said, [str(w.message) for w in said]


def test_the_kernels_decided_for_a_read_gpu_follow_use_triton(monkeypatch):
    # As `use_triton` decides: on an AMD GPU "auto" runs torch's ops (not checked on AMD GPUs) though Triton has
    # nothing against it; an NVIDIA GPU Triton builds for keeps "auto".
    from motif_lite import memory_plan
    from motif_lite.gpus import AMD
    from motif_lite.runtime.kernels import KernelBackendError

    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: None)
    mi300 = GpuFacts(AMD, "AMD Instinct MI300X", arch="gfx942")
    assert memory_plan._kernels_on("auto", mi300) == "torch"
    h100 = GpuFacts(NVIDIA, "NVIDIA H100 80GB HBM3", (9, 0))
    assert memory_plan._kernels_on("auto", h100) == "auto"
    # Where Triton cannot run, "auto" runs torch's ops, and only "triton" is refused.
    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: "triton cannot be imported (no module)")
    assert memory_plan._kernels_on("auto", h100) == "torch"
    with pytest.raises(KernelBackendError, match="triton cannot be imported"):
        memory_plan._kernels_on("triton", h100)


def test_the_refusal_before_the_processes_start_is_the_plan_of_one_rank(checkpoint, tmp_path, capsys, monkeypatch):
    # cfg 2 x sp 2: each rank runs one guidance branch on half its tokens, one row per forward even when
    # --batch-guidance asks for two. The plan made before the launch is the one a dry run prints for a rank.
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a run that cannot fit"))
    flags = ("--gpus", "4", "--sp", "2", "--batch-guidance", "--vram", "0.0001")
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", *flags)) == 2
    launched = capsys.readouterr().err
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", *flags, "--dry-run")) == 2
    dry_run = capsys.readouterr().err
    refusal = launched[launched.index("error: 80x32x5 needs at least") :]
    assert refusal == dry_run[dry_run.index("error: 80x32x5 needs at least") :]
    assert "1 row per transformer forward" in refusal


def test_a_rank_that_never_loads_the_text_encoder_plans_without_it(checkpoint):
    from motif_lite.checkpoint import locate_sources
    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest
    from motif_lite.sizes import model_sizes

    request, _ = GenerationRequest(PROMPT, NEGATIVE, seed=0, **SIZE).resolve()
    main = plan_generation(request, checkpoint, dtype=torch.float32, device="cpu")
    other = plan_generation(request, checkpoint, dtype=torch.float32, device="cpu", text_encoder=False)
    encode = {plan: next(s for s in plan.stages if s.name == "encode") for plan in (main, other)}
    text_bytes = model_sizes(locate_sources(checkpoint), torch.float32).text_encoder_bytes
    assert encode[main].weight_bytes - encode[other].weight_bytes == text_bytes > 0
    assert encode[other].activation_bytes < encode[main].activation_bytes  # nor its activations
    assert main.host.peak_bytes - other.host.peak_bytes >= text_bytes


def test_only_the_main_rank_plans_with_the_text_encoder(checkpoint, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from motif_lite.cli import build_parser
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.cli.run_videos import Run
    from motif_lite.request import GenerationRequest

    planned = []

    def plan(run: PlannedRun, vram_gib: float | None = None):
        planned.append(run.text_encoder)
        raise MotifLiteError("planned")

    monkeypatch.setattr(PlannedRun, "plan", plan)
    args = build_parser().parse_args(cli_args(checkpoint, tmp_path / "a.mp4", "--vram", "8"))
    args.weights = take_weight_flags(args)
    request, _ = GenerationRequest(PROMPT, NEGATIVE, seed=0, output=tmp_path / "a.mp4", **SIZE).resolve()
    ranks = [None] + [SimpleNamespace(layout=ParallelLayout(2, 1), is_main=is_main) for is_main in (True, False)]
    for rank in ranks:  # a run of one process, then the main rank and another of a parallel run
        with pytest.raises(MotifLiteError, match="planned"):
            Run(args, rank, lambda *a, **k: None).generate([request], "cpu", [])
    assert planned == [True, True, False]


def test_the_plans_made_before_a_run_count_the_text_encoder_unless_told(checkpoint, tmp_path):
    # A dry run and the plan before --gpus starts its processes are the main rank's: with the text encoder.
    from motif_lite.checkpoint import locate_sources
    from motif_lite.cli import build_parser
    from motif_lite.cli.prepare import planned_run
    from motif_lite.request import GenerationRequest
    from motif_lite.sizes import model_sizes

    args = build_parser().parse_args(cli_args(checkpoint, tmp_path / "a.mp4"))
    request, _ = GenerationRequest(PROMPT, NEGATIVE, seed=0, **SIZE).resolve()
    sources = locate_sources(checkpoint)
    main = planned_run(args, request, sources, torch.float32, "cpu", ParallelLayout(2, 1)).plan()
    other = planned_run(args, request, sources, torch.float32, "cpu", ParallelLayout(2, 1), text_encoder=False).plan()
    encode = {plan: next(s for s in plan.stages if s.name == "encode") for plan in (main, other)}
    text_bytes = model_sizes(sources, torch.float32).text_encoder_bytes
    assert encode[main].weight_bytes - encode[other].weight_bytes == text_bytes > 0


def test_a_gguf_variant_not_at_hand_is_planned_before_launch_at_its_estimated_size(
    checkpoint, tmp_path, monkeypatch, capsys
):
    # The launcher left it to the processes, each of which downloaded the GGUF, then refused a budget nothing fits.
    # It is planned here now, as a run plans before its download: at our quantizer's size for that variant over
    # this architecture, not at the checkpoint's bf16 transformer's, which would refuse a budget the GGUF fits.
    import re

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # empty: the GGUF is not at hand
    launched = []
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: launched.append(nproc) or 0)

    def least(*flags: str) -> float:
        """The MiB the refusal of a budget nothing fits names."""
        assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--vram", "0.0001", *flags)) == 2
        return float(re.search(r"needs at least ([\d.]+) MiB", capsys.readouterr().err).group(1))

    assert least("--gguf", "Q4_K_M") < least() and launched == []  # the GGUF's size, not the bf16 transformer's
    assert cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--vram", "1", "--gguf", "Q4_K_M")) == 0
    assert launched == [2]


# What the tests below inject into the processes of a run (never into the package): each rank records its pid;
# rank 1's all-to-all raises, hangs, or kills its process outright (SIGKILL, as the out-of-memory killer does).
# With MOTIF_LITE_TEST_SLOW_LOCK, rank 0 makes tqdm's write lock slowly once rank 1's fault is injected: the
# launcher's stop then lands while tqdm makes it, as it did by chance where making it took a moment on a busy machine.
INJECT = """
import os, signal, time
rank, folder = os.environ.get("RANK"), os.environ.get("MOTIF_LITE_TEST_DIR")
if rank is not None and folder:
    with open(os.path.join(folder, f"pid{rank}"), "w") as f:
        f.write(str(os.getpid()))
    if rank == "0" and os.environ.get("MOTIF_LITE_TEST_SLOW_LOCK"):
        from tqdm.std import TqdmDefaultWriteLock

        make_lock = TqdmDefaultWriteLock.create_mp_lock

        def slow_lock():
            if os.path.exists(os.path.join(folder, "injected")):
                time.sleep(60)  # until the launcher's stop (its SIGTERM) ends the sleep
            make_lock()

        TqdmDefaultWriteLock.create_mp_lock = staticmethod(slow_lock)
    if rank == "1" and os.environ.get("MOTIF_LITE_TEST_FAULT"):
        import torch.distributed as dist

        original, calls = dist.all_to_all_single, [0]

        def injected(*args, **kwargs):
            calls[0] += 1  # "hang-later": after some steps (a few dozen calls each), so that there is state to keep
            if os.environ["MOTIF_LITE_TEST_FAULT"] == "hang-later" and calls[0] < 200:
                return original(*args, **kwargs)
            with open(os.path.join(folder, "injected"), "w") as f:
                f.write(str(time.time()))
            if os.environ["MOTIF_LITE_TEST_FAULT"] == "raise":
                raise RuntimeError("injected failure on rank 1")
            if os.environ["MOTIF_LITE_TEST_FAULT"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)

        dist.all_to_all_single = injected
"""


def run_two_processes(
    checkpoint: Path, tmp_path: Path, *extra: str, fault: str = "", interrupt: bool = False, slow_lock: bool = False
) -> tuple[int, str, str, float]:
    """`motif-lite run --gpus 2 ...` in its own process group: (exit code, stdout, stderr, seconds from the
    injected fault to the end). With `interrupt`, Ctrl-C (SIGINT to the group) once the fault is reached; with
    `slow_lock`, rank 0 makes tqdm's lock slowly after it (INJECT)."""
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(INJECT)
    path = os.pathsep.join([str(tmp_path / "inject"), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "MOTIF_LITE_TEST_DIR": str(tmp_path), "MOTIF_LITE_TEST_FAULT": fault}
    if slow_lock:
        env["MOTIF_LITE_TEST_SLOW_LOCK"] = "1"
    command = [sys.executable, "-m", "motif_lite", *cli_args(checkpoint, tmp_path / "out_%03d.png", "--gpus", "2")]
    process = subprocess.Popen(
        [*command, *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        if interrupt:
            while not (tmp_path / "injected").exists():
                assert process.poll() is None, process.communicate()
                time.sleep(0.5)
            os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    end = time.time()
    fault_time = float((tmp_path / "injected").read_text()) if (tmp_path / "injected").exists() else end
    for rank in (0, 1):  # every rank ended, not only the launcher
        with pytest.raises(ProcessLookupError):
            os.kill(int((tmp_path / f"pid{rank}").read_text()), 0)
    return process.returncode, out, err, end - fault_time


def test_two_processes_write_the_single_process_video(checkpoint, single, tmp_path):
    # --batch-guidance is not used by cfg 2 (a branch per rank): each rank's plan has one row per forward.
    code, out, err, _ = run_two_processes(checkpoint, tmp_path, "--vram", "40", "--batch-guidance")
    assert code == 0, err
    assert err.count("1 row per transformer forward") == 1 and "rows per transformer forward" not in err
    assert "does not fit the memory plan" not in err  # one row per forward on a rank: not a refusal
    assert_same_frames(read_png_frames(tmp_path), single)
    assert not list(tmp_path.glob(".writing-*"))  # -o: the launcher's claim, rank 0 wrote under it, then freed
    assert out.count("done:") == 1 and "parallel: cfg 2 x sp 1 on 2 ranks (gloo)" in out  # rank 0 prints
    assert err.count("seed: 0") == 1


def test_a_batch_run_again_on_two_processes_skips_the_videos_made_before(checkpoint, tmp_path):
    # Rank 0 decides which files hold their video already and every rank skips the same ones: a rank that sampled
    # a video the others skipped would wait for them forever.
    batch = cli_args(checkpoint, tmp_path / "fox.mp4", "--gpus", "2", "-b", "2")
    command = [sys.executable, "-m", "motif_lite", *batch]
    made = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert made.returncode == 0, made.stderr
    first = (tmp_path / "fox-1.mp4").read_bytes()
    (tmp_path / "fox-2.mp4").unlink()  # as if the batch had stopped in its second video
    again = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count(f"skipped {tmp_path / 'fox-1.mp4'}: already made with these settings") == 1, again.stderr
    assert again.stdout.count("done:") == 1 and (tmp_path / "fox-2.mp4").exists()
    assert (tmp_path / "fox-1.mp4").read_bytes() == first


def test_a_run_stopped_with_a_step_cache_goes_on_on_two_processes_with_step_cache_0(checkpoint, tmp_path, capsys):
    # Before: the stopped run's cache, which its file gives, was refused with "leave it out" (there was nothing to
    # leave out), and --step-cache 0, the plain run, was refused too: such a run could not go on in parallel at all.
    from motif_lite import load_pipeline
    from motif_lite.request import GenerationRequest

    cached = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", step_cache=0.05)
    cached.save_state_every = float("inf")

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        request = GenerationRequest(PROMPT, NEGATIVE, seed=0, output=tmp_path / "out_%03d.png", **SIZE)
        cached.generate(request, on_progress=stop)
    resume = ["run", "--resume", str(tmp_path / "out.latents.safetensors"), "--device", "cpu", "--gpus", "2"]
    assert cli_main(resume) != 0
    err = capsys.readouterr().err
    assert "the run being resumed had --step-cache 0.05, which a parallel run (--gpus / torchrun) does not" in err
    assert "add --step-cache 0 to sample the rest without it" in err
    done = subprocess.run(
        [sys.executable, "-m", "motif_lite", *resume[:-2], "--step-cache", "0", "--gpus", "2"],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_png_frames(tmp_path).shape == (SIZE["frames"], SIZE["height"], SIZE["width"], 3)


def test_a_failure_on_rank_1_ends_every_rank_with_its_message(checkpoint, tmp_path):
    code, _, err, seconds = run_two_processes(checkpoint, tmp_path, "--sp", "2", fault="raise")
    assert code == 1 and "[rank 1] failed: RuntimeError: injected failure on rank 1" in err
    # Rank 0, stopped by the launcher (or ended on its lost peer first), was said to have "failed too".
    assert err.endswith("\nerror: rank 1 failed (exit code 1); the other ranks were stopped\n"), err
    assert seconds < ENDS_PROMPTLY_SECONDS
    assert not list(tmp_path.glob("*out_*.png"))  # nothing written


def test_a_file_one_machine_lacks_stops_every_rank_before_loading_naming_the_rank(checkpoint, tmp_path):
    # Two machines, as torchrun starts them: the same command, each rank in its own folder, and the clip given as a
    # relative path exists in rank 0's folder only. Without the check rank 1 failed alone on reading it, and rank 0
    # went on until it lost contact (on several machines: until --comm-timeout).
    from PIL import Image

    machines = [tmp_path / "machine0", tmp_path / "machine1"]
    for folder in machines:
        folder.mkdir()
    for index in range(SIZE["frames"]):
        Image.new("RGB", (SIZE["width"], SIZE["height"]), (90, 40 * index, 20)).save(machines[0] / f"c_{index:03d}.png")
    port = str(_free_port())
    command = [
        sys.executable,
        "-m",
        "motif_lite",
        *cli_args(checkpoint, tmp_path / "out.mp4", "--extend", "c_%03d.png"),
    ]
    ranks = []
    for rank, folder in enumerate(machines):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}  # fmt: skip
        ranks.append(subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))  # fmt: skip
    try:
        ended = [process.communicate(timeout=PROCESS_TIMEOUT) for process in ranks]
    finally:
        for process in ranks:
            process.kill()
    refusal = "rank 1 on {} cannot read --extend c_%03d.png: every process of a parallel run reads these files itself"
    for rank, (process, (_, err)) in enumerate(zip(ranks, ended, strict=True)):
        assert process.returncode == 2, err
        assert f"[rank {rank}] error: " + refusal.format(socket.gethostname()) in err, err
    assert "at a path every machine can read" in ended[0][1] and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("slow_lock", [False, True], ids=["as-it-comes", "stopped-as-tqdm-makes-its-lock"])
def test_a_rank_killed_outright_is_named_and_every_rank_ends(checkpoint, tmp_path, slow_lock):
    # Rank 1 SIGKILLed mid-run (the out-of-memory killer): the launcher stops rank 0, whose peer vanished, and names
    # rank 1, by its signal, with the exit status a shell gives a process SIGKILL stopped. Rank 0's first warning
    # line ("nothing to save") made tqdm's write lock; the launcher's SIGTERM landing as tqdm made it turned the
    # stop into tqdm's "AttributeError: type object 'tqdm' has no attribute '_lock'": a traceback, "rank 0 failed".
    code, _, err, seconds = run_two_processes(checkpoint, tmp_path, "--sp", "2", fault="kill", slow_lock=slow_lock)
    assert code == 128 + signal.SIGKILL and seconds < ENDS_PROMPTLY_SECONDS, err
    assert "error: rank 1 failed (stopped by SIGKILL), as the kernel's out-of-memory killer does" in err, err
    assert err.endswith("(dmesg says; a dry run adds up what they need); the other ranks were stopped\n"), err
    assert "error: rank 0 failed" not in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("*out_*.png"))


def test_a_stalled_rank_times_out_and_every_rank_ends(checkpoint, tmp_path):
    code, _, err, seconds = run_two_processes(checkpoint, tmp_path, "--sp", "2", "--comm-timeout", "5", fault="hang")
    assert code != 0 and "[rank 0] failed:" in err
    assert 5 <= seconds < ENDS_PROMPTLY_SECONDS


def test_ctrl_c_stops_every_rank(checkpoint, tmp_path):
    code, _, err, seconds = run_two_processes(checkpoint, tmp_path, "--sp", "2", fault="hang", interrupt=True)
    # ended by the SIGINT, as Python ends: a shell shows 130
    assert code == -signal.SIGINT and seconds < ENDS_PROMPTLY_SECONDS
    # torch's agent's log line is not shown, and rank 0 alone says it: "[rank 1] interrupted" said it twice
    assert "death signal" not in err and err.count("interrupted") == 1, err


def test_ctrl_c_after_some_steps_says_to_resume_on_as_many_processes(checkpoint, tmp_path):
    # The --resume command printed after the kept state would go on in one process: the note says --gpus 2.
    extra = ("--sp", "2", "--steps", "50")
    code, _, err, _ = run_two_processes(checkpoint, tmp_path, *extra, fault="hang-later", interrupt=True)
    assert code == -signal.SIGINT and "go on from there with motif-lite run --resume" in err
    assert err.count("this run had 2 processes: to go on with as many, add --gpus 2 to it;") == 1, err


@pytest.mark.parametrize(
    ("local_world_size", "said"),
    [
        # one machine: as it was
        ("16", "start it under torchrun with 16 processes again (torchrun --nproc-per-node 16 -m motif_lite)"),
        (None, "start it under torchrun with 16 processes again (torchrun --nproc-per-node 16 -m motif_lite)"),
        # 2 x 8 (docs/parallel.md's run) was told --nproc-per-node 16: twice the GPUs of a machine
        ("8", "start it as this run was started, under torchrun on 2 machines of 8 processes each (torchrun "
         "--nnodes 2 --nproc-per-node 8, this run's --rdzv flags, -m motif_lite)"),
        ("6", "start it as this run was started (16 processes in all, 6 on this machine)"),
    ],
)  # fmt: skip
def test_the_resume_note_of_a_torchrun_run_starts_it_on_as_many_machines(monkeypatch, local_world_size, said):
    from motif_lite.cli import build_parser
    from motif_lite.cli.run_videos import _resume_on_as_many

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    if local_world_size is not None:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world_size)
    args = build_parser().parse_args(["run", "-p", PROMPT])
    layout = ParallelLayout(2, 8)  # 16 ranks
    note = _resume_on_as_many(args, SimpleNamespace(layout=layout))
    assert note == f"this run had 16 processes: to go on with as many, {said}; as printed, --resume goes on in one"


class _FellBackOnRankOne:
    """Stands in for the pipeline: its `generate` gives the result a rank's pipeline would, with flash attention
    fallen back on rank 1 only (each rank's auto attention tries and gives up on its own)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def generate(self, video, *args, **kwargs):
        from motif_lite.pipeline.result import GenerationResult

        fallbacks = {"flash attention": "RuntimeError: no kernel image"} if self.rank == 1 else {}
        return GenerationResult(video.output, video, 3.0, {}, 0, None, kernel_fallbacks=fallbacks)


def _sample_with_a_fallback_on_rank_1(rank: int, port: int, out: Path) -> None:
    from motif_lite.cli import build_parser
    from motif_lite.cli.run_videos import Run
    from motif_lite.request import GenerationRequest

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        group = Parallel.create(ParallelLayout(2, 1), torch.device("cpu"), 60)
        args = build_parser().parse_args(["run", "-p", PROMPT, "-o", str(out / "fox.mp4")])
        video = GenerationRequest(PROMPT, output=out / "fox.mp4")
        result = Run(args, group).sample(_FellBackOnRankOne(rank), video, in_batch=False, finished=[], unstarted=[])
        torch.save(result.kernel_fallbacks, out / f"fallbacks{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_the_summary_lists_the_kernels_that_fell_back_on_every_rank(tmp_path):
    # The run's summary listed rank 0's fallbacks alone: a kernel that failed on rank 1 was only its stderr warning.
    _spawn_and_wait(_sample_with_a_fallback_on_rank_1, (_free_port(), tmp_path), processes=2)
    assert torch.load(tmp_path / "fallbacks0.pt") == {"flash attention": "on rank 1: RuntimeError: no kernel image"}


def test_triton_where_it_cannot_run_is_refused_before_launch_on_unread_gpus_without_vram(
    checkpoint, tmp_path, capsys, monkeypatch, gpu_machine
):
    # GPUs here that could not be read, and --kernels triton where Triton cannot run on this machine: refused before
    # the processes start only with --vram (the plan made then resolved the kernels); without it every rank refused it.
    from motif_lite.runtime import kernels
    from motif_lite.runtime.kernels import KernelBackendError

    problem = "no C compiler to build Triton's launcher"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: None)
    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: problem)
    monkeypatch.setattr(launcher, "launch", lambda *args: pytest.fail("started the processes of a refused run"))
    monkeypatch.setattr(kernels, "_triton_problem", lambda device: problem)
    with pytest.raises(KernelBackendError) as one_gpu:  # what a run on one of these GPUs says
        kernels.use_triton("triton", torch.device("cuda", 0))
    args = cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--kernels", "triton")
    for vram in ([], ["--vram", "8"]):
        assert cli_main([*args, *vram]) == 2
        err = capsys.readouterr().err
        assert err.count(f"error: {one_gpu.value}") == 1 and "note: the GPUs could not be read" not in err, err
    assert not torch.cuda.is_initialized()


def test_unread_gpus_of_a_rocm_build_are_planned_with_torchs_ops(monkeypatch):
    # On a ROCm build the GPUs are AMD's, where "auto" runs torch's ops whatever Triton can do: planned as NVIDIA
    # GPUs, with Triton's kernels, a --vram every rank fits would be refused before launch.
    from motif_lite import memory_plan

    monkeypatch.setattr(memory_plan, "triton_problem_of", lambda gpu: None)  # Triton runs here
    monkeypatch.setattr(memory_plan, "rocm_build", lambda: True)
    assert memory_plan.kernels_on_unread_gpus("auto") == "torch"
    monkeypatch.setattr(memory_plan, "rocm_build", lambda: False)
    assert memory_plan.kernels_on_unread_gpus("auto") == "auto"


def test_unread_gpus_are_not_asked_about_triton_for_kernels_that_need_no_refusal(
    checkpoint, tmp_path, capsys, monkeypatch, gpu_machine
):
    # Only --kernels triton can be refused before launch for Triton's sake: asking for another (auto, the default)
    # imported Triton in the launcher for an answer nobody used.
    asked = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launcher, "gpu_readings", lambda n: None)
    monkeypatch.setattr(memory_plan, "kernels_on_unread_gpus", lambda kernels: asked.append(kernels) or "torch")
    monkeypatch.setattr(launcher, "launch", lambda *args: 0)
    for kernels in ("auto", "torch"):
        assert (
            cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--kernels", kernels))
            == 0
        )
        assert "note: the GPUs could not be read" in capsys.readouterr().err
    assert asked == []
    assert (
        cli_main(cli_args(checkpoint, tmp_path / "a.mp4", "--gpus", "2", "--device", "cuda", "--kernels", "triton"))
        == 0
    )
    assert asked == ["triton"]


@pytest.mark.parametrize(
    ("progress", "said"),
    [
        ((4, 4), "this run had 16 processes, but {file} holds all its sampling: motif-lite decode {file} makes the "
                 "video in one process"),
        ((2, 4), "this run had 16 processes: to go on with as many, add --gpus 16 to it; as printed, --resume goes on "
                 "in one"),
        (None, None),  # denoised latents: the keeper's `motif-lite decode` advice alone
    ],
    ids=["sampling-done", "mid-sampling", "denoised"],
)  # fmt: skip
def test_a_parallel_run_whose_file_holds_all_its_sampling_is_told_to_decode_it_in_one_process(tmp_path, progress, said):
    # A parallel run whose decode failed, and whose save of the denoised latents failed too, keeps the state saved
    # after the last step: it was told to resume "with as many" processes, though `motif-lite decode` needs one.
    from motif_lite.cli import build_parser
    from motif_lite.cli.run_videos import _parallel_kept_notes
    from motif_lite.io.latents import SavedLatents

    args = build_parser().parse_args(["run", "-p", PROMPT, "--gpus", "16"])
    file = tmp_path / "fox.latents.safetensors"
    kept = SavedLatents(torch.zeros(1, 16, 3, 4, 6), tmp_path / "fox.mp4", 48, 32, 9, 24.0, "float32", file=file,
                        progress=progress)  # fmt: skip
    notes = _parallel_kept_notes(args, SimpleNamespace(layout=ParallelLayout(2, 8)), kept, None)
    assert notes == ([] if said is None else [said.format(file=file)])


class _ThreadCollectives:
    """torch.distributed's all_to_all_single and all_gather between threads of this process, one thread per rank:
    Ulysses' token and head exchanges checked without starting processes."""

    def __init__(self, world: int) -> None:
        import threading

        self.world, self.sent, self.local = world, [None] * world, threading.local()
        self.barrier = threading.Barrier(world, timeout=30)

    def _exchange(self, value):
        rank = self.local.rank
        self.sent[rank] = value
        self.barrier.wait()
        everyone = list(self.sent)
        self.barrier.wait()  # all have read before the next exchange overwrites
        return rank, everyone

    def all_to_all_single(self, output, input, output_split_sizes, input_split_sizes, group=None):
        rank, parts = self._exchange(input.split(input_split_sizes))
        output.copy_(torch.cat([parts[source][rank] for source in range(self.world)]))

    def all_gather(self, tensors, tensor, group=None):
        _, parts = self._exchange(tensor)
        for out, part in zip(tensors, parts, strict=True):
            out.copy_(part)


def test_ulysses_attention_of_unequal_shares_gives_each_rank_its_queries_outputs(monkeypatch):
    # 10 video tokens on 4 ranks are shares of 3, 3, 2 and 2: two shorter shares, so each rank's first token is not
    # rank x the first share (the process tests' 20 tokens on 3 ranks, 7, 7, 6, have one shorter share, the last).
    # Two copies of the tokens (the DDT decoder's) and 3 tokens every rank holds; causal attention, so a token out
    # of its single-process place changes the outputs.
    from motif_lite.runtime import ulysses

    sp, heads, copies, replicated = 4, 8, 2, 3
    counts = split_tokens(10, sp)
    assert counts == (3, 3, 2, 2)
    collectives = _ThreadCollectives(sp)
    monkeypatch.setattr(ulysses, "dist", collectives)

    def attend(q, k, v, mask):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    torch.manual_seed(0)
    q, k, v = (torch.randn(1, heads, copies * sum(counts) + replicated, 4) for _ in range(3))
    expected = attend(q, k, v, None)
    starts = [sum(counts[:rank]) for rank in range(sp)]

    def rank_tokens(t: torch.Tensor, rank: int) -> torch.Tensor:  # this rank's share of each copy, then the rest
        runs = [t[:, :, j * sum(counts) + starts[rank] :][:, :, : counts[rank]] for j in range(copies)]
        return torch.cat([*runs, t[:, :, copies * sum(counts) :]], dim=2)

    outputs, errors = [None] * sp, []

    def run(rank: int) -> None:
        collectives.local.rank = rank
        attention = ulysses.UlyssesAttention(attend, None, rank, counts, copies)
        try:
            outputs[rank] = attention(*(rank_tokens(t, rank) for t in (q, k, v)), None)
        except Exception as exc:  # said below; the other ranks stop waiting for this one
            errors.append(exc)
            collectives.barrier.abort()

    import threading

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(sp)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors[0]
    for rank in range(sp):
        torch.testing.assert_close(outputs[rank], rank_tokens(expected, rank))


def test_a_run_counts_torchruns_processes_else_those_gpus_asks_for(monkeypatch):
    # `run`'s layout and --resume's decode with the VAE alone count them with this one helper.
    from motif_lite.launcher_variables import run_processes

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert [run_processes(gpus) for gpus in (None, 1, 4)] == [1, 1, 4]
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert [run_processes(gpus) for gpus in (None, 1, 4)] == [8, 8, 8]  # torchrun started them: --gpus is not used
