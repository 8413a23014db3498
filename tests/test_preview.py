"""Previews while sampling: the latent -> RGB fit, the clean-latent estimate, the callbacks and the files."""

from __future__ import annotations

import copy
import logging
import os
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from motif_lite import load_pipeline
from motif_lite.cli import EXIT_INTERRUPTED
from motif_lite.cli import main as cli_main
from motif_lite.errors import MotifLiteError
from motif_lite.io.preview import (
    PREVIEWS_PER_RUN,
    check_preview_path,
    preview_interval,
    preview_note,
    preview_steps,
    write_preview,
)
from motif_lite.request import REQUEST_DEFAULTS, GenerationRequest
from motif_lite.sampling import denoise, flow_schedule
from motif_lite.vae.posterior import DiagonalGaussian
from motif_lite.vae.preview import color_chart, fit_latent_rgb

SIZE = dict(width=48, height=32, frames=9, steps=4)


class LinearEncoderVAE(torch.nn.Module):
    """A stand-in VAE whose encoder is exactly linear in the colour of each 8x8 patch: the fit must invert it."""

    class config:  # noqa: N801 (mimics WanVAEConfig's attribute)
        spatial_factor = 8

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.mix = torch.nn.Parameter(torch.randn(16, 3, generator=g), requires_grad=False)
        self.offset = torch.randn(16, generator=g)

    def encode(self, video: torch.Tensor) -> DiagonalGaussian:
        pooled = torch.nn.functional.avg_pool3d(video, (1, 8, 8))  # [B, 3, F, h, w]
        mean = torch.einsum("zc,bcfhw->bzfhw", self.mix, pooled) + self.offset.view(1, 16, 1, 1, 1)
        return DiagonalGaussian(torch.cat([mean, torch.zeros_like(mean)], dim=1))


def test_fit_inverts_a_linear_encoder():
    vae = LinearEncoderVAE()
    projection = fit_latent_rgb(vae)
    image = torch.rand(1, 3, 1, 64, 96) * 2 - 1  # not the chart the fit saw
    colours = torch.nn.functional.avg_pool3d(image, (1, 8, 8))
    assert torch.allclose(projection(vae.encode(image).mode()), colours, atol=1e-4)
    # Negative control: a projection fitted to another encoder does not invert this one.
    other = LinearEncoderVAE()
    other.mix.data = other.mix.data.flip(0)
    assert not torch.allclose(fit_latent_rgb(other)(vae.encode(image).mode()), colours, atol=0.1)


def test_chart_is_fixed_and_covers_colours():
    chart = color_chart()
    assert torch.equal(chart, color_chart()) and chart.shape == (1, 3, 1, 256, 256)
    assert chart.amin() < -0.8 and chart.amax() > 0.8


def test_denoised_estimate_of_the_last_euler_step_is_the_result():
    # With Euler, the last step jumps to σ = 0 along the velocity: x_N = x - σ·v, the step's clean estimate.
    torch.manual_seed(0)
    estimates = {}
    result = denoise(
        lambda x, t, cond: torch.sin(x) + t[:, None, None, None, None] / 1000,
        torch.randn(1, 16, 2, 4, 6),
        flow_schedule(5, 3.0),
        on_denoised=lambda i, x0: estimates.__setitem__(i, x0),
    )
    assert sorted(estimates) == list(range(5)) and torch.equal(estimates[4], result)


@pytest.fixture(scope="module")
def pipe(shared_checkpoint):
    root = shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says
    return load_pipeline(root, dtype=torch.float32, device="cpu", kernels="torch"), root


def _request(tmp_path: Path, name: str) -> GenerationRequest:
    return GenerationRequest(
        "a red fox", negative_prompt="blurry", seed=3, output=tmp_path / f"{name}_%03d.png", **SIZE
    )


def _video(tmp_path: Path, name: str) -> np.ndarray:
    return np.stack([np.asarray(PIL.Image.open(p)) for p in sorted(tmp_path.glob(f"{name}_*.png"))])


