"""model/kept.py: values built once per run and kept for the last few keys or tensors."""

import pytest
import torch

from motif_lite.model.kept import LastFewByTensor


@pytest.mark.parametrize("kept", [1, 2, 4])
def test_last_few_by_tensor_holds_at_most_kept_values_and_drops_the_oldest(kept):
    cache: LastFewByTensor[int] = LastFewByTensor(kept)
    tensors = [torch.zeros(1) for _ in range(kept + 3)]
    builds = []
    for n, tensor in enumerate(tensors):
        cache.get(tensor, lambda n=n: builds.append(n) or n)
    assert len(cache.seen) == kept
    for n, tensor in enumerate(tensors[-kept:], start=len(tensors) - kept):  # the newest are still found
        assert cache.get(tensor, lambda: pytest.fail("built again")) == n
    assert cache.get(tensors[0], lambda: -1) == -1  # the oldest went: built again
    assert builds == list(range(len(tensors)))


def test_last_few_by_tensor_builds_again_for_a_tensor_changed_in_place_or_another_key():
    cache: LastFewByTensor[str] = LastFewByTensor(4)
    mask = torch.ones(3)
    assert cache.get(mask, lambda: "first", key="a") == "first"
    assert cache.get(mask, lambda: "again", key="a") == "first"
    assert cache.get(mask, lambda: "other key", key="b") == "other key"
    mask.zero_()
    assert cache.get(mask, lambda: "changed", key="a") == "changed"
