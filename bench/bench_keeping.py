"""What keeping a run's work costs at the official size (1280x736x121: 31 x 92 x 160 latents, bf16).

    pytest bench/bench_keeping.py -s

A run saves its sampling state every 10 minutes of sampling (keeping.py) and when it stops: the latents (float32),
APG's momentum and, with DPM++ 2M, the solver's previous estimate (both in the run's dtype). The sampling loop
waits for the save (copy to the host, write, rename). On a GPU the copy to the host adds ~45-60 MB over PCIe
(a few ms).
"""

from __future__ import annotations

import pytest
import torch
from helpers import median_seconds

from motif_lite.io.latents import SavedLatents, read_latents
from motif_lite.io.latents_saving import LatentsFile
from motif_lite.keeping import SAVE_STATE_EVERY_SECONDS

LATENTS_720P = (1, 16, 31, 92, 160)
ROUNDS = 5


def _state(solver: str) -> dict[str, torch.Tensor]:
    latents = torch.randn(LATENTS_720P, dtype=torch.bfloat16)
    state = {"apg_running": latents.clone()}
    if solver == "dpm++2m":
        state |= {"solver.prev_x0": latents.clone(), "solver.prev_sigma": torch.tensor(0.5)}
    return state


@pytest.mark.parametrize("solver", ["euler", "dpm++2m"])
def test_saving_the_state_at_720p(tmp_path, solver, bench_report):
    latents = torch.randn(LATENTS_720P, dtype=torch.bfloat16)
    request = {"prompt": "a fox", "output": str(tmp_path / "fox.mp4")}  # a file without its output is refused
    saved = SavedLatents(latents, tmp_path / "fox.mp4", 1280, 736, 121, 24.0, "bfloat16", {"prompt": "a fox"},
                         progress=(31, 50), state=_state(solver), request=request, run={})  # fmt: skip
    keeper = LatentsFile(tmp_path / "fox.mp4")
    save = median_seconds(lambda: keeper.save(saved), reps=ROUNDS)
    assert read_latents(keeper.path).progress == (31, 50)
    size = keeper.path.stat().st_size
    share = save / SAVE_STATE_EVERY_SECONDS
    bench_report.add(
        "Keeping a run's state at 1280x736x121 (CPU)",
        solver=solver,
        file_mb=round(size / 1e6, 1),
        save_ms=round(save * 1000, 1),
        share_of_10_min=f"{share:.3%}",
    )
    print(f"\n{solver}: {size / 1e6:.1f} MB, save {save * 1000:.0f} ms ({share:.3%} of the 10 minutes between saves)")
