"""The rules that let our kernels work with every Triton a supported torch installs (torch 2.6 -> Triton 3.2, ...,
docs/kernels.md, "Triton versions"), checked as functions of a version string: CI has one Triton only."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

triton = pytest.importorskip("triton")
import triton.testing  # noqa: E402, F811  (do_bench, for the comparison below)

from motif_lite.kernels import launch  # noqa: E402
from motif_lite.model.ops import TORCH_OPS  # noqa: E402
from motif_lite.preflight import check_kernels  # noqa: E402
from motif_lite.runtime import kernels as rt  # noqa: E402


class TinyModel(nn.Module):
    """The one attribute `apply_kernels` needs of a transformer: `ops`."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.ops, self.body = TORCH_OPS, body


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3.2.0", (3, 2)), ("3.5.0+git1a2b3c4", (3, 5)), ("3.10.0", (3, 10)), ("3.4.0rc1", (3, 4))],
)
def test_triton_version_reads_major_and_minor(text: str, expected: tuple[int, int]) -> None:
    assert launch.triton_version(text) == expected


def test_triton_versions_compare_as_numbers() -> None:
    """3.10 is newer than 3.9 (as strings it would sort first)."""
    assert launch.triton_version("3.10.0") > launch.triton_version("3.9.0") > launch.triton_version("3.2.0")


def test_triton_3_2_times_configs_through_warmup_and_rep() -> None:
    """Triton 3.2's `autotune` does not pass `do_bench` on to its autotuner: the timing must go by warmup/rep."""
    assert launch.benchmark_options(10, 40, version="3.2.0") == {"warmup": 10, "rep": 40}


@pytest.mark.parametrize("version", ["3.3.1", "3.6.0", "3.9.0"])
def test_later_tritons_take_triton_do_bench(version: str) -> None:
    """From 3.3 on the benchmark function goes in as `do_bench`: Triton's own, with our warm-up and timing."""
    options = launch.benchmark_options(10, 40, version=version)
    assert list(options) == ["do_bench"]
    bench = options["do_bench"]
    assert bench.func is triton.testing.do_bench and bench.keywords == {"warmup": 10, "rep": 40}


@pytest.mark.parametrize(("version", "named"), [("3.2.0", True), ("3.3.1", True), ("3.4.0", False), ("3.9.0", False)])
def test_autotuners_before_triton_3_4_are_given_their_benchmark(version: str, named: bool) -> None:
    """Before 3.4 an autotuner without a benchmark function asks the GPU driver for one when it is created, which
    raises at import on a machine without a GPU; 3.4 and newer ask when they tune, so nothing is added there."""
    assert bool(launch.import_safe_tuning(version)) == named


def test_autotune_takes_the_options_of_the_installed_triton() -> None:
    """The installed Triton's `autotune` accepts what `import_safe_tuning` and `benchmark_options` give it."""

    @triton.jit
    def kernel(x_ptr, BLOCK: triton.language.constexpr):
        pass

    configs = [triton.Config({"BLOCK": 16})]
    triton.autotune(configs=configs, key=[], **launch.import_safe_tuning())(kernel)
    triton.autotune(configs=configs, key=[], **launch.benchmark_options())(kernel)


@pytest.mark.parametrize(
    ("version", "capability", "refused"),
    [("3.2.0", (12, 0), True), ("3.2.0", (10, 0), True), ("3.2.0", (9, 0), False), ("3.2.0", (8, 9), False),
     ("3.3.1", (12, 0), False), ("3.10.0", (12, 0), False)],
)  # fmt: skip
def test_blackwell_needs_triton_3_3(version: str, capability: tuple[int, int], refused: bool) -> None:
    """Triton 3.2 (torch 2.6's) has no Blackwell target: for sm_120 its LLVM aborts the process mid-compile."""
    reason = launch.triton_too_old(version, capability)
    assert (reason is not None) == refused
    if refused:
        major, minor = capability
        assert f"Triton {version}" in reason and f"capability {major}.{minor}" in reason
        assert "torch>=2.7" in reason and "triton>=3.3" in reason


@pytest.fixture
def old_triton_on_an_rtx_50xx(monkeypatch):
    """A CUDA machine with an RTX 50xx (sm_120) and the Triton torch 2.6 installs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (12, 0))
    monkeypatch.setattr(triton, "__version__", "3.2.0")


def test_kernels_triton_refuses_a_triton_too_old_for_the_gpu(old_triton_on_an_rtx_50xx) -> None:
    with pytest.raises(rt.KernelBackendError, match=r"not possible here: Triton 3\.2\.0 cannot compile .* 12\.0"):
        rt.use_triton("triton")


def test_kernels_triton_is_refused_before_loading(old_triton_on_an_rtx_50xx) -> None:
    """The run's preflight says it, before any weights load."""
    with pytest.raises(rt.KernelBackendError, match=r"install torch>=2\.7, which brings triton>=3\.3"):
        check_kernels("triton", torch.device("cuda"))


