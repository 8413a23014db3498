"""NVIDIA GPUs older than Triton's targets (Pascal, compute capability 6.x: GTX 10xx, P100, P40), simulated: no GPU
here, so `torch.cuda.is_available` and `get_device_capability` are faked. Triton builds for 7.0 and later (PyTorch's
inductor refuses older GPUs with GPUTooOldForTriton), and compiled for sm_61 our 16-bit attention asks for 64 KiB of
shared memory, more than Pascal's 48 KiB per block. So `--kernels auto` runs torch's ops there with one warning,
`--kernels triton`, `--attention-backend triton` and `--compile` are refused before anything loads, and `check`
says why on its Triton row. Turing (7.5, a T4) is the negative control: Triton runs there."""

from __future__ import annotations

import re
import warnings

import pytest
import torch
from torch import nn

pytest.importorskip("triton")

from motif_lite.checkup.environment import _check_gpu, _check_triton  # noqa: E402
from motif_lite.checkup.report import Checkup  # noqa: E402
from motif_lite.dtypes import dtype_note  # noqa: E402
from motif_lite.errors import ConfigError  # noqa: E402
from motif_lite.gpus import NVIDIA, GpuFacts, int8_attention_blocker, triton_gpu_blocker
from motif_lite.model.ops import TORCH_OPS  # noqa: E402
from motif_lite.preflight import check_kernels, check_speed  # noqa: E402
from motif_lite.runtime import compile as compile_module  # noqa: E402
from motif_lite.runtime import kernels as rt  # noqa: E402
from motif_lite.settings import DEFAULT, resolve_dtype  # noqa: E402

PASCAL, TURING = (6, 1), (7, 5)  # a GTX 1080 Ti; a T4 or RTX 20xx
TOO_OLD = "Triton builds kernels for compute capability 7.0 (Volta) and later, and this GPU is 6.1"


class TinyModel(nn.Module):
    """The one attribute `apply_kernels` needs of a transformer: `ops`."""

    def __init__(self):
        super().__init__()
        self.ops, self.body = TORCH_OPS, nn.Linear(4, 4)


