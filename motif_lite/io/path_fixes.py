"""Fixes for mistaken paths: what a user meant by a -m that is no checkpoint, and the flag or folder to give.

A checkpoint's component folder, a folder of checkpoints, a folder of GGUF files, a weights file or a file inside
a checkpoint given to -m: each is told with the fix (the checkpoint folder itself, or the flag that takes the file).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from huggingface_hub import constants

from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import CheckpointError, listed
from motif_lite.io.file_kinds import PICKLE_SUFFIXES, has_extension
from motif_lite.io.gguf_source import gguf_files
from motif_lite.io.linked import vae_folder_fix
from motif_lite.paths import user_path
from motif_lite.shell_syntax import quoted, variable_set


def expanded_as(path: str) -> str:
    """ " (that is /home/me/x)" for a path whose ~ was expanded (a quoted ~ reaches us as it is), so that an error
    shows where it looked; "" otherwise."""
    expanded = str(user_path(path))
    return f" (that is {expanded})" if path.startswith("~") and not expanded.startswith("~") else ""


def close_checkpoint(model: str) -> str | None:
    """For a -m folder that does not exist: a checkpoint folder beside where it would be whose name is close to its
    name (a typo: tin for tiny, Motif-Video-2b for Motif-Video-2B), written as the user wrote the path; else None."""
    path = user_path(model)
    try:
        beside = [child.name for child in path.parent.iterdir() if (child / "model_index.json").is_file()]
    except OSError:  # the parent is missing too, or unreadable
        return None
    folded = {name.lower(): name for name in beside}
    close = difflib.get_close_matches(path.name.lower(), list(folded), n=1, cutoff=0.6)
    if not close:
        return _official_repo_meant(model)
    given = model.rstrip("/\\")
    return given[: len(given) - len(path.name)] + folded[close[0]]


OFFICIAL_REPOS = (MOTIF_REPO, GGUF_REPO)  # the checkpoint's, and its GGUF files'


def _official_repo_meant(model: str) -> str | None:
    """The official repo for a bare name close to its own (`-m motif-video-2b`, `Motif_Video_2B`), the model's
    short name, which names no folder and is no Hub repo id without its owner; else None."""
    name = model.strip().rstrip("/\\")
    if "/" in name or "\\" in name:  # a path: the folder was meant
        return None
    typed = name.lower().replace("_", "-")
    official, gguf = (
        difflib.SequenceMatcher(None, typed, repo.split("/")[-1].lower()).ratio() for repo in OFFICIAL_REPOS
    )
    # `Motif-Video-2B-GGUF` is the GGUF repo's name: the checkpoint's repo would download the full weights instead
    return MOTIF_REPO if official >= 0.8 and official > gguf else None


# -m given the GGUF repo (a variant of it goes to --gguf): the problem and its fix, shared by `run` and `check`.
GGUF_REPO_AS_MODEL = (
    "is the official GGUF repo, not a checkpoint",
    f"give a variant of it to --gguf (e.g. --gguf Q4_K_M) and leave -m out: -m stays the official checkpoint "
    f"{MOTIF_REPO}, which the configs, text encoder and VAE come from",
)


def is_component_folder(path: Path) -> bool:
    """Whether `path` is a folder inside a checkpoint (its parent holds model_index.json) rather than one."""
    return not (path / "model_index.json").is_file() and (path.parent / "model_index.json").is_file()


def checkpoint_folders_inside(path: Path) -> list[Path]:
    """The checkpoint folders (holding model_index.json) directly inside `path`, when `path` is none itself: a
    folder of checkpoints given to -m."""
    if (path / "model_index.json").is_file():
        return []
    try:
        return sorted(child for child in path.iterdir() if (child / "model_index.json").is_file())
    except OSError:
        return []


def refuse_non_checkpoint_folder(model: str) -> None:
    """The `CheckpointError` for a local -m folder (as given: `model`) that is part of a checkpoint (e.g.
    ./Motif-Video-2B/transformer) or a folder holding checkpoint folders, naming the folder -m takes; nothing for
    any other folder."""
    path = user_path(model)
    gguf_fix = gguf_folder_fix(model)
    if gguf_fix is not None:
        raise CheckpointError(f"{model} {GGUF_FOLDER}; {gguf_fix}")
    cache_fix = cache_repo_fix(model)
    if cache_fix is not None:
        raise CheckpointError(f"{model} {CACHE_REPO_FOLDER}; {cache_fix}")
    hub_fix = hub_cache_fix(model)
    if hub_fix is not None:
        raise CheckpointError(f"{model} {HUB_CACHE_FOLDER}; {hub_fix}")
    comfyui_fix = comfyui_models_fix(model)
    if comfyui_fix is not None:
        raise CheckpointError(f"{model} {COMFYUI_MODELS}; {comfyui_fix}")
    install_fix = comfyui_install_fix(model)
    if install_fix is not None:
        raise CheckpointError(f"{model} {COMFYUI_INSTALL}; {install_fix}")
    vae_fix = vae_folder_as_model_fix(model)
    if vae_fix is not None:
        raise CheckpointError(f"{model} {VAE_FOLDER}; {vae_fix}")
    if is_component_folder(path):
        parent = parent_as_given(model)
        raise CheckpointError(
            f"{model} is the {path.name}/ folder of the checkpoint {parent}; -m takes the checkpoint folder itself: "
            f"-m {quoted(parent)}"
        )
    inside = checkpoint_folders_inside(path)
    if inside:
        names = ", ".join(child.name for child in inside)
        what = "the checkpoint folder" if len(inside) == 1 else "the checkpoint folders"
        which = "the checkpoint folder itself" if len(inside) == 1 else "one of them"
        first = quoted(str(Path(model) / inside[0].name))
        raise CheckpointError(
            f"{model} is not a checkpoint folder but holds {what} {names}; -m takes {which}: -m {first}"
        )


CACHE_REPO_FOLDER = "is a repo's folder inside the Hugging Face cache, not a checkpoint folder"


def cache_repo_fix(model: str) -> str | None:
    """For a Hugging Face cache's repo folder given to -m (models--Org--Name: its files are under snapshots/): the
    -m that reads it, the repo id when it is the cache in use, else its snapshot folder; None for any other
    folder. Without this, the missing-files message would download the whole checkpoint into the cache's insides."""
    path = user_path(model)
    if not (path.name.startswith("models--") and (path / "snapshots").is_dir()):
        return None
    repo = path.name.removeprefix("models--").replace("--", "/", 1)  # repo ids hold no "--"
    if path.parent.resolve() == Path(constants.HF_HUB_CACHE).resolve():
        return f"give the repo id, which reads that cache: -m {repo}"
    ref = path / "refs" / "main"
    snapshot = path / "snapshots" / ref.read_text().strip() if ref.is_file() else None
    if snapshot is None or not snapshot.is_dir():
        return f"give the repo id: -m {repo}, with {variable_set('HF_HUB_CACHE', str(path.parent))}"
    return f"give its snapshot folder: -m {quoted(str(snapshot))} (or -m {repo}, HF_HUB_CACHE set to its cache)"


