"""Shared by the quantizer tests and bench: the 2B architecture's tensor shapes, and a one-torch-thread fixture for
bench/ (tests/conftest.py's `one_torch_thread` gives the tests one thread for the whole session)."""

from __future__ import annotations

import pytest
import torch


def arch_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor shape of the full Motif-Video 2B (2.04B) transformer, built on the meta device."""
    from full_size import reference_on_meta  # imports diffusers, so only when used

    return {name: tuple(t.shape) for name, t in reference_on_meta().state_dict().items()}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Like `--threads 1`. The K-quant search runs many small ops; on a shared 2-core runner torch's second
    thread makes them many times slower, so use one thread and restore the setting afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