def test_previews_arrive_every_k_steps_and_change_nothing(pipe, tmp_path):
    pipe, _ = pipe
    calls = []
    pipe.generate(_request(tmp_path, "with"), on_preview=lambda *call: calls.append(call), preview_every=1)
    pipe.generate(_request(tmp_path, "without"))
    assert [(done, steps) for done, steps, _ in calls] == [(1, 4), (2, 4), (3, 4)]  # never after the last step
    latent_frames, h, w = 3, SIZE["height"] // 8, SIZE["width"] // 8
    assert all(f.dtype == np.uint8 and f.shape == (latent_frames, 2 * h, 2 * w, 3) for _, _, f in calls)
    assert np.array_equal(_video(tmp_path, "with"), _video(tmp_path, "without"))
    calls.clear()
    pipe.generate(_request(tmp_path, "default"), on_preview=lambda *call: calls.append(call))
    assert [done for done, _, _ in calls] == [1, 2, 3]  # ceil(4 / 4) = every step
    assert preview_steps(4, None) == preview_steps(4, 1) == [1, 2, 3]  # what the run's note lists


def test_previews_follow_a_vae_swapped_by_hand(pipe, tmp_path):
    # The latent -> RGB fit is the VAE's: a pipeline given another VAE (pipe.vae = ...) fits it again.
    pipe, _ = pipe
    kept = pipe.vae
    other = copy.deepcopy(kept)
    with torch.no_grad():
        other.quant_conv.weight.neg_()  # the posterior's mean flips sign: another fit
    frames = []
    pipe.generate(_request(tmp_path, "kept"), on_preview=lambda *call: None, preview_every=1)
    pipe.vae = other
    try:
        pipe.generate(_request(tmp_path, "other"), on_preview=lambda *call: frames.append(call[2]), preview_every=1)
    finally:
        pipe.vae = kept
    want = fit_latent_rgb(other)
    assert frames and torch.equal(pipe.preview_projection.weight, want.weight)
    assert not torch.equal(fit_latent_rgb(kept).weight, want.weight)  # negative control: the swap changed the fit


def test_the_preview_note_lists_the_steps_a_preview_comes_after():
    # The steps the pipeline previews after (done % every == 0, below the last), counted here independently.
    for steps, every in [(50, None), (4, 2), (2, None), (1000, 1), (7, 3), (6, 1)]:
        interval = preview_interval(steps, every)
        after = [done for done in range(1, steps + 1) if done % interval == 0 and done < steps]
        assert preview_steps(steps, every) == after
        note = preview_note("p.png", steps, every)
        assert "p.png (the middle frame" in note and f" {after[-1]} " in note and f"of {steps};" in note
    assert "after steps 13, 26, 39 of 50" in preview_note("p.webp", 50, None)
    assert "after steps 1, 2, 3, 4, 5 of 6" in preview_note("p.webp", 6, 1)  # up to five are listed whole
    assert "after steps 1, 2, ..., 999 (999 in all) of 1000" in preview_note("p.webp", 1000, 1)
    assert "after step 2 of 4;" in preview_note("p.webp", 4, 2)  # one preview: "step"
    assert "P.PNG (the middle frame" in preview_note("P.PNG", 4, 2)  # a PNG in capitals is a PNG


def test_the_preview_note_counts_the_steps_of_a_run_without_steps(tmp_path, capsys):
    # Without --steps the run takes the checkpoint's or the official count: the note is of the steps the run takes
    # (a dry run: no checkpoint needed, the built-in configs stand in).
    preview = tmp_path / "p.webp"
    argv = ["run", "-p", "fox", "--dry-run", "--device", "cpu", "-W", "256", "-H", "256", "--video-frames", "9"]
    assert cli_main([*argv, "--preview", str(preview)]) == 0
    assert f"note: {preview_note(preview, REQUEST_DEFAULTS.steps, None)}" in capsys.readouterr().err


def test_a_dry_run_does_not_say_no_preview_was_written(tmp_path, capsys):
    # A dry run wrote none, as it writes nothing: it warned "no preview was written to p.png ... this run made none
    # (too few steps, or it stopped first); the p.png there is an earlier run's" after its note that one would be.
    preview = tmp_path / "p.png"
    PIL.Image.new("RGB", (8, 8)).save(preview)
    argv = ["run", "-p", "fox", "--dry-run", "--device", "cpu", "-W", "256", "-H", "256", "--video-frames", "9"]
    assert cli_main([*argv, "--steps", "4", "--preview", str(preview)]) == 0
    err = capsys.readouterr().err
    assert f"note: {preview_note(preview, 4, None)}" in err and "no preview was written" not in err, err


