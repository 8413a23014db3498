"""AMD GPUs through PyTorch's ROCm build, without one: the decisions are made from `GpuFacts`, which the tests state
for each GPU, and the few places that read torch are checked against a faked ROCm build (torch.version.hip set,
`gcnArchName` in the device properties, and a `get_device_capability` that is not NVIDIA's: gfx1100 reads 11.0,
gfx942 9.4, gfx1201 12.0)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from motif_lite import devices, dtypes, gpu_memory, gpus
from motif_lite.gpus import AMD, NVIDIA, GpuFacts

RTX_4090 = GpuFacts(NVIDIA, "NVIDIA GeForce RTX 4090", capability=(8, 9))
H100 = GpuFacts(NVIDIA, "NVIDIA H100 80GB HBM3", capability=(9, 0))
A100 = GpuFacts(NVIDIA, "NVIDIA A100-SXM4-80GB", capability=(8, 0))
T4 = GpuFacts(NVIDIA, "Tesla T4", capability=(7, 5))
RX_7900_XTX = GpuFacts(AMD, "AMD Radeon RX 7900 XTX", arch="gfx1100")
RX_6800 = GpuFacts(AMD, "AMD Radeon RX 6800", arch="gfx1030")
MI300X = GpuFacts(AMD, "AMD Instinct MI300X", arch="gfx942")
MI250 = GpuFacts(AMD, "AMD Instinct MI250X", arch="gfx90a")
RADEON_VII = GpuFacts(AMD, "AMD Radeon VII", arch="gfx906")
MI100 = GpuFacts(AMD, "AMD Instinct MI100", arch="gfx908")
RX_580 = GpuFacts(AMD, "AMD Radeon RX 580", arch="gfx803")
VEGA_64 = GpuFacts(AMD, "AMD Radeon RX Vega 64", arch="gfx900")
RENOIR = GpuFacts(AMD, "AMD Radeon Graphics", arch="gfx90c")  # a Ryzen 4000 APU: Vega, like gfx900

# What each GPU reports as its "capability" on a ROCm build: read as NVIDIA's, each would pass every check.
ROCM_CAPABILITY = {"gfx1100": (11, 0), "gfx1030": (10, 3), "gfx942": (9, 4), "gfx90a": (9, 0), "gfx906": (9, 0)}


def rocm_gpu(monkeypatch, gpu: GpuFacts, hip: str = "6.4.43482") -> None:
    """This process as a ROCm build of torch with `gpu` as every cuda device."""
    monkeypatch.setattr(torch.version, "hip", hip)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu.name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: ROCM_CAPABILITY[gpu.arch])
    properties = SimpleNamespace(name=gpu.name, gcnArchName=f"{gpu.arch}:sramecc+:xnack-")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: properties)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (20 * 2**30, 24 * 2**30))
    from motif_lite.runtime import attention

    # SDPA's flash or memory-efficient kernel runs there (the GPU is not here to try it on; see below).
    monkeypatch.setattr(attention, "linear_memory_attention_missing", lambda device, dtype: False)


@pytest.mark.parametrize(
    ("gpu", "bf16"),
    [(RTX_4090, True), (H100, True), (A100, True), (T4, False), (RX_7900_XTX, True), (MI300X, True),
     (MI250, True), (MI100, True), (RX_6800, False), (RADEON_VII, False), (RX_580, False), (VEGA_64, False),
     (RENOIR, False)],
)  # fmt: skip
def test_bf16_runs_at_speed_on_nvidia_from_ampere_and_amd_from_rdna3_and_mi100(gpu, bf16):
    assert gpus.has_bf16_matrix_cores(gpu) is bf16


def test_an_amd_gpu_of_unknown_architecture_gets_no_bf16():
    # Facts without the architecture: the safe answer is fp16's (no bf16 claimed), not an AttributeError.
    unknown = GpuFacts(AMD, "AMD Radeon")
    assert gpus.has_bf16_matrix_cores(unknown) is False
    assert unknown.describe() == "unknown AMD architecture"


@pytest.mark.parametrize(
    ("gpu", "int8", "fp8"),
    [(RTX_4090, True, True), (H100, True, True), (A100, True, False), (T4, False, False),
     (RX_7900_XTX, False, False), (MI300X, False, False), (RX_6800, False, False)],
)  # fmt: skip
def test_8_bit_attention_runs_on_nvidia_tensor_cores_only_and_fp8_never_on_amd(gpu, int8, fp8):
    blocker = gpus.int8_attention_blocker(gpu)
    assert (blocker is None) is int8
    assert gpus.has_fp8_pv(gpu) is fp8
    if gpu.is_amd:
        assert "not been checked on AMD GPUs" in blocker and gpu.arch in blocker


@pytest.mark.parametrize("gpu", [RX_7900_XTX, MI300X, RTX_4090, H100])
def test_cudnn_and_fa3_are_nvidia_only(gpu):
    offered = [
        name for name in ("sdpa", "flash", "efficient", "cudnn", "fa3") if not gpus.nvidia_only_attention(name, gpu)
    ]
    assert offered == (["sdpa", "flash", "efficient"] if gpu.is_amd else ["sdpa", "flash", "efficient", "cudnn", "fa3"])


@pytest.mark.parametrize("gpu", [RX_7900_XTX, MI300X, RX_6800])
def test_the_facts_of_a_rocm_gpu_are_its_arch_not_its_capability(monkeypatch, gpu):
    rocm_gpu(monkeypatch, gpu)
    assert gpus.gpu_facts(torch.device("cuda", 0)) == gpu
    assert gpus.gpu_platform() == "ROCm 6.4.43482"
    # The default dtype follows the architecture: (11, 0) and (10, 3) would both read as "Ampere or later".
    expected = torch.bfloat16 if gpus.has_bf16_matrix_cores(gpu) else torch.float16
    assert dtypes.default_dtype(torch.device("cuda", 0))[0] == expected
    note = dtypes.dtype_note(torch.device("cuda", 0), torch.bfloat16)
    assert (note is None) is (expected == torch.bfloat16)
    if note is not None:
        assert f"{gpu.name} ({gpu.arch}) has no bfloat16" in note


def test_no_gpu_on_a_rocm_build_names_amds_driver_not_nvidias(monkeypatch):
    monkeypatch.setattr(torch.version, "hip", "6.4.43482")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(devices.DeviceError, match="no AMD GPU or ROCm driver") as caught:
        devices.checked_device("cuda")
    assert "NVIDIA" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "meant"), [("rocm", "cuda"), ("hip", "cuda"), ("hip:1", "cuda:1"), ("ROCm:0", "cuda:0"), ("amd", "cuda")]
)
def test_an_amd_gpu_by_another_tools_name_is_told_cuda(monkeypatch, name, meant):
    # "hip" is a device type torch knows and runs nothing on; "rocm" and "amd" it does not know: each said "not
    # supported" or "unknown", which reads as if AMD GPUs were not.
    rocm_gpu(monkeypatch, RX_7900_XTX)
    for resolve in (devices.parse_device, devices.resolve_device):
        with pytest.raises(devices.DeviceError) as caught:
            resolve(name)
        spelled = f'--device {meant} (in Python device="{meant}")'
        assert str(caught.value) == f"device {name!r}: PyTorch's ROCm build names AMD GPUs cuda: {spelled}"
    monkeypatch.setattr(torch.version, "hip", None)  # a CUDA or CPU build: the ROCm build is what to install
    with pytest.raises(devices.DeviceError, match=r"AMD GPUs run through PyTorch's ROCm build, .* is not that build"):
        devices.resolve_device(name)


NO_DRIVER = "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver"
OLD_DRIVER = (
    "The NVIDIA driver on your system is too old (found version 11040). Please update your GPU driver by downloading"
)


@pytest.mark.parametrize(
    ("cuda", "cuda_says", "reason"),
    [(None, None, "this torch build has no CUDA"),
     ("12.8", NO_DRIVER, "Found no NVIDIA driver on your system"),
     ("12.8", OLD_DRIVER, r"The NVIDIA driver on your system is too old \(found version 11040\): this torch is built "
                          r"for CUDA 12\.8; update the NVIDIA driver, or install a PyTorch built for an older CUDA"),
     ("12.8", "", "no NVIDIA driver or GPU was found")],  # CUDA starts, yet torch sees no GPU: our own words
)  # fmt: skip
def test_no_gpu_on_an_nvidia_build_says_whether_the_build_or_the_driver_lacks_it(monkeypatch, cuda, cuda_says, reason):
    # A CPU-only build needs another torch, a CUDA build a driver (or a newer one): the fixes differ, so the
    # messages must; CUDA's own reason says which (torch's is_available() only says False).
    def init():
        if cuda_says:
            raise RuntimeError(cuda_says)

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(devices.DeviceError, match=f"CUDA is not available \\({reason}"):
        devices.checked_device("cuda")


def test_hidden_gpus_name_cuda_visible_devices(monkeypatch):
    def init():
        raise RuntimeError("No CUDA GPUs are available")

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert (
        devices.no_gpu_reason() == "No CUDA GPUs are available (CUDA_VISIBLE_DEVICES='' chooses the GPUs CUDA may use)"
    )


LAZY_FAILURE = (
    "CUDA call failed lazily at initialization with error: device >= 0 && device < num_gpus INTERNAL ASSERT FAILED"
    '\n\nCUDA call was originally invoked at:\n\n  File "fox.py", line 1, in <module>'
)


@pytest.mark.parametrize(
    ("error", "reason"),
    [(RuntimeError(LAZY_FAILURE), LAZY_FAILURE.splitlines()[0]),  # its first line, without the traceback after it
     (RuntimeError(), "RuntimeError"),  # no words: its kind
     (AssertionError("Torch not compiled with CUDA enabled"), "Torch not compiled with CUDA enabled")],
)  # fmt: skip
def test_cudas_reason_is_its_first_line(monkeypatch, error, reason):
    def init():
        raise error

    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.no_gpu_reason() == reason


def test_check_names_rocm_and_says_what_a_run_does_on_an_amd_gpu(monkeypatch):
    from motif_lite.checkup.environment import _check_gpu, check_environment
    from motif_lite.checkup.report import Checkup

    rocm_gpu(monkeypatch, RX_7900_XTX)
    report = Checkup()
    check_environment(report)
    torch_line = next(finding for finding in report.findings if finding.subject == "torch")
    assert torch_line.message.endswith("(ROCm 6.4.43482)") and "CUDA" not in torch_line.message
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert finding.level == "warning" and "AMD Radeon RX 7900 XTX (gfx1100) is an AMD GPU" in finding.message
    assert "never run" in finding.message and "no bfloat16" not in finding.message
    rocm_gpu(monkeypatch, RX_6800)  # no bf16 either: both said on its one row
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert "is an AMD GPU" in finding.message and "(gfx1030) has no bfloat16 tensor cores" in finding.message


def test_checks_triton_row_on_an_amd_gpu_says_runs_use_the_torch_ops(monkeypatch):
    # It said "kernels importable: fused norms, attention and dequantizing matmuls on the GPU" under the GPU row that
    # says runs there use torch's ops.
    pytest.importorskip("triton")
    from motif_lite.checkup.environment import _check_triton
    from motif_lite.checkup.report import Checkup
    from motif_lite.runtime import kernels

    rocm_gpu(monkeypatch, RX_7900_XTX)
    monkeypatch.setattr(kernels, "launcher_build_problem", lambda: None)  # a C compiler for Triton's launcher
    report = Checkup()
    _check_triton(report)
    [finding] = report.findings
    assert finding.level == "ok" and finding.message.startswith("importable, but runs on an AMD GPU use the torch ops")
    assert finding.message.endswith(gpus.AMD_TRITON_REASON) and "fused norms" not in finding.message


def test_linear_memory_attention_is_tried_on_the_device():
    from torch.nn.attention import SDPBackend

    from motif_lite.runtime.attention import linear_memory_attention_missing

    cpu = torch.device("cpu")
    assert not linear_memory_attention_missing(cpu, torch.bfloat16)  # the CPU has SDPA's flash kernel
    assert linear_memory_attention_missing(cpu, torch.bfloat16, (SDPBackend.EFFICIENT_ATTENTION,))  # not that one


def test_check_says_when_an_amd_gpu_has_no_linear_memory_attention(monkeypatch):
    # AOTriton, behind SDPA's flash and memory-efficient kernels on ROCm, is built for some architectures only: on
    # others every attention call holds all its scores, which the plan does not count, and the first run of a
    # useful size ran out of memory at its first step, advising a lower --vram that could not help.
    from motif_lite.checkup.environment import _check_gpu
    from motif_lite.checkup.report import Checkup
    from motif_lite.runtime import attention

    rocm_gpu(monkeypatch, RX_7900_XTX)
    tried = []
    monkeypatch.setattr(
        attention, "linear_memory_attention_missing", lambda device, dtype: tried.append((device, dtype)) or True
    )
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert tried == [(torch.device("cuda", 0), torch.bfloat16)]  # the dtype a run there uses
    assert finding.level == "warning" and "is an AMD GPU" in finding.message
    assert "neither its flash nor its memory-efficient attention on AMD Radeon RX 7900 XTX (gfx1100) in bfloat16" in (
        finding.message
    )
    assert "TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL=1" in finding.message
    monkeypatch.setattr(attention, "linear_memory_attention_missing", lambda device, dtype: False)
    report = Checkup()
    _check_gpu(report)
    assert "flash" not in report.findings[0].message


def test_a_held_amd_gpu_names_amds_tool_not_nvidia_smi(monkeypatch):
    # An AMD machine has no nvidia-smi: "nvidia-smi lists the processes that hold it" sent its user to a tool they lack.
    from motif_lite.checkup.environment import _check_gpu
    from motif_lite.checkup.report import Checkup

    def busy(device=None):
        raise RuntimeError("HIP error: hipErrorOutOfMemory\nmore lines")

    rocm_gpu(monkeypatch, MI300X)
    monkeypatch.setattr(torch.cuda, "mem_get_info", busy)
    report = Checkup()
    _check_gpu(report)
    [finding] = report.findings
    assert finding.level == "problem" and "fix: amd-smi (rocm-smi on older ROCm) lists the processes" in finding.message
    with pytest.raises(devices.DeviceError, match=r"cannot be opened \(HIP error: .*\); amd-smi") as caught:
        gpu_memory.gpu_memory(0)
    assert "nvidia-smi" not in str(caught.value)


def test_strict_int8_attention_on_an_amd_gpu_is_refused_before_loading(monkeypatch):
    from motif_lite.preflight import check_strict_int8
    from motif_lite.runtime.kernels import KernelBackendError

    rocm_gpu(monkeypatch, MI300X)  # 9.4: read as NVIDIA's, "Hopper and later", INT8 and FP8
    with pytest.raises(KernelBackendError, match="not been checked on AMD GPUs .*--kernels triton never falls back"):
        check_strict_int8("int8", "triton", torch.device("cuda"))
    check_strict_int8("int8", "auto", torch.device("cuda"))  # auto: exact attention, with one warning


def test_auto_kernels_are_torchs_on_an_amd_gpu_and_the_summary_says_why(monkeypatch):
    from motif_lite.runtime.kernels import FallbackOp, select_ops, triton_unavailable, use_triton

    rocm_gpu(monkeypatch, RX_7900_XTX)
    monkeypatch.setattr(FallbackOp, "kernel_can_run", staticmethod(lambda tensors: True))  # as if on the GPU
    assert use_triton("auto") is False and use_triton("torch") is False
    assert triton_unavailable("auto") == gpus.AMD_TRITON_REASON
    with pytest.warns(RuntimeWarning, match="int8 attention falls back to torch: .*not checked on AMD GPUs"):
        attend = select_ops("auto", attention="int8").attention
        q = torch.zeros(1, 1, 4, 8)
        attend(q, q, q, None)


def test_the_int8_kernel_refuses_an_amd_gpu(monkeypatch):
    pytest.importorskip("triton")
    from motif_lite.kernels import attention_int8
    from motif_lite.kernels.errors import KernelInputError

    rocm_gpu(monkeypatch, RX_7900_XTX)  # 11.0: read as NVIDIA's, INT8 and FP8
    monkeypatch.setattr(attention_int8, "_INTERPRET", False)
    with pytest.raises(KernelInputError, match="not been checked on AMD GPUs"):
        attention_int8._use_fp8("auto", torch.device("cuda"))


def nvidia_gpu(monkeypatch, gpu: GpuFacts) -> None:
    """This process as a CUDA build of torch with `gpu` as every cuda device."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: gpu.name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: gpu.capability)


