"""The full 2.04B architecture, written in the official (sharded) layout and loaded by our loader, equals the
reference holding the same weights. Bounded: ~8 GB RSS (the two models share storage), about a minute."""

from __future__ import annotations

import resource

import pytest
import torch
from full_size import reference_sharing, write_random_checkpoint
from safetensors.torch import load_file
from tiny_transformer import assert_close_to_reference, inputs, reference_forward

from motif_lite import load_transformer


@pytest.mark.slow
def test_full_architecture_parity(tmp_path):
    root = write_random_checkpoint(tmp_path)
    ours = load_transformer(root, dtype=torch.float32)
    assert sum(p.numel() for p in ours.parameters()) == 2_037_809_600  # the published 2.04B
    state = ours.state_dict()
    for shard in sorted((root / "transformer").glob("*.safetensors")):
        for name, stored in load_file(shard).items():
            assert torch.equal(state[name], stored.float()), name

    reference = reference_sharing(state)
    x = inputs(batch=2, frames=2, height=4, width=6, text=6, image=4, text_dim=2560, image_dim=1152)
    with torch.no_grad():
        out = ours(x["latents"], x["timestep"], x["text_embeds"], x["text_mask"], x["image_embeds"])
    assert_close_to_reference(out, reference_forward(reference, x), rel=1e-4)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    assert peak_gib < 16, f"peak RSS {peak_gib:.1f} GiB"