@pytest.fixture(params=[PASCAL, TURING], ids=["sm_61", "sm_75"])
def gpu(request, monkeypatch) -> tuple[int, int]:
    """A CUDA machine whose one GPU has the parameter's compute capability, and a C compiler for Triton's launcher."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: request.param)
    monkeypatch.setattr(rt, "launcher_build_problem", lambda: None)
    monkeypatch.setattr(compile_module, "launcher_build_problem", lambda: None)
    return request.param


def test_kernels_triton_is_refused_before_loading(gpu):
    # Before: accepted on sm_61; the first step compiled kernels for a GPU Triton does not target.
    if gpu == TURING:
        assert rt.use_triton("triton")
        return
    with pytest.raises(rt.KernelBackendError, match=re.escape(f"not possible here: {TOO_OLD}")):
        check_kernels("triton", torch.device("cuda"))


def test_auto_runs_the_torch_ops_with_one_warning(gpu):
    model = TinyModel()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rt.apply_kernels(model, "auto")
    notes = [str(w.message) for w in caught if "Triton kernels unavailable" in str(w.message)]
    if gpu == TURING:
        assert notes == [] and rt.use_triton("auto")
        return
    assert len(notes) == 1 and TOO_OLD in notes[0]
    assert model.ops.layer_norm_modulate is TORCH_OPS.layer_norm_modulate
    assert TOO_OLD in rt.fallbacks(model)[rt.TRITON_KERNELS]


def test_the_triton_attention_backend_is_refused_before_loading(gpu):
    if gpu == TURING:
        assert check_speed(torch.device("cuda"), "torch", "triton", None)[1].describe().startswith("triton")
        return
    for kernels in ("torch", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # auto's own note that the Triton ops are off
            with pytest.raises(ConfigError, match=re.escape(f"triton is our Triton kernel: {TOO_OLD}")):
                check_speed(torch.device("cuda"), kernels, "triton", None)


def test_compile_is_refused_before_loading(gpu):
    # Before: accepted; inductor raised GPUTooOldForTriton at the first compiled call, after every weight loaded.
    if gpu == TURING:
        compile_module.check_compile_possible("cuda")
        return
    with pytest.raises(compile_module.CompileUnavailableError, match=re.escape(f"builds Triton kernels: {TOO_OLD}")):
        compile_module.check_compile_possible("cuda")


def test_checks_triton_row_says_why(gpu):
    report = Checkup()
    _check_triton(report)
    [finding] = report.findings
    if gpu == TURING:
        assert finding.level == "ok" and finding.message.startswith("kernels importable")
        return
    assert finding.level == "warning" and finding.message.startswith("kernels unavailable, the torch ops run instead")
    assert TOO_OLD in finding.message


def test_volta_is_tritons_oldest_target_and_the_last_pascal_is_not(monkeypatch):
    # The edge of the rule: a V100 (7.0) runs Triton's kernels and compiles; a Jetson TX2 (6.2) does not.
    assert triton_gpu_blocker((7, 0)) is None
    assert triton_gpu_blocker((6, 2)) == TOO_OLD.replace("6.1", "6.2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(compile_module, "launcher_build_problem", lambda: None)
    compile_module.check_compile_possible("cuda")


def test_int8_attention_on_turing_says_why_its_int8_tensor_cores_are_not_used():
    # Before: "needs INT8 tensor cores (compute capability 8.0, Ampere, and later)", which a T4 user, whose GPU is
    # sold for its INT8 tensor cores, reads as wrong. Triton 3.9 cannot compile an INT8 dot for sm_75 at all.
    t4 = GpuFacts(NVIDIA, "Tesla T4", capability=TURING)
    blocker = int8_attention_blocker(t4)
    assert "as Triton uses them, from compute capability 8.0 (Ampere) on" in blocker and blocker.endswith("is 7.5")
    assert "Triton cannot compile an INT8 dot for Turing's" in blocker
    gtx_1080_ti = GpuFacts(NVIDIA, "NVIDIA GeForce GTX 1080 Ti", capability=PASCAL)  # no INT8 tensor cores at all
    assert "Turing" not in int8_attention_blocker(gtx_1080_ti)
    assert int8_attention_blocker(GpuFacts(NVIDIA, "NVIDIA A100", capability=(8, 0))) is None


@pytest.mark.parametrize(
    ("name", "capability", "dtype"),
    [("NVIDIA GeForce GTX 1660 SUPER", TURING, torch.float32), ("NVIDIA GeForce GTX 1650", TURING, torch.float32),
     ("NVIDIA T1000", TURING, torch.float32), ("NVIDIA GeForce GTX 1080 Ti", PASCAL, torch.float32),
     ("Tesla P100-PCIE-16GB", (6, 0), torch.float32), ("Tesla T4", TURING, torch.float16),
     ("NVIDIA GeForce RTX 2060", TURING, torch.float16), ("Tesla V100-SXM2-16GB", (7, 0), torch.float16)],
)  # fmt: skip
def test_the_default_dtype_is_fp32_where_fp16_is_faulty_or_slow(monkeypatch, name, capability, dtype):
    # Before: fp16 on every GPU before Ampere, the GTX 16xx too, where ComfyUI computes in fp32 ("FP16 is just
    # broken on these cards") and Pascal, where ComfyUI finds fp32 faster. A T4, an RTX 20xx and a V100 keep fp16.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    setting = resolve_dtype(None, torch.device("cuda"))
    assert setting.value == dtype and setting.source == DEFAULT
    if dtype == torch.float32:
        assert setting.origin.startswith(f"{name} has no bf16 tensor cores and is ")
        assert "ComfyUI computes in fp32 there" in setting.origin
        assert setting.origin.endswith("--dtype fp16 to override")
        assert "fp32, what a run here uses when no dtype is given" in dtype_note(torch.device("cuda"), torch.bfloat16)
    else:
        assert setting.origin.endswith("--dtype bf16 to override")
        assert "fp16, what a run here uses when no dtype is given" in dtype_note(torch.device("cuda"), torch.bfloat16)


@pytest.mark.parametrize(("name", "default"), [("NVIDIA GeForce GTX 1660 SUPER", "fp32"), ("Tesla T4", "fp16")])
def test_checks_gpu_row_names_the_default_dtype(monkeypatch, name, default):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (14 * 1024**3, 15 * 1024**3))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: TURING)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: [])  # no build to check against
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert finding.level == "warning" and f"runs here use {default} unless --dtype says otherwise" in finding.message


def test_a_default_fp32_run_keeps_the_text_encoder_in_bf16_and_fp32_asked_for_does_not(monkeypatch):
    # The fp32 default of the GTX 16xx and Pascal made the text encoder fp32 too: the planner's host memory for a
    # 480p run went from 14.6 GiB (yesterday's fp16 default) to 26.6 GiB, past a 16 or 24 GB machine. It runs once
    # per video: bf16, as in an fp16 run; fp32 only with --dtype fp32.
    import warnings

    from motif_lite.memory_plan import plan_generation
    from motif_lite.request import GenerationRequest

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: PASCAL)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce GTX 1080 Ti")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 1024**3, 11 * 1024**3))
    request = GenerationRequest("a fox", width=832, height=480, frames=49, steps=30, seed=0)

    def host_gib(**dtypes) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return plan_generation(request, device="cuda", vram_gib=8, **dtypes).host.load_bytes / 2**30

    default, asked, fp16 = host_gib(), host_gib(dtype="fp32"), host_gib(dtype="fp16")
    assert default == host_gib(dtype="fp32", text_encoder_dtype="bf16") < asked, (default, asked)
    assert default < fp16 + 5 < asked, (default, fp16, asked)  # the transformer's 2 bytes more per parameter only


def test_load_pipeline_keeps_the_text_encoder_in_bf16_under_an_fp32_default(shared_checkpoint, monkeypatch):
    # As the planner counts it: the default fp32 of such a GPU (faked here as the CPU's default) loads the text
    # encoder in bf16, and dtype="fp32" asked for loads it in fp32.
    from motif_lite import settings
    from motif_lite.pipeline import load_pipeline

    monkeypatch.setattr(settings, "default_dtype", lambda device: (torch.float32, "a GTX 1080 Ti's default"))
    for asked, text_dtype in ((None, torch.bfloat16), ("fp32", torch.float32)):
        pipe = load_pipeline(shared_checkpoint[0], dtype=asked, device="cpu", kernels="torch")
        assert next(pipe.transformer.parameters()).dtype == torch.float32, asked
        assert next(pipe.text_encoder.model.parameters()).dtype == text_dtype, asked


def test_a_resumed_default_fp32_run_keeps_the_text_encoder_in_bf16(shared_checkpoint, tmp_path, monkeypatch):
    # The kept state holds the resolved dtype ("fp32"), which the resume fills in as if --dtype fp32 were given: its
    # text encoder loaded and was planned in fp32 (~12 GB more host memory than the stopped run, which may no longer
    # fit) and encoded the prompts in another dtype than the one the stopped run sampled with.
    from motif_lite import cli, pipeline, settings
    from motif_lite.io.latents import read_latents
    from motif_lite.memory_advice import PlannedRun

    monkeypatch.setattr(settings, "default_dtype", lambda device: (torch.float32, "a GTX 1080 Ti's default"))
    pipes, planned = [], []
    loading = pipeline.load_pipeline
    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pipes.append(loading(*a, **kw)) or pipes[-1])
    planning = PlannedRun.plan

    def counted_plan(self, *args, **kwargs):
        plan = planning(self, *args, **kwargs)
        planned.append(plan.host.load_bytes)
        return plan

    monkeypatch.setattr(PlannedRun, "plan", counted_plan)

    def stop(self, stage, done, total):
        if stage == "denoise" and done == 1:
            raise KeyboardInterrupt

    output = tmp_path / "f_%03d.png"
    with monkeypatch.context() as patch:
        patch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
        args = ["run", "-m", str(shared_checkpoint[0]), "-p", "a fox", "-W", "48", "-H", "32", "--video-frames", "5",
                "--steps", "2", "-s", "7", "--device", "cpu", "--kernels", "torch", "--ram", "64",
                "-o", str(output)]  # fmt: skip
        assert cli.main(args) == cli.EXIT_INTERRUPTED
    latents = tmp_path / "f.latents.safetensors"
    assert read_latents(latents).run["dtype"] == "fp32"
    assert cli.main(["run", "--resume", str(latents), "--kernels", "torch", "--ram", "64"]) == 0  # --ram: planned
    assert len(pipes) == 2, pipes
    for pipe in pipes:
        assert next(pipe.transformer.parameters()).dtype == torch.float32
        assert next(pipe.text_encoder.model.parameters()).dtype == torch.bfloat16
    assert len(planned) == 2 and planned[0] == planned[1], planned  # the plan counts what loads


@pytest.mark.parametrize(("run", "kept"), [({"dtype": "fp32"}, None), ({"text_encoder_dtype": "bf16"}, "bf16"),
                                          ({"text_encoder_dtype": "int4"}, None)])  # fmt: skip
def test_a_latents_file_without_the_text_encoders_dtype_resumes_as_before(run, kept):
    # An older file (or an edited one) says nothing of it: the dtype decides, as it did before the file kept it.
    from types import SimpleNamespace

    from motif_lite.cli.resume import _kept_text_encoder_dtype

    assert _kept_text_encoder_dtype(SimpleNamespace(run=run)) == kept
