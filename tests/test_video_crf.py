"""--crf: the video encoder's constant-rate factor for .mp4/.mkv/.mov (H.264) and .webm (VP9), refused for the
formats no video encoder writes, checked before anything loads; without it the files are written as before.
Synthetic frames go straight through the writer (imageio-ffmpeg's ffmpeg); the pass-through tests decode random
latents with the tiny checkpoint's VAE."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from motif_lite import cli, decoding
from motif_lite.cli import run_videos
from motif_lite.errors import ConfigError, MotifLiteError
from motif_lite.io import ffmpeg_writer, video
from motif_lite.io.latents import SavedLatents, save_latents
from motif_lite.io.video import check_crf, write_video
from motif_lite.request import GenerationRequest
from motif_lite.vae import WanVAE
from motif_lite.vae.config import WanVAEConfig

# What the writer asked ffmpeg to encode with (after -c:v) before --crf existed: a run without it must not change.
BEFORE_CRF = {
    ".mp4": ["libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium", "-movflags", "+faststart"],
    ".mov": ["libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium", "-movflags",
             "+faststart+use_metadata_tags"],
    ".mkv": ["libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", "medium"],
    ".webm": ["libvpx-vp9", "-pix_fmt", "yuv420p", "-crf", "30", "-b:v", "0", "-row-mt", "1"],
}  # fmt: skip
TINY_VAE = {"_class_name": "AutoencoderKLWan", "base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 2, 2],
            "num_res_blocks": 1, "temperal_downsample": [False, True, True]}  # fmt: skip


def encoding(suffix: str, crf: int | None = None) -> list[str]:
    """The encoder and its options in the ffmpeg command for a `suffix` file."""
    command = ffmpeg_writer._ffmpeg_command(Path(f"/videos/fox{suffix}"), Path("/tmp/comment"), 64, 48, 24.0, crf)
    return command[command.index("-c:v") + 1 : -1]


def clip_frames(count: int = 9, size: int = 64) -> np.ndarray:
    """A moving gradient with some noise: detail an encoder spends more bits on at a lower CRF."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, size)[None, :, None] + np.arange(count)[:, None, None] * 8
    frames = np.broadcast_to(ramp[..., None], (count, size, size, 3)) + rng.normal(0, 12, (count, size, size, 3))
    return np.clip(frames, 0, 255).astype(np.uint8)


def cli_error(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------ the ffmpeg command


@pytest.mark.parametrize("suffix", list(BEFORE_CRF))
def test_without_crf_the_encoding_is_unchanged(suffix):
    assert encoding(suffix) == BEFORE_CRF[suffix]
    assert encoding(suffix.upper()) == BEFORE_CRF[suffix]


@pytest.mark.parametrize("suffix", [*BEFORE_CRF, ".MP4", ".webp", ".gif", ".png"])
def test_default_crf_is_the_one_the_encoder_gets_without_a_crf(suffix):
    # The server shows a job without a crf at this one.
    before = BEFORE_CRF.get(suffix.lower())
    assert video.default_crf(f"fox{suffix}") == (None if before is None else int(before[before.index("-crf") + 1]))


@pytest.mark.parametrize(("suffix", "crf"), [(".mp4", 35), (".mov", 0), (".mkv", 51), (".webm", 63)])
def test_crf_replaces_the_codecs_own_and_nothing_else(suffix, crf):
    expected = list(BEFORE_CRF[suffix])
    expected[expected.index("-crf") + 1] = str(crf)
    assert encoding(suffix, crf) == expected


# ------------------------------------------------------------------------------ real files


def test_a_higher_crf_writes_a_smaller_mp4_at_that_crf(tmp_path):
    frames = clip_frames()
    default = write_video(frames, tmp_path / "default.mp4", 24)
    small = write_video(frames, tmp_path / "small.mp4", 24, crf=35)
    assert small.stat().st_size < default.stat().st_size
    # x264 writes its options into the stream: the file says the CRF it was encoded at.
    assert b"crf=18.0" in default.read_bytes() and b"crf=35.0" in small.read_bytes()


def test_a_higher_crf_writes_a_smaller_webm(tmp_path):
    frames = clip_frames(count=5)
    default = write_video(frames, tmp_path / "default.webm", 24)
    small = write_video(frames, tmp_path / "small.webm", 24, crf=60)
    assert small.stat().st_size < default.stat().st_size


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("name", "format_"), [("fox.gif", ".gif"), ("fox.webp", ".webp"),
                                               ("fox_%03d.png", ".png"), ("fox.png", ".png")])  # fmt: skip