HUB_CACHE_FOLDER = "is a Hugging Face cache, not a checkpoint folder"


def hub_cache_fix(model: str) -> str | None:
    """For a Hugging Face cache given to -m (a folder of models--Org--Name folders, or an HF_HOME holding one as
    hub/; a studio's cache copied onto a share): the repo id to give, with HF_HUB_CACHE set to that cache where it
    is not the one in use; None for any other folder. Without this, the missing-files message would download the
    whole checkpoint into the cache's top folder, beside its repos."""
    path = user_path(model)
    try:  # a folder this process may not enter is none of a cache it can read
        cache = path / "hub" if (path / "hub").is_dir() else path
        repos = sorted(child.name for child in cache.iterdir() if child.name.startswith("models--"))
        repos = [name for name in repos if (cache / name / "snapshots").is_dir()]
    except OSError:
        return None
    if not repos:
        return None
    ids = [name.removeprefix("models--").replace("--", "/", 1) for name in repos]  # repo ids hold no "--"
    repo = MOTIF_REPO if MOTIF_REPO in ids else ids[0]
    held = f"it holds {listed(ids, 3)}"
    if cache.resolve() == Path(constants.HF_HUB_CACHE).resolve():
        return f"{held}, and is the cache in use: give the repo id, -m {repo}"
    return f"{held}: give the repo id, -m {repo}, with {variable_set('HF_HUB_CACHE', str(cache))}"


