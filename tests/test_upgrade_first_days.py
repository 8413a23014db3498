"""Videos of motif-lite's first days (up to 2026-11-30) stored their guidance as the guidance's Python repr
("APGConfig(scale=8.0, ...)"), not as the object later files store: `run --settings-from` takes it as that object,
where it called such a file edited or damaged. tests/data/old_formats/83bd741/fox.mp4 was made by that commit
(README.md there). CPU, no weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from motif_lite import cli
from motif_lite.cli.resume import request_from_file
from motif_lite.cli.run_request import request_from_args, resolve_requests
from motif_lite.cli.settings_from import settings_from_args
from motif_lite.errors import MotifLiteError
from motif_lite.io.settings_file import read_settings
from motif_lite.io.video import write_video

FIRST_DAY = Path(__file__).parent / "data" / "old_formats" / "83bd741"
FIRST_DAY_VIDEO = FIRST_DAY / "fox.mp4"


def test_a_first_days_video_gives_its_guidance_back():
    """The repr that commit wrote (its RECOMMENDED_APG at the run's scale), read as the object stored since."""
    guidance = read_settings(FIRST_DAY_VIDEO).values["guidance_config"]
    assert guidance == {
        "method": "APGConfig", "scale": 8.0, "norm_threshold": 12.0, "momentum": 0.1, "eta": 1.0,
        "norm_dims": [-1, -2, -4], "original_formulation": True, "guidance_rescale": 0.0, "start": 0.0, "stop": 1.0,
    }  # fmt: skip


def test_run_settings_from_a_first_days_video_plans_its_guidance(shared_checkpoint, tmp_path, capsys):
    command = ["run", "--settings-from", str(FIRST_DAY_VIDEO), "-m", str(shared_checkpoint[0])]
    assert cli.main([*command, "-o", str(tmp_path / "again.webp"), "--device", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "guidance     file       APG scale 8, eta 1, norm threshold 12, momentum 0.1" in out.out, out.out


def test_a_first_days_video_is_made_again_as_that_version_made_it(shared_checkpoint, tmp_path):
    """Its PNG frames (the same run as its fox.mp4), made again from the first frame's settings on the same tiny
    checkpoint: the frames that version wrote, up to a level of another CPU's float32 rounding."""
    command = ["run", "--settings-from", str(FIRST_DAY / "frames" / "f_000.png"), "-m", str(shared_checkpoint[0])]
    again = tmp_path / "f_%03d.png"
    assert cli.main([*command, "--dtype", "fp32", "--device", "cpu", "-o", str(again)]) == 0
    older = sorted((FIRST_DAY / "frames").glob("f_*.png"))
    assert [path.name for path in older] == [path.name for path in sorted(tmp_path.glob("f_*.png"))]
    for path in older:
        then, now = (np.asarray(Image.open(folder / path.name), np.int16) for folder in (path.parent, tmp_path))
        assert np.abs(then - now).max() <= 1, path.name


# What a file of those days stores beside its guidance (no version, no model): the request's fields as they were.
FIRST_DAYS_STORED = {
    "software": "motif-lite", "prompt": "a red fox", "negative_prompt": "blurry", "width": 32, "height": 32,
    "frames": 5, "fps": 24.0, "steps": 2, "seed": 5, "image": None, "sampler": "euler", "flow_shift": 15.0,
    "guidance": "apg", "cfg_scale": 8.0,
}  # fmt: skip


def request_of(tmp_path: Path, stored: dict):
    """What `run --settings-from` makes of a file storing `stored`, before loading anything."""
    path = write_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "made.webp", 24, stored)
    argv = ["run", "--settings-from", str(path)]
    args = cli.build_parser().parse_args(argv)
    args.argv = argv
    recalled = settings_from_args(args)
    with request_from_file(None, recalled):
        (request,), _ = resolve_requests(args, request_from_args(args))
    return request


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (
            "APGConfig(scale=4.5, norm_threshold=10.0, momentum=None, eta=0.5, norm_dims=(-1, -2, -4), "
            "original_formulation=True, guidance_rescale=0.0, start=0.0, stop=1.0)",
            {"guidance": "apg", "cfg_scale": 4.5, "apg_eta": 0.5, "apg_norm_threshold": 10.0, "apg_momentum": 0.0},
        ),
        (
            "CFGConfig(scale=5.0, guidance_rescale=0.0, original_formulation=False, start=0.0, stop=1.0)",
            {"guidance": "cfg", "cfg_scale": 5.0},
        ),
    ],
)
def test_the_stored_repr_chooses_the_guidance(tmp_path, stored, expected):
    """The repr's method and values, not the request's guidance fields beside it (APG at 8)."""
    request = request_of(tmp_path, {**FIRST_DAYS_STORED, "guidance_config": stored})
    assert {field: getattr(request, field) for field in expected} == expected


@pytest.mark.parametrize(
    "stored",
    [
        {**FIRST_DAYS_STORED, "guidance_config": "apg"},  # no repr at all
        {**FIRST_DAYS_STORED, "guidance_config": "APGConfig(scale=__import__('os'))"},  # no literal
        {**FIRST_DAYS_STORED, "guidance_config": "APGConfig(8.0)"},  # not the dataclass's repr
        {**FIRST_DAYS_STORED, "guidance_config": "APGConfig(scale=8.0)+_(eta=1.0)"},  # no call
        {**FIRST_DAYS_STORED, "guidance_config": "APGConfig(**{'scale': 8.0})"},
        # literals JSON cannot hold: a TypeError traceback
        *({**FIRST_DAYS_STORED, "guidance_config": f"APGConfig(scale={value})"} for value in ("1j", "{8.0}", "b'8'")),
        {**FIRST_DAYS_STORED, "guidance_config": "APGConfig(norm_dims={(1, 2): 3})"},
        {**FIRST_DAYS_STORED, "version": "0.1.0", "guidance_config": "APGConfig(scale=8.0)"},  # a later file's
    ],
)
def test_a_string_no_first_days_file_wrote_is_still_damage(tmp_path, stored):
    with pytest.raises(MotifLiteError, match="guidance_config holds a string, not an object of guidance settings"):
        request_of(tmp_path, stored)


@pytest.mark.parametrize(
    "stored",
    [
        "PAGConfig(scale=8.0)",  # a class of no guidance motif-lite has had
        "APGConfig(scale=8.0) edited",  # a repr with more after it
    ],
)
def test_only_a_whole_repr_of_a_guidance_class_is_read_as_one(tmp_path, stored):
    with pytest.raises(MotifLiteError, match="guidance_config holds a string, not an object of guidance settings"):
        request_of(tmp_path, {**FIRST_DAYS_STORED, "guidance_config": stored})


def test_a_guidance_object_in_a_file_without_a_version_is_read_as_stored(tmp_path):
    """A file that stores the object but no version (its version cut out by hand, or another writer's copy) is no
    first-days file: its object is taken as it is, not matched as a repr (a TypeError traceback)."""
    stored = {**FIRST_DAYS_STORED, "guidance_config": {"method": "CFGConfig", "scale": 5.0}}
    request = request_of(tmp_path, stored)
    assert (request.guidance, request.cfg_scale) == ("cfg", 5.0)
