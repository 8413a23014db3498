"""The compute dtype as a setting: the user's (--dtype, `dtype=`), else the device's default (fp16 on a GPU before
compute capability 8.0, bf16 elsewhere), shown with its source in the settings table of a dry run, a run's summary
and `pipe.settings_for` (docs/usage.md, "GPUs before Ampere")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from motif_lite import cli
from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.request import GenerationRequest
from motif_lite.settings import DEFAULT, FLAG, Setting, resolve_dtype, resolve_settings

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


@pytest.fixture
def gpu(monkeypatch):
    """A CUDA device of the capability the test sets (`gpu(7, 5)`), named after it."""

    def make(*capability: int) -> torch.device:
        names = {(7, 5): "Tesla T4", (8, 0): "NVIDIA A100"}
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: names[capability])
        return CUDA

    return make


def test_a_gpu_before_ampere_gets_fp16_unless_told(gpu):
    t4 = gpu(7, 5)
    reason = "Tesla T4 has no bf16 tensor cores; --dtype bf16 to override"
    assert resolve_dtype(None, t4) == Setting(torch.float16, DEFAULT, reason)
    assert resolve_dtype("bf16", t4) == Setting(torch.bfloat16, FLAG, "--dtype")
    assert resolve_dtype(torch.float32, t4) == Setting(torch.float32, FLAG, "--dtype")


def test_ampere_the_cpu_and_a_gpu_not_here_get_bf16(gpu):
    assert resolve_dtype(None, gpu(8, 0)) == Setting(torch.bfloat16, DEFAULT, "the published dtype")
    assert resolve_dtype(None, torch.device("cpu")).value == torch.bfloat16
    assert resolve_dtype(None, None).value == torch.bfloat16  # a dry run's plan for a GPU this machine lacks


def test_the_settings_table_says_which_dtype_and_why(gpu):
    request, _ = GenerationRequest("a fox").resolve()
    settings = resolve_settings(request, CheckpointConfigs(), dtype=resolve_dtype(None, gpu(7, 5)))
    row = "  dtype        default    fp16  (Tesla T4 has no bf16 tensor cores; --dtype bf16 to override)"
    assert row in settings.lines()
    assert "dtype" not in {name for name, _, _ in resolve_settings(request, CheckpointConfigs()).table()}


@pytest.mark.parametrize(
    ("flags", "row"),
    [
        ((), "  dtype        default    bf16  (the published dtype)"),
        (("--dtype", "fp32"), "  dtype        flag       fp32  (--dtype)"),
    ],
)
def test_a_dry_run_on_the_cpu_shows_the_dtype_and_its_source(checkpoint, tmp_path, capsys, flags, row):
    size = ("-W", "48", "-H", "32", "--video-frames", "9", "--steps", "1", "--device", "cpu", "--dry-run")
    assert cli.main(["run", "-m", str(checkpoint), "-p", "x", "-o", str(tmp_path / "a.mp4"), *size, *flags]) == 0
    assert row in capsys.readouterr().out.splitlines()


def test_the_pipelines_settings_name_its_dtype(checkpoint):
    from motif_lite import load_pipeline

    pipe = load_pipeline(checkpoint, dtype="fp32", device="cpu", kernels="torch")
    lines = pipe.settings_for(GenerationRequest("x", width=48, height=32, frames=9, steps=1)).lines()
    assert "  dtype        flag       fp32  (--dtype)" in lines