GGUF_FOLDER = "holds GGUF files, not a checkpoint"
COMFYUI_MODELS = "is ComfyUI's models folder, not a checkpoint"
COMFYUI_INSTALL = "is ComfyUI's own folder, not a checkpoint"
# ComfyUI's models/ subfolders that a checkpoint never has, and the flag each one's files go to (models/vae/ is
# both ComfyUI's and a checkpoint's: it tells nothing alone).
_COMFYUI_FOLDERS = {
    "diffusion_models": "--diffusion-model",
    "unet": "--diffusion-model",
    "text_encoders": "--text-encoder",
    "clip": "--text-encoder",
}


def comfyui_models_fix(model: str) -> str | None:
    """For ComfyUI's models/ folder given to -m: the weight-file flags that take its files (each one's file where
    its folder holds one .safetensors or .gguf file, else FILE); None for any other folder. Without this, the
    missing-files message would download the whole checkpoint into ComfyUI's models folder."""
    path = user_path(model)
    if not path.is_dir() or (path / "model_index.json").is_file():
        return None
    folders = {name: flag for name, flag in _COMFYUI_FOLDERS.items() if (path / name).is_dir()}
    if not folders:
        return None
    flags = {}
    for name, flag in folders.items():
        try:
            files = sorted(p.name for p in (path / name).iterdir() if has_extension(p, ".safetensors", ".gguf"))
        except OSError:  # a folder this user may not read: its file is theirs to name
            files = []
        chosen = files[0] if len(files) == 1 else "FILE"
        flags.setdefault(flag, f"{flag} {quoted(str(Path(model) / name / chosen))}")
    # Its vae/ folder holds several VAEs side by side (Wan 2.2's, Flux's ...): Motif-Video's is told by its tensors.
    vae, vae_note = vae_folder_fix(str(Path(model) / "vae")), ""
    if vae is not None and vae.flag is not None:
        flags["--vae"] = vae.flag
    elif vae is not None:
        vae_note = f"; its vae/ folder: {vae.none_is}"
    return f"give its files by flag: {' '.join(flags.values())}{KEEP_MODEL}{vae_note}"


def comfyui_install_fix(model: str) -> str | None:
    """For ComfyUI's own folder given to -m (its models/ folder inside, as `comfyui_models_fix` tells it): the
    weight-file flags that take the files under its models/; None for any other folder. Without this, the
    missing-files message would download the whole checkpoint into ComfyUI's install, beside its code."""
    path = user_path(model)
    if not path.is_dir() or (path / "model_index.json").is_file():
        return None
    return comfyui_models_fix(str(Path(model) / "models"))


VAE_FOLDER = "holds VAE files, not a checkpoint"


def vae_folder_as_model_fix(model: str) -> str | None:
    """For ComfyUI's models/vae/ folder given to -m (VAE files and no checkpoint): the --vae that takes
    Motif-Video's VAE among them, or what each file holds when none is; None for any other folder. Without this,
    the missing-files message would download the whole checkpoint into it."""
    path = user_path(model)
    if not path.is_dir() or (path / "model_index.json").is_file() or is_component_folder(path):
        return None
    fix = vae_folder_fix(model)
    if fix is None or (path.name.lower() != "vae" and fix.flag is None):
        return None
    return fix.said(KEEP_MODEL)


# What a weights file given to -m is told beside the flag that takes it.
KEEP_MODEL = "; -m stays the checkpoint folder or Hub repo id the configs come from (leave it out for the official one)"


