"""Tests for the survivors of the forty-ninth mutation pass (docs/testing.md): --video-frames in seconds, a batch's
"not started" count, a clip's exact rate, the float-dtype check, WebP's limits, AMD device names and the C++
compiler probe."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest

from motif_lite import devices
from motif_lite.cli import main
from motif_lite.cli.batch_notes import LISTED_AT_MOST, unstarted_videos
from motif_lite.errors import CheckpointError, DeviceError, MotifLiteError
from motif_lite.io.clip import _exact_rate
from motif_lite.io.video import write_video
from motif_lite.runtime import compile as compile_module
from motif_lite.weights.safetensors_files import TensorRef, check_floats


def _error_of(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit):
        main(argv)
    return capsys.readouterr().err


def test_no_seconds_is_no_length_in_seconds(capsys):
    # "0s" is no length: it is refused as a frame count, not counted as 0 s of frames.
    err = _error_of(capsys, ["run", "-p", "x", "--video-frames", "0s"])
    assert "must be a whole number, got '0s'" in err, err


def test_seconds_at_no_frame_rate_say_what_a_length_is(capsys):
    # --fps 0 gives no frame count: the message says what a length is rather than dividing by 0 or saying nothing.
    err = _error_of(capsys, ["run", "-p", "x", "--fps", "0", "--video-frames", "5s"])
    assert "counts frames, not seconds: a length is a number of frames (4k+1) at --fps" in err, err


def test_seconds_given_to_verify_name_no_fps_flag(capsys):
    err = _error_of(capsys, ["verify", "--video-frames", "5s"])
    assert "counts frames, not seconds: 5 s at" in err, err
    assert "--fps sets the rate" not in err  # verify has no --fps


def test_a_batch_listed_whole_gives_no_count():
    requests = [SimpleNamespace(output=f"fox-{n}.mp4", seed=n) for n in range(LISTED_AT_MOST)]
    (note,) = unstarted_videos(requests)
    assert note.startswith("not started: fox-0.mp4 (seed 0), "), note
    (note,) = unstarted_videos([*requests, SimpleNamespace(output="fox-x.mp4", seed=9)])
    assert note.startswith(f"not started ({LISTED_AT_MOST + 1}): "), note


def test_showinfo_rate_far_from_the_header_is_not_taken():
    # A variable-rate clip: its header gives the average (9.09), showinfo a guess of its own (12).
    said = "config in time_base: 1/1000, frame_rate: 12/1"
    assert _exact_rate(said, 9.09) == 9.09
    assert _exact_rate("config in time_base: 1/24000, frame_rate: 24000/1001", 23.98) == 24000 / 1001


def test_showinfo_rate_of_no_frames_per_second_is_not_taken():
    assert _exact_rate("config in time_base: 1/1000, frame_rate: 0/0", 25.0) == 25.0


def test_one_integer_tensor_is_named_in_the_singular():
    file = Path("m.safetensors")
    refs = {"w": TensorRef(file, "w", (2,), "I8"), "b": TensorRef(file, "b", (2,), "BF16")}
    with pytest.raises(CheckpointError, match=r"^m: 1 VAE tensor not stored as floats .*: w \(I8\);"):
        check_floats(refs, "m", "VAE")


def test_a_webp_encoder_error_is_said_as_cannot_write(tmp_path, monkeypatch):
    # libwebp's refusals reach Python as RuntimeError, which has no strerror: it was an AttributeError.
    def refuse(*args, **kwargs):
        raise RuntimeError("ERROR adding frame")

    monkeypatch.setattr(PIL.Image.Image, "save", refuse)
    with pytest.raises(MotifLiteError, match=r"cannot write .*fox\.webp.*: ERROR adding frame"):
        write_video(np.zeros((2, 8, 8, 3), dtype=np.uint8), tmp_path / "fox.webp", fps=16)


def test_a_webp_frame_a_rounded_ms_past_its_field_is_refused_before_writing(tmp_path):
    # Pillow may give a frame 1 ms more than 1000 / fps: 2^24 - 1 ms frames would reach 2^24.
    with pytest.raises(MotifLiteError, match="does not fit a WebP"):
        write_video(np.zeros((2, 8, 8, 3), dtype=np.uint8), tmp_path / "fox.webp", fps=1000 / (2**24 - 1))


def test_an_amd_gpu_numbered_without_a_colon_is_told_cuda_n(monkeypatch):
    monkeypatch.setattr(devices, "rocm_build", lambda: True)
    with pytest.raises(DeviceError, match="PyTorch's ROCm build names AMD GPUs cuda: --device cuda:1"):
        devices.resolve_device("amd1")


def test_a_compiler_that_hangs_is_no_compiler(monkeypatch):
    def hang(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs.get("timeout", 60))

    monkeypatch.setattr(compile_module.subprocess, "run", hang)
    assert not compile_module._runs("g++")


def test_c_plus_plus_alone_is_a_compiler(monkeypatch, tmp_path):
    stub = tmp_path / "c++"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    compile_module.check_compile_possible("cpu")  # no CompileUnavailableError


def test_directmls_device_type_in_capitals_is_named_as_directml():
    # torch parses "privateuseone" itself (refused as not supported); other spellings reach the unknown names.
    with pytest.raises(DeviceError, match=r"^unknown device 'PrivateUseOne': DirectML \(torch-directml\) is not"):
        devices.resolve_device("PrivateUseOne")


def _with_one_int8_weight(file: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(file)
    name = next(name for name in tensors if name.endswith("weight"))
    tensors[name] = tensors[name].to(torch.int8)
    save_file(tensors, file)


def test_a_dry_run_refuses_an_integer_transformer_tensor(tmp_path, capsys):
    # The run refused it only at load, after the text encoder and the VAE had loaded; the dry run said nothing.
    from tiny_pipeline import make_tiny_checkpoint

    root = tmp_path / "ckpt"
    root.mkdir()
    make_tiny_checkpoint(root)
    _with_one_int8_weight(next((root / "transformer").glob("*.safetensors")))
    code = main(["run", "-m", str(root), "-p", "a fox", "-o", str(tmp_path / "o.mp4"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "1 transformer tensor not stored as floats" in err and "(I8)" in err, err


def test_a_dry_run_refuses_an_integer_tensor_in_the_users_vae(tmp_path, capsys):
    from tiny_pipeline import make_tiny_checkpoint

    root = tmp_path / "ckpt"
    root.mkdir()
    make_tiny_checkpoint(root)
    vae = tmp_path / "my_vae.safetensors"
    vae.write_bytes(next((root / "vae").glob("*.safetensors")).read_bytes())
    _with_one_int8_weight(vae)
    code = main(["run", "-m", str(root), "--vae", str(vae), "-p", "a fox", "-o", str(tmp_path / "o.mp4"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "1 VAE tensor not stored as floats" in err and "(I8)" in err, err


def test_a_fraction_too_large_for_a_float_is_one_line(capsys):
    # float(Fraction) raised OverflowError, which --fps's parser let through as a traceback.
    err = _error_of(capsys, ["run", "-p", "x", "--fps", "9" * 400 + "/1"])
    assert "argument --fps: must be a frame rate a float holds, got a fraction of 402 characters" in err, err
    assert "Traceback" not in err and err.count("\n") == 2, err  # usage line and the error


def test_seconds_at_an_ntsc_rate_name_it_as_notes_do(capsys):
    # `:g` said 59.9401 fps, a rate --fps does not take back as 60000/1001.
    err = _error_of(capsys, ["run", "-p", "x", "--fps", "60000/1001", "--video-frames", "5s"])
    assert "5 s at 59.94 fps (60000/1001) is --video-frames 301" in err, err
