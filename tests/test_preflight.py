"""Before any weights load: dry runs need no weights and no network, every check that needs no weights runs first
and reports every problem at once, and missing files end in one download hint (no Hub retries, no log noise)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gguf import GGMLQuantizationType
from gguf_helpers import write_test_gguf
from huggingface_hub import constants
from test_mutants30 import one_gpu

from motif_lite import cli
from motif_lite.checkpoint import locate_sources, locate_vae
from motif_lite.config import TransformerConfig
from motif_lite.devices import resolve_device
from motif_lite.errors import CheckpointError, DeviceError
from motif_lite.io import checkpoint_source, hub
from motif_lite.io.gguf_source import find_gguf
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.memory_plan import AT_HAND, _planner_inputs, plan_generation
from motif_lite.pipeline import loading
from motif_lite.request import GenerationRequest
from motif_lite.runtime.kernels import KernelBackendError
from motif_lite.shell_syntax import posix_quoted
from motif_lite.sizes import estimated_gguf_bytes
from motif_lite.units import memory_size
from motif_lite.weights.gguf_file import read_gguf

CHECKPOINT_PATTERNS = "text_encoder/*, tokenizer/*, vae/*, transformer/config.json, model_index.json, scheduler/*, "
CHECKPOINT_PATTERNS += "guider/*, feature_extractor/*"

# Pascal's fp32 plans need about 18.6 GiB of host memory, bf16 ones about 14.6 GiB: on this machine's available
# memory, which moved between two plans, their warning came among the GPU warnings these tests compare or forbid. The
# plans see conftest's `roomy_host` instead (every test's); the host's own plans are tested in tests/test_planner.py
# and tests/test_platforms.py.


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> tuple[Path, object]:
    return shared_checkpoint  # (root, reference): read only, as conftest's shared_checkpoint says


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------------------- dry runs


def test_dry_run_with_nothing_at_hand_plans_the_official_gguf_for_cuda(no_network, no_weights, capsys):
    code, out, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda", "--vram", "8")
    assert code == 0, err
    assert "not at hand" in err and "downloads no weights" in err  # says what it planned from
    assert "official architecture (built-in)" in out and "official Wan2.1" in out and "official T5Gemma2 size" in out
    assert "estimated from our quantizer's Q4_K_M recipe" in out and "budget 8.00 GiB" in out
    assert "Memory plan for 1280x736x121" in out  # no prompt needed


def test_a_dry_run_of_a_variant_the_quantizer_does_not_make_plans_with_the_nearest_recipe(
    checkpoint, no_network, capsys
):
    # --gguf IQ4_XS (a type motif-lite runs) not at hand: the dry run stopped with the quantizer's "choose one of".
    code, out, err = run(capsys, "-m", str(checkpoint[0]), "--dry-run", "--gguf", "iq4_xs", "-W", "48", "-H", "32")
    assert code == 0, err
    assert "our quantizer's Q4_K_M recipe (the nearest to IQ4_XS, a type it does not make)" in out, out
    config = TransformerConfig.from_json(checkpoint[0] / "transformer" / "config.json")
    assert estimated_gguf_bytes(config, "IQ4_XS") == estimated_gguf_bytes(config, "Q4_K_M")
    code, _, err = run(capsys, "-m", str(checkpoint[0]), "--dry-run", "--gguf", "TQ1_0", "-W", "48", "-H", "32")
    assert code == cli.EXIT_USER_ERROR and "motif-lite cannot run a file of GGUF type TQ1_0" in err, err  # no stand-in


def test_a_dry_run_for_a_gpu_not_here_says_which_vram_plans_as_a_run_there_would(no_network, no_weights, capsys):
    # "give --vram GiB to plan for yours" led an 8 GB card's user to --vram 8, a plan its free memory cannot hold;
    # a run there plans for the free memory / 1.08 (default_budget), and the note gives that figure's recipe.
    from motif_lite.runtime.planner import default_budget

    code, _, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda")
    assert code == 0, err
    assert "planned without a budget; give --vram GiB to plan as a run on your GPU would, for its free memory" in err
    assert "nvidia-smi's free MiB / 1106 (7380 MiB free: --vram 6.67)" in err
    code, _, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda", "--vram", "6.67")
    assert code == 0 and "no CUDA device on this machine" not in err, err  # planned for that budget: nothing to say
    free = 7380 * 2**20
    with pytest.MonkeyPatch.context() as patch:  # the figure is the budget a run with that free memory takes
        patch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 8188 * 2**20))
        assert f"{default_budget('cuda') / 2**30:.2f}" == "6.67" == f"{7380 / 1106:.2f}"


def test_a_dry_run_on_a_shared_gpu_says_what_other_processes_hold_and_the_budget_it_leaves(
    no_network, no_weights, monkeypatch, capsys
):
    # The plan's header said "budget 5.56 GiB" alone: a user whose desktop holds 2 GiB of an 8 GiB card (what
    # nvidia-smi shows) could not tell where that figure came from.
    from motif_lite.runtime import cost

    simulated_gpu(monkeypatch, 6 * 2**30)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(cost, "measure_matmul_flops", lambda *args, **kwargs: 100e12)  # the time note's, on no GPU
    code, out, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda")
    assert code == 0, err
    budget = memory_size(int(6 * 2**30 / 1.08))
    assert (
        f"note: NVIDIA GeForce RTX 4090 (cuda) has 6.00 GiB free of 8.00 GiB; other processes hold 2.00 GiB "
        f"(nvidia-smi lists them; CUDA's own state counts there too): a run plans for the GPU's free memory at the "
        f"start / 1.08, a budget of {budget}"
    ) in err, err
    assert f"budget {budget}, plan" in out  # the figure the plan's header gives
    code, out, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda", "--vram", "4")
    assert code == 0 and "other processes hold 2.00 GiB" in err and "the plan is made for --vram's budget" in err


def test_a_dry_run_never_asks_the_hub_even_online(no_network, no_weights, monkeypatch, capsys):
    # `no_network` with HF's offline mode off: the Hub would be asked if the dry run allowed it, and that fails.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    code, out, err = run(capsys, "--dry-run", "--gguf", "Q4_K_M", "--device", "cuda", "--vram", "8")
    assert code == 0, err
    assert "Memory plan for 1280x736x121" in out


def test_dry_run_plans_cuda_with_the_fused_norms_on_any_machine(no_network):
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    cuda = plan_generation(request, sources, device="cuda", vram_gib=8)
    cpu = plan_generation(request, sources, device="cpu", vram_gib=None)
    cuda_act = next(s.activation_bytes for s in cuda.stages if s.name == "denoise")
    cpu_act = next(s.activation_bytes for s in cpu.stages if s.name == "denoise")
    assert cuda.device == "cuda" and cuda_act < cpu_act  # no float32 RoPE temporaries with the fused norms
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda")  # a real run still needs the device


def test_a_plan_for_a_gpu_number_the_machine_lacks_is_made_as_for_any_gpu_not_here(no_network, monkeypatch):
    # plan_generation plans for a GPU this machine lacks (no budget but --vram, the default dtype of no device). For
    # cuda:3 on a machine with one GPU it read cuda:3's free memory and capability, and ended in torch's
    # AssertionError: a machine with CUDA counted every cuda:N as here (devices.is_here).
    one_gpu(monkeypatch)
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    plan = plan_generation(request, sources, device="cuda:3", vram_gib=8)
    assert plan.device == "cuda:3" and plan.budget_bytes == 8 * 2**30
    assert plan_generation(request, sources, device="cuda:3").budget_bytes is None  # no memory to read: no limit
    assert plan_generation(request, sources, device="cuda:0").budget_bytes < 70 << 30  # the GPU here: its free memory


def test_a_vram_budget_above_the_gpus_memory_plans_for_its_free_memory(no_network, monkeypatch):
    # --vram 8000 (megabytes meant) on an 8 GiB GPU would plan a run the GPU cannot hold: warned, the free memory
    # planned instead; a budget within the GPU's memory is the user's, even above what is free now.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))  # the default dtype's
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    with pytest.warns(
        UserWarning, match=r"--vram 8000 GiB \(8192000 MiB\) is more than this GPU's whole memory, 8192 MiB \(--vram is"
    ):
        slip = plan_generation(request, sources, device="cuda", vram_gib=8000)
    assert slip.budget_bytes == int(6 * 2**30 / RESERVED_RATIO)
    assert plan_generation(request, sources, device="cuda", vram_gib=7).budget_bytes == 7 * 2**30
    assert plan_generation(request, sources, device="cuda").budget_bytes == int(6 * 2**30 / RESERVED_RATIO)  # none


def test_vram_8_on_an_8_gb_card_says_the_cards_memory_in_mib(no_network, monkeypatch):
    # An "8 GB" card has 8188 MiB (nvidia-smi), a hair under --vram 8: in GiB both read "8.00 GiB", and the warning
    # said "--vram 8 GiB is more than this GPU's 8.00 GiB". In MiB the two differ, and the free budget is named.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (int(7.2 * 2**30), 8188 * 2**20))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4060 Laptop GPU")
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    with pytest.warns(UserWarning) as said:
        plan = plan_generation(request, sources, device="cuda", vram_gib=8)
    [message] = [str(w.message) for w in said if "--vram" in str(w.message)]
    free_budget = int(int(7.2 * 2**30) / RESERVED_RATIO)
    assert "--vram 8 GiB (8192 MiB) is more than this GPU's whole memory, 8188 MiB" in message
    assert f"a budget of {memory_size(free_budget)}; leave --vram out" in message and "8.00 GiB" not in message
    assert plan.budget_bytes == free_budget


def test_a_vram_whose_reserve_is_more_than_the_gpu_is_lowered_to_the_vram_that_fits(no_network, monkeypatch):
    # --vram 7.9 on an 8188 MiB card: a plan may allocate 7.9 GiB, and the allocator reserves ~1.08x that, 8.53 GiB:
    # more than the card, an out-of-memory at the peak. Said before loading, with the --vram that fits, and planned
    # for that budget, whose reserve fits.
    from motif_lite.runtime.planner import RESERVED_RATIO

    total = 8188 * 2**20
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # All of it free: less free would be warned of too (`gpu_memory.plan_over_room_note`).
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (total, total))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4060 Laptop GPU")
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(**AT_HAND)  # bf16: the plan's peak is near its budget
    with pytest.warns(UserWarning) as said:
        plan = plan_generation(request, sources, device="cuda", vram_gib=7.9)
    [message] = [str(w.message) for w in said if "--vram 7.9 lets a plan" in str(w.message)]
    most = int(total / RESERVED_RATIO)
    assert "up to 8.53 GiB: more than this GPU's 8188 MiB, so such a plan would run out of memory" in message
    assert f"a budget of {memory_size(most)} instead" in message and "give --vram 7.40 or less" in message
    assert plan.budget_bytes == most and plan.reserved_bytes <= total
    import warnings

    with warnings.catch_warnings():  # the figure it names plans without the warning, within the card
        warnings.simplefilter("error")
        assert plan_generation(request, sources, device="cuda", vram_gib=7.40).budget_bytes == int(7.40 * 2**30)
    # --vram the GPU's whole memory is no slip beyond it: lowered the same way, not replaced by the free memory.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 8 * 2**30))
    with pytest.warns(UserWarning) as said:
        assert plan_generation(request, sources, device="cuda", vram_gib=8).budget_bytes == int(8 * 2**30 / 1.08)
    assert not [w for w in said if "more than this GPU's whole memory" in str(w.message)]


@pytest.mark.parametrize("windows_driver", [True, False])
def test_a_vram_budget_above_the_free_memory_is_kept_and_warned_of_where_it_spills(
    no_network, monkeypatch, windows_driver
):
    import warnings

    from motif_lite import memory_plan
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(memory_plan, "windows_gpu_driver", lambda: windows_driver)
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert plan_generation(request, sources, device="cuda", vram_gib=7).budget_bytes == 7 * 2**30
        # The most whose allocator reserve fits the GPU's 8 GiB: 8 / 1.08 = 7.407 GiB.
        assert plan_generation(request, sources, device="cuda", vram_gib=7.4).budget_bytes == int(7.4 * 2**30)
    spills = [str(warning.message) for warning in said if "spills into system memory" in str(warning.message)]
    assert len(spills) == (2 if windows_driver else 0), spills
    assert not [warning for warning in said if "more than this GPU's" in str(warning.message)]
    if windows_driver:  # compared with what a plan may take of the free memory, not with the GPU's total
        free_budget = memory_size(int(6 * 2**30 / RESERVED_RATIO))
        assert spills[0].startswith(f"--vram 7.00 GiB is more than the {free_budget} this GPU can give a run now")
    # A --vram lowered to the most whose reserve fits, on a GPU with all of it free: that is what the free memory
    # gives, so nothing spills (the figure asked for, 7.9 GiB, would have).
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 8 * 2**30))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        assert plan_generation(request, sources, device="cuda", vram_gib=7.9).budget_bytes == int(8 * 2**30 / 1.08)
    assert not [warning for warning in said if "spills into system memory" in str(warning.message)]


def test_a_vram_plan_that_cannot_fit_beside_what_other_processes_hold_is_warned_of_before_loading(
    no_network, monkeypatch
):
    # Linux's driver fails the allocation at the plan's peak, after the load: a shared GPU's user is told first,
    # with what holds the rest and the --vram that fits.
    import warnings

    from motif_lite import memory_plan

    simulated_gpu(monkeypatch, 6 * 2**30)  # an 8 GiB card whose desktop and browser hold 2 GiB
    monkeypatch.setattr(memory_plan, "windows_gpu_driver", lambda: False)
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    with pytest.warns(UserWarning, match="then runs out of memory at its peak") as said:
        plan = plan_generation(request, sources, device="cuda", vram_gib=7)
    note = next(str(w.message) for w in said if "runs out of memory at its peak" in str(w.message))
    assert plan.reserved_bytes > 6 * 2**30 and f"needs ~{memory_size(plan.reserved_bytes)} of GPU memory" in note
    assert f"other processes hold {memory_size(2 * 2**30)}" in note and "this process's tensors" not in note, note
    named = float(note.split("give --vram ")[1].split(" ")[0])
    assert named == 5.55, note  # 6 GiB / 1.08, rounded down
    with warnings.catch_warnings():  # the figure it names plans within what is free, without the warning
        warnings.simplefilter("error")
        assert plan_generation(request, sources, device="cuda", vram_gib=named).reserved_bytes <= 6 * 2**30
    # A notebook that loaded another model in this process: its tensors keep their 2 GiB, not free for this run.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4 * 2**30, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 2 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * 2**30)
    with pytest.warns(UserWarning, match="this process's tensors hold 2.00 GiB; other processes hold 2.00 GiB"):
        plan_generation(request, sources, device="cuda", vram_gib=5)
    # Windows' driver spills instead of failing: its own note says so, not this one.
    monkeypatch.setattr(memory_plan, "windows_gpu_driver", lambda: True)
    with pytest.warns(UserWarning) as said:
        plan_generation(request, sources, device="cuda", vram_gib=5)
    assert not [w for w in said if "runs out of memory at its peak" in str(w.message)]


def test_guidance_is_batched_on_cuda_only_unless_asked(no_network):
    # Batched guidance is slower on the CPU (docs/benchmarks.md): a CPU plan keeps one row per forward even
    # when a budget leaves room for two, unless batch_guidance=True asks for it.
    request, _ = GenerationRequest("x", output="a.mp4", width=256, height=256, frames=9).resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    assert plan_generation(request, sources, device="cuda", vram_gib=64).cfg_batch == 2
    assert plan_generation(request, sources, device="cpu", vram_gib=64).cfg_batch == 1
    assert plan_generation(request, sources, device="cpu", vram_gib=64, batch_guidance=True).cfg_batch == 2
    # A rank of a sequence-parallel run computes the two predictions in separate calls, whatever is asked.
    for asked in (None, True):
        plan = plan_generation(request, sources, device="cuda", vram_gib=64, sequence_parallel=2, batch_guidance=asked)
        assert plan.cfg_batch == 1


def test_an_unguided_request_plans_one_row_and_int8_attention_counts_the_rows(no_network):
    # Without guidance there is no second prediction to batch, whatever is asked; with it, 8-bit attention's K/V
    # copies are counted for the rows of each forward.
    from motif_lite.runtime.kernels import attention_workspace_bytes

    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    unguided, _ = GenerationRequest("x", output="a.mp4", width=256, height=256, frames=9, cfg_scale=0.0).resolve()
    for asked in (None, True):
        assert plan_generation(unguided, sources, device="cuda", vram_gib=64, batch_guidance=asked).cfg_batch == 1
    request, _ = GenerationRequest("x", output="a.mp4", width=256, height=256, frames=9).resolve()
    plans = {a: plan_generation(request, sources, device="cuda", vram_gib=64, attention=a) for a in ("exact", "int8")}
    assert plans["int8"].cfg_batch == plans["exact"].cfg_batch == 2
    denoise = {a: next(s for s in plan.stages if s.name == "denoise").peak_bytes for a, plan in plans.items()}
    config = sources.transformer.value
    two_rows = attention_workspace_bytes("int8", config, plans["int8"].video_tokens, 2, image_tokens=0)
    assert two_rows > attention_workspace_bytes("int8", config, plans["int8"].video_tokens, 1, image_tokens=0)
    assert denoise["int8"] - denoise["exact"] >= two_rows
    # A text-to-video forward's joint attention has no image tokens: its K/V copies are counted without them.
    inputs = _planner_inputs(request, sources, torch.bfloat16, torch.device("cuda"), "auto", "int8", None)
    with_image = attention_workspace_bytes("int8", config, plans["int8"].video_tokens, 2, image_tokens=4096)
    assert inputs.attention_workspace_bytes(2) == two_rows < with_image


@pytest.mark.parametrize(
    ("device", "kernels", "backend", "triton_attention"),
    [
        ("cuda", "auto", "auto", True),  # auto's trial times our dense Triton kernel
        ("cuda", "auto", "triton", True),
        ("cuda", "auto", "sdpa", False),  # a fixed backend of PyTorch's: our kernel never runs
        ("cuda", "torch", "auto", False),  # no Triton kernels at all
        ("cpu", "auto", "auto", False),
    ],
)
def test_the_plan_knows_when_the_exact_attention_can_be_our_triton_kernel(
    no_network, device, kernels, backend, triton_attention
):
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    target = torch.device(device)
    inputs = _planner_inputs(
        request, sources, torch.bfloat16, target, kernels, "exact", None, attention_backend=backend
    )
    assert inputs.triton_attention is triton_attention


def test_int8_attention_counts_one_row_when_the_plan_falls_back_to_one_row(no_network):
    # A budget between the 1-row and 2-row plans: the guidance predictions run one after the other, and the 8-bit
    # attention's K/V copies are counted for one row (two would push the plan down the ladder or overstate it).
    # The official size: there the denoise stage, whose rows these are, sets the peak (at 256x256 the text encoder's).
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)
    request, _ = GenerationRequest("x", output="a.mp4").resolve()

    def plan(**options):
        return plan_generation(request, sources, device="cuda", attention="int8", **options)

    one, two = plan(vram_gib=64, batch_guidance=False), plan(vram_gib=64)
    assert (one.cfg_batch, two.cfg_batch) == (1, 2) and one.peak_bytes < two.peak_bytes
    fallback = plan(vram_gib=(one.peak_bytes + two.peak_bytes) / 2 / 2**30)
    assert (fallback.cfg_batch, fallback.ladder_index) == (1, 0)
    assert fallback.stages == one.stages  # the denoise stage's workspace included


def test_dry_run_reads_the_checkpoint_configs_and_headers_only(checkpoint, no_network, no_weights, capsys):
    code, out, err = run(capsys, "-m", str(checkpoint[0]), "--dry-run", "-W", "48", "-H", "32", "--vram", "1")
    assert code == 0, err
    table = out.split("sizes:")[0].splitlines()
    settings = {line.split()[0]: line for line in table if line.startswith("  ")}
    assert "checkpoint" in settings["guidance"] and "guider/guider_config.json" in settings["guidance"]
    assert "checkpoint" in settings["transformer"] and "scheduler/scheduler_config.json" in settings["flow"]
    assert "text_encoder/*.safetensors headers" in out and "vae/config.json" in out


def test_official_variant_size_is_what_the_quantizer_writes(checkpoint, tmp_path):
    # The count on the meta device against a real quantizer run on the same architecture (Q4_0/Q8_0: fast).
    from motif_lite.quantize.cli import main as quantize_main

    config = TransformerConfig.from_json(checkpoint[0] / "transformer" / "config.json")
    for variant in ("Q4_0", "q8_0"):
        out = tmp_path / f"tiny-{variant}.gguf"
        assert quantize_main([str(checkpoint[0]), "-o", str(out), "--type", variant, "--quiet"]) == 0
        estimate, recipe = estimated_gguf_bytes(config, variant)
        assert estimate == read_gguf(out).nbytes() and recipe == variant.upper()


def test_out_of_memory_in_a_planned_run_names_the_budget_and_the_vram_of_the_next_plan(
    checkpoint, tmp_path, capsys, monkeypatch
):
    # It said "give a smaller budget (--vram GiB)" without a figure: which one plans less was the user's to find.
    import re

    from motif_lite.model.transformer import MotifVideoTransformer

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(MotifVideoTransformer, "forward", out_of_memory)  # at the first step
    flags = ["-m", str(checkpoint[0]), "-p", "a fox", "-W", "256", "-H", "256", "--video-frames", "33"]
    flags += ["--steps", "2", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "fox.mp4")]
    code, _, err = run(capsys, *flags, "--vram", "4")
    assert code == cli.EXIT_OUT_OF_MEMORY and "error: out of device memory: CUDA out of memory" in err
    assert "the memory plan (1 of " in err and "had a budget of 4.00 GiB (--vram) for an est. peak of" in err, err
    figures = re.search(r"--vram (\d+\.\d\d) \(just under that peak\) gives the next plan, (\d+): est. peak", err)
    lower, number = figures.groups()
    assert "give a smaller budget (--vram GiB)" not in err  # the advice without figures
    code, out, err = run(capsys, *flags, "--vram", lower, "--dry-run")  # the figure plans as it says
    assert code == 0 and f"budget {lower} GiB, plan {number} of " in out, out
    from motif_lite.cli import prepare

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the advice")

    monkeypatch.setattr(prepare, "run_out_of_memory_advice", broken)  # the error it was for is said all the same
    code, _, err = run(capsys, *flags, "--vram", "4")
    assert code == cli.EXIT_OUT_OF_MEMORY and "give a smaller budget (--vram GiB)" in err, err


def test_out_of_memory_with_the_smallest_plan_says_to_make_a_smaller_video(no_network, monkeypatch):
    # No --vram plans less: the way to the sizes that fit is named instead.
    from motif_lite.cli.prepare import planned_run, run_out_of_memory_advice, sources_before_download

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # --vram as given, on any machine

    args = cli.build_parser().parse_args(["run", "-p", "x", "--gguf", "Q4_K_M", "--vram", "3.5", "--device", "cuda"])
    args.weights = {}
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = sources_before_download(args)  # the official configs: nothing is at hand
    cuda = torch.device("cuda")
    planned = planned_run(args, request, sources, torch.bfloat16, cuda)
    plan = planned.plan()  # 3.41 GiB: the ladder's last plans
    advice = run_out_of_memory_advice(planned, plan)
    assert advice.endswith(
        "No plan of this video needs less: make a smaller video (--dry-run --vram 3.40 names the sizes that fit)"
    )
    assert "or the estimate fell short. No plan" in advice, advice  # its own smallest plan: no GPU held by others
    # A peak under 0.01 GiB has no --vram figure under it: no "--vram 0.00" is named.
    small = [dataclasses.replace(stage, peak_bytes=5 * 2**20) for stage in plan.stages]
    tiny = dataclasses.replace(plan, stages=tuple(small))
    advice = run_out_of_memory_advice(planned, tiny)
    assert advice.endswith(
        "for an est. peak of 5.0 MiB allocated (~5.4 MiB reserved): another program may have "
        "taken GPU memory since (close it), or the estimate fell short. Make a smaller video"
    )
    # The server's operator, told the same: no --vram plans less, only a smaller --max-video.
    from motif_lite.server.worker import operator_advice

    for smallest in (plan, tiny):
        assert operator_advice(planned, smallest).endswith(". Restart the server with a smaller --max-video")


@pytest.mark.parametrize("peak", [2**30, 2**28, 3 * 2**30 + 1, 5 * 2**30 - 1, 123_456_789])
def test_the_vram_named_after_running_out_is_just_under_the_peak(peak):
    # A peak of a round figure (1 GiB) must get 0.99, not 1.00: a budget of the peak itself plans the same plan.
    from motif_lite.memory_advice import vram_just_under

    lower = vram_just_under(peak)
    assert lower * 2**30 < peak <= (lower + 0.01) * 2**30


def simulated_gpu(monkeypatch, free_bytes: int, total_bytes: int = 8 * 2**30) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_bytes, total_bytes))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")


def planned_here_and_from_a_reading(monkeypatch, vram_gib: float | None, capability: tuple[int, int]) -> list[tuple]:
    """[the plan made with the GPU at hand, the plan made from another process's reading of that GPU], each as its
    budget, peak and warnings (but the one that Triton's kernels are unavailable, which only the GPU at hand gives)."""
    import warnings

    from motif_lite.gpu_memory import GpuReading, GpuUse
    from motif_lite.gpus import NVIDIA, GpuFacts

    free, total = 6 * 2**30, 8188 * 2**20
    # Pascal's default dtype is fp32 (`dtypes.default_dtype`): a smaller video, which its plans fit.
    size = {} if capability >= (7, 0) else {"width": 832, "height": 480, "frames": 33}
    request, _ = GenerationRequest("x", output="a.mp4", **size).resolve()
    sources = locate_sources(**AT_HAND)

    def planned(**kwargs):
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            plan = plan_generation(request, sources, device="cuda", vram_gib=vram_gib, **kwargs)
        # Where "auto" runs torch's ops the GPU at hand also warns that Triton's are unavailable: the rank says it.
        said = [str(w.message) for w in said if not str(w.message).startswith("motif-lite: Triton kernels unavail")]
        return plan.budget_bytes, plan.peak_bytes, sorted(said)

    with monkeypatch.context() as here:
        simulated_gpu(here, free, total)
        here.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        at_hand = planned()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for asked in ("mem_get_info", "get_device_name", "get_device_capability", "get_device_properties"):
        monkeypatch.setattr(torch.cuda, asked, lambda *a, _asked=asked, **kw: pytest.fail(f"torch.cuda.{_asked}"))
    reading = GpuReading(GpuFacts(NVIDIA, "NVIDIA GeForce RTX 4090", capability), GpuUse(total, free))
    return [at_hand, planned(gpu=reading)]


@pytest.mark.parametrize("capability", [(8, 9), (6, 1)], ids=["ada", "pascal"])  # Triton's kernels; none before Volta
@pytest.mark.parametrize("vram_gib", [None, 4.5, 7, 7.9, 64])
def test_a_gpu_read_by_another_process_is_planned_as_the_gpu_read_here(no_network, monkeypatch, vram_gib, capability):
    # run --gpus N plans each rank in the launcher from its GPU's reading (a child process read it: a CUDA context in
    # the launcher would hold memory of cuda:0 for the whole run). The plan and its warnings are the ones the rank
    # makes with the GPU at hand: the free memory's budget, --vram lowered to what the card holds, the slip beyond it
    # and the reserve that cannot fit beside the other processes.
    at_hand, from_reading = planned_here_and_from_a_reading(monkeypatch, vram_gib, capability)
    assert from_reading == at_hand
    assert not torch.cuda.is_initialized()


def test_the_gpu_plans_here_are_the_same_on_a_small_loaded_machine(no_network, monkeypatch):
    # The machine `roomy_host` keeps from this file's plans: a container with 8 GiB of memory left, of which other
    # processes take another GiB by each reading (`host_memory.available_ram` reads it through `memory_limit`).
    # There the GPU reading's comparison failed for Pascal (each plan's warning named another "available now"), and
    # a plan that shows a --vram gives no warning gave the host's.
    import itertools
    import warnings

    from motif_lite.runtime import host_memory
    from motif_lite.runtime.memory_limit import MemoryLimit

    taken = itertools.count(16)
    monkeypatch.setattr(host_memory, "memory_limit", lambda: MemoryLimit(24 * 2**30, next(taken) * 2**30, version=2))
    at_hand, from_reading = planned_here_and_from_a_reading(monkeypatch, None, (6, 1))
    assert from_reading == at_hand
    simulated_gpu(monkeypatch, 8 * 2**30)
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_generation(request, locate_sources(**AT_HAND), device="cuda", vram_gib=7).budget_bytes == 7 * 2**30


TRITON_PROBLEMS = {
    "pascal": {"capability": (6, 1)},
    "old-triton-on-blackwell": {"capability": (10, 0), "version": "3.2.0"},
    "no-triton": {"import_error": "ImportError: No module named 'triton'"},
    "no-c-compiler": {"build_problem": "no C compiler found for Triton's launcher"},
    "none": {},
}


@pytest.mark.parametrize("problem", list(TRITON_PROBLEMS))
@pytest.mark.parametrize("kernels", ["auto", "triton"])
def test_a_gpu_read_by_another_process_gets_use_tritons_kernel_decision(no_network, monkeypatch, kernels, problem):
    # run --gpus N plans each rank from its GPU's reading. It checked only the capability for "auto", and "triton"
    # not at all: on GPUs Triton cannot use, N ranks started and each refused "triton"; without triton, the launcher
    # planned Triton's kernels where the ranks run torch's ops. The reading's decision is the one made here.
    import triton

    from motif_lite.gpu_memory import GpuReading, GpuUse
    from motif_lite.gpus import NVIDIA, GpuFacts
    from motif_lite.runtime import kernels as kernel_choice

    case = TRITON_PROBLEMS[problem]
    capability = case.get("capability", (8, 9))
    monkeypatch.setattr(triton, "__version__", case.get("version", triton.__version__))
    monkeypatch.setattr(kernel_choice, "_triton_import_error", lambda: case.get("import_error"))
    monkeypatch.setattr(kernel_choice, "launcher_build_problem", lambda: case.get("build_problem"))
    # Pascal's default dtype is fp32 (`dtypes.default_dtype`): a smaller video, which its plans fit.
    request, _ = GenerationRequest("x", output="a.mp4", width=832, height=480, frames=33).resolve()
    sources = locate_sources(**AT_HAND)

    def outcome(**kwargs) -> tuple:
        try:
            plan = plan_generation(request, sources, device="cuda", vram_gib=3.5, kernels=kernels, **kwargs)
        except KernelBackendError as refused:
            return ("refused", str(refused))
        return plan.peak_bytes, plan.budget_bytes, plan.stages

    with monkeypatch.context() as here, pytest.warns() if kernels == "auto" and problem != "none" else nullcontext():
        simulated_gpu(here, 7 * 2**30)
        here.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        at_hand = outcome()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for asked in ("mem_get_info", "get_device_name", "get_device_capability", "get_device_properties"):
        monkeypatch.setattr(torch.cuda, asked, lambda *a, _asked=asked, **kw: pytest.fail(f"torch.cuda.{_asked}"))
    reading = GpuReading(GpuFacts(NVIDIA, "NVIDIA GeForce RTX 4090", capability), GpuUse(8 * 2**30, 7 * 2**30))
    assert outcome(gpu=reading) == at_hand
    assert (at_hand[0] == "refused") == (kernels == "triton" and problem != "none")


def test_out_of_memory_without_a_vram_names_the_free_memory_as_the_plans_budget(no_network, monkeypatch):
    from motif_lite.cli.prepare import planned_run, run_out_of_memory_advice, sources_before_download

    simulated_gpu(monkeypatch, 6 * 2**30)
    args = cli.build_parser().parse_args(["run", "-p", "x", "--gguf", "Q4_K_M", "--device", "cuda"])
    args.weights = {}
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    planned = planned_run(args, request, sources_before_download(args), torch.bfloat16, torch.device("cuda"))
    plan = planned.plan()
    advice = run_out_of_memory_advice(planned, plan)
    said = f"had a budget of {memory_size(plan.budget_bytes)} (the GPU's free memory at the start / 1.08) for"
    assert said in advice and "(--vram)" not in advice, advice


def test_the_budgets_warnings_are_not_said_again_with_the_out_of_memory_advice(no_network, monkeypatch):
    # The next plan down is planned to name it: the warnings its budget gives were given with the run's plan.
    import warnings

    from motif_lite import memory_plan
    from motif_lite.cli.prepare import planned_run, run_out_of_memory_advice, sources_before_download

    # Windows' driver spills any budget over the free memory: warned of. The plan's reserve (6.14 GiB) still fits
    # the 6.5 GiB free, so the advice names the --vram just under its peak.
    simulated_gpu(monkeypatch, int(6.5 * 2**30))
    monkeypatch.setattr(memory_plan, "windows_gpu_driver", lambda: True)
    args = cli.build_parser().parse_args(["run", "-p", "x", "--gguf", "Q4_K_M", "--vram", "7", "--device", "cuda"])
    args.weights = {}
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    planned = planned_run(args, request, sources_before_download(args), torch.bfloat16, torch.device("cuda"))
    with pytest.warns(UserWarning, match="spills into system memory"):
        plan = planned.plan()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        advice = run_out_of_memory_advice(planned, plan)
    assert "just under that peak) gives the next plan" in advice and not said, [str(w.message) for w in said]


def test_out_of_memory_after_another_process_took_gpu_memory_names_it_and_a_vram_that_fits_beside_it(
    no_network, monkeypatch
):
    # A shared 8 GiB GPU: 6 GiB free when the plan is made, then another process takes 1.5 GiB while this one holds
    # the loaded model. The --vram just under the plan's peak would run out again; the advice names what is left.
    from motif_lite.cli.prepare import planned_run, run_out_of_memory_advice, sources_before_download
    from motif_lite.runtime.planner import RESERVED_RATIO

    simulated_gpu(monkeypatch, 6 * 2**30)
    args = cli.build_parser().parse_args(["run", "-p", "x", "--gguf", "Q4_K_M", "--device", "cuda"])
    args.weights = {}
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    planned = planned_run(args, request, sources_before_download(args), torch.bfloat16, torch.device("cuda"))
    plan = planned.plan()
    held = 2 * 2**30  # this process's tensors: the model loaded for the plan
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: held)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: held)
    free_now = 6 * 2**30 - held - int(1.5 * 2**30)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_now, 8 * 2**30))
    advice = run_out_of_memory_advice(planned, plan)
    room = free_now + held  # what a run has beside the other processes
    assert f"other processes hold {memory_size(int(3.5 * 2**30))}" in advice, advice
    assert f"which leaves a run {memory_size(room)}" in advice, advice
    named = float(advice.split("--vram ")[1].split(" ")[0])
    assert named * 2**30 * RESERVED_RATIO <= room < (named + 0.01) * 2**30 * RESERVED_RATIO, advice
    assert "(what the GPU has left now / 1.08) gives plan " in advice, advice
    # The plan it names fits what is left, reserve included: in a new run. Planned in this process, whose tensors
    # still hold their 2 GiB, it is warned of.
    with pytest.warns(UserWarning, match="this process's tensors hold 2.00 GiB"):
        assert planned.plan(vram_gib=named).reserved_bytes <= room
    # Nothing taken since: the advice is as before, the --vram just under the peak.
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (6 * 2**30 - held, 8 * 2**30))
    advice = run_out_of_memory_advice(planned, plan)
    assert "other processes hold" not in advice and "(just under that peak) gives" in advice, advice