def test_preview_files(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (5, 8, 12, 3), dtype=np.uint8)
    write_preview(frames, tmp_path / "p.webp", fps=6.0)
    write_preview(frames, tmp_path / "p.png", fps=6.0)
    with PIL.Image.open(tmp_path / "p.webp") as webp:
        assert webp.n_frames == 5 and webp.size == (12, 8)
    assert np.array_equal(np.asarray(PIL.Image.open(tmp_path / "p.png")), frames[2])  # the middle frame
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "p.webp"]  # no partial files left
    for bad in ("p.jpg", "missing/p.png"):
        with pytest.raises(Exception, match="preview"):
            check_preview_path(tmp_path / bad)


def test_webp_preview_plays_every_frame_once_at_the_fps(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (5, 8, 12, 3), dtype=np.uint8)
    write_preview(frames, tmp_path / "p.webp", fps=6.0)
    durations = []
    with PIL.Image.open(tmp_path / "p.webp") as webp:
        for index in range(webp.n_frames):
            webp.seek(index)
            webp.load()
            durations.append(webp.info["duration"])
    assert len(durations) == 5 and all(abs(d - 1000 / 6) <= 1 for d in durations), durations  # milliseconds


def test_a_failed_preview_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_written(image, path, *args, **kwargs):
        Path(path).write_bytes(b"RIFF")
        raise OSError("disk full")

    monkeypatch.setattr(PIL.Image.Image, "save", half_written)
    with pytest.raises(MotifLiteError, match="cannot write preview.*disk full"):
        write_preview(np.zeros((3, 8, 12, 3), dtype=np.uint8), tmp_path / "p.png", fps=6.0)
    assert list(tmp_path.iterdir()) == []


def test_preview_path_checks(tmp_path):
    assert check_preview_path(tmp_path / "P.PNG") == tmp_path / "P.PNG"  # the extension in any case
    assert check_preview_path(tmp_path / "p.WebP") == tmp_path / "p.WebP"
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(MotifLiteError, match="is a folder; name a file in it"):
        check_preview_path(tmp_path / "folder.png")
    with pytest.raises(MotifLiteError, match=r"the folder .*missing does not exist; create it first$"):
        check_preview_path(tmp_path / "missing" / "p.png")
    (tmp_path / "fox.mp4").write_bytes(b"a video")  # no folder to create: a file is in its place
    with pytest.raises(MotifLiteError, match=r"fox\.mp4 is a file, not a folder: write the preview to another folder$"):
        check_preview_path(tmp_path / "fox.mp4" / "p.png")


def test_a_preview_that_is_not_a_file_name_says_what_the_flag_takes(monkeypatch, tmp_path):
    # stable-diffusion.cpp's --preview takes a method (proj, tae, ...): was only "must be a .png or .webp file".
    monkeypatch.chdir(tmp_path)
    example = "--preview names the file to write, e.g. --preview preview.webp"
    with pytest.raises(MotifLiteError, match=rf"got proj: {example} \(stable-diffusion.cpp's preview method is not"):
        check_preview_path("proj")
    with pytest.raises(MotifLiteError, match=rf"got p\.jpg: {example}$"):
        check_preview_path("p.jpg")


