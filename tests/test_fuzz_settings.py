"""Damaged and hand-edited settings in a video (`run --settings-from FILE`): every mutation of the stored settings,
a fixed list of them (each value of the wrong JSON type, a missing or unknown key, text that is not UTF-8), and of
the file's bytes, either makes the request or is refused with `MotifLiteError`; the command says so in one line.
CPU, no weights."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from fuzz_checks import read_or_refused_naming

from motif_lite import cli
from motif_lite.cli.resume import request_from_file
from motif_lite.cli.run_request import request_from_args, resolve_requests
from motif_lite.cli.settings_from import settings_from_args
from motif_lite.errors import MotifLiteError
from motif_lite.io.video import write_video

# What a video of the tiny checkpoint stores (`stored_settings`), guided by APG.
STORED = {
    "software": "motif-lite", "version": "0.1.0",
    "model": {"model": "Motif-Video-2B", "dtype": "bf16", "attention": "exact", "lora": ["a.safetensors:1"]},
    "prompt": "a red fox", "negative_prompt": "blurry", "width": 32, "height": 32, "frames": 5, "fps": 24, "steps": 2,
    "seed": 5, "image": None, "extend": None, "sampler": "euler", "flow_shift": 15.0,
    "guidance_config": {"method": "APGConfig", "scale": 4.0, "eta": 0.5, "norm_threshold": 12.0, "momentum": 0.1},
}  # fmt: skip
MISSING = object()
WRONG_VALUES = ["12", [1], None, float("nan"), float("inf"), 10**30, -5, 0, True, {"a": 1}, "x" * 100_000, "\udcff",
                1.5, MISSING]  # fmt: skip
NESTED = ["guidance_config.method", "guidance_config.scale", "guidance_config.eta", "guidance_config.momentum",
          "model.lora", "model.dtype", "model.step_cache", "unknown_key"]  # fmt: skip


def edited(where: str, value: object) -> dict:
    """The stored settings with the entry at `where` ("guidance_config.method") set to `value`, or left out."""
    stored = copy.deepcopy(STORED)
    *outer, last = where.split(".")
    inner = stored[outer[0]] if outer else stored
    if value is MISSING:
        inner.pop(last, None)
    else:
        inner[last] = value
    return stored


def written(folder: Path, values: dict) -> Path:
    return write_video(np.zeros((2, 16, 16, 3), np.uint8), folder / "made.webp", 24, values)


def requests_from(path: Path) -> list:
    """What `run --settings-from PATH` makes of the file before loading anything."""
    args = cli.build_parser().parse_args(["run", "--settings-from", str(path)])
    args.argv = ["run", "--settings-from", str(path)]
    recalled = settings_from_args(args)
    with request_from_file(None, recalled):  # as `run` names the file of a field refused
        requests, _ = resolve_requests(args, request_from_args(args))
    return requests


# The request fields an edit of each entry may change; the model section holds names only, for the notes.
GUIDANCE_FIELDS = {"guidance", "cfg_scale", "apg_eta", "apg_norm_threshold", "apg_momentum"}
ENTRY_FIELDS = {"guidance_config": GUIDANCE_FIELDS, "model": set(), "unknown_key": set(), "version": set()}


def assert_refused_or_read(path: Path, where: str, value: object, unedited: dict) -> None:
    """A refusal names the file and the entry (or its flag); a read makes the unedited request, or one in which
    only the fields of the edited entry differ."""
    key = {"guidance_config.method": "guidance"}.get(where, where.rpartition(".")[2])  # the flag that sets it
    with read_or_refused_naming(MotifLiteError, path.name, key):
        (request,) = requests_from(path)
        made = dataclasses.asdict(request)
        changed = {field for field in made if made[field] != unedited[field]}
        allowed = ENTRY_FIELDS.get(where.partition(".")[0], {where})
        assert changed <= allowed, f"{where}={value!r:.40} read as {changed}"


@pytest.mark.parametrize("where", [key for key in STORED if key != "software"] + NESTED)
def test_every_wrong_value_makes_the_request_or_is_refused(tmp_path, where):
    (request,) = requests_from(written(tmp_path, STORED))
    unedited = dataclasses.asdict(request)
    for value in WRONG_VALUES:
        assert_refused_or_read(written(tmp_path, edited(where, value)), where, value, unedited)


DAMAGED_GUIDANCE = [  # (entry, value stored, the refusal's words): damage, not a newer version's name (a string)
    *[("guidance_config.method", method, r"guidance_config\.method holds .*, not a guidance method's name")
      for method in ([1], {"a": 1}, 3, True, None)],
    *[("guidance_config", stored, rf"guidance_config holds {kind}, not an object of guidance settings")
      for stored, kind in (([1], "a list"), (3, "a number"), ("apg", "a string"), (True, "true or false"))],
]  # fmt: skip


@pytest.mark.parametrize(("where", "stored", "words"), DAMAGED_GUIDANCE)
def test_a_damaged_guidance_config_is_refused_naming_the_file_and_key(tmp_path, capsys, where, stored, words):
    """A method of another JSON type was read as one this version lacks, and a guidance_config that is no object as
    none at all: the checkpoint's or the official guidance ran without a word."""
    path = written(tmp_path, edited(where, stored))
    with pytest.raises(MotifLiteError, match=rf"made\.webp's stored settings: {words} \(the file"):
        requests_from(path)
    code = cli.main(["run", "--settings-from", str(path), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err and "give --guidance" in err, err
    # The flag that replaces it replaces it.
    assert cli.main(["run", "--settings-from", str(path), "--dry-run", "--device", "cpu", "--guidance", "cfg"]) == 0


def test_a_guidance_method_this_version_lacks_is_still_a_newer_versions(tmp_path):
    path = written(tmp_path, edited("guidance_config.method", "PAGConfig"))
    with pytest.raises(MotifLiteError, match="made with the guidance 'PAGConfig', which motif-lite .* does not have"):
        requests_from(path)


@pytest.mark.parametrize("where", ["prompt", "negative_prompt"])
def test_text_that_is_not_utf8_is_refused_before_loading(tmp_path, where):
    path = written(tmp_path, edited(where, "a \udcff fox"))
    named = where.replace("_", "[-_]")  # the flag, where it spells the field with dashes
    with pytest.raises(MotifLiteError, match=rf"{named}\)? holds bytes that are not UTF-8 text"):
        requests_from(path)


def test_cut_and_flipped_bytes_are_refused_or_read(tmp_path):
    """Refused naming the file, or read as the whole file: a flipped byte in a frame leaves the settings as they
    were."""
    path = written(tmp_path, STORED)
    (request,) = requests_from(path)
    unedited = dataclasses.asdict(request)
    whole = path.read_bytes()
    cuts = [whole[:n] for n in (0, 1, 12, 30, len(whole) // 2, len(whole) - 1)]
    flips = [whole[:i] + bytes([whole[i] ^ 0xFF]) + whole[i + 1 :] for i in range(0, len(whole), 37)]
    for damaged in [*cuts, *flips]:
        path.write_bytes(damaged)
        with read_or_refused_naming(MotifLiteError, path.name):
            assert [dataclasses.asdict(request) for request in requests_from(path)] == [unedited]


def test_the_command_refuses_a_prompt_that_is_not_utf8_in_one_line(tmp_path, capsys):
    path = written(tmp_path, edited("prompt", "\udcff"))
    code = cli.main(["run", "--settings-from", str(path), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err
    assert "prompt holds bytes that are not UTF-8 text" in err


def test_a_damaged_mp4_is_refused_in_one_line(tmp_path, capsys):
    mp4 = write_video(np.zeros((2, 16, 16, 3), np.uint8), tmp_path / "made.mp4", 24, STORED)
    mp4.write_bytes(mp4.read_bytes()[:100])
    code = cli.main(["run", "--settings-from", str(mp4), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err and "made.mp4" in err


@pytest.mark.parametrize("prompt", [None, MISSING])
def test_a_file_without_its_prompt_is_refused_unless_one_is_given(tmp_path, capsys, prompt):
    """The run made a video of the dry run's stand-in prompt, "(dry run)"."""
    path = written(tmp_path, edited("prompt", prompt))
    code = cli.main(["run", "--settings-from", str(path), "-m", str(tmp_path / "no-model"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "made.webp stores no prompt" in err and "-p" in err
    for given, prompt in ((["--dry-run"], None), (["-p", "a fox"], "a fox")):  # a dry run needs none
        args = cli.build_parser().parse_args(["run", "--settings-from", str(path), *given])
        args.argv = ["run", "--settings-from", str(path), *given]  # which flags were given, as `cli.main` keeps it
        settings_from_args(args)
        assert args.prompt == prompt


def test_the_command_names_the_file_of_a_stored_setting_refused(tmp_path, capsys):
    path = written(tmp_path, edited("flow_shift", 10**30))
    code = cli.main(["run", "--settings-from", str(path), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USER_ERROR and "Traceback" not in err, err
    assert "made.webp's stored settings: --flow-shift must be" in err and "give --flow-shift to replace" in err
    assert cli.main(["run", "--settings-from", str(path), "--dry-run", "--device", "cpu", "--flow-shift", "5"]) == 0
