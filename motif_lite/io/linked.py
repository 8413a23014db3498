"""A checkpoint folder assembled from weight files a user already has, without copying them.

ComfyUI's instructions have users download the official transformer, text encoder and VAE weights and rename them
(`models/diffusion_models/motifvideo_2b.safetensors`, ...); stable-diffusion.cpp users keep one file per component
too. Such a file is the official one under another name, so a run needs only the small files around it (configs,
tokenizer) from the checkpoint. This module puts both together as one folder in the official layout, so that every
reader downstream (loaders, `check`, the memory planner, diffusers in `verify`) sees an ordinary checkpoint:

    root = linked_checkpoint(configs_root, {"transformer": Path("motifvideo_2b.safetensors")})
    root / "transformer/diffusion_pytorch_model.safetensors"   # -> motifvideo_2b.safetensors (a link)
    root / "transformer/config.json"                           # -> configs_root's (a link)

Every entry is a symbolic link (a hard link where symbolic links are not allowed). The folder lives in the user's
cache (`$XDG_CACHE_HOME/motif-lite/linked/`, else `~/.cache/...`), named after what it links (and which files are
under those names now), so a later run with the same files reuses it; it is created whole or not at all, so parallel
ranks can race for it safely.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from motif_lite.choices import MOTIF_REPO
from motif_lite.errors import Audience, CheckpointError, ConfigError
from motif_lite.io.file_kinds import PICKLE_SUFFIXES, has_extension
from motif_lite.io.user_cache import user_cache_folder
from motif_lite.paths import user_path
from motif_lite.shell_syntax import quoted

# Where each component's weights go in the official layout, and which of the checkpoint's files they replace.
WEIGHT_NAMES = {
    "transformer": "transformer/diffusion_pytorch_model.safetensors",
    "text_encoder": "text_encoder/model.safetensors",
    "vae": "vae/diffusion_pytorch_model.safetensors",
}
_REPLACED = {component: f"{component}/*.safetensors*" for component in WEIGHT_NAMES}  # shards and their index too
FLAGS = {"transformer": "--diffusion-model", "text_encoder": "--text-encoder", "vae": "--vae"}
# The components a GGUF file can give instead, with the setting that gives that GGUF: motif-lite run's flag and the
# Python API's keyword.
GGUF_SETTINGS = {"transformer": ("--gguf", "gguf"), "text_encoder": ("--text-encoder-gguf", "text_encoder_gguf")}
# Tensor names that tell what a file holds: ComfyUI's and sd.cpp's model folders keep every kind side by side, and a
# file given to the wrong flag must be named as what it is (a text encoder would otherwise load with random weights).
_KINDS = {
    "lora": re.compile(r"\.(lora_(A|B|down|up)\.weight|alpha|hada_\w+|lokr_\w+)$"),
    "text_encoder": re.compile(r"(^|\.)(embed_tokens|vision_tower|multi_modal_projector)\."),
    # diffusers' names, then Wan's own (ComfyUI's wan_2.1_vae.safetensors; `vae/wan_names.py` reads them)
    "vae": re.compile(
        r"^((de|en)coder\.(conv_in|down_blocks|up_blocks|mid_block)|(post_)?quant_conv)\."
        r"|^(en|de)coder\.(conv1|downsamples|upsamples|middle|head)\."
    ),
    "transformer": re.compile(r"^(transformer_blocks|single_transformer_blocks|context_embedder|x_embedder)\."),
}
_KIND_NAMES = {
    "lora": "a LoRA's tensors (pass it as --lora)",
    "text_encoder": "the text encoder's tensors (pass it as --text-encoder)",
    "vae": "the VAE's tensors (pass it as --vae)",
    "transformer": "the transformer's tensors (pass it as --diffusion-model)",
}


def refuse_file_beside_gguf(
    files: Mapping[str, object],
    gguf: object,
    text_encoder_gguf: object,
    *,
    audience: Audience = Audience.RUN_OR_PYTHON,
) -> None:
    """Raise `ConfigError` for a component given both a weight file of the user's (`files`, component -> file) and
    a GGUF file: the GGUF would replace the file, which would go unread without a word. Named as the Python API's
    keywords ('weights['transformer'] and gguf'), or (`Audience.FLAGS`) as motif-lite run's flags."""
    ggufs = {"transformer": gguf, "text_encoder": text_encoder_gguf}
    for component, (flag, keyword) in GGUF_SETTINGS.items():
        if files.get(component) is None or ggufs[component] is None:
            continue
        # Only a command's own check names its flags; else (run refuses its flags first, so RUN_OR_PYTHON here
        # is a Python caller) the keywords alone.
        as_flags = audience is Audience.FLAGS
        names = f"{FLAGS[component]} and {flag}" if as_flags else f"weights[{component!r}] and {keyword}"
        raise ConfigError(f"{names} both give the {component.replace('_', ' ')}; keep one")