def test_the_int8_kernel_takes_fp8_pv_from_ada_on_and_refuses_it_before(monkeypatch):
    pytest.importorskip("triton")
    from motif_lite.kernels import attention_int8
    from motif_lite.kernels.errors import KernelInputError

    cuda = torch.device("cuda")
    monkeypatch.setattr(attention_int8, "_INTERPRET", True)  # the CPU interpreter: auto is 16-bit (not a GPU)
    assert attention_int8._use_fp8("auto", cuda) is False and attention_int8._use_fp8("fp8", cuda) is True
    monkeypatch.setattr(attention_int8, "_INTERPRET", False)
    nvidia_gpu(monkeypatch, RTX_4090)  # 8.9: FP8 tensor cores
    assert attention_int8._use_fp8("auto", cuda) is True and attention_int8._use_fp8("16bit", cuda) is False
    nvidia_gpu(monkeypatch, A100)  # 8.0: INT8 but no FP8 tensor cores
    assert attention_int8._use_fp8("auto", cuda) is False and attention_int8._use_fp8("16bit", cuda) is False
    with pytest.raises(
        KernelInputError, match=r"FP8 P·V needs compute capability 8\.9\+, this GPU is compute capability 8\.0"
    ):
        attention_int8._use_fp8("fp8", cuda)


