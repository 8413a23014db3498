"""The `cuda` mark: the GPU suite (`pytest -m cuda`, or `bash bench/gpu_check.sh` with the GPU benchmarks).

Tests marked `cuda` are skipped without a CUDA device. On a CUDA machine the kernel tests (every test that takes the
`kernel` fixture of tests/kernels_interp.py), which run compiled there instead of in Triton's CPU interpreter,
join the suite too.
"""

import pytest
import torch


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        for item in items:
            if "kernel" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.cuda)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