def test_auto_uses_torch_with_one_note_on_a_triton_too_old_for_the_gpu(old_triton_on_an_rtx_50xx) -> None:
    """No kernel is compiled (it would abort the process): torch's ops everywhere, one warning while loading, and
    the run summary's fallbacks name the Triton version needed."""
    model = TinyModel(nn.Linear(4, 4))
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable") as caught:
        rt.apply_kernels(model, "auto")
    assert len([w for w in caught if "Triton kernels unavailable" in str(w.message)]) == 1
    assert model.ops.layer_norm_modulate is TORCH_OPS.layer_norm_modulate
    assert "triton>=3.3" in rt.fallbacks(model)[rt.TRITON_KERNELS]


def test_a_new_enough_triton_runs_the_kernels_on_blackwell(monkeypatch) -> None:
    """Negative control: the same GPU with Triton 3.3 gets the Triton ops."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (12, 0))
    monkeypatch.setattr(triton, "__version__", "3.3.1")
    assert rt.use_triton("triton") and rt.use_triton("auto")


def test_float32_inputs_take_the_split_path_where_triton_cannot_compile_the_fused_gemm() -> None:
    """Triton 3.2 aborted the process compiling the float32 fused GEMM of Q4_K and Q5_K (found compiling the launches
    as the calls specialize them, bench/triton_versions.py); 16-bit inputs and newer Tritons keep the fused kernel."""
    from motif_lite.kernels.dequant_matmul import SPLIT_MIN_M, takes_split

    assert takes_split(16, torch.float32, "3.2.0")
    assert not takes_split(16, torch.float32, "3.3.1") and not takes_split(16, torch.float32, "3.9.0")
    assert not takes_split(16, torch.bfloat16, "3.2.0") and not takes_split(SPLIT_MIN_M - 1, torch.float16, "3.2.0")
    assert takes_split(SPLIT_MIN_M, torch.bfloat16, "3.9.0")


def test_the_version_script_does_not_compile_for_a_gpu_its_triton_cannot_target(monkeypatch, capsys) -> None:
    """bench/triton_versions.py with Triton 3.2 and sm_120: every launch is reported skipped with the reason, none
    is compiled (3.2's LLVM would abort the process), the launches the script adds to the compile tests' included."""
    import importlib.util
    from pathlib import Path

    from motif_lite.kernels import compiled

    path = Path(__file__).resolve().parent.parent / "bench" / "triton_versions.py"
    spec = importlib.util.spec_from_file_location("triton_versions", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def must_not_compile(*args, **kwargs):
        raise AssertionError("compiled for a target this Triton does not have")

    monkeypatch.setattr(compiled, "compile_for", must_not_compile)
    monkeypatch.setattr(compiled, "int8_attention_asm", must_not_compile)
    monkeypatch.setattr(triton, "__version__", "3.2.0")
    assert script.main(["--capabilities", "120", "--only", "layer_norm,attention-block-sparse,int8"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {row["launch"] for row in rows} >= {"layer_norm_modulate", "attention-block-sparse", "int8-prepasses"}
    for row in rows:
        assert row["ok"] is None and "triton>=3.3" in row["error"], row


@pytest.fixture
def old_triton_on_two_generations(monkeypatch):
    """A CUDA machine with an RTX 30xx (sm_86) as cuda:0, the current device, and an RTX 50xx (sm_120) as cuda:1,
    with the Triton torch 2.6 installs: it builds kernels for the first GPU only."""
    capabilities = {0: (8, 6), 1: (12, 0)}

    def capability(device=None):
        index = device if isinstance(device, int) else None if device is None else torch.device(device).index
        return capabilities[0 if index is None else index]  # no index: the current device, cuda:0

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    monkeypatch.setattr(triton, "__version__", "3.2.0")


def test_triton_is_judged_on_the_gpu_the_run_uses(old_triton_on_two_generations) -> None:
    """A run on cuda:1 was checked against cuda:0's generation: allowed to compile for sm_120, which aborts the
    process, because the current GPU is an sm_86."""
    first, second = torch.device("cuda", 0), torch.device("cuda", 1)
    with pytest.raises(rt.KernelBackendError, match=r"Triton 3\.2\.0 cannot compile .* 12\.0"):
        check_kernels("triton", second)
    check_kernels("triton", first)
    assert rt.use_triton("auto", first) and rt.triton_unavailable("auto", first) is None
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        assert not rt.use_triton("auto", second)
    assert "triton>=3.3" in rt.triton_unavailable("auto", second)


def test_the_kernels_of_a_model_on_another_gpu_are_chosen_for_it(old_triton_on_two_generations) -> None:
    model = TinyModel(nn.Linear(4, 4))
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        rt.apply_kernels(model, "auto", device=torch.device("cuda", 1))
    assert model.ops.layer_norm_modulate is TORCH_OPS.layer_norm_modulate
    assert "triton>=3.3" in rt.fallbacks(model)[rt.TRITON_KERNELS]
    rt.apply_kernels(model, "auto", device=torch.device("cuda", 0))
    assert rt.fallbacks(model) == {}


def test_our_attention_kernel_is_judged_on_its_gpu(old_triton_on_two_generations) -> None:
    from motif_lite.errors import ConfigError
    from motif_lite.runtime.attention_candidates import triton_attention

    with pytest.raises(ConfigError, match=r"--attention-backend triton is our Triton kernel: Triton 3\.2\.0"):
        triton_attention(device=torch.device("cuda", 1))
    assert isinstance(triton_attention(device=torch.device("cuda", 0)), rt.FallbackOp)


def test_the_speed_checks_time_no_triton_attention_on_a_gpu_it_cannot_build_for(
    old_triton_on_two_generations, monkeypatch
) -> None:
    """`auto` times our Triton kernel only where Triton builds for the run's GPU: a run on cuda:1 asked the current
    cuda:0, and its attention trial then refused the kernel it had been told it could time."""
    from motif_lite.preflight import check_speed
    from motif_lite.runtime.attention import AutoAttention

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX")
    second = torch.device("cuda", 1)
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        _, attention = check_speed(second, "auto", "auto", None)
    assert isinstance(attention, AutoAttention) and "triton" not in attention.candidates
    _, attention = check_speed(torch.device("cuda", 0), "auto", "auto", None)
    assert "triton" in attention.candidates


def test_a_fixed_triton_attention_is_judged_on_the_runs_gpu(old_triton_on_two_generations) -> None:
    from motif_lite.errors import ConfigError
    from motif_lite.runtime.attention import FixedAttention, attention_backend

    with pytest.raises(ConfigError, match=r"--attention-backend triton is our Triton kernel: Triton 3\.2\.0"):
        attention_backend("triton", "cuda:1")
    assert isinstance(attention_backend("triton", "cuda:0"), FixedAttention)


def test_the_plan_counts_the_fused_norms_only_where_triton_builds_for_its_gpu(
    old_triton_on_two_generations, checkpoint
) -> None:
    """The torch norms hold more activation memory than the fused kernels: a plan for cuda:1, whose kernels fall
    back to torch's, counted the fused ones of the current cuda:0."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.memory_plan import _planner_inputs
    from motif_lite.request import GenerationRequest

    request = GenerationRequest("fox", width=64, height=64, frames=5, steps=2)
    sources = locate_sources(str(checkpoint))

    def fused(device: torch.device) -> bool:
        return _planner_inputs(request, sources, torch.bfloat16, device, "auto", "exact", None).fused_norms

    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        assert not fused(torch.device("cuda", 1))
    assert fused(torch.device("cuda", 0))


def test_int8_attention_on_a_gpu_triton_cannot_build_for_says_why(old_triton_on_two_generations) -> None:
    """Its torch fallback names the run's GPU's reason (Triton too old for it), not "the torch kernel backend was
    chosen", which the current GPU's answer gave."""
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        ops = rt.select_ops("auto", attention="int8", device=torch.device("cuda", 1))
    with pytest.raises(rt.KernelBackendError, match=r"^int8 attention is a Triton kernel and Triton 3\.2\.0 .*3\.3"):
        ops.attention.kernel()


def test_the_packed_layers_of_a_model_on_another_gpu_get_its_kernels(old_triton_on_two_generations) -> None:
    # As the packed text encoder's layers get theirs, for the GPU it visits (the transformer's: `apply_kernels`).
    from gguf import GGMLQuantizationType

    from motif_lite.weights.quant_linear import QuantizedLinear

    model = nn.Sequential(QuantizedLinear(32, 4, GGMLQuantizationType.Q8_0))
    with pytest.warns(RuntimeWarning, match="Triton kernels unavailable"):
        rt.apply_dequant_kernels(model, "auto", torch.device("cuda", 1))
    assert model[0].kernel is None  # the layer's own torch dequantization
    rt.apply_dequant_kernels(model, "auto", torch.device("cuda", 0))
    assert isinstance(model[0].kernel, rt.FallbackOp)