@pytest.mark.parametrize("free_now", [int(0.3 * 2**30), 0])
def test_out_of_memory_when_other_processes_left_less_than_the_smallest_plan_says_both_ways_out(
    no_network, monkeypatch, free_now
):
    # 6 GiB free when the plan is made, then another process leaves this run 0.5 GiB (or only what it holds). The
    # advice said "No plan of this video needs less: make a smaller video (--dry-run --vram 0.46 ...)", where plans
    # needing less exist (the smallest needs 3.41 GiB) and that dry run fits nothing of that shape; with nothing
    # left, only "Make a smaller video". The server's operator was told only of a smaller --max-video.
    from motif_lite.cli.prepare import planned_run, run_out_of_memory_advice, sources_before_download
    from motif_lite.errors import MemoryBudgetError
    from motif_lite.runtime.budget_advice import free_for
    from motif_lite.server.worker import operator_advice

    simulated_gpu(monkeypatch, 6 * 2**30)
    args = cli.build_parser().parse_args(["run", "-p", "x", "--gguf", "Q4_K_M", "--device", "cuda"])
    args.weights = {}
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    planned = planned_run(args, request, sources_before_download(args), torch.bfloat16, torch.device("cuda"))
    plan = planned.plan()
    with pytest.raises(MemoryBudgetError, match="needs at least") as refused:  # the planner's own figure
        planned.plan(vram_gib=0.01)
    least = refused.value.smallest_vram_gib
    held = int(0.2 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: held)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: held)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_now, 8 * 2**30))
    left = memory_size(free_now + held)
    under = (
        f"What the GPU leaves a run now ({left}) is under this video's smallest plan, --vram {least:.2f}, which "
        f"needs {free_for(least):.2f} GiB free: close what holds GPU memory, or "
    )
    advice = run_out_of_memory_advice(planned, plan)
    assert advice.endswith(f"which leaves a run {left}. " + under + "make a smaller video"), advice
    assert "No plan of this video needs less" not in advice and 3 < least < plan.peak_bytes / 2**30, advice
    assert operator_advice(planned, plan).endswith(under + "restart the server with a smaller --max-video")