def cache_folder() -> Path:
    """Where the linked folders live: motif-lite/linked in the user's cache folder (XDG_CACHE_HOME, else ~/.cache)."""
    return user_cache_folder() / "linked"


def check_weight_file(component: str, path: str | Path) -> Path:
    """The user's weight file for `component`, made absolute; `CheckpointError` when it is not one."""
    if component not in WEIGHT_NAMES:  # e.g. ComfyUI's "unet" or "clip" for the Python API's `weights` keys
        raise CheckpointError(f"no component {component!r} takes a weight file; use {', '.join(WEIGHT_NAMES)}")
    file = user_path(path)
    if file.is_dir():  # e.g. ComfyUI's models/vae/ folder, or a checkpoint's vae/ folder
        problem = f"the {component.replace('_', ' ')} file {file} is a folder"
        vae_fix = vae_folder_fix(str(path)) if component == "vae" else None
        if vae_fix is not None:  # it names each file: no list before it
            raise VAEFolderError(problem, vae_fix)
        # ComfyUI's models/unet/ holds GGUF files, which --diffusion-model and --text-encoder take too
        suffixes = (".safetensors", ".gguf") if component in GGUF_SETTINGS else (".safetensors",)
        inside = sorted(p.name for suffix in suffixes for p in file.glob(f"*{suffix}"))
        kinds = " or ".join(suffixes)
        holds = f" (it holds {', '.join(inside)})" if inside else f" (it holds no {kinds} file)"
        # One file there: the path to type, quoted to be pasted ("My Models"), not a file name to join to the folder.
        one = f": {quoted(file / inside[0])}" if len(inside) == 1 else ""
        raise CheckpointError(f"{problem}{holds}; pass the {kinds} file itself{one}")
    if not file.is_file():
        raise CheckpointError(f"the {component.replace('_', ' ')} file {file} does not exist")
    if not has_extension(file, ".safetensors"):
        why = _NOT_READ.get(file.suffix.lower(), "")
        raise CheckpointError(
            f"the {component.replace('_', ' ')} file {file} is not a .safetensors file{why}; {_OURS[component]}"
        )
    shard = re.search(r"-\d+-of-(\d+)\.safetensors$", file.name)  # e.g. text_encoder/model-00001-of-00002...
    if shard is not None and int(shard[1]) > 1:
        raise CheckpointError(
            f"the {component.replace('_', ' ')} file {file} is one shard of {int(shard[1])}; {FLAGS[component]} takes "
            f"one whole file: pass the checkpoint folder that holds the shards with -m instead"
        )
    return file.resolve()


# Why a weight file of another format is not read (Wan's own Wan2.1_VAE.pth, a GGUF VAE of ComfyUI-GGUF's users).
_PICKLE = ": PyTorch pickles are not read (loading one can run code)"
_NOT_READ = {
    **dict.fromkeys(PICKLE_SUFFIXES, _PICKLE),
    ".gguf": ": a GGUF file is read for the transformer (--gguf) and the text encoder (--text-encoder-gguf)",
}


# The prefixes a single-file checkpoint (ComfyUI's checkpoints/ folder) puts before each component's tensor names.
_CHECKPOINT_PREFIX = re.compile(
    r"^(model\.diffusion_model\.|diffusion_model\.|first_stage_model\.|cond_stage_model\.|text_encoders\.\w+\.)"
)


