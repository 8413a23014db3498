"""A guidance window that holds none of a run's steps (diffusers' guiders guide int(start·N) <= i < int(stop·N)):
such a run guides nothing, so nothing is prepared for the unconditional prediction: no negative-prompt encoding,
no batch-2 forward or its memory in the plan, no second transformer call per step in the time estimate. The same
checkpoint over more steps, where the window holds a step, is the negative control."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.guiders import AdaptiveProjectedGuidance
from tiny_pipeline import make_tiny_checkpoint

from motif_lite import load_pipeline, run_estimates
from motif_lite.checkpoint import locate_sources
from motif_lite.memory_plan import AT_HAND, plan_generation
from motif_lite.request import GenerationRequest
from motif_lite.sampling import guided_steps
from motif_lite.settings import resolve_settings

WINDOW = dict(start=0.5, stop=0.75)  # 2 steps: int(1.0) <= i < int(1.5), no step; 4 steps: step 2
NONE_GUIDED, SOME_GUIDED = 2, 4
SIZE = dict(width=48, height=32, frames=5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("window")
    guider = AdaptiveProjectedGuidance(
        guidance_scale=8.0, adaptive_projected_guidance_momentum=0.1, adaptive_projected_guidance_rescale=12.0,
        adaptive_projected_guidance_norm_dim=[-1, -2, -4], use_original_formulation=True, **WINDOW,
    )  # fmt: skip
    make_tiny_checkpoint(root, guider=guider)
    return root


def request(steps: int, **fields) -> GenerationRequest:
    return dataclasses.replace(GenerationRequest("a fox", "blurry", seed=0, steps=steps, **SIZE), **fields)


def settings(checkpoint: Path, steps: int):
    sources = locate_sources(checkpoint, **AT_HAND)
    return resolve_settings(request(steps).resolve()[0], sources.configs, sources.transformer)


@pytest.mark.parametrize(("steps", "guided"), [(NONE_GUIDED, False), (SOME_GUIDED, True)])
def test_the_settings_and_the_time_estimate_count_the_negative_prompt_only_when_a_step_is_guided(
    checkpoint, steps, guided
):
    s = settings(checkpoint, steps)
    assert len(guided_steps(s.guidance.value, steps)) == int(guided)
    assert ("negative prompt" in s.encoded_prompts) == guided
    rows = {name: value for name, value, _ in s.table()}
    assert (rows["negative"] == "unused (no guidance)") != guided
    assert run_estimates.transformer_calls(s.request, s) == steps + guided  # the negative prompt on its guided step


@pytest.mark.parametrize(("steps", "guided"), [(NONE_GUIDED, False), (SOME_GUIDED, True)])
def test_the_plan_budgets_a_batch_2_forward_only_when_a_step_is_guided(checkpoint, steps, guided):
    # On a GPU guided steps batch both predictions in one forward where the plan has room for them.
    plan = plan_generation(request(steps).resolve()[0], checkpoint, device="cuda", vram_gib=64)
    assert plan.cfg_batch == (2 if guided else 1)


def test_a_run_whose_window_holds_no_step_encodes_no_negative_prompt(checkpoint, tmp_path):
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", batch_guidance=True)
    encoded = {}

    def generate(steps: int, folder: str, **fields):
        encode = []
        out = tmp_path / folder / "f_%03d.png"
        out.parent.mkdir()
        result = pipe.generate(
            request(steps, output=out, **fields),
            on_progress=lambda stage, done, total: encode.append(total) if stage == "encode" else None,
        )
        encoded[folder] = max(encode)
        return result, np.stack([np.asarray(_read(f)) for f in sorted(out.parent.glob("f_*.png"))])

    window, frames = generate(NONE_GUIDED, "window")
    off, off_frames = generate(NONE_GUIDED, "off", cfg_scale=0.0)  # scale 0 of the original formulation: unguided
    guided, _ = generate(SOME_GUIDED, "guided")
    assert encoded == {"window": 1, "off": 1, "guided": 2}  # prompts encoded (+ the negative one)
    assert (window.guidance_batch, guided.guidance_batch) == (1, 2)
    np.testing.assert_array_equal(frames, off_frames)  # the conditional prediction alone, as an unguided run


def _read(path: Path):
    import PIL.Image

    return PIL.Image.open(path).convert("RGB")


@pytest.mark.parametrize(("steps", "guided"), [(NONE_GUIDED, 0), (SOME_GUIDED, 1)])
def test_the_flops_count_the_negative_prompt_only_on_its_guided_steps(checkpoint, steps, guided):
    # The GPU time estimate's FLOPs: the negative prompt's encoding only where some step is guided, and one
    # transformer call of it per guided step, not per step.
    from motif_lite.runtime import cost

    s = settings(checkpoint, steps)
    configs = locate_sources(checkpoint, **AT_HAND).configs
    prompts = ("a fox", "blurry")[: 1 + (guided > 0)]
    size = (SIZE["width"], SIZE["height"], SIZE["frames"], steps)
    shape = cost.text_encoder_shape(configs.root)
    expected = cost.generation_cost(s.transformer.value, configs.vae, shape, *size, prompts, guided)
    assert run_estimates.run_flops(s.request, s, configs) == expected.total


@pytest.mark.parametrize(("steps", "noted"), [(NONE_GUIDED, False), (SOME_GUIDED, True)])
def test_batch_guidance_without_room_is_noted_only_when_a_step_is_guided(checkpoint, steps, noted):
    # A run that guides no step has no two predictions to batch: --batch-guidance costs nothing to leave unmet.
    from motif_lite.cli.prepare import planned_batch_guidance

    plan = plan_generation(request(steps).resolve()[0], checkpoint, device="cuda", vram_gib=64, batch_guidance=False)
    assert plan.cfg_batch == 1  # one prediction per forward, as a budget without room for two plans it
    batched, note = planned_batch_guidance(True, torch.device("cuda"), plan, settings(checkpoint, steps).guided)
    assert not batched and (note is not None and note.startswith("--batch-guidance does not fit")) == noted


def test_a_resumed_run_past_the_window_encodes_no_negative_prompt(checkpoint, tmp_path, monkeypatch):
    # 4 steps guide step 2 alone: a run stopped after step 3 has no guided step left, and so, as a fresh run whose
    # window holds no step, needs neither the negative prompt's encoding nor a batch-2 forward.
    from motif_lite.io.latents import read_latents

    def pipeline():
        return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", batch_guidance=True)

    def stop_after_step_3(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == 3:
            raise KeyboardInterrupt

    def frames(folder: Path) -> np.ndarray:
        return np.stack([np.asarray(_read(f)) for f in sorted(folder.glob("f_*.png"))])

    pipe = pipeline()
    (tmp_path / "whole").mkdir()
    whole = pipe.generate(request(SOME_GUIDED, output=tmp_path / "whole" / "f_%03d.png"))
    (tmp_path / "resumed").mkdir()
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(SOME_GUIDED, output=tmp_path / "resumed" / "f_%03d.png"), on_progress=stop_after_step_3)
    (state,) = (tmp_path / "resumed").glob("*.latents.safetensors")
    saved = read_latents(state)
    assert saved.progress == (3, SOME_GUIDED)
    fresh = pipeline()  # as `motif-lite run --resume` loads one: no prompt encoded yet
    encode, calls = fresh.text_encoder.encode, []

    def counted(prompts, *args, **kwargs):
        calls.append(list(prompts))
        return encode(prompts, *args, **kwargs)

    monkeypatch.setattr(fresh.text_encoder, "encode", counted)
    resumed = fresh.generate(GenerationRequest(**saved.request), resume=saved)
    assert calls == [["a fox"]]  # the prompt alone, once
    assert (whole.guidance_batch, resumed.guidance_batch) == (2, 1)
    np.testing.assert_array_equal(frames(tmp_path / "resumed"), frames(tmp_path / "whole"))


@pytest.mark.parametrize(("stopped_after", "rows"), [(1, "2 rows"), (3, "1 row")])
def test_a_resumed_run_plans_a_batch_2_forward_only_when_a_step_left_is_guided(
    checkpoint, tmp_path, capsys, stopped_after, rows
):
    # `run --resume`'s memory plan on a GPU: step 2 alone is guided, so a run stopped after step 3 plans one row per
    # forward, as its pipeline runs; stopped after step 1, the guided step is still to come.
    from motif_lite import cli

    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == stopped_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.generate(request(SOME_GUIDED, output=tmp_path / "fox.mp4"), on_progress=stop)
    capsys.readouterr()
    state = tmp_path / "fox.latents.safetensors"
    assert cli.main(["run", "--resume", str(state), "--dry-run", "--device", "cuda", "--vram", "64"]) == 0
    (plan,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Memory plan for")]
    assert plan.endswith(f"{rows} per transformer forward"), plan


@pytest.mark.parametrize(("first", "guided_left"), [(0, 1), (1, 1), (2, 1), (3, 0)])
def test_a_resumed_runs_settings_and_time_estimate_count_the_steps_left(checkpoint, first, guided_left):
    # 4 steps guide step 2 alone: resumed after it, no step left reads the negative prompt, and the estimate counts
    # the steps left to sample, not those the stopped run did.
    from motif_lite.runtime import cost

    sources = locate_sources(checkpoint, **AT_HAND)
    s = resolve_settings(request(SOME_GUIDED).resolve()[0], sources.configs, sources.transformer, first_step=first)
    assert ("negative prompt" in s.encoded_prompts) == bool(guided_left)
    assert run_estimates.transformer_calls(s.request, s) == SOME_GUIDED - first + guided_left
    prompts = ("a fox", "blurry")[: 1 + guided_left]
    size = (SIZE["width"], SIZE["height"], SIZE["frames"], SOME_GUIDED - first)
    shape = cost.text_encoder_shape(sources.configs.root)
    expected = cost.generation_cost(s.transformer.value, sources.configs.vae, shape, *size, prompts, guided_left)
    assert run_estimates.run_flops(s.request, s, sources.configs) == expected.total


@pytest.mark.parametrize(("stopped_after", "warned"), [(1, True), (3, False)])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_resumed_run_past_the_window_does_not_warn_of_its_long_negative_prompt(
    checkpoint, tmp_path, capsys, stopped_after, warned, dry_run
):
    # The tiny tokenizer reads about a token per character: 602 characters are over its 512-token limit. Only a
    # run with a guided step left encodes the negative prompt, so only it is told the prompt will be cut.
    from motif_lite import cli

    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")

    def stop(stage: str, done: int, total: int) -> None:
        if stage == "denoise" and done == stopped_after:
            raise KeyboardInterrupt

    long_negative = request(SOME_GUIDED, output=tmp_path / "fox.mp4", negative_prompt="blurry " * 86)
    with pytest.raises(KeyboardInterrupt):
        pipe.generate(long_negative, on_progress=stop)
    capsys.readouterr()
    args = ["run", "--resume", str(tmp_path / "fox.latents.safetensors"), "--device", "cpu"]
    assert cli.main([*args, "--dry-run"] if dry_run else args) == 0
    assert ("warning: negative prompt is 603 tokens" in capsys.readouterr().err) == warned


@pytest.fixture(scope="module")
def stopped(checkpoint, tmp_path_factory) -> dict[int, Path]:
    """The state files of a 4-step run (step 2 alone guided) stopped after step 1 (its guided step still to come)
    and after step 3 (past it), by the number of steps done."""
    pipe = load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")
    states = {}
    for done in (1, 3):

        def stop(stage: str, step: int, total: int, done=done) -> None:
            if stage == "denoise" and step == done:
                raise KeyboardInterrupt

        folder = tmp_path_factory.mktemp(f"after-{done}")
        with pytest.raises(KeyboardInterrupt):
            pipe.generate(request(SOME_GUIDED, output=folder / "fox.mp4"), on_progress=stop)
        states[done] = folder / "fox.latents.safetensors"
    return states


@pytest.mark.parametrize(("first", "noted"), [(1, True), (3, False)])
def test_a_resumed_run_past_the_window_is_told_nothing_of_batch_guidance_left_unmet(checkpoint, first, noted):
    # Resumed after step 3 no step left has two predictions to batch: --batch-guidance costs nothing to leave unmet.
    from motif_lite.cli.prepare import planned_batch_guidance

    sources = locate_sources(checkpoint, **AT_HAND)
    s = resolve_settings(request(SOME_GUIDED).resolve()[0], sources.configs, sources.transformer, first_step=first)
    plan = plan_generation(s.request, checkpoint, device="cuda", vram_gib=64, batch_guidance=False, first_step=first)
    _, note = planned_batch_guidance(True, torch.device("cuda"), plan, s.guided)
    assert (note is not None) == noted, note


@pytest.mark.parametrize(("first", "rows"), [(0, 2), (2, 2), (3, 1)])
def test_plan_generation_plans_a_batch_2_forward_only_for_a_guided_step_left(checkpoint, first, rows):
    # The Python API's plan for a resumed run (`first_step`), as its pipeline runs: one row once no step is guided.
    plan = plan_generation(request(SOME_GUIDED).resolve()[0], checkpoint, device="cuda", vram_gib=64, first_step=first)
    assert plan.cfg_batch == rows


@pytest.mark.parametrize(("done", "negative"), [(1, "'blurry'"), (3, "unused (no guided step left)")])
def test_a_resumed_runs_settings_table_says_whether_its_negative_prompt_is_read(stopped, capsys, done, negative):
    from motif_lite import cli

    assert cli.main(["run", "--resume", str(stopped[done]), "--dry-run", "--device", "cpu"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("negative ")]
    assert f" {negative}  (fox.latents.safetensors)" in row, row


@pytest.mark.parametrize(("done", "layout"), [(1, "cfg 2 x sp 1"), (3, "cfg 1 x sp 2")])
@pytest.mark.parametrize("dry_run", [True, False])
def test_gpus_gives_the_negative_prompt_no_rank_once_no_step_left_is_guided(
    stopped, capsys, monkeypatch, done, layout, dry_run
):
    # --gpus 2 splits a guided run into one rank per prediction; resumed past the guidance window both ranks share
    # the video's tokens instead. The launcher (no process started here) and a dry run choose the same layout.
    from motif_lite import cli
    from motif_lite.runtime import launcher, parallel

    chosen, choose = [], parallel.choose_layout
    monkeypatch.setattr(parallel, "choose_layout", lambda *args: chosen.append(choose(*args)) or chosen[-1])
    monkeypatch.setattr(launcher, "launch", lambda nproc, argv: 0)
    argv = ["run", "--resume", str(stopped[done]), "--gpus", "2", "--device", "cpu"]
    assert cli.main([*argv, "--dry-run"] if dry_run else argv) == 0
    assert [c.describe() for c in chosen] == [f"{layout} on 2 ranks"]
    assert (f"{layout} on 2 ranks" in capsys.readouterr().out) == dry_run


@pytest.mark.parametrize(("stop_at", "done", "encoded"), [(1, 2, ["a fox", "blurry"]), (2, 3, ["a fox"])])
def test_the_server_resumes_a_job_past_the_window_without_the_negative_prompt(
    checkpoint, tmp_path, monkeypatch, stop_at, done, encoded
):
    # A job stopped by the server's shutdown goes on from its state when the server starts again (through the
    # pipeline's `generate(resume=)`): past the guidance window, with the prompt alone.
    from test_server import run_stopping_at

    from motif_lite.io.latents import read_latents
    from motif_lite.server.job_record import COMPLETED, new_job_id
    from motif_lite.server.jobs import JobStore
    from motif_lite.server.schema import job_request_fields
    from motif_lite.server.worker import Worker, percent

    def pipeline():
        return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch", batch_guidance=True)

    store = JobStore(tmp_path)
    try:
        job = store.add(new_job_id(), "tiny", job_request_fields(request(SOME_GUIDED)), False, max_active=10)
        run_stopping_at(Worker(store, pipeline(), lambda line: None), job.id, percent("denoise", stop_at, SOME_GUIDED))
        assert read_latents(store.state_path(job.id)).progress == (done, SOME_GUIDED)
        restarted = pipeline()  # the server started again: no prompt encoded yet
        encode, calls = restarted.text_encoder.encode, []
        monkeypatch.setattr(restarted.text_encoder, "encode", lambda prompts, *a, **k: calls.append(list(prompts))
                            or encode(prompts, *a, **k))  # fmt: skip
        run_stopping_at(Worker(store, restarted, lambda line: None), job.id, None)
        assert store.get(job.id).status == COMPLETED and sum(calls, []) == encoded
    finally:
        store.close()
