"""What `-m` and the weight-file flags are given, as a new user gives them: a local checkpoint folder without the
scheduler's or the guider's config (run, dry run, `check` and the Python API agree: the official values), a folder
that cannot be a checkpoint (refused by a dry run as by a run), a weights file given to -m (the flag that takes it),
a weight file given to the wrong flag (refused by a dry run as by a run), a path printed as the user typed it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import constants
from tiny_pipeline import make_tiny_checkpoint

from motif_lite import cli
from motif_lite.checkpoint import locate_sources
from motif_lite.checkup import check_setup
from motif_lite.choices import MOTIF_REPO
from motif_lite.io import hub
from motif_lite.preflight import AT_HAND
from motif_lite.settings import CHECKPOINT, DEFAULT, resolve_settings

SMALL = ["-W", "32", "-H", "32", "--video-frames", "5", "--steps", "1", "-n", "blurry", "--device", "cpu"]
NOTES = {
    "guider": "has no guider/guider_config.json: guidance takes the official values (APG scale 8, norm threshold "
    "12, momentum 0.1) unless a flag sets them",
    "scheduler": "has no scheduler/scheduler_config.json: the sampler and flow shift take the official values "
    "(Euler; shift 15 text-to-video, 8 image-to-video) unless a flag sets them",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt") / "tiny"
    make_tiny_checkpoint(root)
    return root


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """HF offline mode, an empty private cache, and every Hub call a test failure: nothing may be fetched."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for name in ("snapshot_download", "hf_hub_download", "HfApi"):
        monkeypatch.setattr(hub, name, lambda *a, **k: pytest.fail("a Hub call was made"))
    return tmp_path / "hf-cache"


@pytest.fixture
def no_weights(monkeypatch):
    """Any weight load is a test failure."""
    for target in ("encoders.text.load_text_encoder", "pipeline.load_vae", "pipeline.load_transformer"):
        monkeypatch.setattr(f"motif_lite.{target}", lambda *a, **k: pytest.fail("weights were loaded"))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["run", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def without(tiny: Path, tmp_path: Path, folder: str) -> Path:
    copy = tmp_path / f"no-{folder}"
    shutil.copytree(tiny, copy, ignore=shutil.ignore_patterns(folder))
    return copy


# ----------------------------------------------------- a local folder without the scheduler's or guider's config


# ------------------------------------------------------------------ a local -m folder that cannot be a checkpoint


def _folders(tiny: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty").mkdir()
    holder = tmp_path / "models"
    holder.mkdir()
    (holder / "tiny").symlink_to(tiny, target_is_directory=True)
    return {
        "component": (
            tiny / "transformer",
            f"error: {tiny / 'transformer'} is the transformer/ folder of the checkpoint {tiny}; -m takes the "
            f"checkpoint folder itself: -m {tiny}",
        ),
        "empty": (tmp_path / "empty", f"error: incomplete checkpoint {tmp_path / 'empty'}: missing text_encoder/"),
        "holder": (
            holder,
            f"error: {holder} is not a checkpoint folder but holds the checkpoint folder tiny; -m takes the checkpoint "
            f"folder itself: -m {holder / 'tiny'}",
        ),
    }


def test_check_names_the_checkpoint_inside_a_folder_of_checkpoints(tiny, tmp_path):
    folder, _ = _folders(tiny, tmp_path)["holder"]
    (problem,) = [f.line() for f in check_setup(folder).problems]
    assert problem == f"problem  {folder}: is not a checkpoint folder but holds the checkpoint folder tiny; fix: " + (
        f"pass -m {folder / 'tiny'}"
    )


# ------------------------------------------------------------------------------- a weights file given to -m


def test_a_gguf_given_to_m_is_pointed_at_gguf(tmp_path, capsys, monkeypatch, no_network):
    # stable-diffusion.cpp's `-m model.gguf`.
    monkeypatch.chdir(tmp_path)
    Path("x-Q4_K_M.gguf").write_bytes(b"GGUF")
    code, _, err = run(capsys, "-m", "x-Q4_K_M.gguf", "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR, err
    assert "error: x-Q4_K_M.gguf is a file; expected a checkpoint directory (or a Hub repo id); pass it as " in err
    assert "--gguf x-Q4_K_M.gguf; -m stays the checkpoint folder or Hub repo id the configs come from" in err
    (problem,) = [f.line() for f in check_setup("x-Q4_K_M.gguf").problems]
    assert "is a file, not a checkpoint folder; fix: pass it as --gguf x-Q4_K_M.gguf" in problem


def test_a_safetensors_file_given_to_m_is_pointed_at_its_components_flag(tiny, tmp_path, capsys, no_network):
    vae = tmp_path / "wan_vae.safetensors"  # ComfyUI's name for it
    shutil.copy(tiny / "vae" / "diffusion_pytorch_model.safetensors", vae)
    code, _, err = run(capsys, "-m", str(vae), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and f"it holds the VAE's tensors (pass it as --vae {vae})" in err, err
    inside = tiny / "transformer" / "diffusion_pytorch_model.safetensors"
    code, _, err = run(capsys, "-m", str(inside), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and f"it is a file of the checkpoint {tiny}: -m {tiny}" in err, err


def test_a_path_is_printed_as_given(tmp_path, capsys, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "-m", "./nonexist", "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "error: no such checkpoint directory: ./nonexist\n" in err, err


# ------------------------------------------------------------- a weight file given to the wrong flag, dry run


