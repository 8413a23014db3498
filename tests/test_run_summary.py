"""The lines `motif-lite run` prints when a video is done (cli/run_summary.py), from results built by hand: the
prompt cut at its limit, a resumed run's seconds per step, an extension's frames and where the optional lines go.
CPU, no model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from motif_lite.cli.run_summary import PROMPT_SHOWN, prompt_line, summary
from motif_lite.errors import Audience
from motif_lite.io.clip import Clip
from motif_lite.pipeline import GenerationResult
from motif_lite.request import GenerationRequest
from motif_lite.request.clip_checks import extension_notes as _extension_notes
from motif_lite.shell_syntax import quoted_text

TIMINGS = {"encode": 1.0, "denoise": 6.0, "decode": 2.0, "total": 9.0}


def _result(tmp_path: Path, **fields: object) -> GenerationResult:
    request = GenerationRequest("a red fox", width=32, height=16, frames=9, fps=8, steps=8, seed=0,
                                output=tmp_path / "v.mp4", **fields.pop("request", {}))  # fmt: skip
    return GenerationResult(tmp_path / "v.mp4", request, 3.0, TIMINGS, None, None, **fields)


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


@pytest.mark.parametrize(("length", "shown"), [(PROMPT_SHOWN, PROMPT_SHOWN), (PROMPT_SHOWN + 1, PROMPT_SHOWN - 3)])
def test_the_prompt_is_shown_whole_up_to_its_limit_and_cut_past_it(length, shown):
    prompt = "f" * length
    if length == shown:
        assert prompt_line(prompt) == f"prompt: {quoted_text(prompt)}"
    else:  # the cut text and its "..." take the limit's 100 characters
        assert prompt_line(prompt) == f"prompt: {quoted_text('f' * shown)}... ({length} characters)"


def test_a_resumed_run_gives_the_seconds_of_the_steps_it_sampled(tmp_path):
    # 6 s of denoising for the 2 steps sampled here (steps 7-8), not over all 8 steps of the request.
    time = _line(summary(_result(tmp_path, resumed_at=6), 0.0, with_settings=False), "time: ")
    assert "denoise 6.0s (3.00 s/step)" in time


def test_an_extension_says_the_clips_frames_the_new_ones_and_its_length(tmp_path):
    # A 9-frame request from a 12-frame clip: its first frame is the clip's last, so 8 new and 20 in the file.
    result = _result(tmp_path, clip_frames=12, request={"extend": str(tmp_path / "clip.mp4")})
    extended = _line(summary(result, 0.0, with_settings=False), "extended: ")
    # (20 - 1) / 8 s, as the request's note and the server's video object count it (it said 2.50 s, 20 / 8).
    assert extended == "extended: clip.mp4's 12 frames, then 8 new: 20 frames, 2.38 s at 8 fps"
    clip = Clip(tmp_path / "clip.mp4", frames=12, width=32, height=16, fps=8)
    note = _extension_notes(clip, 9, 8, tmp_path / "v.mp4", Audience.RUN_OR_PYTHON)[0]
    assert "20 in all (2.38 s at 8 fps)" in note, note


def test_an_extension_says_whether_the_clips_frames_stay_exact(tmp_path):
    # Each link of a chain of .mp4 extensions re-encodes the first part once more; a PNG sequence keeps it exact.
    clip = Clip(tmp_path / "clip.mp4", frames=12, width=32, height=16, fps=8)
    video = tmp_path / "v.mp4"
    lossy = _extension_notes(clip, 9, 8, video, Audience.FLAGS)[0]
    assert lossy.endswith(f"one lossy pass more for them; to keep them exact, write a PNG sequence: -o {tmp_path}/v_"
                          "%03d.png"), lossy  # fmt: skip
    frames = _extension_notes(clip, 9, 8, tmp_path / "v_%03d.png", Audience.FLAGS)[0]
    assert frames.endswith("the clip's frames are written again losslessly (PNG), exactly as they decode"), frames
    served = _extension_notes(clip, 9, 8, video, Audience.API)[0]  # the server writes .mp4 only: no -o to give
    assert served.endswith("the clip is decoded and encoded again with them, frame by frame"), served


def test_the_optional_lines_come_before_the_output_line(tmp_path):
    loras = SimpleNamespace(describe=lambda: "style.safetensors x0.8")
    lines = summary(_result(tmp_path), 0.0, loras=loras, text_encoder="te.gguf", ran_on="cpu", with_settings=False)
    tail = lines.splitlines()[-4:]
    assert tail[0].startswith("ran on: ") and tail[-1].startswith("output: ")
    assert {tail[1], tail[2]} == {"loras: style.safetensors x0.8", "text encoder: te.gguf"}


def test_a_run_resumed_one_step_before_the_last_says_that_step_was_sampled_here(tmp_path):
    # Mutation pass 71: only a state after the last step (resumed_at == steps) is a decode alone.
    assert _line(summary(_result(tmp_path, resumed_at=7), 0.0, with_settings=False), "resumed: ") == (
        "resumed: step 8 sampled here, steps 1-7 by the run that stopped"
    )
    last = _line(summary(_result(tmp_path, resumed_at=8), 0.0, with_settings=False), "resumed: ")
    assert last == "resumed: every step sampled by the run that stopped, only the decode ran here"


def test_the_prompt_is_quoted_for_the_users_shell_even_where_it_needs_no_quotes(monkeypatch):
    # A word alone is quoted too, so that the line says where the prompt starts; on Windows in the quotes cmd and
    # PowerShell both take, the repr's single quotes being part of the word in cmd.
    assert prompt_line("fox") == "prompt: 'fox'"
    with monkeypatch.context() as patch:
        patch.setattr(os, "name", "nt")
        said = [prompt_line("fox"), prompt_line("it's a fox"), prompt_line('a "fox" for $5')]
    older = '  # Windows PowerShell 5.1 and PowerShell 7.0-7.2 drop a " inside an argument: there type '
    assert said == [
        'prompt: "fox"',
        'prompt: "it\'s a fox"',
        f"prompt: 'a \"fox\" for $5'{older}'a \\\"fox\\\" for $5'",
    ]


def test_a_prompt_with_line_ends_is_shown_on_one_line_that_bash_reads_back(monkeypatch):
    # A prompt file's text (`-p "$(cat prompt.txt)"`) keeps its line ends, a CRLF file's CR too: written raw they
    # broke the prompt line in two, and the CR sent the cursor back over its start.
    prompt = "a fox\nin snow,\tit's \\ cold\r\x1b"
    line = prompt_line(prompt)
    assert not any(c in line for c in "\n\r\t\x1b"), line
    typed = line.removeprefix("prompt: ")
    read = subprocess.run(["bash", "-c", f"printf %s {typed}"], capture_output=True, check=True).stdout
    assert read.decode() == prompt
    with monkeypatch.context() as patch:
        patch.setattr(os, "name", "nt")
        said = prompt_line('a "fox"\r\nfor $5')
    assert said.partition("  # ")[0] == 'prompt: "a `"fox`"`r`nfor `$5"'