def _gpu_now(monkeypatch, room: int) -> None:
    """The CUDA device as `memory_advice` reads it after running out: `room` bytes left a run (all free, none of
    this process's), of 8 GiB."""
    from motif_lite import memory_advice
    from motif_lite.gpu_memory import GpuUse

    monkeypatch.setattr(memory_advice, "_gpu_use_now", lambda device: GpuUse(8 * 2**30, room))


def test_a_gpu_whose_room_is_just_the_plans_reserve_is_not_crowded(monkeypatch):
    # The reserve fits beside the other processes: the plan's own figures are the advice, not what is left.
    from motif_lite.memory_advice import crowded_gpu

    room = 3 * 2**30
    _gpu_now(monkeypatch, room)
    assert crowded_gpu("cuda", room, "a run") is None
    assert crowded_gpu("cuda", room + 1, "a run").room_bytes == room


def test_a_crowded_gpu_whose_room_plans_more_than_just_under_the_peak_names_that_figure_and_what_others_hold(
    monkeypatch,
):
    # 4 GiB peak, 4.5 GiB reserved, 4.4 GiB left: what is left plans for 4.07, more than the 3.99 just under the
    # peak, which is named; the processes that took the rest are still said.
    from motif_lite.memory_advice import JUST_UNDER_THE_PEAK, lower_budget, vram_just_under

    _gpu_now(monkeypatch, int(4.4 * 2**30))
    budget = lower_budget("cuda", 4 * 2**30, int(4.5 * 2**30), "a run")
    assert (budget.vram_gib, budget.why, budget.room_bytes) == (vram_just_under(4 * 2**30), JUST_UNDER_THE_PEAK, None)
    assert budget.held.startswith(", but the GPU has ") and "which leaves a run 4.40 GiB" in budget.held, budget


