"""A run's latents file and a server job's sampling state share one suffix (`choices.LATENTS_SUFFIX`), the one
`motif-lite decode` and --resume look for."""

from __future__ import annotations

from pathlib import Path

from motif_lite.choices import LATENTS_SUFFIX
from motif_lite.io.latents import latents_path
from motif_lite.server.job_record import new_job_id
from motif_lite.server.jobs import JobStore


def test_a_runs_latents_and_a_jobs_state_are_named_with_the_same_suffix(tmp_path: Path) -> None:
    assert latents_path(tmp_path / "fox.mp4") == tmp_path / "fox.latents.safetensors"
    store = JobStore(tmp_path / "data")
    try:
        job_id = new_job_id()
        assert store.state_path(job_id).name == f"{job_id}{LATENTS_SUFFIX}" == f"{job_id}.latents.safetensors"
    finally:
        store.close()