def test_attention_backends_on_an_amd_gpu(monkeypatch, tmp_path):
    from motif_lite.errors import ConfigError
    from motif_lite.runtime import attention

    rocm_gpu(monkeypatch, RX_7900_XTX)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    auto = attention.attention_backend("auto", "cuda")
    assert "cudnn" not in auto.candidates and {"sdpa", "flash", "efficient"} <= set(auto.candidates)
    environment = auto.memory.environment  # the remembered choices' key names the GPU's arch and ROCm
    assert environment.startswith("AMD Radeon RX 7900 XTX (gfx1100); torch ") and "ROCm 6.4.43482" in environment
    assert "CUDA" not in environment and "cuDNN" not in environment
    for name in ("cudnn", "fa3"):
        with pytest.raises(ConfigError, match=f"--attention-backend {name} is a kernel for NVIDIA GPUs"):
            attention.attention_backend(name, "cuda")


def test_the_row_split_prune_keeps_every_config_on_an_amd_gpu(monkeypatch):
    pytest.importorskip("triton")
    from motif_lite.kernels import attention_int8, launch

    rocm_gpu(monkeypatch, RX_7900_XTX)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (12, 0))  # RDNA 4's gfx1201
    q = SimpleNamespace(device=torch.device("cuda", 0))
    configs = attention_int8._CONFIGS
    assert launch.row_split_configs(configs, {"q_ptr": q}, BLOCK_D=128, BLOCK_N=attention_int8.K_BLOCK) == configs


@pytest.mark.parametrize("platform", ["win32", "linux"])
def test_a_cpu_torch_on_windows_names_the_cuda_build_to_install(monkeypatch, platform):
    # On Windows `pip install torch` gives the CPU build: an RTX card went unused, and the reason, "this torch build
    # has no CUDA", did not say where the CUDA build comes from.
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(sys, "platform", platform)
    reason = devices.no_gpu_reason()
    assert reason.startswith("this torch build has no CUDA")
    assert ("--index-url https://download.pytorch.org/whl/cu128" in reason) == (platform == "win32"), reason