# Other models' files, told by tensor names only they have, under the prefix of ComfyUI's saves where there is one:
# ComfyUI's checkpoints/, unet/, diffusion_models/ and vae/ folders hold them beside ours, and one given to a flag of
# ours is named as what it is, not as the component whose names it shares (an SD checkpoint holds a VAE too) or as
# two hundred missing tensors. The first that matches wins: SDXL before SD 1.x (same UNet names), checkpoints before
# their VAE.
_COMFY = r"^(?:model\.diffusion_model\.|diffusion_model\.)?"
# Other video VAEs, under diffusers' names and their own: ComfyUI's models/vae/ folder holds them beside Wan 2.1's
# (Motif-Video's, read under either naming), and their shapes alone would say only "N tensors do not match".
WAN22_VAE = "Wan 2.2's VAE (Wan2.2-TI2V-5B's, 48 latent channels; Motif-Video uses Wan 2.1's)"
HUNYUAN_VIDEO_VAE = "HunyuanVideo's VAE"
_OTHER_MODELS: dict[str, re.Pattern | tuple[re.Pattern, ...]] = {
    "a Stable Diffusion XL checkpoint": re.compile(r"^conditioner\.embedders\."),
    "a Stable Diffusion XL UNet": re.compile(_COMFY + r"label_emb\."),
    "a Stable Diffusion 1.x checkpoint": re.compile(r"^cond_stage_model\.transformer\."),
    "a Stable Diffusion 2.x checkpoint": re.compile(r"^cond_stage_model\.model\."),
    "a Stable Diffusion 1.x or 2.x UNet": re.compile(_COMFY + r"(input_blocks|middle_block|output_blocks)\.\d"),
    "a Stable Diffusion 3 transformer": re.compile(_COMFY + r"joint_blocks\.\d"),
    "a HunyuanVideo transformer": re.compile(_COMFY + r"double_blocks\.\d+\.img_attn_qkv\."),
    "a Flux transformer": re.compile(_COMFY + r"double_blocks\.\d+\.img_attn\."),
    "a Wan transformer": re.compile(_COMFY + r"blocks\.\d+\.(self_attn|cross_attn)\."),
    "an LTX-Video transformer": re.compile(_COMFY + r"(adaln_single|patchify_proj)\."),
    "a T5 text encoder (Wan's umt5, Flux's t5xxl)": re.compile(r"^(shared\.weight$|encoder\.block\.\d)"),
    "a CLIP text encoder": re.compile(r"^text_model\.embeddings\.token_embedding\."),  # T5Gemma2's: embed_tokens
    # Wan 2.2's own names nest each level's blocks (`downsamples.0.downsamples.1`); diffusers' (is_residual) group
    # the encoder's too, which Wan 2.1's keep flat, and name one `upsampler` per level.
    WAN22_VAE: re.compile(
        r"^(en|de)coder\.(down|up)samples\.\d+\.(down|up)samples\.\d"
        r"|^encoder\.down_blocks\.\d+\.(resnets\.\d+\.norm1\.gamma|downsampler\.resample\.)"
        r"|^decoder\.up_blocks\.\d+\.upsampler\.resample\."
    ),
    # Both of: causal convolutions that wrap a Conv3d as `.conv` (as LTX-Video's VAE's do) and a mid-block attention
    # of separate projections (as an image VAE's under diffusers' names). Tencent's release and ComfyUI's copy use
    # diffusers' names (diffusers' converter renames no VAE tensor); Tencent's loader also takes them under the
    # `vae.` prefix of a training checkpoint (hyvideo/vae/__init__.py strips it).
    HUNYUAN_VIDEO_VAE: (
        re.compile(r"^(vae\.)?(en|de)coder\.(conv_in|conv_out)\.conv\."),
        re.compile(r"^(vae\.)?(en|de)coder\.mid_block\.attentions\.0\.to_q\."),
    ),
    "an image VAE (Stable Diffusion's or Flux's)": re.compile(r"^(first_stage_model\.)?(en|de)coder\.(down|up)\.\d"),
}
# What Motif-Video's own file for each flag is, and where it comes from.
_WITHOUT_IT = "a run without this file uses it, downloaded with the checkpoint"
_OURS = {
    "transformer": f"Motif-Video's transformer is transformer/diffusion_pytorch_model.safetensors of {MOTIF_REPO} "
    f"({_WITHOUT_IT}; --gguf Q4_K_M: a quantized one)",
    "vae": f"Motif-Video's VAE is vae/diffusion_pytorch_model.safetensors of {MOTIF_REPO} ({_WITHOUT_IT}), or the "
    "same weights under Wan's names (ComfyUI's wan_2.1_vae.safetensors)",
    "text_encoder": f"Motif-Video's text encoder is text_encoder/model.safetensors of {MOTIF_REPO} ({_WITHOUT_IT})",
    "lora": "--lora takes a LoRA trained on Motif-Video's transformer",
    "checkpoint": f"Motif-Video's checkpoint is the Hub repo {MOTIF_REPO} (leave -m out to use it), or a folder of it",
}