def test_cli_preview(pipe, tmp_path, capsys):
    _, root = pipe
    args = ["run", "-m", str(root), "-p", "a red fox", "-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4"]
    args += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.webm")]
    assert cli_main([*args, "--preview", str(tmp_path / "nowhere" / "p.webp")]) == 2
    assert "preview" in capsys.readouterr().err and not (tmp_path / "out.webm").exists()
    assert cli_main([*args, "--preview-every", "2"]) == 2  # no file to preview into: said, not ignored
    assert "error: --preview-every says how often the --preview file is rewritten" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a script's unset "$PREVIEW": was a run without previews (argparse refuses it)
        cli_main([*args, "--preview", ""])
    assert "argument --preview: is empty" in capsys.readouterr().err
    assert cli_main([*args, "--preview", str(tmp_path / "out.webm")]) == 2  # the video would replace the preview
    assert "error: --preview and -o both name" in capsys.readouterr().err
    image = tmp_path / "first.webp"
    PIL.Image.new("RGB", (48, 32), (200, 100, 50)).save(image)
    before = image.read_bytes()
    assert cli_main([*args, "-i", str(image), "--preview", str(image)]) == 2  # the previews would replace it
    assert "error: --preview and -i both name" in capsys.readouterr().err and image.read_bytes() == before
    with pytest.raises(SystemExit, match="2"):  # argparse's own exit
        cli_main([*args, "--preview", str(tmp_path / "p.webp"), "--preview-every", "abc"])
    assert "--preview-every: must be a whole number, got 'abc'" in capsys.readouterr().err
    assert cli_main([*args, "--preview", str(tmp_path / "p.webp"), "--preview-every", "2"]) == 0
    # A terminal shows nothing else of the previews: where they go and after which steps is said up front.
    assert f"note: {preview_note(tmp_path / 'p.webp', 4, 2)}" in capsys.readouterr().err  # --steps, --preview-every
    with PIL.Image.open(tmp_path / "p.webp") as webp:
        assert webp.n_frames == 3 and webp.size == (12, 8)


def _reached_the_model(err: str) -> bool:
    """Past the request's checks: the first error is the missing checkpoint (the previews' note comes before it)."""
    return err.partition("error: ")[2].startswith("no such checkpoint directory")


@pytest.mark.parametrize(
    ("output", "batch", "preview", "refused"),
    [("f_%03d.png", "1", "f_000.png", "f_%03d.png"), ("f_%03d.png", "2", "f-2_008.png", "f-2_%03d.png"),
     ("f_%03d.png", "1", "f_009.png", None), ("f.webp", "1", "f_000.png", None)],
)  # fmt: skip
def test_a_preview_that_is_a_frame_of_the_video_is_refused_before_loading(
    tmp_path, capsys, monkeypatch, output, batch, preview, refused
):
    # `-o f_%03d.png --preview f_000.png` ran: frame 0 replaced the preview at the end, without a word.
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded before the check"))
    args = ["run", "-m", str(tmp_path / "no-model"), "-p", "a red fox", "--video-frames", "9", "-b", batch]
    code = cli_main([*args, "-o", str(tmp_path / output), "--preview", str(tmp_path / preview), "--dry-run"])
    err = capsys.readouterr().err
    if refused is None:  # frame 9 of a 9-frame video (0 to 8), or no PNG frames at all: no clash
        assert _reached_the_model(err)
        return
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (
        f"error: --preview {tmp_path / preview} is one of the frames of the video -o {tmp_path / refused}, which "
        "would replace the preview at the end; give the preview its own file"
    )


@pytest.mark.parametrize(
    ("flags", "refused"),
    [(["--steps", "4", "--preview-every", "4"], "--preview-every 4 is not below --steps 4: previews come every K "
      "steps and never after the last one, so none would be written; give --preview-every 3 or less"),
     (["--steps", "1"], "--preview with --steps 1 would write no preview: previews come between steps, never after "
      "the last one; give --steps 2 or more, or leave out --preview"),
     (["--steps", "2", "--preview-every", "2"], "--preview-every 2 is not below --steps 2: previews come every K "
      "steps and never after the last one, so none would be written; give --preview-every 1 or less"),
     (["--steps", "4", "--preview-every", "3"], None), (["--steps", "2"], None)],
)  # fmt: skip
def test_a_preview_that_can_never_come_is_refused_before_loading(tmp_path, capsys, monkeypatch, flags, refused):
    # `--steps 4 --preview-every 4` ran, and said only at the end that no preview was written.
    from motif_lite import pipeline

    monkeypatch.setattr(pipeline, "load_pipeline", lambda *a, **kw: pytest.fail("loaded before the check"))
    args = ["run", "-m", str(tmp_path / "no-model"), "-p", "a red fox", "-o", str(tmp_path / "v.webp"), *flags]
    code = cli_main([*args, "--preview", str(tmp_path / "p.png"), "--dry-run"])
    err = capsys.readouterr().err
    if refused is None:  # one preview or more: past the request's checks, to the model
        assert _reached_the_model(err)
        return
    assert code == 2 and err.strip() == f"error: {refused}"