def test_crf_is_refused_where_no_video_encoder_writes(tmp_path, name, format_):
    frames = clip_frames(count=1 if name == "fox.png" else 3, size=16)
    with pytest.raises(MotifLiteError, match=rf"crf has no meaning for a \{format_} output") as error:
        write_video(frames, tmp_path / name, 24, crf=20)
    assert ".mp4, .mkv, .mov (H.264) and .webm (VP9)" in str(error.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "crf", "named"),
    [("fox.mp4", 52, "0 to 51, lower is better and larger (default 18)"), ("fox.MKV", -1, "0 to 51"),
     ("fox.webm", 64, "0 to 63, lower is better and larger (default 30)")],
)  # fmt: skip
def test_crf_outside_the_codecs_range_is_refused(name, crf, named):
    with pytest.raises(MotifLiteError, match=re.escape(named)):
        check_crf(name, crf)


@pytest.mark.parametrize(
    ("name", "why"),
    [("fox.gif", "a .gif output (a GIF's 256-colour palette has no quality"),
     ("fox.webp", "a .webp output (animated WebP is written by Pillow at its"),
     ("fox.avi", "a .avi output (it is no video encoder's)"),
     ("fox", "a file without an extension output (it is no video encoder's)")],
)  # fmt: skip
def test_the_refusal_says_why_that_format_takes_no_crf(name, why):
    with pytest.raises(MotifLiteError, match=re.escape(f"crf has no meaning for {why}")):
        check_crf(name, 20)


def test_each_codec_takes_its_whole_range():
    for name, high in (("fox.mp4", 51), ("fox.mov", 51), ("fox.webm", 63)):
        check_crf(name, 0)
        check_crf(name, high)
    check_crf("fox.gif", None)  # the default: nothing to refuse


@pytest.mark.parametrize("crf", [23.5, True, "23"])
def test_crf_must_be_a_whole_number(crf):
    with pytest.raises(ConfigError, match="whole number"):
        check_crf("fox.mp4", crf)