def test_a_gpu_with_almost_nothing_left_names_no_vram_but_what_is_left(monkeypatch):
    # 5 MiB left: no --vram figure fits it (it would be 0.00). Not the --vram just under the peak either, which
    # would run out again: no figure, and what is left, which the advice compares with the smallest plan.
    from motif_lite.memory_advice import WHAT_IS_LEFT, lower_budget

    _gpu_now(monkeypatch, 5 * 2**20)
    budget = lower_budget("cuda", 4 * 2**30, int(4.5 * 2**30), "a run")
    assert (budget.vram_gib, budget.why, budget.room_bytes) == (None, WHAT_IS_LEFT, 5 * 2**20), budget


def test_a_gpu_that_cannot_be_read_after_running_out_leaves_the_advice_without_it(monkeypatch):
    # After an out-of-memory error CUDA may fail the query itself (torch raises a RuntimeError, "CUDA error: ..."):
    # the advice is given without what others hold, not replaced by that traceback.
    from motif_lite import devices, gpu_memory
    from motif_lite.memory_advice import JUST_UNDER_THE_PEAK, lower_budget, vram_just_under

    def failing(device):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(devices, "is_here", lambda device: True)
    monkeypatch.setattr(gpu_memory, "gpu_use", failing)
    budget = lower_budget("cuda", 4 * 2**30, int(4.5 * 2**30), "a run")
    assert (budget.vram_gib, budget.why, budget.held) == (vram_just_under(4 * 2**30), JUST_UNDER_THE_PEAK, "")


# --------------------------------------------------------------------------------- checks before any weights


