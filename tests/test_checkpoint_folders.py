"""What `-m` and the weight-file flags are given, as a new user gives them: a local checkpoint folder without the
scheduler's or the guider's config (run, dry run, `check` and the Python API agree: the official values), a folder
that cannot be a checkpoint (refused by a dry run as by a run), a weights file given to -m (the flag that takes it),
a weight file given to the wrong flag (refused by a dry run as by a run), a path printed as the user typed it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import PIL.Image
import pytest

from motif_lite import cli
from motif_lite.checkpoint import locate_sources
from motif_lite.checkup import check_setup
from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import CheckpointError
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.memory_plan import AT_HAND
from motif_lite.settings import CHECKPOINT, DEFAULT, resolve_settings

SMALL = ["-W", "32", "-H", "32", "--video-frames", "5", "--steps", "1", "-n", "blurry", "--device", "cpu"]
NOTES = {
    "guider": "has no guider/guider_config.json: guidance takes the official values (APG scale 8, norm threshold "
    "12, momentum 0.1) unless a flag sets them",
    "scheduler": "has no scheduler/scheduler_config.json: the sampler and flow shift take the official values "
    "(Euler; shift 15 text-to-video, 8 image-to-video) unless a flag sets them",
}


@pytest.fixture(scope="module")
def tiny(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


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


@pytest.mark.parametrize("folder", ["guider", "scheduler"])
def test_a_run_on_a_local_folder_without_it_uses_the_official_values_as_check_says(
    tiny, tmp_path, capsys, no_network, folder
):
    # The user's case: `cp -r tiny tiny3 && rm -r tiny3/guider`; check and the dry run said the official values
    # are used, the run asked for an hf download of guider/*.
    root = without(tiny, tmp_path, folder)
    assert check_setup(root).passed
    code, out, err = run(capsys, "-m", str(root), "--dry-run")
    assert code == 0 and f"note: {root} {NOTES[folder]}" in err, err
    output = tmp_path / "fox.mp4"
    code, out, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(output))
    assert code == 0 and "hf download" not in err, err
    assert f"note: {root} {NOTES[folder]}" in err and output.is_file()
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    changed = "guidance" if folder == "guider" else "sampler"
    assert rows[changed].split()[1] == DEFAULT and rows["transformer"].split()[1] == CHECKPOINT, out


def test_the_python_api_finds_the_same_sources(tiny, tmp_path, no_network):
    # load_pipeline, serve and verify find the checkpoint through preflight's locate_sources.
    root = without(tiny, tmp_path, "guider")
    sources = locate_sources(root)
    assert sources.root == root and f"{root} {NOTES['guider']}" in sources.notes
    from motif_lite.request import GenerationRequest

    settings = resolve_settings(GenerationRequest("fox"), sources.configs, sources.transformer)
    assert settings.guidance.source == DEFAULT


def test_a_cached_hub_checkpoint_still_fetches_the_configs_its_model_index_lists(tiny, no_network):
    # From the Hub they are small files of the official repo: fetched (here: offline, so the download command).
    snapshot = no_network / "models--Motif-Technologies--Motif-Video-2B" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny, snapshot, ignore=shutil.ignore_patterns("guider"))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    with pytest.raises(MissingFilesError) as err:
        locate_sources(MOTIF_REPO)
    assert f"{MOTIF_REPO}: guider/* (HF_HUB_OFFLINE=1 is set)" in str(err.value)


def test_a_missing_feature_extractor_that_model_index_lists_is_still_required(tiny, tmp_path, no_network):
    # No official value stands in for it: an image-to-video run would fail only after loading.
    root = without(tiny, tmp_path, "feature_extractor")
    with pytest.raises(MissingFilesError, match="missing feature_extractor/preprocessor_config.json"):
        locate_sources(root)


def test_a_dry_run_names_the_missing_feature_extractor_with_the_runs_command(tiny, tmp_path, capsys, no_network):
    # The dry run said nothing while the run refused: the note names the file and the download the run prints.
    root = without(tiny, tmp_path, "feature_extractor")
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32), "red").save(image)
    code, _, err = run(capsys, "-m", str(root), "-i", str(image), "-p", "fox", *SMALL, "--dry-run")
    note = next((line for line in err.splitlines() if "feature_extractor" in line), "")
    assert code == 0 and "missing feature_extractor/preprocessor_config.json" in note, err
    assert f"--include 'feature_extractor/*' --local-dir {root}" in note


def test_a_dry_run_names_a_missing_shard_as_the_run_refuses_it(tiny, tmp_path, capsys, no_network):
    # An interrupted download of a sharded transformer: the index is there, a shard it names is not. The run
    # refused ("incomplete checkpoint: missing ...-00002-of-00002.safetensors") where the dry run said nothing.
    from safetensors.torch import load_file, save_file

    root = tmp_path / "sharded"
    shutil.copytree(tiny, root)
    weights = root / "transformer" / "diffusion_pytorch_model.safetensors"
    tensors, names = load_file(weights), [f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    keys = sorted(tensors)
    weight_map = {key: names[i >= len(keys) // 2] for i, key in enumerate(keys)}
    save_file({key: tensors[key] for key in keys if weight_map[key] == names[0]}, root / "transformer" / names[0])
    (root / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    weights.unlink()
    missing = f"incomplete checkpoint {root}: missing transformer/{names[1]}"
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code != 0 and missing in err, err
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "--dry-run")
    note = next((line for line in err.splitlines() if line.startswith("note: incomplete")), "")
    assert code == 0 and note.startswith(f"note: {missing}: planned without them"), err
    assert f"--include 'transformer/*' --local-dir {root}" in note


# ------------------------------------------------------------------ a local -m folder that cannot be a checkpoint


def _folders(tiny: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "empty").mkdir()
    holder = tmp_path / "models"
    holder.mkdir()
    (holder / "tiny").symlink_to(tiny, target_is_directory=True)
    ggufs = gguf_folder(tmp_path)
    return {
        "gguf": (
            ggufs,
            f"error: {ggufs} holds GGUF files, not a checkpoint; pass it as --gguf {ggufs}; -m stays the checkpoint "
            "folder or Hub repo id the configs come from",
        ),
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


def gguf_folder(tmp_path: Path) -> Path:
    """What `hf download Motif-Technologies/Motif-Video-2B-GGUF --local-dir ...` leaves: a .gguf file and .cache/."""
    folder = tmp_path / "Motif-Video-2B-GGUF"
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / "motif-video-2b-Q4_K_M.gguf").write_bytes(b"GGUF")
    return folder


@pytest.mark.parametrize("case", ["component", "empty", "holder", "gguf"])
def test_a_dry_run_refuses_a_folder_that_cannot_be_a_checkpoint_as_a_run_does(
    tiny, tmp_path, capsys, no_network, no_weights, case
):
    # It used to exit 0 with the built-in plan of the official model, and no word.
    folder, said = _folders(tiny, tmp_path)[case]
    dry = run(capsys, "-m", str(folder), "-p", "fox", "--dry-run")
    real = run(capsys, "-m", str(folder), "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    for code, out, err in (dry, real):
        assert code == cli.EXIT_USER_ERROR and err.startswith(said) and "Memory plan" not in out, err
    assert dry[2].splitlines()[0] == real[2].splitlines()[0]


def test_check_names_the_checkpoint_inside_a_folder_of_checkpoints(tiny, tmp_path):
    folder, _ = _folders(tiny, tmp_path)["holder"]
    (problem,) = [f.line() for f in check_setup(folder).problems]
    assert problem == f"problem  {folder}: is not a checkpoint folder but holds the checkpoint folder tiny; fix: " + (
        f"pass -m {folder / 'tiny'}"
    )


def test_check_points_a_folder_of_gguf_files_at_gguf(tmp_path):
    # It listed five missing configs, each with a download into the GGUF folder.
    folder = gguf_folder(tmp_path)
    (problem,) = [f.line() for f in check_setup(folder).problems]
    assert problem.startswith(f"problem  {folder}: holds GGUF files, not a checkpoint; fix: pass it as --gguf {folder}")
    (folder / "motif-video-2b-Q8_0.gguf").write_bytes(b"GGUF")
    (problem,) = [f.line() for f in check_setup(folder).problems]
    names = "motif-video-2b-Q4_K_M.gguf, motif-video-2b-Q8_0.gguf"
    assert f"fix: pass one of its files ({names}) as --gguf {folder / 'motif-video-2b-Q4_K_M.gguf'}" in problem


def test_a_folder_with_a_gguf_beside_the_checkpoint_is_still_a_checkpoint(tiny, tmp_path, no_network):
    root = tmp_path / "tiny"
    shutil.copytree(tiny, root, ignore=shutil.ignore_patterns("model_index.json"))
    (root / "motif-video-2b-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert locate_sources(root).root == root and check_setup(root).passed


def test_a_folder_with_model_index_json_is_a_checkpoint_whatever_else_it_holds(tmp_path, no_network):
    # model_index.json says a checkpoint: its problems are its missing components, not the GGUF file beside it.
    folder = gguf_folder(tmp_path)
    (folder / "model_index.json").write_text("{}")
    found = [f.line() for f in check_setup(folder).problems]
    assert found and not any("holds GGUF files" in line for line in found), found


def test_the_gguf_repo_given_to_m_is_pointed_at_gguf_before_any_download(tmp_path, capsys, no_network, no_weights):
    # It printed an `hf download` of text_encoder/*, vae/*, ... from the GGUF repo (which has none of them) and a
    # rerun that kept the wrong -m.
    said = (
        f"error: {GGUF_REPO} is the official GGUF repo, not a checkpoint; give a variant of it to --gguf (e.g. --gguf "
        f"Q4_K_M) and leave -m out: -m stays the official checkpoint {MOTIF_REPO}"
    )
    output = str(tmp_path / "a.mp4")
    for args in (["-p", "fox", "-o", output], ["--gguf", "Q4_K_M", "-p", "fox", "-o", output], ["--dry-run"]):
        code, out, err = run(capsys, "-m", GGUF_REPO, *args)
        assert code == cli.EXIT_USER_ERROR and err.startswith(said) and "hf download" not in err, err
        assert err.count("error:") == 1 and "Memory plan" not in out
    (problem,) = [f.line() for f in check_setup(GGUF_REPO).problems]
    assert problem.startswith(f"problem  {GGUF_REPO}: is the official GGUF repo, not a checkpoint; fix: give a ")


def test_a_dry_run_on_a_folder_with_configs_only_plans_and_says_what_a_run_needs(tiny, tmp_path, capsys, no_network):
    # Planning on a laptop from the configs alone stays possible.
    root = tmp_path / "configs"
    shutil.copytree(tiny, root, ignore=shutil.ignore_patterns("*.safetensors*"))
    code, out, err = run(capsys, "-m", str(root), "--dry-run")
    assert code == 0 and "Memory plan" in out, err
    assert f"note: incomplete checkpoint {root}: missing text_encoder/*.safetensors" in err
    assert f"a run needs them: hf download {MOTIF_REPO} --include 'text_encoder/*'" in err
    assert f"--local-dir {root}" in err


def test_a_hub_repo_not_at_hand_is_still_planned_from_the_built_in_sizes(capsys, no_network):
    code, out, err = run(capsys, "--dry-run")
    assert code == 0 and "not at hand" in err and "Memory plan" in out, err


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
    assert code == cli.EXIT_USER_ERROR and f"it is a file of the checkpoint {tiny}: give the folder: -m {tiny}" in err


def single_file_checkpoint(tiny: Path, path: Path, components: dict[str, str]) -> Path:
    """The tiny checkpoint's `components` (folder -> prefix) in one file, as ComfyUI's checkpoints/ folder holds."""
    from safetensors.numpy import load_file, save_file

    tensors = {}
    for folder, prefix in components.items():
        (file,) = (tiny / folder).glob("*.safetensors")
        tensors |= {prefix + name: array for name, array in load_file(file).items()}
    save_file(tensors, path)
    return path


def test_a_single_file_checkpoint_is_told_as_one(tiny, tmp_path, capsys, no_network):
    # Given to -m it was "goes to the flag of its component"; to --diffusion-model, 148 missing tensors listed.
    prefixes = {"transformer": "model.diffusion_model.", "vae": "first_stage_model."}
    both = single_file_checkpoint(tiny, tmp_path / "motif_aio.safetensors", prefixes)
    said = "the tensors of several components (VAE, transformer): a single-file checkpoint"
    for flags in (["-m", str(both)], ["-m", str(tiny), "--diffusion-model", str(both)]):
        code, _, err = run(capsys, *flags, "-p", "fox", "--dry-run")
        assert code == cli.EXIT_USER_ERROR and said in err and "missing" not in err, err
        assert "one file per component (--diffusion-model, --text-encoder, --vae)" in err
    # The transformer alone under ComfyUI's prefix is the transformer's file, whose own error says to strip it.
    alone = single_file_checkpoint(tiny, tmp_path / "motif.safetensors", {"transformer": "model.diffusion_model."})
    code, _, err = run(capsys, "-m", str(alone), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and f"(pass it as --diffusion-model {alone})" in err, err


def test_a_repo_folder_of_the_hub_cache_given_to_m_names_what_reads_it(tiny, tmp_path, capsys, no_network):
    # It was "incomplete checkpoint", with the command that downloads the whole checkpoint into the cache's insides.
    other_cache = tmp_path / "other-cache"
    for cache in (no_network, other_cache):
        repo = cache / "models--Motif-Technologies--Motif-Video-2B"
        shutil.copytree(tiny, repo / "snapshots" / "abc")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("abc")
    in_use = str(no_network / "models--Motif-Technologies--Motif-Video-2B")
    code, _, err = run(capsys, "-m", in_use, "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and "hf download" not in err, err
    assert err.rstrip().endswith(f"inside the Hugging Face cache, not a checkpoint folder; give the repo id, which "
                                 f"reads that cache: -m {MOTIF_REPO}")  # fmt: skip
    elsewhere = other_cache / "models--Motif-Technologies--Motif-Video-2B"
    (problem,) = [f.line() for f in check_setup(elsewhere).problems]
    assert f"fix: give its snapshot folder: -m {elsewhere / 'snapshots' / 'abc'} (or -m {MOTIF_REPO}, " in problem


def test_a_cache_repo_folder_whose_snapshot_is_gone_names_the_repo_id(tmp_path, no_network):
    # refs/main names a snapshot that a cache clean-up removed: no snapshot folder to give, so the repo id and cache.
    repo = tmp_path / "other-cache" / "models--Motif-Technologies--Motif-Video-2B"
    (repo / "snapshots").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    (problem,) = [f.line() for f in check_setup(repo).problems]
    assert f"fix: give the repo id: -m {MOTIF_REPO}, with HF_HUB_CACHE={tmp_path / 'other-cache'}" in problem


def test_a_component_folder_typed_with_a_trailing_slash_names_the_checkpoint(tiny, capsys, no_network):
    # Tab completion leaves the slash: the checkpoint is the folder above transformer/, not transformer/ itself.
    code, _, err = run(capsys, "-m", f"{tiny / 'transformer'}/", "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and err.rstrip().endswith(f"-m {tiny}"), err
    (problem,) = [f.line() for f in check_setup(f"{tiny / 'transformer'}/").problems]
    assert problem.endswith(f"-m {tiny}"), problem


def test_a_gguf_file_named_in_capitals_given_to_m_is_pointed_at_gguf(tmp_path, capsys, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    Path("MOTIF-Q8_0.GGUF").write_bytes(b"GGUF")
    code, _, err = run(capsys, "-m", "MOTIF-Q8_0.GGUF", "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "pass it as --gguf MOTIF-Q8_0.GGUF;" in err, err


def test_comfyuis_models_folder_given_to_m_names_the_flags_for_its_files(tiny, tmp_path, capsys, no_network):
    # It was "incomplete checkpoint", with the command that downloads the whole checkpoint into ComfyUI's models/.
    models = tmp_path / "ComfyUI" / "models"
    for folder, name, official in (("diffusion_models", "motifvideo_2b.safetensors", "transformer"),
                                   ("vae", "motifvideo_vae.safetensors", "vae")):  # fmt: skip
        (models / folder).mkdir(parents=True)
        shutil.copy(tiny / official / "diffusion_pytorch_model.safetensors", models / folder / name)
    (models / "text_encoders").mkdir()  # none of its files yet: FILE stands for the one to give
    fix = (f"--diffusion-model {models / 'diffusion_models' / 'motifvideo_2b.safetensors'} --text-encoder "
           f"{models / 'text_encoders' / 'FILE'} --vae {models / 'vae' / 'motifvideo_vae.safetensors'}; -m stays the "
           "checkpoint folder or Hub repo id the configs come from")  # fmt: skip
    code, _, err = run(capsys, "-m", str(models), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "hf download" not in err, err
    assert f"{models} is ComfyUI's models folder, not a checkpoint; give its files by flag: {fix}" in err, err
    (problem,) = [f.line() for f in check_setup(models).problems]
    assert f"{models}: is ComfyUI's models folder, not a checkpoint; fix: give its files by flag: {fix}" in problem
    # Two files in a folder: FILE, not the first (two VAEs: neither at Wan 2.1's shapes, so no --vae, and why: see
    # test_vae_folders.py); unet/ beside diffusion_models/: the flag named once, for the first.
    shutil.copy(models / "vae" / "motifvideo_vae.safetensors", models / "vae" / "other_vae.safetensors")
    (models / "unet").mkdir()
    (models / "unet" / "motif.gguf").write_bytes(b"GGUF")
    code, _, err = run(capsys, "-m", str(models), "-p", "fox", "--dry-run")
    assert "its vae/ folder: none of its files is Motif-Video's VAE" in err and err.count("--diffusion-model") == 1
    assert f"--diffusion-model {models / 'diffusion_models' / 'motifvideo_2b.safetensors'}" in err, err
    # Two text encoder files: FILE, not the first of them.
    for name in ("umt5.safetensors", "t5gemma.safetensors"):
        (models / "text_encoders" / name).write_bytes(b"")
    code, _, err = run(capsys, "-m", str(models), "-p", "fox", "--dry-run")
    assert f"--text-encoder {models / 'text_encoders' / 'FILE'}" in err, err


def test_a_pickle_checkpoint_given_to_m_says_what_to_give_instead(tmp_path, capsys, no_network):
    # It said only that a checkpoint directory was expected.
    ckpt = tmp_path / "motif-video-2b.ckpt"
    ckpt.write_bytes(b"PK\x03\x04")
    code, _, err = run(capsys, "-m", str(ckpt), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "it is a PyTorch pickle file, which motif-lite does not read" in err, err
    assert err.rstrip().endswith("give the official checkpoint folder (-m; left out: the official one), whose weights "
                                 "are safetensors files")  # fmt: skip
    (problem,) = [f.line() for f in check_setup(ckpt).problems]
    assert "fix: it is a PyTorch pickle file" in problem
    for other in ("model.pt", "model.PTH", "pytorch_model.bin"):  # torch.save's other names, any letter case
        (tmp_path / other).write_bytes(b"PK\x03\x04")
        code, _, err = run(capsys, "-m", str(tmp_path / other), "-p", "fox", "--dry-run")
        assert "it is a PyTorch pickle file" in err, (other, err)


@pytest.mark.parametrize("file", ["model_index.json", "transformer/config.json", "tokenizer/tokenizer.json"])
def test_a_file_inside_the_checkpoint_given_to_m_names_the_folder(tiny, tmp_path, capsys, no_network, file):
    # It said only that a checkpoint directory was expected.
    said = f"it is a file of the checkpoint {tiny}: give the folder: -m {tiny}"
    code, _, err = run(capsys, "-m", str(tiny / file), "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and err.rstrip().endswith(said), err
    (problem,) = [f.line() for f in check_setup(tiny / file).problems]
    assert problem.endswith(f"fix: {said}")
    elsewhere = tmp_path / "config.json"  # a file in no checkpoint: no checkpoint to name
    elsewhere.write_text("{}")
    code, _, err = run(capsys, "-m", str(elsewhere), "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    assert code == cli.EXIT_USER_ERROR and "checkpoint directory (or a Hub repo id)\n" in err, err


def test_a_path_is_printed_as_given(tmp_path, capsys, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "-m", "./nonexist", "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "error: no such checkpoint directory: ./nonexist\n" in err, err


def test_a_misspelled_checkpoint_folder_names_the_one_beside_it(tiny, tmp_path, capsys, monkeypatch, no_network):
    # "no such checkpoint directory: tin" said nothing of ./tiny beside it.
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny, tmp_path / "Motif-Video-2B", ignore=shutil.ignore_patterns("*.safetensors"))
    for typed, meant in (("motif-video-2b", "Motif-Video-2B"), ("./Motif-Video2B/", "./Motif-Video-2B")):
        code, _, err = run(capsys, "-m", typed, "-p", "fox", "--dry-run")
        said = f"error: no such checkpoint directory: {typed}; did you mean -m {meant}?\n"
        assert code == cli.EXIT_USER_ERROR and said in err, err
        (problem,) = [f.line() for f in check_setup(typed).problems]
        assert problem.endswith(f"fix: did you mean -m {meant}?"), problem
    code, _, err = run(capsys, "-m", "./other", "-p", "fox", "--dry-run")  # nothing close: no guess
    assert "error: no such checkpoint directory: ./other\n" in err, err


def test_the_models_short_name_alone_names_the_official_repo(tmp_path, capsys, monkeypatch, no_network):
    # "no such checkpoint directory: motif-video-2b" to a user who typed the model's name, meaning the Hub's.
    monkeypatch.chdir(tmp_path)
    for typed in ("motif-video-2b", "Motif_Video_2B"):
        code, _, err = run(capsys, "-m", typed, "-p", "fox", "--dry-run")
        said = f"error: no such checkpoint directory: {typed}; did you mean -m Motif-Technologies/Motif-Video-2B?\n"
        assert code == cli.EXIT_USER_ERROR and said in err, err
        (problem,) = [f.line() for f in check_setup(typed).problems]
        assert problem.endswith("fix: did you mean -m Motif-Technologies/Motif-Video-2B?"), problem
    for typed in ("./motif-video-2b", "wan-video"):  # a path, or another name: no guess
        code, _, err = run(capsys, "-m", typed, "-p", "fox", "--dry-run")
        assert f"error: no such checkpoint directory: {typed}\n" in err, err


def test_a_quoted_tilde_is_expanded_and_a_missing_folder_says_where_it_looked(
    tiny, tmp_path, capsys, monkeypatch, no_network
):
    # `-m "~/x"`: the shell leaves a quoted ~ alone; we expand it, and an error shows what it became.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x").symlink_to(tiny, target_is_directory=True)
    assert locate_sources("~/x").root == tmp_path / "x" and check_setup("~/x").passed
    code, _, err = run(capsys, "-m", "~/nothere", "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    said = f"no such checkpoint directory: ~/nothere (that is {tmp_path / 'nothere'})"
    assert code == cli.EXIT_USER_ERROR and f"error: {said}\n" in err, err
    (problem,) = [f.line() for f in check_setup("~/nothere").problems]
    assert f"no such checkpoint folder (that is {tmp_path / 'nothere'})" in problem


# ------------------------------------------------------------- a weight file given to the wrong flag, dry run


@pytest.mark.parametrize(
    ("flag", "file", "said"),
    [
        ("--vae", "transformer", "is not the VAE: it holds the transformer's tensors (pass it as --diffusion-model)"),
        ("--diffusion-model", "vae", "is not the transformer: it holds the VAE's tensors (pass it as --vae)"),
        ("--text-encoder", "vae", "is not the text encoder: it holds the VAE's tensors (pass it as --vae)"),
    ],
)
def test_a_dry_run_refuses_a_weight_file_given_to_the_wrong_flag_as_a_run_does(
    tiny, tmp_path, capsys, no_network, no_weights, flag, file, said
):
    path = tiny / file / "diffusion_pytorch_model.safetensors"
    dry = run(capsys, "-m", str(tiny), flag, str(path), "--dry-run")
    real = run(capsys, "-m", str(tiny), flag, str(path), "-p", "fox", "-o", str(tmp_path / "a.mp4"))
    for code, _, err in (dry, real):
        assert code == cli.EXIT_USER_ERROR and f"error: {path} {said}" in err, err


def test_a_dry_run_without_the_checkpoint_at_hand_still_reads_the_files_header(tiny, capsys, no_network):
    path = tiny / "transformer" / "diffusion_pytorch_model.safetensors"
    code, _, err = run(capsys, "--vae", str(path), "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "is not the VAE: it holds the transformer's tensors" in err, err


@pytest.mark.parametrize(
    ("flag", "file", "said"),
    [
        ("--vae", "vae/diffusion_pytorch_model.safetensors", "does not hold the VAE of Motif-Video"),
        ("--text-encoder", "text_encoder/model.safetensors", "does not hold the text encoder of Motif-Video"),
        ("--diffusion-model", "transformer/diffusion_pytorch_model.safetensors", "transformer_blocks.0.attn.to_q"),
    ],
)
def test_a_dry_run_without_the_checkpoint_at_hand_checks_the_files_shapes_as_a_run_does(
    tiny, tmp_path, capsys, no_network, no_weights, flag, file, said
):
    # The tiny model's files have the names of the official ones and other shapes: a run refuses them before its
    # download (against the official configs bundled with motif-lite); the dry run planned with them.
    path = tiny / file
    code, _, err = run(capsys, flag, str(path), "--dry-run")
    assert code == cli.EXIT_USER_ERROR and str(path) in err and said in err, err


def test_a_dry_run_with_the_right_weight_file_plans(tiny, capsys, no_network):
    path = tiny / "vae" / "diffusion_pytorch_model.safetensors"
    code, out, err = run(capsys, "-m", str(tiny), "--vae", str(path), "--dry-run")
    assert code == 0 and "Memory plan" in out and "weights from your files" in err, err


def test_dry_run_sources_are_found_without_weights_being_read(tiny, tmp_path, no_network, no_weights):
    root = without(tiny, tmp_path, "scheduler")
    sources = locate_sources(root, **AT_HAND)
    assert f"{root} {NOTES['scheduler']}" in sources.notes


# ------------------------------------------------------ a transformer in shards whose index was left out


def sharded_without_index(tiny: Path, tmp_path: Path) -> Path:
    """A copy of `tiny` whose transformer/ is two shards, model-0000N-of-00002 as diffusers names them, without the
    .index.json (left out of a download, or not copied)."""
    from safetensors.torch import load_file, save_file

    root = tmp_path / "sharded"
    shutil.copytree(tiny, root)
    folder = root / "transformer"
    tensors = load_file(folder / "diffusion_pytorch_model.safetensors")
    names = sorted(tensors)
    for number, part in ((1, names[: len(names) // 2]), (2, names[len(names) // 2 :])):
        shard = folder / f"diffusion_pytorch_model-0000{number}-of-00002.safetensors"
        save_file({name: tensors[name] for name in part}, shard)
    (folder / "diffusion_pytorch_model.safetensors").unlink()
    return root


def test_a_transformer_in_shards_without_their_index_is_read_as_the_quantizer_reads_it(
    tiny, tmp_path, capsys, no_network
):
    # It was "holds several .safetensors files and no .index.json saying how they fit", from which the quantizer
    # (quantize/sources.py) read the same folder: both read the shards together now (weights/safetensors_files.py).
    import torch

    from motif_lite.weights.loader import load_transformer

    root = sharded_without_index(tiny, tmp_path)
    sharded = load_transformer(root, dtype=torch.float32).state_dict()
    whole = load_transformer(tiny, dtype=torch.float32).state_dict()
    assert sharded.keys() == whole.keys() and all(torch.equal(sharded[name], whole[name]) for name in whole)
    output = tmp_path / "fox.mp4"
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(output))
    assert code == 0 and output.is_file(), err


def test_a_missing_shard_without_the_index_is_named_before_any_weights_load(
    tiny, tmp_path, capsys, no_network, no_weights
):
    root = sharded_without_index(tiny, tmp_path)
    (root / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    missing = "holds 1 of the 2 shards of diffusion_pytorch_model (missing: diffusion_pytorch_model-00002-of-00002"
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_USER_ERROR and missing in err, err


def test_shards_of_two_models_without_an_index_are_not_read_as_one(tmp_path):
    # The same count of shards, of two stems: not one model's shards, each missing the other's.
    from motif_lite.weights.safetensors_files import find_weight_files

    for name in ("a-00001-of-00002.safetensors", "b-00002-of-00002.safetensors"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match="holds several .safetensors files and no .index.json saying how"):
        find_weight_files(tmp_path)
    # Two of three shards, named without zero padding: the missing one named as they are.
    unpadded = tmp_path / "unpadded"
    unpadded.mkdir()
    for name in ("w-1-of-3.safetensors", "w-2-of-3.safetensors"):
        (unpadded / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"holds 2 of the 3 shards of w \(missing: w-3-of-3.safetensors\)"):
        find_weight_files(unpadded)


def test_a_tensor_in_two_shards_is_named_before_any_weights_load(tiny, tmp_path, capsys, no_network, no_weights):
    # Which copy a run would read is a guess: shards of two exports mixed in one folder, or a bad merge.
    from safetensors.torch import load_file, save_file

    root = sharded_without_index(tiny, tmp_path)
    first, second = (root / "transformer" / f"diffusion_pytorch_model-0000{n}-of-00002.safetensors" for n in (1, 2))
    tensors = load_file(second)
    name = sorted(load_file(first))[0]
    save_file({**tensors, name: load_file(first)[name]}, second)
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_USER_ERROR and f"tensor {name!r} appears in both {first} and {second}" in err, err


def text_encoder_in_shards(tiny: Path, tmp_path: Path, index: bool) -> Path:
    """A copy of `tiny` whose text_encoder/ is two shards, model-0000N-of-00002 as transformers names them, with
    their model.safetensors.index.json or without it."""
    import json

    from safetensors.torch import load_file, save_file

    root = tmp_path / "sharded-encoder"
    shutil.copytree(tiny, root)
    folder = root / "text_encoder"
    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    weight_map = {}
    for number, part in ((1, names[: len(names) // 2]), (2, names[len(names) // 2 :])):
        shard = f"model-0000{number}-of-00002.safetensors"
        save_file({name: tensors[name] for name in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    (folder / "model.safetensors").unlink()
    if index:
        (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root


def test_text_encoder_shards_with_their_index_run_and_pass_the_checks(tiny, tmp_path, capsys, no_network):
    # The official text encoder is in shards with their index: nothing is said of them, and transformers loads them.
    root = text_encoder_in_shards(tiny, tmp_path, index=True)
    output = tmp_path / "fox.mp4"
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(output))
    assert code == 0 and output.is_file(), err
    assert not [finding for finding in check_setup(root).problems if "text_encoder" in finding.message]


def test_a_missing_text_encoder_shard_without_the_index_is_named_before_any_weights_load(
    tiny, tmp_path, capsys, no_network, no_weights
):
    root = text_encoder_in_shards(tiny, tmp_path, index=False)
    (root / "text_encoder" / "model-00002-of-00002.safetensors").unlink()
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_USER_ERROR and "holds 1 of the 2 shards of model (missing: model-00002-of-00002" in err


def test_text_encoder_shards_without_their_index_are_named_before_any_weights_load(
    tiny, tmp_path, capsys, no_network, no_weights
):
    # transformers loads shards only through their index: it was "cannot load the text encoder ... no file named
    # model.safetensors", once the run had started, while `check` passed the folder.
    root = text_encoder_in_shards(tiny, tmp_path, index=False)
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == cli.EXIT_USER_ERROR and "but not model.safetensors.index.json" in err, err
    # into the checkpoint folder, where the include pattern's text_encoder/ puts it beside the shards
    assert f"--include 'text_encoder/model.safetensors.index.json' --local-dir {root}; for others" in err, err
    # check says it too, from the same code (it passed the folder).
    assert cli.main(["check", "-m", str(root)]) == cli.EXIT_USER_ERROR
    out = capsys.readouterr().out
    assert "text_encoder/" in out and "2 shards (model-00001-of-00002.safetensors ... model-00002-of-00002." in out
    assert "but not model.safetensors.index.json, without which transformers cannot load them; fix: " in out, out
    assert f"--include 'text_encoder/model.safetensors.index.json' --local-dir {root}; for others" in out, out


def test_a_weight_file_named_in_upper_case_is_taken_by_check_and_a_dry_run(tiny, tmp_path, capsys):
    """T.SAFETENSORS (a name some Windows tools write) is a .safetensors file, not "not a .safetensors file"."""
    upper = tmp_path / "T.SAFETENSORS"
    shutil.copy(tiny / "transformer" / "diffusion_pytorch_model.safetensors", upper)
    assert cli.main(["check", "-m", str(tiny), "--diffusion-model", str(upper)]) == 0, capsys.readouterr().out
    capsys.readouterr()
    code, _, err = run(capsys, "-m", str(tiny), "--diffusion-model", str(upper), "-p", "fox", *SMALL, "--dry-run")
    assert code == 0, err


def test_the_gguf_repos_short_name_is_not_told_the_checkpoints_repo(tmp_path, capsys, monkeypatch, no_network):
    # `-m Motif-Video-2B-GGUF` was asked "did you mean -m Motif-Technologies/Motif-Video-2B?": that -m downloads the
    # full weights, not the GGUF files the user named.
    monkeypatch.chdir(tmp_path)
    typed = GGUF_REPO.split("/")[-1]
    code, _, err = run(capsys, "-m", typed, "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and f"error: no such checkpoint directory: {typed}\n" in err, err


def test_a_checkpoint_folder_typed_a_letter_short_is_named(tmp_path):
    # `tin` for `tiny` (3 of its 4 letters: a close ratio of 0.86) is a typo to name, as the module says; a cutoff
    # above that missed it, the tests' typos being closer (a case or a dash).
    from motif_lite.io.path_fixes import close_checkpoint

    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "model_index.json").write_text("{}")
    assert close_checkpoint(str(tmp_path / "tin")) == str(tmp_path / "tiny")
    assert close_checkpoint(str(tmp_path / "other")) is None


def test_a_first_frame_on_a_folder_without_the_image_processor_is_refused_before_anything_loads(
    tiny, tmp_path, capsys, monkeypatch, no_network
):
    # A text-to-video folder (no feature_extractor/, nor in model_index.json): the dry run said nothing, and the run
    # failed only once every weight had loaded and the prompts were encoded, naming no fix.
    import motif_lite.encoders.text

    root = without(tiny, tmp_path, "feature_extractor")
    index = json.loads((root / "model_index.json").read_text())
    del index["feature_extractor"]
    (root / "model_index.json").write_text(json.dumps(index))
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32), "red").save(image)

    def loaded(*args, **kwargs):
        raise AssertionError("the text encoder loaded before the refusal")

    monkeypatch.setattr(motif_lite.encoders.text, "load_text_encoder", loaded)
    for dry_run in (["--dry-run"], []):
        code, _, err = run(capsys, "-m", str(root), "-i", str(image), "-p", "fox", *SMALL, *dry_run)
        assert code == cli.EXIT_USER_ERROR, err
        assert f"error: {root} has no feature_extractor/preprocessor_config.json" in err, err
        assert f"--include 'feature_extractor/*' --local-dir {root}" in err, err
    code, _, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "--dry-run")  # text-to-video still runs
    assert code == 0, err


def test_a_first_frame_on_a_folder_diffusers_saved_without_an_image_processor_is_refused_before_anything_loads(
    tiny, tmp_path, capsys, no_network
):
    # diffusers' save_pretrained of a text-to-video pipeline writes "feature_extractor": [null, null]; that counted as
    # listed, so the dry run passed and the run failed once every weight had loaded, naming no fix.
    root = without(tiny, tmp_path, "feature_extractor")
    index = json.loads((root / "model_index.json").read_text())
    index["feature_extractor"] = [None, None]
    (root / "model_index.json").write_text(json.dumps(index))
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32), "red").save(image)
    code, _, err = run(capsys, "-m", str(root), "-i", str(image), "-p", "fox", *SMALL, "--dry-run")
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: {root} has no feature_extractor/preprocessor_config.json" in err, err


def test_the_image_processor_refusal_with_a_weight_file_of_yours_names_your_folder_not_the_linked_one(
    tiny, tmp_path, capsys, no_network
):
    # With --vae FILE the checkpoint is a folder in the cache linking -m's files: the refusal named that folder, and
    # its hf download filled the cache, not the user's checkpoint.
    root = without(tiny, tmp_path, "feature_extractor")
    index = json.loads((root / "model_index.json").read_text())
    del index["feature_extractor"]
    (root / "model_index.json").write_text(json.dumps(index))
    vae = tmp_path / "my_vae.safetensors"
    shutil.copy(root / "vae" / "diffusion_pytorch_model.safetensors", vae)
    image = tmp_path / "first.png"
    PIL.Image.new("RGB", (32, 32), "red").save(image)
    code, _, err = run(capsys, "-m", str(root), "--vae", str(vae), "-i", str(image), "-p", "fox", *SMALL, "--dry-run")
    assert code == cli.EXIT_USER_ERROR, err
    assert f"error: {root} has no feature_extractor/preprocessor_config.json" in err, err
    assert err.rstrip().endswith(f"--include 'feature_extractor/*' --local-dir {root}"), err


@pytest.mark.parametrize("repo", [MOTIF_REPO, "Org/Tune"])
def test_a_cached_snapshot_without_feature_extractor_gets_no_download_into_the_cache(tmp_path, monkeypatch, repo):
    # The fix for a first frame on a folder without feature_extractor/ was `hf download ... --local-dir FOLDER`, which
    # for a Hub snapshot wrote files into the cache behind its back (and for another repo's, into that repo's).
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.settings import _no_image_processor

    monkeypatch.chdir(tmp_path)
    snapshot = tmp_path / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    said = _no_image_processor(CheckpointConfigs(root=snapshot, index={"_class_name": "MotifVideoPipeline"}))
    include = f"hf download {MOTIF_REPO} --include 'feature_extractor/*'"
    if repo == MOTIF_REPO:
        # At the snapshot's commit: a plain download fills main's newest, another snapshot, where main has moved on.
        assert said.endswith(f"or download the folder into the cache: {include} --revision {snapshot.name}")
    else:
        own = tmp_path / "Tune"
        assert said.endswith(f"hf download Org/Tune --local-dir {own}, then {include} --local-dir {own}, then -m {own}")
    assert f"--local-dir {snapshot}" not in said


def test_the_feature_extractor_fix_reads_the_cache_folder_in_any_case_and_only_in_models_folders(tmp_path):
    # Mutation pass 71: the official repo's snapshot in the cache's spelling of its id, and a folder named snapshots
    # outside any models--ORG--NAME folder (a folder of the user's, not the cache's).
    from motif_lite.settings import _image_processor_fix

    cached = tmp_path / "models--motif-technologies--motif-video-2b" / "snapshots" / "abc123"
    assert _image_processor_fix(cached).endswith("--revision abc123")
    assert _image_processor_fix(tmp_path / "mine" / "snapshots" / "abc123").startswith("copy the official")


# ------------------------------------------------ a cache snapshot copied without its blobs (an offline machine)


def snapshot_copied_alone(tiny: Path, tmp_path: Path) -> Path:
    """A copy of `tiny` laid out as a cache snapshot (every file a relative link into ../blobs/), its blobs/ left
    behind as `cp -r models--Org--Name/snapshots/COMMIT` leaves them: the links are there, their targets are not."""
    copy = tmp_path / "snapshot"
    for file in sorted(f for f in tiny.rglob("*") if f.is_file()):
        link = copy / file.relative_to(tiny)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path("../" * len(file.relative_to(tiny).parts), "blobs", file.name))
    return copy


def test_a_snapshot_copied_without_its_blobs_is_told_as_links_to_copy_again(tiny, tmp_path, capsys, no_network):
    # An air-gapped machine: the run said the files `ls` lists there were missing and offered only a download.
    root = snapshot_copied_alone(tiny, tmp_path)
    links = sum(1 for f in root.rglob("*") if f.is_symlink())
    code, out, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == 2 and f"{links} files there are symbolic links to files that are not there" in err, err
    assert (
        f"copy it again with the links followed, in place of this copy (rm -r {root} && cp -rL SNAPSHOT {root})" in err
    )
    report = check_setup(root)
    said = [f.line() for f in report.problems if f.subject == "symbolic links"]
    assert len(said) == 1 and "blobs/ folder its links point into; fix: copy it again" in said[0], said


def test_a_folder_missing_a_file_without_any_link_says_nothing_of_links(tiny, tmp_path, capsys, no_network):
    root = without(tiny, tmp_path, "vae")
    code, out, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    assert code == 2 and "missing vae/config.json" in err and "symbolic link" not in err, err
    assert not [f for f in check_setup(root).problems if f.subject == "symbolic links"]


def test_a_snapshot_whose_links_were_written_as_text_is_told_so_before_any_file_is_read(
    tiny, tmp_path, capsys, no_network
):
    # A snapshot zipped on Windows (or checked into git with core.symlinks off): each file holds its link's target.
    # The run said model_index.json was not valid JSON and offered a download; check said so of every config.
    root = tmp_path / "unzipped"
    for file in sorted(f for f in tiny.rglob("*") if f.is_file()):
        copy = root / file.relative_to(tiny)
        copy.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        copy.write_text("../" * len(file.relative_to(tiny).parts) + f"blobs/{digest}")
    texts = sum(1 for f in root.rglob("*") if f.is_file())
    code, out, err = run(capsys, "-m", str(root), "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    said = f"{texts} files there hold the target of a symbolic link, not its data"
    assert code == 2 and f"error: {root}: {said}" in err and "not valid JSON" not in err, err
    assert (
        f"copy it again with the links followed, in place of this copy (rm -r {root} && cp -rL SNAPSHOT {root})" in err
    )
    problems = [f.line() for f in check_setup(root).problems]
    assert len(problems) == 1 and said in problems[0], problems


@pytest.mark.parametrize("given", ["hf-home", "hf-home/hub"])
def test_a_hugging_face_cache_given_to_m_names_the_repo_id_and_the_cache(tiny, tmp_path, capsys, no_network, given):
    # A studio's cache copied onto a share and given as -m (its HF_HOME, or its hub/): the run offered to download
    # the whole checkpoint into the cache's top folder, with `hf download --local-dir`, beside the repos it holds.
    hub = tmp_path / "hf-home" / "hub"
    shutil.copytree(tiny, hub / "models--Org--Name" / "snapshots" / "abc123")
    model = str(tmp_path / given)
    code, out, err = run(capsys, "-m", model, "-p", "fox", *SMALL, "-o", str(tmp_path / "fox.mp4"))
    fix = f"it holds Org/Name: give the repo id, -m Org/Name, with HF_HUB_CACHE={hub}"
    assert code == 2 and f"error: {model} is a Hugging Face cache, not a checkpoint folder; {fix}" in err, err
    assert "hf download" not in err
    said = [f.line() for f in check_setup(model).problems]
    assert len(said) == 1 and said[0].endswith(f"fix: {fix}"), said


def test_a_folder_without_a_cache_repo_is_no_hugging_face_cache(tmp_path):
    from motif_lite.io.path_fixes import hub_cache_fix

    (tmp_path / "models--Org--Name").mkdir()  # no snapshots/: no repo of a cache
    assert hub_cache_fix(str(tmp_path)) is None and hub_cache_fix(str(tmp_path / "absent")) is None


def test_a_complete_folder_with_a_stray_broken_link_is_no_problem_for_check(tiny, tmp_path, no_network):
    # A link that no run reads (a notes file pointing at a share no longer mounted) made check call a complete
    # checkpoint folder unusable, with a copy of it all again as the fix.
    root = tmp_path / "ckpt"
    shutil.copytree(tiny, root)
    (root / "notes.txt").symlink_to(tmp_path / "unmounted" / "notes.txt")
    assert not check_setup(root).problems, [f.line() for f in check_setup(root).problems]


def test_a_stray_broken_link_whose_target_only_has_blobs_in_a_name_is_no_problem_for_check(tiny, tmp_path, no_network):
    # Only a link into a cache's blobs/ folder is a snapshot's; a notes file on a share whose folder is named
    # "myblobs" is none, and it is told so by the link's path parts, not by the text "blobs" anywhere in it.
    root = tmp_path / "ckpt"
    shutil.copytree(tiny, root)
    (root / "notes.txt").symlink_to(tmp_path / "myblobs" / "notes.txt")
    assert not check_setup(root).problems, [f.line() for f in check_setup(root).problems]


def test_a_link_gone_before_its_target_is_read_is_not_counted_as_a_snapshots(tmp_path, monkeypatch):
    # A link removed between the folder's listing and the reading of its target (os.readlink's OSError) is no
    # longer in the folder: it is no link of a snapshot copied without its blobs/ to report.
    from motif_lite.io import copied_links

    (tmp_path / "model.safetensors").symlink_to(tmp_path / "blobs" / "abc")
    assert copied_links.dangling_links(tmp_path) == [tmp_path / "model.safetensors"]

    def gone(link: Path) -> str:
        raise FileNotFoundError(2, "No such file or directory", str(link))

    monkeypatch.setattr(copied_links.os, "readlink", gone)
    assert copied_links.dangling_links(tmp_path) == []


def test_a_hugging_face_cache_holding_motif_video_and_others_names_motif_video_as_the_repo_id(tmp_path):
    # A studio's cache holds other repos too, some sorted before Motif-Video's: the repo id to give is the one a run
    # of motif-lite reads, not the first by name.
    from motif_lite.io.path_fixes import hub_cache_fix

    for repo in ("Aaa/Other", MOTIF_REPO):
        (tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots").mkdir(parents=True)
    assert f"give the repo id, -m {MOTIF_REPO}, with" in hub_cache_fix(str(tmp_path))


def test_comfyuis_own_folder_given_to_m_names_the_flags_for_the_files_under_its_models(
    tiny, tmp_path, capsys, no_network
):
    # It was "incomplete checkpoint", with the command that downloads the whole checkpoint into ComfyUI's install.
    comfyui = tmp_path / "ComfyUI"
    (comfyui / "custom_nodes").mkdir(parents=True)
    (comfyui / "main.py").write_text("")
    gguf = comfyui / "models" / "diffusion_models" / "motif_video_2b-Q4_K_M.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF")
    (comfyui / "models" / "text_encoders").mkdir()
    fix = f"--diffusion-model {gguf} --text-encoder {comfyui / 'models' / 'text_encoders' / 'FILE'}; -m stays"
    code, _, err = run(capsys, "-m", str(comfyui), "-p", "fox", "--dry-run")
    assert code == cli.EXIT_USER_ERROR and "hf download" not in err, err
    assert f"{comfyui} is ComfyUI's own folder, not a checkpoint; give its files by flag: {fix}" in err, err
    (problem,) = [f.line() for f in check_setup(comfyui).problems]
    assert f"{comfyui}: is ComfyUI's own folder, not a checkpoint; fix: give its files by flag: {fix}" in problem