def other_model(names: Iterable[str]) -> str | None:
    """Which other model's file the tensor `names` are, in words ("a Stable Diffusion 1.x checkpoint"); None for
    Motif-Video's or an unknown model's."""
    names = list(names)
    return next((model for model, patterns in _OTHER_MODELS.items() if _holds(patterns, names)), None)


def _holds(patterns: re.Pattern | tuple[re.Pattern, ...], names: list[str]) -> bool:
    """Whether some of `names` match `patterns`: the one pattern, or each of several (names that only together
    tell a model apart from others)."""
    every = patterns if isinstance(patterns, tuple) else (patterns,)
    return all(any(pattern.search(name) for name in names) for pattern in every)


def other_model_fix(model: str, component: str) -> str:
    """What a user who gave `model`'s file (`other_model`) as `component`'s weights ("transformer", "vae",
    "text_encoder", "lora", "checkpoint" for -m) needs instead: what Motif-Video's file is and where it comes from."""
    return f"{model}, not Motif-Video's; {_OURS[component]}"


def other_component(component: str, names: Iterable[str]) -> str | None:
    """What a file given as `component`'s weights holds instead, from its tensor names, in words with the flag
    that takes it (e.g. "the VAE's tensors (pass it as --vae)"), or another model's file with where ours comes from
    (`other_model_fix`); None when its names are `component`'s own or nothing known."""
    names = list(names)
    found = _kinds_found(names)
    if "lora" in found and component != "lora":  # a LoRA of another model too: the LoRA loader names that
        return _KIND_NAMES["lora"]
    if (model := other_model(names)) is not None:
        return other_model_fix(model, component)
    if len(found) > 1:  # its own names among others': a single-file checkpoint, which no one flag takes
        return _single_file_checkpoint(found)
    if component in found:  # its own names, with whatever else: a damaged or merged file, not a mix-up
        return None
    return next((_KIND_NAMES[kind] for kind in _KINDS if kind in found), None)


def single_file_checkpoint(names: Iterable[str]) -> str | None:
    """What a file holding the tensors of several components is, and what to give instead; None for any other."""
    found = _kinds_found(names)
    return _single_file_checkpoint(found) if len(found) > 1 and "lora" not in found else None


def _single_file_checkpoint(kinds: set[str]) -> str:
    held = ", ".join(_COMPONENT_WORDS[kind] for kind in _KINDS if kind in kinds)
    return (
        f"the tensors of several components ({held}): a single-file checkpoint, which motif-lite does not read; "
        "give the official checkpoint folder (-m; left out: the official one), or one file per component "
        "(--diffusion-model, --text-encoder, --vae)"
    )


_COMPONENT_WORDS = {"lora": "LoRA", "text_encoder": "text encoder", "vae": "VAE", "transformer": "transformer"}


def _kinds_found(names: Iterable[str]) -> set[str]:
    """The kinds of `_KINDS` whose tensor names are among `names`, also under a single-file checkpoint's prefix."""
    names = [_CHECKPOINT_PREFIX.sub("", name) for name in names]
    return {kind for kind, pattern in _KINDS.items() if any(pattern.search(name) for name in names)}


# What makes a GGUF of each component's safetensors file (the VAE and LoRAs are used as they are).
_QUANTIZE = {
    "transformer": "python -m motif_lite.quantize makes a GGUF of it",
    "text_encoder": "python -m motif_lite.quantize --component text_encoder makes a GGUF of it",
}


def safetensors_advice(path: Path) -> str:
    """What to do with the safetensors file `path`, given where a GGUF file is wanted: the flag that takes it as it
    is, from its tensor names (ComfyUI's and sd.cpp's model folders hold every kind side by side), and the
    quantizer where it makes a GGUF of that kind."""
    from motif_lite.weights.safetensors_header import read_header

    try:
        found = _kinds_found(read_header(path).tensors)
    except CheckpointError:  # damaged: what it holds cannot be told
        found = set()
    kind = next((kind for kind in _KINDS if kind in found), None)
    if kind is None:
        return (
            "it is a safetensors file: weights in that format go to --diffusion-model (the transformer) or "
            "--text-encoder, as they are; python -m motif_lite.quantize makes a GGUF of them"
        )
    quantize = f"; {_QUANTIZE[kind]}" if kind in _QUANTIZE else ""
    return f"it is a safetensors file that holds {_KIND_NAMES[kind]}{quantize}"