def test_the_default_spacing_writes_a_few_previews_and_at_least_one():
    # About PREVIEWS_PER_RUN per run counting the video itself, never more (the pipeline previews after every
    # interval-th step but the last), and one at least from 2 steps on.
    for steps in range(2, 101):
        every = preview_interval(steps, None)
        written = [done for done in range(1, steps) if done % every == 0]
        assert 1 <= len(written) <= PREVIEWS_PER_RUN - 1, (steps, every)


def test_preview_file_writes_in_the_background_and_never_stops_the_run(tmp_path, monkeypatch, caplog):
    import threading

    from motif_lite.io import preview as preview_io

    frames = np.zeros((3, 8, 12, 3), dtype=np.uint8)
    release = threading.Event()
    real = preview_io.write_preview

    def slow_write(*args, **kwargs):
        release.wait(10)
        real(*args, **kwargs)

    monkeypatch.setattr(preview_io, "write_preview", slow_write)
    previews = preview_io.PreviewFile(tmp_path / "p.webp", fps=6.0)
    previews(1, 4, frames)  # returns while the write waits
    previews(2, 4, frames)  # the previous one is still being written: dropped
    assert previews.dropped == 1 and not (tmp_path / "p.webp").exists()
    release.set()
    previews.close()
    assert (tmp_path / "p.webp").is_file()

    monkeypatch.setattr(preview_io, "write_preview", lambda *a, **k: (_ for _ in ()).throw(MotifLiteError("disk full")))
    failing = preview_io.PreviewFile(tmp_path / "q.png", fps=6.0)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        failing(1, 4, frames)
        failing.close()
    assert [r.getMessage() for r in caplog.records] == ["preview not written: disk full"]


