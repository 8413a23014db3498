"""The fortieth mutation pass's tests (docs/testing.md) that belong to no other file: behaviours of
cli/run_request.py that no test reached, each failing with the mutant that showed the gap."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from motif_lite import cli
from motif_lite.cli import run_request
from motif_lite.request import RequestError


def test_an_empty_prompt_is_no_mistake_in_a_resumed_run(tmp_path):
    # A resumed run's prompt is its latents file's: -p "$PROMPT" with PROMPT unset changes nothing there.
    args = cli.build_parser().parse_args(["run", "-p", "", "--resume", str(tmp_path / "fox.latents.safetensors")])
    run_request.check_flags(args, SimpleNamespace(request={"prompt": "a red fox"}))
    with pytest.raises(RequestError, match="the prompt is empty"):
        run_request.check_flags(args, None)


def test_the_side_that_keeps_a_narrow_images_shape_is_at_least_16(tmp_path):
    # -H 16 for a 20x400 image: 0.8 wide keeps its shape; the nearest side the model takes is 16, not 0.
    import PIL.Image

    PIL.Image.new("RGB", (20, 400)).save(tmp_path / "tall.png")
    argv = ["run", "-p", "fox", "-H", "16", "-i", str(tmp_path / "tall.png")]
    args = cli.build_parser().parse_args(argv)
    args.argv = argv
    request = SimpleNamespace(image=str(tmp_path / "tall.png"), width=1280, height=16)
    (note,) = run_request.one_side_notes(args, request)
    assert note.endswith("-W 16 keeps the image's shape (20x400) at that height"), note


def test_a_batch_moved_on_by_a_claim_since_let_go_says_nothing(tmp_path, monkeypatch):
    # Another run held output-1.mp4 as this batch claimed its names and has let it go since: no file to name.
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    held = iter([False])
    monkeypatch.setattr(run_request, "_claim_all", lambda paths: next(held, True))
    outputs, note = run_request.free_batch_outputs(Path("output.mp4"), 2, dry_run=False, claim=True)
    assert [path.name for path in outputs] == ["output-2-1.mp4", "output-2-2.mp4"] and note is None
