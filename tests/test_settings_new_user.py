"""Sampling settings as a user from diffusers, ComfyUI or stable-diffusion.cpp gives them: other tools' spellings,
settings that change nothing, checkpoint options motif-lite does not implement. No weights: requests, configs and
the command-line parser only."""

from __future__ import annotations

import pytest

from motif_lite import cli
from motif_lite.cli import run as run_command
from motif_lite.request import GenerationRequest, RequestError


def parse_run(*flags: str) -> GenerationRequest:
    return run_command.request_from_args(cli.build_parser().parse_args(["run", "-p", "fox", *flags]))


@pytest.mark.parametrize(
    ("given", "meant"),
    [("dpmpp_2m", "dpm++2m"), ("DPM++ 2M", "dpm++2m"), ("dpmpp-2m", "dpm++2m"), ("Euler", "euler")],
)
def test_other_tools_spellings_of_a_sampler_name_it(given, meant, tmp_path):
    # ComfyUI's KSampler calls DPM++ 2M `dpmpp_2m` (and so does motif_lite.sampling); it is the same sampler.
    assert parse_run("--sampling-method", given).sampler == meant
    request, _ = GenerationRequest("fox", sampler=given, output=str(tmp_path / "a.mp4")).resolve()
    assert request.sampler == meant


def test_guidance_method_in_capitals(tmp_path):
    assert parse_run("--guidance", "CFG").guidance == "cfg"
    request, _ = GenerationRequest("fox", guidance="APG", output=str(tmp_path / "a.mp4")).resolve()
    assert request.guidance == "apg"


def test_a_sampler_that_is_not_there_is_still_refused(capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_run("--sampling-method", "euler_ancestral")
    assert "invalid choice: 'euler_ancestral' (choose from 'euler', 'dpm++2m')" in capsys.readouterr().err
    with pytest.raises(RequestError, match="unknown sampler 'ddim'; choose one of euler, dpm\\+\\+2m"):
        GenerationRequest("fox", sampler="ddim", output=str(tmp_path / "a.mp4")).resolve()
