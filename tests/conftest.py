"""The `cuda` mark: the GPU suite (`pytest -m cuda`, or `bash bench/gpu_check.sh` with the GPU benchmarks).

Tests marked `cuda` are skipped without a CUDA device. On a CUDA machine the kernel tests (every test that takes the
`kernel` fixture of tests/kernels_interp.py), which run compiled there instead of in Triton's CPU interpreter,
join the suite too. On a CUDA machine each failure is printed as it happens (`EchoFailures`).
"""

import sys
from pathlib import Path

import pytest
import torch


class EchoFailures:
    """Prints each failure's traceback as it happens. GPU time comes in short, time-limited slots: a run cut at its
    limit never reaches pytest's summary, and the reasons for its failures would be lost."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if report.failed and reporter is not None:
            reporter.write_line(f"\nFAILED {report.nodeid} ({report.when}):\n{report.longreprtext}\n")


def pytest_configure(config: pytest.Config) -> None:
    if torch.cuda.is_available():
        config.pluginmanager.register(EchoFailures(config), "echo-failures")


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        for item in items:
            if "kernel" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.cuda)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs CUDA")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny random-weight checkpoint in the official layout (tests/tiny_pipeline.py), one per test module. Modules
    that need the reference pipeline it was saved from define their own `checkpoint`."""
    from tiny_pipeline import make_tiny_checkpoint  # diffusers: imported only where a module asks for it

    root = tmp_path_factory.mktemp("ckpt")
    make_tiny_checkpoint(root)
    return root


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """HF offline mode, an empty private cache, and every Hub call a test failure: nothing may be fetched."""
    from huggingface_hub import constants

    from motif_lite.io import checkpoint_source, gguf_source, hub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for module, name in ((checkpoint_source, "snapshot_download"), (gguf_source, "hf_hub_download"), (hub, "HfApi")):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("a Hub call was made"))
    return tmp_path / "hf-cache"


@pytest.fixture
def clip_reads(monkeypatch) -> list[Path]:
    """The clips that motif-lite's code reads through `read_clip`, in order. Every motif_lite module holding it by
    name gets the counting one (a caller importing it at the top of its module would hold the uncounted one)."""
    from motif_lite.io import clip as clip_module

    reads: list[Path] = []
    uncounted = clip_module.read_clip

    def counted(path, **known):
        reads.append(Path(path))
        return uncounted(path, **known)

    for name, module in list(sys.modules.items()):
        if name.startswith("motif_lite") and getattr(module, "read_clip", None) is uncounted:
            monkeypatch.setattr(module, "read_clip", counted)
    return reads


@pytest.fixture
def no_weights(monkeypatch):
    """Any weight load is a test failure."""
    targets = ("encoders.text.load_text_encoder", "pipeline.loading.load_vae", "pipeline.recipe.load_transformer")
    for target in (*targets, "pipeline.recipe.load_gguf_transformer"):
        monkeypatch.setattr(f"motif_lite.{target}", lambda *a, **k: pytest.fail("weights were loaded"))