def gguf_folder_fix(model: str) -> str | None:
    """For a local -m folder that holds .gguf files and nothing of a checkpoint (as `hf download` of the GGUF repo
    leaves it): the flag that takes them instead; None for any other folder."""
    path = user_path(model)
    if not path.is_dir() or (path / "model_index.json").is_file():
        return None
    files = gguf_files(path)
    if not files or any(child.is_dir() and not child.name.startswith(".") for child in path.iterdir()):
        return None
    if len(files) == 1:
        return f"pass it as {_gguf_flag(files[0])} {quoted(model)}{KEEP_MODEL}"
    names = listed([file.name for file in files], 4)
    return f"pass one of its files ({names}) as --gguf {quoted(str(Path(model) / files[0].name))}{KEEP_MODEL}"


def parent_as_given(model: str) -> str:
    """The parent folder of the path `model`, written as the user wrote it (./a/b -> ./a, not a)."""
    return os.path.dirname(model.rstrip("/\\")) or "."


def file_hint(model: str) -> str:
    """ "; " and `file_fix(model)` for a file given to -m that belongs elsewhere; "" for any other file."""
    fix = file_fix(model)
    return f"; {fix}" if fix else ""


def file_fix(model: str) -> str | None:
    """For a file given to -m: the flag that takes a weights file (stable-diffusion.cpp's `-m model.gguf`, a ComfyUI
    model file), told from its name and header as the weight-file flags tell a file given to the wrong one; the
    checkpoint folder for a file inside one (its model_index.json, a component's config.json); None otherwise."""
    path = user_path(model)
    if path.suffix.lower() == ".gguf":
        return f"pass it as {_gguf_flag(path)} {quoted(model)}{KEEP_MODEL}"
    checkpoint = checkpoint_of_file(model)
    if checkpoint is not None:  # e.g. -m ./Motif-Video-2B/model_index.json, or its vae/config.json
        return f"it is a file of the checkpoint {checkpoint}: give the folder: -m {quoted(checkpoint)}"
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return (
            "it is a PyTorch pickle file, which motif-lite does not read (loading one may run any code in it); give "
            "the official checkpoint folder (-m; left out: the official one), whose weights are safetensors files"
        )
    if path.suffix.lower() != ".safetensors":
        return None
    from motif_lite.io.linked import other_component, other_model, other_model_fix, single_file_checkpoint
    from motif_lite.weights.safetensors_header import read_header

    try:
        names = list(read_header(path).tensors)
    except CheckpointError:
        names = []
    if (foreign := other_model(names)) is not None:  # SD, Flux, Wan, ...: no flag of ours takes it
        return f"it holds {other_model_fix(foreign, 'checkpoint')}"
    if (several := single_file_checkpoint(names)) is not None:  # ComfyUI's checkpoints/ folder: no one flag's
        return f"it holds {several}"
    holds = other_component("checkpoint", names)  # "the VAE's tensors (pass it as --vae)", or None
    if holds is None:
        return (
            f"a weights file goes to the flag of its component (--diffusion-model, --text-encoder or --vae "
            f"{quoted(model)}){KEEP_MODEL}"
        )
    return f"it holds {holds.replace(')', f' {quoted(model)})')}{KEEP_MODEL}"


def checkpoint_of_file(model: str) -> str | None:
    """The checkpoint folder (as the user wrote the path) that the file `model` is part of: the folder of a
    model_index.json, or the parent of a component folder; None for a file elsewhere."""
    path = user_path(model)
    if (path.parent / "model_index.json").is_file():
        return parent_as_given(model)
    if is_component_folder(path.parent):
        return parent_as_given(parent_as_given(model))
    return None


def _gguf_flag(path: Path) -> str:
    """--gguf for a transformer GGUF, --text-encoder-gguf for a text encoder one (told from its header; a file that
    cannot be read goes to --gguf, which says what is wrong with it)."""
    from motif_lite.weights.gguf_file import OtherGGUFKindError, read_gguf  # gguf: only for a file given to -m

    try:
        read_gguf(path)
    except OtherGGUFKindError as exc:
        return exc.flag
    except CheckpointError:
        pass
    return "--gguf"
