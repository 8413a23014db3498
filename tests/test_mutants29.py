"""The twenty-ninth mutation pass's tests (docs/testing.md): behaviours of the twentieth and twenty-first sessions'
merges that no test reached, each failing with the mutant that showed the gap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite import devices, gpu_memory
from motif_lite.errors import DeviceError

BUSY = "CUDA error: CUDA-capable device(s) is/are busy or unavailable"


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


def _a_busy_gpu(monkeypatch, error: BaseException) -> None:
    """One RTX 4090 that CUDA cannot open: `mem_get_info` raises `error`."""

    def busy(device=None):
        raise error

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 4090")
    monkeypatch.setattr(torch.cuda, "mem_get_info", busy)


@pytest.mark.parametrize(
    ("device", "named"), [(torch.device("cuda"), "cuda:0"), (torch.device("cuda:1"), "cuda:1"), (1, "cuda:1")]
)
def test_a_gpu_that_cannot_be_opened_is_named_as_cuda_numbers_it(monkeypatch, device, named):
    # Plain `cuda` is the first GPU (it read "cuda:None"); a GPU given by its number is that one.
    _a_busy_gpu(monkeypatch, RuntimeError(BUSY))
    with pytest.raises(DeviceError, match=rf"^GPU {named} cannot be opened \("):
        gpu_memory.gpu_memory(device)


def test_a_gpu_full_without_a_message_is_named_by_the_errors_kind(monkeypatch):
    # An exception without words has no first line to quote (an IndexError, not the one-line refusal).
    _a_busy_gpu(monkeypatch, torch.OutOfMemoryError())
    with pytest.raises(DeviceError, match=r"^GPU cuda:0 cannot be opened \(OutOfMemoryError\); nvidia-smi lists"):
        gpu_memory.gpu_memory(torch.device("cuda:0"))


def test_a_pipeline_without_a_plan_on_a_gpu_that_cannot_be_opened_says_so(monkeypatch, checkpoint):
    # load_pipeline without a plan compares the official video's estimate with the GPU's memory: CUDA's traceback.
    # Plain `cuda`, the current device, as no GPU is made current here (this machine may have none).
    from motif_lite import load_pipeline

    _a_busy_gpu(monkeypatch, RuntimeError(BUSY + "\nmore lines"))
    with pytest.raises(DeviceError, match=r"^GPU cuda:0 cannot be opened \(CUDA error: CUDA-capable device.s. is/are "):
        load_pipeline(checkpoint, dtype="fp32", device="cuda", kernels="torch")


def test_a_mac_loading_on_the_cpu_is_told_of_its_gpu_not_of_no_gpu(monkeypatch, checkpoint):
    # A Mac's GPU is there, unsupported: "no GPU found ... choose a GPU runtime" would be wrong advice beside it.
    import warnings

    from motif_lite import load_pipeline

    monkeypatch.setattr(devices, "present_accelerator", lambda: "mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "auto" is the CPU on a machine with CUDA too
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_pipeline(checkpoint, dtype="fp32", kernels="torch")
    said = [str(warning.message) for warning in caught]
    assert any("Apple silicon GPU (mps) is not supported" in text for text in said), said
    assert not any("no GPU found" in text for text in said), said


def test_the_no_gpu_warning_names_the_line_that_loads(monkeypatch, checkpoint):
    # A notebook shows a warning with the line it names: the user's call of load_pipeline, not the library's.
    from motif_lite import load_pipeline

    monkeypatch.setattr(devices, "present_accelerator", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match=r"^no GPU found") as caught:
        load_pipeline(checkpoint, dtype="fp32", kernels="torch")
    assert [warning.filename for warning in caught if "no GPU found" in str(warning.message)] == [__file__]


def test_only_the_main_rank_plans_with_the_text_encoder_before_its_download(checkpoint, tmp_path, monkeypatch):
    # The other ranks never load it: refused for its memory before their download, they would stop a run that fits.
    from types import SimpleNamespace

    from motif_lite.cli import before_download, build_parser, run_request
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.errors import MotifLiteError
    from motif_lite.io.hub import DownloadPlan
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.runtime.parallel import ParallelLayout

    planned = []

    def plan(run: PlannedRun, vram_gib: float | None = None):
        planned.append(run.text_encoder)
        raise MotifLiteError("planned")

    monkeypatch.setattr(PlannedRun, "plan", plan)
    flags = ["run", "-m", str(checkpoint), "-p", "a fox", "--device", "cpu", "--dtype", "fp32", "--vram", "8"]
    args = build_parser().parse_args([*flags, "-W", "48", "-H", "32", "--video-frames", "5"])
    args.weights = take_weight_flags(args)
    request = run_request.request_from_args(args)
    for is_main in (True, False):
        rank = SimpleNamespace(layout=ParallelLayout(2, 1), is_main=is_main)
        refuse = before_download.rank_refuses_before_download(args, request, "cpu", rank, {})
        with pytest.raises(MotifLiteError, match="^planned$"):
            refuse(DownloadPlan("someone/motif", {}))
    assert planned == [True, False]


def test_two_submissions_never_measure_with_the_tokenizer_at_once(monkeypatch, tmp_path):
    # A fast tokenizer keeps its truncation as state: two threads calling it at once fail ("Already borrowed"). The
    # first submission holds the tokenizer until the second has had every chance to come in (a second, which
    # without the lock it takes in microseconds); the code under test passes however slowly either thread runs.
    import threading
    from types import SimpleNamespace

    from motif_lite.server import submission

    inside, most = [0], [0]
    first_in, second_in = threading.Event(), threading.Event()

    def measuring(tokenizer, prompts: dict[str, str]) -> dict:
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        (second_in if first_in.is_set() else first_in).set()
        if prompts["prompt"] == "first":
            second_in.wait(timeout=1.0)
        inside[0] -= 1
        return {}

    monkeypatch.setattr(submission, "load_tokenizer", lambda root: object())
    monkeypatch.setattr(submission, "long_prompts", measuring)
    notes = submission._PromptsCut()
    pipe = SimpleNamespace(sources=SimpleNamespace(root=tmp_path))

    def submit(prompt: str) -> threading.Thread:
        thread = threading.Thread(target=notes, args=(pipe, SimpleNamespace(encoded_prompts={"prompt": prompt})))
        thread.start()
        return thread

    first = submit("first")
    assert first_in.wait(timeout=60)
    second = submit("second")
    first.join(timeout=60)
    second.join(timeout=60)
    assert second_in.is_set() and most[0] == 1