def linked_checkpoint(root: Path, weights: Mapping[str, Path], cache: Path | None = None) -> Path:
    """A folder in the official layout: every file of `root` (configs, tokenizer, the other components' weights)
    except the weights of the components in `weights`, whose files take their official names instead (see the
    module docstring). `weights`: component ("transformer", "text_encoder", "vae") -> an existing file."""
    unknown = sorted(set(weights) - set(WEIGHT_NAMES))
    if unknown:
        raise ValueError(f"unknown components {unknown}; expected some of {sorted(WEIGHT_NAMES)}")
    links = {
        rel: target
        for rel, target in _files(root).items()
        if not any(Path(rel).match(_REPLACED[component]) for component in weights)
    }
    links.update({WEIGHT_NAMES[component]: Path(file).resolve() for component, file in weights.items()})
    key = hashlib.sha256(
        "\n".join(f"{rel}\t{target}\t{_identity(target)}" for rel, target in sorted(links.items())).encode()
    )
    folder = (cache or cache_folder()) / key.hexdigest()[:16]
    if not folder.is_dir():
        _create(folder, links)
    return folder


def checkpoint_behind(folder: Path) -> Path:
    """The checkpoint folder whose configs `folder` links, where `folder` is a linked folder (`linked_checkpoint`):
    what a message about its files should name, for the user to change (a command that writes into the linked folder
    changes a cache). Found through the symbolic link of a config every checkpoint has; `folder` itself where it is
    no linked folder, or its entries are hard links, which name no folder."""
    if folder.parent != cache_folder():
        return folder
    for rel in ("model_index.json", "text_encoder/config.json", "vae/config.json", "tokenizer/tokenizer_config.json"):
        link = folder / rel
        if link.is_symlink():  # to the checkpoint's file itself, not resolved (a Hub snapshot's links to its blobs)
            return Path(os.readlink(link)).parents[len(Path(rel).parts) - 1]
    return folder


def _identity(file: Path) -> str:
    """Which file is under a path now: a folder of hard links (where symbolic links are not allowed) keeps the files
    it was made of, so a file replaced under the same name (a new download) must give another folder."""
    stat = file.stat()
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def real_paths(message: str, linked: Path, root: Path, weights: Mapping[str, Path]) -> str:
    """`message` (an error about the folder `linked_checkpoint(root, weights)` made) naming the files themselves:
    the user's files for their links and for the component folders that hold them, `root` for the rest."""
    for component, file in weights.items():
        link = linked / WEIGHT_NAMES[component]
        message = message.replace(str(link), str(file))
        message = re.sub(re.escape(str(link.parent)) + r"(?![\w/\\])", lambda _, name=str(file): name, message)
    return message.replace(str(linked), str(root))


def _files(root: Path) -> dict[str, Path]:
    """Every file under `root` by its relative path, but those in hidden folders (a `hf download --local-dir`
    folder's .cache/, a git clone's .git/: thousands of files no reader needs)."""
    return {
        path.relative_to(root).as_posix(): path.absolute()
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parent.parts)
    }


def _create(folder: Path, links: Mapping[str, Path]) -> None:
    """Build the folder under a temporary name, then rename it into place (atomic: another process that wins the
    race leaves an identical folder, and ours is discarded)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    except OSError as exc:
        raise CheckpointError(
            f"cannot create a folder in {folder.parent} to link the weight files ({exc}); set XDG_CACHE_HOME to a "
            "writable folder"
        ) from None
    try:
        for rel, target in links.items():
            link = building / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            _link(target, link)
        try:
            building.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _link(target: Path, link: Path) -> None:
    try:
        link.symlink_to(target)
        return
    except OSError:
        pass
    try:
        os.link(target, link)  # e.g. Windows without the symlink privilege; needs the same volume
    except OSError as exc:
        raise CheckpointError(
            f"cannot link {target} into {link.parent} ({exc}); put the file into a checkpoint folder in the "
            "official layout and pass that folder with -m instead"
        ) from None


# A VAE folder (ComfyUI's models/vae/) given where one file is expected: the file that is Motif-Video's VAE.
MOTIF_VAE = "Wan 2.1's VAE, Motif-Video's"
OTHER_SHAPES = "a VAE whose shapes are not Wan 2.1's"


def describe_vae_file(path: Path) -> str:
    """What the safetensors file `path` holds, from its header alone (tensor names and shapes, no weight read):
    `MOTIF_VAE` for Wan 2.1's VAE at the official shapes (under diffusers' names or Wan's), else in words."""
    from motif_lite.vae.config import WanVAEConfig
    from motif_lite.weights.safetensors_header import read_header
    from motif_lite.weights.shapes import vae_mismatches

    try:
        shapes = {name: tuple(t.shape) for name, t in read_header(path).tensors.items()}
    except CheckpointError:
        return "not a complete safetensors file"
    if (model := other_model(shapes)) is not None:
        return model
    found = _kinds_found(shapes)
    if found == {"vae"}:
        # Shapes tell Wan 2.1's from a VAE under the same names with other widths or latent channels.
        return MOTIF_VAE if not vae_mismatches(WanVAEConfig(), shapes) else OTHER_SHAPES
    if len(found) > 1:
        return "a single-file checkpoint"
    kind = next(iter(found), None)
    return f"a {_COMPONENT_WORDS[kind]}'s tensors" if kind else "no VAE's tensors"