def test_a_run_that_makes_no_preview_says_so(tmp_path, caplog):
    # --preview-every K with K >= --steps (or a run stopped before its first preview) used to leave no file, or an
    # earlier run's file that passed for this run's, without a word.
    from motif_lite.io.preview import PreviewFile

    frames = np.zeros((3, 8, 12, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        PreviewFile(tmp_path / "p.webp", fps=6.0).close()
        write_preview(frames, tmp_path / "p.webp", fps=6.0)  # an earlier run's
        PreviewFile(tmp_path / "p.webp", fps=6.0).close()
        made = PreviewFile(tmp_path / "p.webp", fps=6.0)
        made(1, 4, frames)
        made.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all(
        m.startswith(f"no preview was written to {tmp_path / 'p.webp'}") for m in messages
    )
    assert "earlier run" not in messages[0] and messages[1].endswith("the p.webp there is an earlier run's")


def test_a_write_that_fails_unexpectedly_is_said_once(tmp_path, caplog, monkeypatch):
    # Only MotifLiteError was caught: anything else stayed in the Future, which nobody reads.
    from motif_lite.io import preview as preview_io

    def broken(*args, **kwargs):
        raise RuntimeError("ERROR adding frame")

    monkeypatch.setattr(preview_io, "write_preview", broken)
    previews = preview_io.PreviewFile(tmp_path / "p.webp", fps=6.0)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        previews(1, 4, np.zeros((3, 8, 12, 3), dtype=np.uint8))
        previews.close()
    assert [r.getMessage() for r in caplog.records] == ["preview not written: RuntimeError: ERROR adding frame"]


def test_a_write_that_fails_in_its_cleanup_is_still_said(tmp_path, caplog):
    # The partial file's cleanup failing too (here: a folder in its place) lost the warning in the thread.
    from motif_lite.io.preview import PreviewFile

    (tmp_path / ".p.png.partial").mkdir()
    previews = PreviewFile(tmp_path / "p.png", fps=6.0)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        previews(1, 4, np.zeros((3, 8, 12, 3), dtype=np.uint8))
        previews.close()
    assert [r.getMessage().startswith("preview not written: cannot write preview") for r in caplog.records] == [True]


def test_a_resumed_run_s_preview_note_counts_the_saved_run_s_steps(pipe, tmp_path, capsys, monkeypatch):
    # --resume takes the steps from the stopped run (4 here), while --steps keeps its default: the note must count
    # the steps the run takes, and name only those after step 2, where the resumed run starts.
    _, root = pipe
    args = ["run", "-m", str(root), "-p", "a red fox", "-W", "48", "-H", "32", "--video-frames", "9", "--steps", "4"]
    args += ["--dtype", "fp32", "--device", "cpu", "--kernels", "torch", "-o", str(tmp_path / "out.webm")]

    def stop(self, stage, done, total):
        if stage == "denoise" and done == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("motif_lite.progress.ProgressBars.__call__", stop)
        assert cli_main(args) == EXIT_INTERRUPTED
    capsys.readouterr()
    preview = tmp_path / "p.webp"
    resume = ["run", "--resume", str(tmp_path / "out.latents.safetensors"), "--preview", str(preview)]
    assert cli_main([*resume, "--device", "cpu", "--kernels", "torch"]) == 0
    assert f"note: {preview_note(preview, 4, None, 2)}" in capsys.readouterr().err


def test_a_preview_a_viewer_holds_open_on_windows_is_said_once_with_how_often_it_failed(tmp_path, caplog, monkeypatch):
    # Windows refuses to replace a file an image viewer has open: every preview failed alike, and each said so, a
    # warning every --preview-every steps all run long, without saying why.
    from motif_lite.io import preview as preview_io

    path = tmp_path / "p.png"
    real_replace = os.replace
    held = [True]

    def replace(source, target):
        if Path(target) == path and held[0]:
            raise PermissionError(13, "Access is denied", str(source), None, str(target))
        real_replace(source, target)

    monkeypatch.setattr(preview_io.os, "replace", replace)
    monkeypatch.setattr(sys, "platform", "win32")
    previews = preview_io.PreviewFile(path, fps=6.0)
    frames = np.zeros((3, 8, 12, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="motif_lite"):
        for done, viewer_open in enumerate([True, True, True, False, True]):
            held[0] = viewer_open
            previews(done + 1, 9, frames)
            previews._pending.result()  # each written before the next: none dropped
        previews.close()
    said = [r.getMessage() for r in caplog.records]
    failed = f"preview not written: cannot write preview {path}: "
    assert len(said) == 3 and said[0] == said[2] and said[0].startswith(failed), said
    assert said[0].endswith("(Windows refuses to replace a file another program has open: close it there)")
    assert said[1] == "the preview was not written 2 more times for that reason"  # before the one that was written


def test_a_preview_windows_refuses_to_write_is_not_said_to_be_held_open(tmp_path, caplog, monkeypatch):
    # A refusal to write the .partial file (an antivirus holding it, say) was told as the preview held open by
    # "another program": the file named was not the one refused, nor was it being replaced.
    from motif_lite.io import preview as preview_io

    path = tmp_path / "p.png"
    partial = preview_io.partial_preview(path)

    def refused(self, target, *args, **kwargs):
        raise PermissionError(13, "Access is denied", str(target))

    monkeypatch.setattr(PIL.Image.Image, "save", refused)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(MotifLiteError) as failed:
        preview_io.write_preview(np.zeros((3, 8, 12, 3), dtype=np.uint8), path, fps=6.0)
    said = str(failed.value)
    assert said.startswith(f"cannot write preview {path}: ") and str(partial) in said, said
    assert "another program" not in said, said


def test_a_preview_held_open_is_told_in_windows_words_where_os_name_says_windows(tmp_path, monkeypatch):
    # `write_preview` looked at sys.platform alone, where the project's one test (`shell_syntax.on_windows`) reads
    # os.name too: a Python whose os.name says Windows was not told that a viewer holds the preview.
    from motif_lite.io import preview as preview_io

    path = tmp_path / "p.png"

    def held(source, target):
        raise PermissionError(13, "Access is denied", str(source), None, str(target))

    monkeypatch.setattr(preview_io.os, "replace", held)
    monkeypatch.setattr(sys, "platform", "linux")
    frames = np.zeros((3, 8, 12, 3), dtype=np.uint8)
    with monkeypatch.context() as windows, pytest.raises(MotifLiteError) as failed:
        windows.setattr(os, "name", "nt")  # only around the call: pathlib reads it as paths are made
        preview_io.write_preview(frames, path, fps=6.0)
    said = str(failed.value)
    assert said.endswith("(Windows refuses to replace a file another program has open: close it there)"), said