def test_triton_without_cuda_fails_before_loading(checkpoint, no_weights, capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    code, _, err = run(
        capsys, "-m", str(checkpoint[0]), "-p", "x", "-o", str(tmp_path / "a.mp4"), "--kernels", "triton"
    )
    assert code == cli.EXIT_USER_ERROR and "--kernels triton needs a CUDA device" in err


@pytest.mark.parametrize("flag", ["--gguf", "--text-encoder-gguf"])
def test_foreign_gguf_fails_before_loading_with_where_ours_comes_from(checkpoint, no_weights, capsys, tmp_path, flag):
    # The error named the file's architecture and no fix (only `check` gave one); the fix must not offer to write
    # over the user's file.
    spec = {"tok.weight": (torch.ones(2, 32).numpy(), GGMLQuantizationType.F32, (2, 32))}
    path = write_test_gguf(tmp_path / "llm.gguf", spec, arch="llama")
    code, _, err = run(capsys, "-m", str(checkpoint[0]), flag, str(path), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and "'llama'" in err
    fix = err.split("it is another model's file; ", 1)[1]
    assert f"python -m motif_lite.quantize {checkpoint[0]}" in fix and "llm.gguf" not in fix and "--force" not in fix
    assert ("--component text_encoder" in fix) == (flag == "--text-encoder-gguf"), fix


def test_transformer_weights_that_do_not_fit_the_config_fail_before_loading(checkpoint, no_weights, capsys, tmp_path):
    """The checkpoint's own transformer safetensors are checked against its config.json from the headers, as a
    GGUF's tensors are: one error naming the tensor, before the text encoder or any other weights load."""
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    config_file = root / "transformer" / "config.json"
    config = json.loads(config_file.read_text())
    config["text_embed_dim"] += 8
    config_file.write_text(json.dumps(config))
    code, _, err = run(capsys, "-m", str(root), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR
    embed = config["text_embed_dim"]
    assert f"context_embedder.linear_1.weight: checkpoint [64, {embed - 8}], model [64, {embed}]" in err


def test_bad_gguf_path_is_not_hidden_behind_the_missing_checkpoint(no_network, no_weights, capsys, tmp_path):
    code, _, err = run(capsys, "--gguf", str(tmp_path / "typo.gguf"), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR
    assert f"no such GGUF file: {tmp_path / 'typo.gguf'}" in err  # both problems, in one message
    assert "hf download Motif-Technologies/Motif-Video-2B --include" in err


def test_every_problem_is_reported_at_once(no_network, no_weights, capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    args = ["--gguf", str(tmp_path / "typo.gguf"), "--device", "cuda", "-p", "x", "-o", str(tmp_path / "a.mp4")]
    code, _, err = run(capsys, *args)
    assert code == cli.EXIT_USER_ERROR
    assert "CUDA is not available" in err and "no such GGUF file" in err and "hf download" in err


def test_prompt_is_required_except_for_a_dry_run(capsys):
    code, _, err = run(capsys, "-o", "a.mp4")
    assert code == cli.EXIT_USER_ERROR and "a prompt is required" in err


# ------------------------------------------------------------------------------------------ download hints


def test_missing_files_are_listed_exactly_with_the_commands(no_network, monkeypatch):
    # Part of the checkpoint is cached: only the rest is missing, but the command fetches a complete folder.
    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    for file in ("text_encoder/config.json", "text_encoder/model.safetensors", "tokenizer/tokenizer.json"):
        (snapshot / file).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / file).write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    with pytest.raises(MissingFilesError) as err:
        locate_sources(gguf="Q4_K_M")
    text = str(err.value)
    assert "Motif-Technologies/Motif-Video-2B: vae/*, transformer/config.json, model_index.json" in text
    assert "text_encoder/*," not in text.split("Download")[0] and "*Q4_K_M*.gguf (HF_HUB_OFFLINE=1 is set)" in text
    assert "--include 'text_encoder/*' --include 'tokenizer/*' --include 'vae/*'" in text
    model, gguf = (posix_quoted(str(Path.cwd() / name)) for name in ("Motif-Video-2B", "Motif-Video-2B-GGUF"))
    assert f"motif-lite run -m {model} --gguf {gguf}" in text  # quoted as a shell takes them: a cwd may hold a space


def test_missing_files_from_python_end_with_the_python_call_too(no_network):
    # A notebook's load_pipeline was told only "then run: motif-lite run ...", which loads the weights again on
    # each call; the command line's own hint (its user's command: test_one_download_hint_without_retries) stays.
    from motif_lite import load_pipeline

    with pytest.raises(MissingFilesError) as err:
        load_pipeline(gguf="Q4_K_M")
    model, gguf = Path.cwd() / "Motif-Video-2B", Path.cwd() / "Motif-Video-2B-GGUF"
    assert str(err.value).splitlines()[-1] == (
        f"""  motif-lite run -m {posix_quoted(str(model))} --gguf {posix_quoted(str(gguf))} -p "..." (in Python """
        f"load_pipeline({str(model)!r}, gguf={str(gguf)!r}, ...))"
    )


def test_the_download_commands_name_the_folders_they_fill_from_any_folder(no_network, tmp_path, monkeypatch):
    # Offline, the hint gave `--local-dir ./Motif-Video-2B`, then `motif-lite run -m ./Motif-Video-2B`: typed in
    # another terminal, or after a download on another machine, they named other folders than the run's.
    import shlex

    started = tmp_path / "my videos"
    started.mkdir()
    monkeypatch.chdir(started)
    with pytest.raises(MissingFilesError) as err:
        locate_sources(gguf="Q4_K_M")
    lines = str(err.value).splitlines()
    downloads = [shlex.split(line) for line in lines if line.startswith("  hf download ")]
    filled = [words[words.index("--local-dir") + 1] for words in downloads]
    assert filled == [str(started / "Motif-Video-2B"), str(started / "Motif-Video-2B-GGUF")], lines
    rerun = shlex.split(lines[-1].split(" (in Python ")[0])
    assert [rerun[rerun.index(flag) + 1] for flag in ("-m", "--gguf")] == filled, lines


def test_gguf_folder_holding_one_file(tmp_path):
    folder = tmp_path / "Motif-Video-2B-GGUF"
    (folder / ".cache").mkdir(parents=True)
    (folder / ".cache" / "x.gguf").write_text("lock")  # huggingface_hub's bookkeeping is not a weight file
    (folder / "motif-video-2b-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert find_gguf(str(folder)) == folder / "motif-video-2b-Q4_K_M.gguf"
    (folder / "motif-video-2b-Q8_0.gguf").write_bytes(b"GGUF")
    with pytest.raises(CheckpointError, match="exactly one .gguf file.*Q4_K_M.gguf, motif-video-2b-Q8_0.gguf"):
        find_gguf(str(folder))


HINT_SCRIPT = """
import sys, time
import motif_lite.pipeline  # the handler's imports (torch, ...): not what the bound is about
from motif_lite.cli import main
start = time.perf_counter()
code = main(sys.argv[1:])
print(f"elapsed {time.perf_counter() - start:.2f}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("network", ["HF_HUB_OFFLINE=1", "HF_ENDPOINT=http://127.0.0.1:9"])
def test_one_download_hint_without_retries(tmp_path, network):
    # A real process, as a user runs it on a machine whose Hub is off or unreachable (port 9: connection refused).
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    key, value = network.split("=", 1)
    env.update({"HF_HOME": str(tmp_path / "hf-home"), key: value})
    args = ["run", "--gguf", "Q4_K_M", "-p", "a red fox", "-o", str(tmp_path / "fox.mp4")]
    result = subprocess.run(
        [sys.executable, "-c", HINT_SCRIPT, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    err = result.stderr
    assert result.returncode == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert f"Motif-Technologies/Motif-Video-2B: {CHECKPOINT_PATTERNS}" in err
    assert "Motif-Technologies/Motif-Video-2B-GGUF: *Q4_K_M*.gguf" in err
    assert "hf download Motif-Technologies/Motif-Video-2B --include 'text_encoder/*'" in err
    model, gguf = tmp_path / "Motif-Video-2B", tmp_path / "Motif-Video-2B-GGUF"  # in the folder it ran in
    assert f"--include 'feature_extractor/*' --local-dir {model}" in err
    assert f"hf download Motif-Technologies/Motif-Video-2B-GGUF --include '*Q4_K_M*.gguf' --local-dir {gguf}" in err
    rerun = f"motif-lite run -m {model} --gguf {gguf} -p 'a red fox' -o {tmp_path / 'fox.mp4'}"
    assert rerun in err
    assert "Retry" not in err and "retry" not in err and err.count("error:") == 1  # nothing else from the Hub
    elapsed = float(err.rsplit("elapsed ", 1)[1])
    assert elapsed < 10, f"{elapsed:.1f} s"  # measured: under 0.2 s either way (the Hub retries took ~23 s)


def test_hint_for_an_incomplete_local_folder_fetches_into_it(checkpoint, tmp_path, capsys):
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    code, _, err = run(capsys, "-m", str(root), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR
    assert f"incomplete checkpoint {root}: missing vae/diffusion_pytorch_model.safetensors*" in err
    assert f"hf download Motif-Technologies/Motif-Video-2B --include 'vae/*' --local-dir {root}" in err


def shard(folder: Path, single: str, index_name: str) -> list[Path]:
    """Split `folder`'s safetensors file `single` into two shards and an index, as save_pretrained shards."""
    from safetensors.torch import load_file, save_file

    state = load_file(folder / single)
    names = sorted(state)
    halves = {1: names[: len(names) // 2], 2: names[len(names) // 2 :]}
    stem = single.removesuffix(".safetensors")
    shards, weight_map = [], {}
    for number, part in halves.items():
        shards.append(folder / f"{stem}-0000{number}-of-00002.safetensors")
        save_file({name: state[name] for name in part}, shards[-1], metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shards[-1].name))
    (folder / single).unlink()
    (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return shards


@pytest.mark.parametrize(
    ("component", "single"),
    [("transformer", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors")],
)
def test_a_missing_shard_is_a_missing_file_with_its_download(
    checkpoint, tmp_path, capsys, no_network, no_weights, component, single
):
    # The transformer's said "index.json lists shards that do not exist: ['/tmp/...']" with no way forward; the text
    # encoder's went unnoticed until transformers failed to load it.
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    shards = shard(root / component, single, f"{single}.index.json")
    assert locate_sources(root).root == root  # both shards there: a sharded checkpoint is complete
    shards[1].unlink()
    code, _, err = run(capsys, "-m", str(root), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR, err
    assert err.startswith(f"error: incomplete checkpoint {root}: missing {component}/{shards[1].name}\n"), err
    assert f"hf download Motif-Technologies/Motif-Video-2B --include '{component}/*' --local-dir {root}" in err


def test_a_cached_download_missing_a_shard_is_not_taken_as_complete(checkpoint, no_network):
    # The Hub cache of an interrupted download: the index is there, a shard is not.
    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint[0], snapshot)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    assert locate_sources().root == snapshot  # complete: taken from the cache without a download
    single = "diffusion_pytorch_model.safetensors"
    shards = shard(snapshot / "transformer", single, f"{single}.index.json")
    shards[1].unlink()
    with pytest.raises(MissingFilesError) as err:
        locate_sources()
    assert "--include 'transformer/*'" in str(err.value), err.value  # downloaded again, not loaded to fail


def test_a_download_that_left_a_shard_out_is_not_taken_as_complete(checkpoint, tmp_path, no_network, monkeypatch):
    from huggingface_hub import constants

    downloaded = tmp_path / "downloaded"
    shutil.copytree(checkpoint[0], downloaded)
    single = "diffusion_pytorch_model.safetensors"
    shards = shard(downloaded / "transformer", single, f"{single}.index.json")
    shards[1].unlink()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(checkpoint_source, "snapshot_download", lambda *args, **kwargs: str(downloaded))
    listing = SimpleNamespace(siblings=[])  # the repo's file list, from which a download's size is told
    monkeypatch.setattr(hub, "HfApi", lambda: SimpleNamespace(model_info=lambda *args, **kwargs: listing))
    with pytest.raises(MissingFilesError) as err:
        locate_sources()
    assert f"has no files matching transformer/{shards[1].name}" in str(err.value), err.value


def test_missing_shards_of_weights_the_users_own_file_replaces_are_not_asked_for(checkpoint, tmp_path, no_network):
    # Only the weights a run reads must be complete: not the text encoder's next to --text-encoder FILE.
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    own = tmp_path / "text_encoder.safetensors"
    shutil.copy(root / "text_encoder" / "model.safetensors", own)
    shards = shard(root / "text_encoder", "model.safetensors", "model.safetensors.index.json")
    shards[1].unlink()
    assert locate_sources(root, weights={"text_encoder": own}).weight_files == {"text_encoder": own}


def test_truncated_weights_of_every_component_are_named_before_loading(checkpoint, tmp_path, capsys, no_weights):
    # The text encoder's used to end in a traceback from transformers, the VAE's after the text encoder had loaded.
    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    damaged = [root / "text_encoder/model.safetensors", root / "vae/diffusion_pytorch_model.safetensors"]
    damaged.append(root / "transformer/diffusion_pytorch_model.safetensors")
    for file in damaged:
        os.truncate(file, file.stat().st_size - 1000)
    code, _, err = run(capsys, "-m", str(root), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR, err
    for file in damaged:
        assert f"{file}: truncated: the header needs" in err, err
    assert err.count("download it again (motif-lite check with the same -m gives the command)") == 3, err


@pytest.mark.parametrize("model", [[], ["-m", "motif-technologies/motif-video-2b"]])
def test_truncated_weights_of_a_hub_checkpoint_say_the_command_that_downloads_them_again(
    checkpoint, capsys, no_network, no_weights, tmp_path, model
):
    # Before: "download it again (motif-lite check with the same -m gives the command)", a second command to run for
    # a command the run knew: a Hub repo's files are downloaded again into its cache, with --force-download.
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint[0], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    damaged = ["text_encoder/model.safetensors", "vae/diffusion_pytorch_model.safetensors"]
    damaged.append("transformer/diffusion_pytorch_model.safetensors")
    for rel in damaged:
        os.truncate(snapshot / rel, (snapshot / rel).stat().st_size - 1000)
    code, _, err = run(capsys, *model, "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR, err
    for rel in damaged:  # the repo as the cache spells it: `hf download` would fetch another letter case again
        command = f"hf download Motif-Technologies/Motif-Video-2B --include '{rel}' --force-download"
        assert f"{snapshot / rel}: truncated: the header needs" in err and f"; download it again: {command}\n" in err
    assert "motif-lite check" not in err
    # `motif-lite decode`, which reads the VAE alone, says the same command.
    with pytest.raises(CheckpointError) as error:
        locate_vae(*model[1:], download=False)
    assert str(error.value).endswith(f"--include '{damaged[1]}' --force-download"), error.value


def test_truncated_weights_of_a_local_folder_named_like_a_hub_repo_say_where_the_command_is(
    checkpoint, capsys, no_network, no_weights, tmp_path, monkeypatch
):
    # A folder at -m Motif-Technologies/Motif-Video-2B is the user's, not the Hugging Face cache's: `hf download`
    # would download into the cache and leave the damaged file where the run reads it.
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "Motif-Technologies" / "Motif-Video-2B"
    shutil.copytree(checkpoint[0], root)
    vae = root / "vae" / "diffusion_pytorch_model.safetensors"
    os.truncate(vae, vae.stat().st_size - 1000)
    code, _, err = run(capsys, "-m", "Motif-Technologies/Motif-Video-2B", "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and "truncated: the header needs" in err, err
    assert "download it again (motif-lite check with the same -m gives the command)" in err and "hf download" not in err


COMPONENT_CONFIGS = ["text_encoder/config.json", "tokenizer/tokenizer_config.json"]
COMPONENT_CONFIGS.append("feature_extractor/preprocessor_config.json")


@pytest.mark.parametrize("config", COMPONENT_CONFIGS)
def test_a_broken_component_config_is_named_before_loading(config, checkpoint, tmp_path, capsys, no_weights):
    # The text encoder's used to be a traceback from the CPU time estimate, the image processor's one from
    # transformers after the whole pipeline had loaded and the prompt was encoded.
    import PIL.Image

    root = tmp_path / "ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / config).write_text('{"truncated": [1,')
    PIL.Image.new("RGB", (48, 32)).save(tmp_path / "first.png")
    args = ("-m", str(root), "-p", "x", "-i", str(tmp_path / "first.png"), "-o", str(tmp_path / "a.mp4"))
    code, _, err = run(capsys, *args, "-W", "48", "-H", "32", "--video-frames", "5", "--steps", "1")
    assert code == cli.EXIT_USER_ERROR and f"error: {root / config}: the " in err and "is not valid JSON (" in err, err


BROKEN_CONFIGS = {
    "broken JSON": ("model_index.json", lambda config: "{truncated"),
    "wrong type": ("transformer/config.json", lambda config: json.dumps({**config, "num_layers": "2"})),
    "broken scheduler": ("scheduler/scheduler_config.json", lambda config: '{"shift": '),
    "broken VAE": ("vae/config.json", lambda config: "[1,"),
    # Another model's text encoder used to be found only once the others had loaded.
    "text encoder": ("text_encoder/config.json", lambda config: json.dumps({**config, "model_type": "t5gemma"})),
    # A safetensors index, read by the VAE's loader: it used to fail once the text encoder had loaded, without a fix.
    "VAE index": ("vae/diffusion_pytorch_model.safetensors.index.json", lambda config: '{"weight_map": '),
}


@pytest.mark.parametrize("broken", BROKEN_CONFIGS)
def test_a_broken_config_says_how_to_download_it_again(broken, checkpoint, tmp_path, capsys, no_network, no_weights):
    # A run used to say only what is wrong ("is not valid JSON"); `motif-lite check` gave the command. In a folder
    # with a space in its name, which the command quotes.
    rel, damage = BROKEN_CONFIGS[broken]
    root = tmp_path / "my ckpt"
    shutil.copytree(checkpoint[0], root)
    (root / rel).write_text(damage(json.loads((root / rel).read_text()) if (root / rel).is_file() else {}))
    code, _, err = run(capsys, "-m", str(root), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    command = f"hf download Motif-Technologies/Motif-Video-2B --include '{rel}' --local-dir '{root}' --force-download"
    assert code == cli.EXIT_USER_ERROR and f"error: {root / rel}" in err, err
    assert err.rstrip().endswith(f"; download it again: {command}"), err


def test_an_error_with_its_own_download_or_naming_two_configs_gets_no_second_fix(tmp_path):
    # The fix is for one config file the error names; an error that says what to download already, or names two
    # configs that disagree (which one to change is for that message to say), is left as it is.
    from motif_lite.checkpoint import damaged_config_fix

    index, vae = tmp_path / "model_index.json", tmp_path / "vae/config.json"
    assert damaged_config_fix(f"{index} is not valid JSON", str(tmp_path)).startswith("download it again: hf ")
    assert damaged_config_fix(f"{index} lists a shard; download it: hf download ...", str(tmp_path)) is None
    assert damaged_config_fix(f"{index} and {vae} disagree on the VAE", str(tmp_path)) is None


def test_a_broken_config_in_the_hub_cache_is_downloaded_again_with_force(checkpoint, tmp_path, capsys, no_network):
    # Without --force-download, `hf download` keeps a file the cache already holds, broken or not.
    repo = no_network / "models--Motif-Technologies--Motif-Video-2B"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint[0], snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "vae" / "config.json").write_text("{")
    with pytest.raises(CheckpointError) as err:
        locate_sources("Motif-Technologies/Motif-Video-2B")
    command = "hf download Motif-Technologies/Motif-Video-2B --include 'vae/config.json' --force-download"
    assert str(err.value).endswith(f"; download it again: {command}"), err.value
    with pytest.raises(CheckpointError) as err:  # the repo id in other letter case reads the same cached repo
        locate_sources("motif-technologies/motif-video-2b")
    assert str(err.value).endswith(f"; download it again: {command}"), err.value


def test_a_component_folder_given_as_the_checkpoint_names_the_checkpoint(checkpoint, tmp_path, capsys, no_weights):
    # Not "download the whole checkpoint into transformer/", which the missing-files hint would say.
    root = checkpoint[0]
    code, _, err = run(capsys, "-m", str(root / "transformer"), "-p", "x", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and "hf download" not in err, err
    assert f"the transformer/ folder of the checkpoint {root}; -m takes the checkpoint folder itself: -m {root}" in err


def test_a_first_frame_of_another_shape_is_noted_with_a_size_that_keeps_it(tmp_path):
    import PIL.Image

    from motif_lite.request import GenerationRequest

    PIL.Image.new("RGB", (300, 300)).save(tmp_path / "square.png")
    PIL.Image.new("RGB", (1920, 1080)).save(tmp_path / "wide.png")
    square = GenerationRequest("x", image=tmp_path / "square.png", output=tmp_path / "a.mp4")
    # 1280x736: stretched; 960x960 is about as many pixels (0.98x) and no more: 976x976 (1.01x) was offered, which
    # a server of the official size (its --max-video) then refused, as a memory plan made for 1280x736 may not fit
    _, notes = square.resolve()
    assert notes == [
        "the image is 300x300 (aspect 1.00) and is stretched to 1280x736 (aspect 1.74), as the reference pipeline "
        "does; -W 960 -H 960 (in Python width=960, height=960) keeps its shape"
    ]
    PIL.Image.new("RGB", (1, 100)).save(tmp_path / "thin.png")  # no size near its shape is as small: none offered
    thin = GenerationRequest("x", image=tmp_path / "thin.png", width=64, height=64, output=tmp_path / "a.mp4")
    _, notes = thin.resolve()
    assert [note for note in notes if "stretched" in note] == [
        "the image is 1x100 (aspect 0.01) and is stretched to 64x64 (aspect 1.00), as the reference pipeline does"
    ]
    _, notes = GenerationRequest("x", image=tmp_path / "wide.png", output=tmp_path / "a.mp4").resolve()
    assert notes == []  # 16:9 into 1280x736 (1.74 vs 1.78): within 5 %, nothing to say


def test_a_tiny_first_frame_enlarged_to_the_video_is_noted(tmp_path):
    # Before: a 1x1 image (or an icon) was enlarged to the whole video without a word: its first frame, a blur.
    import PIL.Image

    for size in ((1, 1), (48, 300), (300, 300), (32, 32), (64, 64)):
        PIL.Image.new("RGB", size).save(tmp_path / f"{size[0]}x{size[1]}.png")

    def notes(image: str, width: int, height: int) -> list[str]:
        request = GenerationRequest("x", image=tmp_path / image, width=width, height=height, output=tmp_path / "a.mp4")
        return request.resolve()[1]

    assert notes("1x1.png", 64, 64) == [
        "the image is only 1x1 pixels and is enlarged to 64x64: the first frame is a blur of its few pixels; give a "
        "larger image (the video's size, or near it)"
    ]
    assert any("only 48x300 pixels and is enlarged to 64x64" in note for note in notes("48x300.png", 64, 64))
    assert not any("enlarged" in note for note in notes("300x300.png", 1280, 736))  # not tiny: stretched only
    assert not any("enlarged" in note for note in notes("64x64.png", 1280, 736))  # tiny is a side under 64
    assert notes("32x32.png", 32, 32) == []  # tiny, but the video's own size: nothing enlarged


def test_an_image_that_one_latent_frame_ignores_is_noted(tmp_path):
    import PIL.Image

    PIL.Image.new("RGB", (300, 300)).save(tmp_path / "square.png")
    _, notes = GenerationRequest("x", image=tmp_path / "square.png", frames=1, output=tmp_path / "a.mp4").resolve()
    assert notes == [
        "a 1-frame video is one latent frame, which the first-frame image does not condition (as in the "
        "reference): the image is ignored; use --video-frames 5 (in Python frames=5) or more for image-to-video"
    ]
    # the frames as resolved decide: 4 is rounded to 5 (two latent frames), 2 to 1
    _, notes = GenerationRequest("x", image=tmp_path / "square.png", frames=4, output=tmp_path / "a.mp4").resolve()
    assert not any("ignored" in note for note in notes), notes
    _, notes = GenerationRequest("x", image=tmp_path / "square.png", frames=2, output=tmp_path / "a.mp4").resolve()
    assert any("the image is ignored" in note for note in notes), notes
    _, notes = GenerationRequest("x", image=tmp_path / "square.png", frames=5, output=tmp_path / "a.mp4").resolve()
    assert not any("ignored" in note for note in notes)  # two latent frames: the image conditions the first


def test_image_to_video_needs_an_image_and_more_than_one_latent_frame():
    assert [GenerationRequest("x", image="a.png", frames=f).conditions_on_image for f in (1, 4, 5, 121)] == [
        False, False, True, True,
    ]  # fmt: skip
    assert not GenerationRequest("x", frames=121).conditions_on_image


def test_the_request_checks_the_shapes_of_the_official_configs():
    # motif_lite.request checks sizes and frames before any model is loaded (without torch): the official configs'
    # values.
    from motif_lite.request import SIZE_MULTIPLE, TEMPORAL_FACTOR
    from motif_lite.runtime.generation_sizes import size_multiple
    from motif_lite.vae.config import WanVAEConfig

    vae = WanVAEConfig()
    assert (size_multiple(TransformerConfig(), vae), vae.temporal_factor) == (SIZE_MULTIPLE, TEMPORAL_FACTOR)
    request = GenerationRequest("x", width=1280, height=736, frames=121)
    assert request.latent_frames == vae.latent_frames(121) == 31
    frames = range(1, 30)
    assert [GenerationRequest("x", frames=f).latent_frames for f in frames] == [vae.latent_frames(f) for f in frames]


def test_only_an_image_that_conditions_is_planned_through_the_vae_encoder(no_network, tmp_path):
    # One latent frame: the image is ignored, so the plan is that of text-to-video.
    import PIL.Image

    PIL.Image.new("RGB", (256, 256)).save(tmp_path / "a.png")
    sources = locate_sources(gguf="Q4_K_M", **AT_HAND)

    def plan(frames: int, image: Path | None) -> object:
        request, _ = GenerationRequest("x", output="a.mp4", width=256, height=256, frames=frames, image=image).resolve()
        return plan_generation(request, sources, device="cuda", vram_gib=64, text_encoder=False).stages

    assert plan(1, tmp_path / "a.png") == plan(1, None)
    assert plan(9, tmp_path / "a.png") != plan(9, None)  # image-to-video: the first frame is encoded


def test_an_image_to_video_plan_counts_the_tokens_the_checkpoints_image_tower_gives(checkpoint, no_network, tmp_path):
    # The planner counted 729 SigLIP tokens (SigLIP at 384 px) whatever the checkpoint; the official tower takes
    # 896 px in patches of 14: 4096. The plan's tokens are now the checkpoint's, as its encoder gives them, and they
    # reach the context of the denoise estimate and 8-bit attention's workspace.
    import PIL.Image

    from motif_lite.encoders.text import load_text_encoder
    from motif_lite.runtime.kernels import attention_workspace_bytes

    PIL.Image.new("RGB", (64, 48), (200, 40, 90)).save(tmp_path / "a.png")
    image_to_video, _ = GenerationRequest("x", image=tmp_path / "a.png", width=64, height=48, frames=9).resolve()
    text_to_video, _ = GenerationRequest("x", width=64, height=48, frames=9).resolve()
    encoded = load_text_encoder(checkpoint[0], torch.float32).encode_image(torch.zeros(1, 3, 48, 64))
    assert plan_generation(image_to_video, checkpoint[0], device="cpu").image_tokens == encoded.shape[1] == 16
    assert plan_generation(text_to_video, checkpoint[0], device="cpu").image_tokens == 0
    sources = locate_sources(checkpoint[0], **AT_HAND)
    inputs = _planner_inputs(image_to_video, sources, torch.bfloat16, torch.device("cuda"), "auto", "int8", None)
    config, n = sources.transformer.value, inputs.sizes().video_tokens
    assert inputs.attention_workspace_bytes(1) == attention_workspace_bytes("int8", config, n, image_tokens=16)
    # The official checkpoint, whose config is not at hand: its tower's 896 // 14 = 64 patches a side.
    official = locate_sources(gguf="Q4_K_M", **AT_HAND)
    request, _ = GenerationRequest("x", image=tmp_path / "a.png", width=256, height=256, frames=9).resolve()
    assert plan_generation(request, official, device="cuda", vram_gib=64).image_tokens == 4096


@pytest.mark.filterwarnings("default")  # Python's default, whatever PYTHONWARNINGS the shell exported (docs/testing.md)
def test_the_dtype_note_is_printed_before_anything_loads(checkpoint, tmp_path, capsys, monkeypatch):
    """On a GPU without bf16 tensor cores `run --dtype bf16` says so (`dtypes.dtype_note`, a stand-in here: this
    machine has no such GPU) before the weights load, so that the user can stop and pick another --dtype."""
    from motif_lite import dtypes
    from motif_lite.errors import MotifLiteError

    seen = []
    monkeypatch.setattr(dtypes, "dtype_note", lambda device, dtype: seen.append(dtype) or "bf16 is slow here")

    def load(*args, **kwargs):  # the last check before load_pipeline reads its first weight file
        raise MotifLiteError("loading starts here")

    monkeypatch.setattr(loading, "check_loras", load)
    small = ("-W", "48", "-H", "32", "--video-frames", "9", "--steps", "1", "--device", "cpu", "--dtype", "bf16")
    code, _, err = run(capsys, "-m", str(checkpoint[0]), "-p", "x", "-o", str(tmp_path / "a.mp4"), *small)
    assert code == cli.EXIT_USER_ERROR and seen == [torch.bfloat16]  # said once: load_pipeline's warning
    assert err.count("bf16 is slow here") == 1 and "warning: bf16 is slow here" in err, err
    assert err.index("warning: bf16 is slow here") < err.index("loading starts here"), err


def test_batched_guidance_is_decided_by_one_rule():
    # The planner, load_pipeline and the command line used to state it three ways (the CLI passed True on to the
    # pipeline in an unguided run without room, which then warned about it).
    from types import SimpleNamespace

    from motif_lite.memory_plan import batched_guidance

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    room, no_room = SimpleNamespace(cfg_batch=2), SimpleNamespace(cfg_batch=1)
    assert batched_guidance(None, cuda) == (True, False)  # the default: on a GPU
    assert batched_guidance(None, cuda, room) == (True, False)
    assert batched_guidance(None, cuda, no_room) == (False, False)  # not asked for: nothing refused
    assert batched_guidance(None, cpu) == (False, False)  # measured slower on the CPU
    assert batched_guidance(True, cpu) == (True, False)
    assert batched_guidance(True, cuda, no_room) == (False, True)  # asked for, no room: refused
    assert batched_guidance(False, cuda, room) == (False, False)
    assert batched_guidance(False, cuda, no_room) == (False, False)  # --no-batch-guidance is never "refused"
    assert batched_guidance(None, cpu, room) == (False, False)


def test_a_lora_before_the_download_is_checked_against_the_transformer_config_the_cache_holds(checkpoint, no_network):
    # The official repo's configs cached, its weights not (they would download): a LoRA of the cached config's
    # shapes fits it, one of the official architecture's does not; the built-in official config is for no cache.
    from safetensors.torch import save_file

    from motif_lite.choices import MOTIF_REPO
    from motif_lite.preflight import local_file_problems
    from motif_lite.weights.lora_specs import LoRASpec

    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint[0], snapshot, ignore=shutil.ignore_patterns("*.safetensors"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    layer = "transformer.transformer_blocks.0.attn.to_q"
    for size, fits in ((64, True), (1536, False)):  # the tiny model's to_q, the official one's
        lora = no_network.parent / f"lora-{size}.safetensors"
        save_file({f"{layer}.lora_A.weight": torch.ones(2, size), f"{layer}.lora_B.weight": torch.ones(size, 2)}, lora)
        problems = local_file_problems(MOTIF_REPO, loras=[LoRASpec(lora)])
        assert (problems == []) == fits, problems


def test_the_files_after_gguf_are_named_in_every_check_of_the_sources():
    """locate_sources, preflight and local_file_problems take the text encoder GGUF and the user's weight files by
    name alone: positional, they stood in a different place in each."""
    from motif_lite.preflight import local_file_problems, preflight

    for check in (locate_sources, preflight, local_file_problems):
        parameters = inspect.signature(check).parameters
        for name in ("text_encoder_gguf", "weights"):
            assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (check.__name__, name)


def test_a_dry_run_for_a_gpu_not_here_says_when_vram_taken_for_the_cards_size_needs_more_than_it(
    no_network, no_weights, monkeypatch, capsys
):
    # `--vram 8GB` ("as on the card's box") planned a bf16 run needing ~8.6 GiB free, silently: a card of 8 GiB cannot
    # hold that, and a run on it plans for its free memory instead. The note says so with the plan's own reserve; a
    # plan whose reserve fits within --vram gets none.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU planned for is another machine's
    code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", "8GB")
    assert code == 0, err
    peak = float(re.search(r"device peak (\S+) GiB allocated", out).group(1))
    reserved = re.search(r"~(\S+) GiB reserved", out).group(1)
    assert peak * RESERVED_RATIO > 8  # what makes the note due
    assert (
        f"note: --vram 8 is what this plan may allocate, not the GPU's size: it needs ~{reserved} GiB free on the GPU, "
        "more than 8 GiB. If that is your card's size, a run on it plans for its free memory / 1.08 instead: "
        "nvidia-smi's free MiB / 1106 is the --vram that plans as it would (7380 MiB free on an 8 GB card: --vram 6.67)"
    ) in err
    code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", "8", "--gguf", "Q4_K_M")
    assert code == 0, err
    assert float(re.search(r"device peak (\S+) GiB allocated", out).group(1)) * RESERVED_RATIO < 8
    assert "not the GPU's size" not in err


def test_a_dry_run_for_a_gpu_not_here_gives_no_cards_size_note_for_a_vram_that_is_no_cards_size(
    no_network, no_weights, monkeypatch, capsys
):
    # A plan fills its budget, so its reserve is a little over almost any --vram: the note fired for `--vram 6.67`,
    # the very value it advises for an 8 GB card, and for nvidia-smi's MiB (`--vram 7380MB`, shown as 7.20703).
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for vram, gib in (("6.67", 6.67), ("7380MB", 7380 / 1024)):
        code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", vram)
        assert code == 0, err
        assert float(re.search(r"device peak (\S+) GiB allocated", out).group(1)) * RESERVED_RATIO > gib, vram
        assert "not the GPU's size" not in err, vram


@pytest.mark.parametrize(
    ("vram", "typed"),
    [
        # nvidia-smi's totals, a little under the GiB each card is sold as (RTX 4060, 3060, 4080, 4090, H100, V100)
        ("8188MB", "8188MB"),
        ("12282MiB", "12282MB"),
        ("16380M", "16380MB"),
        ("24564MB", "24564MB"),
        ("81559MB", "81559MB"),
        ("16160MB", "16160MB"),
        ("8", "8"),  # the size on the box
        ("8GB", "8"),
        # no card's size: free memory well under a whole GiB, budgets in GiB (quarters and the note's own 6.67)
        ("7380MB", None),
        ("7900MB", None),
        ("7.75", None),
        ("23.75", None),
        ("7.9375", None),
        ("6.67", None),
        ("23.99", None),
    ],
)
def test_a_vram_reads_as_a_cards_size_in_whole_gib_or_as_nvidia_smis_total_in_mib(vram, typed):
    # Only a whole number of GiB was taken for a card's size: nvidia-smi's total, 24564MiB on a 24 GB card, got no
    # note. Budgets near a whole GiB must not all read as one (the note then came on almost every dry run).
    from motif_lite.cli.flag_numbers import vram_gib
    from motif_lite.cli.run_prepare import _card_size_typed

    assert _card_size_typed(vram_gib(vram)) == typed
    if typed is not None:
        assert vram_gib(typed) == vram_gib(vram)  # the note names the --vram given, in a form the flag takes


def test_a_dry_run_for_a_gpu_not_here_says_when_nvidia_smis_total_taken_for_vram_needs_more_than_it(
    no_network, no_weights, monkeypatch, capsys
):
    # `--vram 24564MB` (a 24 GB card's total as nvidia-smi shows it) planned ~24.8 GiB reserved without the note that
    # `--vram 24` got; nvidia-smi's free MiB (7900MB on an 8 GB card) still gets none, though it needs more too.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU planned for is another machine's
    code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", "24564MB")
    assert code == 0, err
    reserved = re.search(r"~(\S+) GiB reserved", out).group(1)
    assert float(reserved) > 24564 / 1024  # what makes the note due
    assert (
        f"note: --vram 24564MB is what this plan may allocate, not the GPU's size: it needs ~{reserved} GiB free on "
        "the GPU, more than 24564 MiB. If that is your card's size, a run on it plans for its free memory / 1.08"
    ) in err
    advised = re.search(r"on an 8 GB card: --vram (\S+)\)", err).group(1)  # the note's example: 7380 MiB / 1106
    for vram in (advised, "7900MB"):
        code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", vram)
        assert code == 0, err
        assert float(re.search(r"device peak (\S+) GiB allocated", out).group(1)) * RESERVED_RATIO > float(
            re.search(r"of the (\S+) GiB budget", out).group(1)
        ), vram
        assert "not the GPU's size" not in err, vram


@pytest.mark.parametrize(
    ("vram", "typed"),
    [
        # nvidia-smi's totals of 24 GB cards with ECC on, which keeps 1/16 back: A10G, L4 (2.2 % under 23 GiB)
        ("23028MB", "23028MB"),
        ("23034MiB", "23034MB"),
        # budgets and free memory near 15/16 of a whole GiB, no card's total: 7600MB free on an 8 GB card
        ("7600MB", None),
        ("7660MB", None),
        ("22000MB", None),
        ("8128MB", None),  # a multiple of 64 MiB, as a budget in GiB is (7.9375), though 0.8 % under 8 GiB
    ],
)
def test_a_vram_reads_as_a_cards_size_as_nvidia_smis_total_with_ecc_on(vram, typed):
    # A 24 GB A10G or L4 shows 23028MiB or 23034MiB (ECC keeps a sixteenth back): 2.2 % under 23 GiB, past the
    # 2 % that reads as a card's size, so their totals typed as --vram got no note.
    from motif_lite.cli.flag_numbers import vram_gib
    from motif_lite.cli.run_prepare import _card_size_typed

    assert _card_size_typed(vram_gib(vram)) == typed


@pytest.mark.parametrize(
    ("vram", "typed"),
    [
        # round numbers a user picks, within 2 % under a whole GiB or 0.2 % under 15/16 of one by chance
        ("8100MB", None),
        ("81000MB", None),
        ("16300MiB", None),
        ("23000MB", None),
        # nvidia-smi's totals still read as a card's size (RTX 4060, V100, H100, A10G)
        ("8188MB", "8188MB"),
        ("16160MB", "16160MB"),
        ("81559MB", "81559MB"),
        ("23028MB", "23028MB"),
    ],
)
def test_a_round_vram_in_mib_is_no_cards_size(vram, typed):
    # `--vram 8100MB` (1.1 % under 8 GiB) was read as nvidia-smi's total, and a dry run for a GPU not here said "If
    # that is your card's size ..." of a budget no card has.
    from motif_lite.cli.flag_numbers import vram_gib
    from motif_lite.cli.run_prepare import _card_size_typed

    assert _card_size_typed(vram_gib(vram)) == typed


def test_a_dry_run_for_a_gpu_not_here_gives_no_cards_size_note_for_a_round_vram_in_mib(
    no_network, no_weights, monkeypatch, capsys
):
    # The note came for `--vram 8100MB --device cuda --dry-run`, a round budget and no card's size.
    from motif_lite.runtime.planner import RESERVED_RATIO

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the GPU planned for is another machine's
    code, out, err = run(capsys, "--dry-run", "--device", "cuda", "--vram", "8100MB")
    assert code == 0, err
    assert float(re.search(r"device peak (\S+) GiB allocated", out).group(1)) * RESERVED_RATIO > 8100 / 1024
    assert "not the GPU's size" not in err


def test_the_vram_named_for_a_lowered_budget_plans_within_the_reserve_without_a_warning(no_network, monkeypatch):
    # --vram 8 on a card of exactly 8 GiB: the most whose reserve fits is 8 / 1.08 = 7.407 GiB, so the --vram the
    # warning names is rounded down (7.40), not to the nearest (7.41, over it, warned of again).
    import warnings

    total = 8 * 2**30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (total, total))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4060 Ti")
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(**AT_HAND)
    with pytest.warns(UserWarning) as said:
        plan_generation(request, sources, device="cuda", vram_gib=8)
    [message] = [str(w.message) for w in said if "--vram 8 lets a plan" in str(w.message)]
    named = float(re.search(r"give --vram (\d+\.\d+) or less", message)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plan_generation(request, sources, device="cuda", vram_gib=named).budget_bytes == int(named * 2**30)


def test_a_dtype_given_for_a_gpu_read_by_another_process_is_the_one_planned(no_network, monkeypatch):
    # A rank of run --gpus N with --dtype fp32 is planned in fp32 (its weights twice bf16's bytes), not in the dtype
    # the GPU's compute capability picks when none is given.
    from motif_lite.gpu_memory import GpuReading, GpuUse
    from motif_lite.gpus import NVIDIA, GpuFacts

    reading = GpuReading(GpuFacts(NVIDIA, "NVIDIA H100 80GB HBM3", (9, 0)), GpuUse(80 * 2**30, 79 * 2**30))
    request, _ = GenerationRequest("x", output="a.mp4").resolve()
    sources = locate_sources(**AT_HAND)
    by_default = plan_generation(request, sources, device="cuda", gpu=reading)
    in_fp32 = plan_generation(request, sources, device="cuda", dtype="fp32", gpu=reading)
    assert in_fp32.peak_bytes > by_default.peak_bytes