def vae_files(folder: Path) -> dict[str, str]:
    """The .safetensors files in `folder` (ComfyUI's models/vae/) by name, each with what it holds
    (`describe_vae_file`); empty for a folder without any, or one that cannot be read."""
    try:
        files = sorted(p for p in folder.iterdir() if has_extension(p, ".safetensors") and p.is_file())
    except OSError:
        return {}
    return {file.name: describe_vae_file(file) for file in files}


def motif_vae_name(held: Mapping[str, str]) -> str | None:
    """The name of the file among `held` (`vae_files`) that is Motif-Video's VAE, if one is; else a folder's only
    file when it is a VAE of Wan 2.1's layout at other shapes (a checkpoint of its own, whose config the run checks
    it against)."""
    ours = next((name for name, what in held.items() if what == MOTIF_VAE), None)
    if ours is None and list(held.values()) == [OTHER_SHAPES]:
        return next(iter(held))
    return ours


class VAEFolderFix(NamedTuple):
    """What to give instead of a folder of VAE files (ComfyUI's models/vae/) where one file is expected: `flag`, the
    --vae with the path of the file in it that is Motif-Video's VAE and why that one, or None when no file is; then
    `none_is`: what each file holds, and what to do instead."""

    flag: str | None
    none_is: str

    def said(self, keep: str = "") -> str:
        """The fix in an error line: "pass" the flag and `keep` (what else stays as it is), else what the files hold."""
        return self.none_is if self.flag is None else f"pass {self.flag}{keep}"


def vae_folder_fix(folder: str) -> VAEFolderFix | None:
    """The fix for the folder `folder` (as the user wrote its path) given where one VAE file is expected, from what
    each of its .safetensors files holds (`vae_files`: headers only, each read once); None when it holds none."""
    held = vae_files(user_path(folder))
    if not held:
        return None
    return VAEFolderFix(_vae_flag(folder, held), _none_is_motif_vae(held))


class VAEFolderError(CheckpointError):
    """A folder of VAE files given to --vae: `problem`, and `fix` (`vae_folder_fix`'s), said apart for `motif-lite
    check`."""

    def __init__(self, problem: str, fix: VAEFolderFix) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix.said()}")


def _vae_flag(folder: str, held: Mapping[str, str]) -> str | None:
    """The --vae with the path of Motif-Video's VAE (`motif_vae_name`) in `folder` (as the user wrote it), whose
    files are `held` (`vae_files`), and why that one; None when no file there is."""
    ours = motif_vae_name(held)
    if ours is None:
        return None
    why = f" ({MOTIF_VAE})" if held[ours] == MOTIF_VAE else ""
    return f"--vae {quoted(str(Path(folder) / ours))}{why}"


def _none_is_motif_vae(held: Mapping[str, str]) -> str:
    """What a VAE folder none of whose files (`held`) is Motif-Video's VAE holds, and what to do instead."""
    found = "; ".join(f"{name}: {what}" for name, what in list(held.items())[:4])
    more = f"; and {len(held) - 4} more" if len(held) > 4 else ""
    return (
        f"none of its files is Motif-Video's VAE (Wan 2.1's) ({found}{more}); leave --vae out (the checkpoint's VAE "
        "is used) or download ComfyUI's wan_2.1_vae.safetensors"
    )