# ------------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("command", [["run", "-p", "a red fox"], ["decode", "fox.latents.safetensors"]])
@pytest.mark.parametrize("value", ["64", "-1", "high", "20.5"])
def test_a_crf_no_codec_takes_is_a_usage_error(capsys, command, value):
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--crf", value])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "argument --crf: must be a whole number from 0 to 63 (H.264 0-51, VP9 0-63" in err


@pytest.mark.parametrize("command", [["run", "-p", "a red fox"], ["decode", "fox.latents.safetensors"]])
def test_the_command_line_takes_every_crf_of_some_codec(command):
    for value in (0, 51, 63):  # 52-63: VP9's alone, checked against -o later
        assert cli.build_parser().parse_args([*command, "--crf", str(value)]).crf == value


@pytest.mark.parametrize(("output", "crf", "said"), [("fox.gif", "20", "crf has no meaning for a .gif output"),
                                                     ("fox.mp4", "52", "crf 52 is outside H.264's range")])  # fmt: skip
def test_run_refuses_a_crf_the_output_cannot_take_before_loading(tmp_path, capsys, output, crf, said):
    missing = tmp_path / "no-checkpoint"  # the refusal comes first: nothing is looked for
    argv = ["run", "-p", "a red fox", "-m", str(missing), "--device", "cpu", "-o", str(tmp_path / output)]
    code, err = cli_error(capsys, *argv, "--crf", crf)
    assert code == cli.EXIT_USER_ERROR
    assert err.strip().splitlines() == [f"error: {err.strip().removeprefix('error: ')}"] and said in err
    assert list(tmp_path.iterdir()) == []


class RecordingPipeline:
    """Stands in for a loaded pipeline: `generate` hands back the keywords it was called with."""

    def generate(self, request: GenerationRequest, *args: object, **keywords: object) -> dict:
        return keywords


def test_run_hands_the_crf_to_the_pipeline(tmp_path):
    args = cli.build_parser().parse_args(["run", "-p", "a red fox", "-o", str(tmp_path / "fox.mp4"), "--crf", "28"])
    video = GenerationRequest("a red fox", output=tmp_path / "fox.mp4")
    keywords = run_videos.Run(args).sample(RecordingPipeline(), video, in_batch=False, finished=[], unstarted=[])
    assert keywords["crf"] == 28


@pytest.mark.parametrize("command", ["run", "decode"])
def test_help_says_what_crf_does(capsys, command):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--crf N the video encoder's constant-rate factor" in text
    assert "(H.264) 0-51, default 18; .webm (VP9) 0-63, default 30" in text and "Not for .webp, .gif or PNG" in text


# ------------------------------------------------------------------------------ decode: the VAE alone


@pytest.fixture(scope="module")
def latents_file(tmp_path_factory) -> Path:
    """Denoised random latents of a 32x32, 5-frame video, as a failed decode saves them, for a checkpoint that holds
    a tiny VAE alone (all a decode reads), built by motif-lite itself (diffusers takes seconds to import)."""
    checkpoint = tmp_path_factory.mktemp("vae-only")
    (checkpoint / "vae").mkdir()
    (checkpoint / "vae" / "config.json").write_text(json.dumps(TINY_VAE))
    config = WanVAEConfig.from_json(checkpoint / "vae" / "config.json")
    torch.manual_seed(0)
    save_file(WanVAE(config).state_dict(), checkpoint / "vae" / "diffusion_pytorch_model.safetensors")
    shape = config.latent_shape(32, 32, 5)
    folder = tmp_path_factory.mktemp("latents")
    saved = SavedLatents(torch.randn(shape, generator=torch.Generator().manual_seed(0)), folder / "fox.mp4", 32, 32, 5,
                         24.0, "float32", {"prompt": "a red fox"}, model=str(checkpoint))  # fmt: skip
    return save_latents(saved, folder / "fox.latents.safetensors")


def test_decode_writes_at_the_crf_given(latents_file, tmp_path, capsys):
    code, err = cli_error(capsys, "decode", str(latents_file), "--device", "cpu", "-o", str(tmp_path / "a.mp4"),
                          "--crf", "40")  # fmt: skip
    assert code == 0, err
    assert b"crf=40.0" in (tmp_path / "a.mp4").read_bytes()


def test_decode_refuses_a_crf_the_output_cannot_take_before_loading(latents_file, tmp_path, capsys):
    code, err = cli_error(capsys, "decode", str(latents_file), "--device", "cpu", "-o", str(tmp_path / "a.gif"),
                          "--crf", "20", "-m", str(tmp_path / "no-checkpoint"))  # fmt: skip
    assert code == cli.EXIT_USER_ERROR and "crf has no meaning for a .gif output" in err
    assert list(tmp_path.iterdir()) == []


def test_prepare_decode_keeps_the_crf_for_the_decode(latents_file, tmp_path):
    from motif_lite.io.latents import read_latents

    job = decoding.prepare_decode(read_latents(latents_file), tmp_path / "a.webm", device="cpu", crf=45)
    assert job.crf == 45
