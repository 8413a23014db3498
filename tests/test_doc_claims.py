"""Behaviour the docs promise that no other test checked, found by reading README.md and docs/*.md against the
tests. Each test names the doc line it backs."""

from __future__ import annotations

import pytest
import torch

from motif_lite import cli


class Reached(Exception):
    """Raised by the stand-in for load_pipeline: the command got as far as loading."""


@pytest.fixture
def tesla_t4(checkpoint, monkeypatch):
    """Every check passes on a CUDA device that is a Tesla T4 (compute capability 7.5: no bf16 tensor cores), and
    loading the weights ends the command."""
    from motif_lite import pipeline
    from motif_lite import preflight as checks
    from motif_lite.checkpoint import locate_sources

    def found(*args, **kwargs):
        return locate_sources(checkpoint), torch.device("cuda")

    monkeypatch.setattr(checks, "preflight", found)
    monkeypatch.setattr(pipeline, "preflight", found)  # load_pipeline's own checks, which end in the dtype advice
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")

    def loading(*args, **kwargs):  # load_pipeline's last check before it reads a weight file
        raise Reached

    monkeypatch.setattr(pipeline, "check_loras", loading)
    return checkpoint


TINY_RUN = ("-W", "64", "-H", "64", "--video-frames", "9", "--steps", "2", "--device", "cuda", "--vram", "8")


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_run_tells_a_gpu_before_ampere_to_use_fp16_before_loading(tesla_t4, tmp_path, capsys, dtype):
    # docs/usage.md, "GPUs before Ampere": `run`, `serve` and `check` say so for such a GPU, before anything loads.
    args = ["run", "-m", str(tesla_t4), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--dtype", dtype]
    with pytest.raises(Reached):
        cli.main([*args, *TINY_RUN])
    err = capsys.readouterr().err
    advice = "Tesla T4 (compute capability 7.5) has no bfloat16 tensor cores"
    assert err.count(advice) == (dtype == "bf16") and ("--dtype fp16" in err) == (dtype == "bf16"), err


def test_serve_tells_a_gpu_before_ampere_to_use_fp16_before_loading(tesla_t4, tmp_path, capsys):
    pytest.importorskip("fastapi")
    args = ["serve", "-m", str(tesla_t4), "--data", str(tmp_path / "data"), "--port", "0"]
    with pytest.raises(Reached):
        cli.main([*args, "--device", "cuda", "--vram", "8", "--max-video", "64x64x9"])
    err = capsys.readouterr().err
    assert err.count("Tesla T4 (compute capability 7.5) has no bfloat16 tensor cores") == 1 and "--dtype fp16" in err


def test_a_run_over_its_ram_budget_is_refused_before_anything_loads(checkpoint, tmp_path, capsys, monkeypatch):
    # README.md, "Host RAM": `--ram GiB` refuses a run that would not fit before anything loads (a real run, not
    # only the dry run that tests/test_cli.py checks).
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded before refusing"))
    args = ["run", "-m", str(checkpoint), "-p", "a fox", "-o", str(tmp_path / "fox.mp4"), "--device", "cpu"]
    assert cli.main([*args, "-W", "64", "-H", "64", "--video-frames", "9", "--ram", "0.1"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "GiB of host memory, but --ram is 0.10 GiB" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
