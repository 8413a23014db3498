"""The weight files a run reads, checked from their headers before any weights load: the checkpoint's (each file
complete, every transformer tensor against its config: `check_safetensors`; text encoder shards with their index)
and the user's own files linked in their place (`io.linked`: complete, the component's own tensors in the shapes
its config gives, ComfyUI's fp8 copies noted or refused: `check_your_files`, `check_your_shapes`). A problem's
message names the file and the fix: a damaged download's command (`damaged_weights_fix`), or, for a file of the
user's, what to pass instead. `checkpoint.locate_sources` runs these checks and gathers what they find
(`Problems`) into one error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.choices import MOTIF_REPO
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, MotifLiteError
from motif_lite.io.hub import DownloadHeld, cached_spelling, is_repo_id
from motif_lite.io.linked import WEIGHT_NAMES, check_weight_file, other_component, real_paths
from motif_lite.io.missing_report import MissingFilesError, download_command
from motif_lite.paths import user_path
from motif_lite.vae.config import WanVAEConfig

if TYPE_CHECKING:
    from motif_lite.weights.safetensors_files import TensorRef

T = TypeVar("T")


def check_vae_file(vae: str | Path) -> Path:
    """A VAE file of the user's, made absolute, from its header alone (no checkpoint needed): a complete
    .safetensors file that holds no other component's tensors (`CheckpointError` naming it otherwise)."""
    file = check_weight_file("vae", vae)
    _check_your_header("vae", file, {file})
    return file


def layout_at_hand(root: Path) -> str | None:
    """The cross-attention layout of the transformer safetensors in `root` (a dry run's), from their headers; None
    when they are not all at hand or cannot be read (a run names that problem; a dry run reads no weights). An
    integer or boolean tensor among them is refused, as the run refuses it."""
    from motif_lite.weights.keymap import to_model_names
    from motif_lite.weights.safetensors_files import find_weight_files
    from motif_lite.weights.shapes import read_transformer_refs

    try:
        refs = read_transformer_refs(find_weight_files(root / "transformer"), str(root))
        layout = to_model_names({name: ref.shape for name, ref in refs.items()})[1]
    except CheckpointError:
        return None
    _check_floats(refs, str(root / "transformer"), "transformer")
    return layout


def check_your_files(files: Mapping[str, Path | None], problems: Problems) -> list[str]:
    """The weight files of the user's (None: refused already; none a GGUF replaces: `refuse_file_beside_gguf`),
    from their headers, before the checkpoint is looked for: complete, the component's own (a transformer's without
    ComfyUI's prefix), and no scaled fp8 copy but the transformer's. Their problems are collected in `problems`;
    returns their notes (an fp8 copy's)."""
    notes: list[str] = []
    yours = {file for file in files.values() if file is not None}
    for component, file in files.items():
        if file is None:
            continue
        before = len(problems.found)
        problems.collect(lambda c=component, f=file: _check_your_header(c, f, yours), keep_missing=False)
        if len(problems.found) == before:  # a damaged file's header is named once
            notes.extend(problems.collect(lambda c=component, f=file: float8_notes(c, f), keep_missing=False) or [])
    return notes


def check_safetensors(
    root: Path, config: TransformerConfig, yours: Collection[Path] = (), model: str | None = None
) -> str:
    """Every tensor of the checkpoint's `transformer/` safetensors against `config`, from the headers only
    (`yours`: the user's own weight files, which a damaged-file error says; `model`: -m as given, whose download
    command a damaged file's error gives). Returns the cross-attention layout the tensors are stored in, which the
    loaded model takes (`keymap.to_model_names`)."""
    from motif_lite.weights.float8 import weight_scales
    from motif_lite.weights.keymap import to_model_names
    from motif_lite.weights.safetensors_files import find_weight_files, read_tensor_refs
    from motif_lite.weights.shapes import read_transformer_refs, transformer_mismatch

    files = find_weight_files(root / "transformer")
    for file in files:
        check_complete(file, yours, model)
    if any(file.resolve() in yours for file in files):  # a file of the user's given to the wrong flag: say what it
        other = other_component("transformer", read_tensor_refs(files))  # is (its names as stored), not 200 names
        if other is not None:
            raise CheckpointError(f"{files[0]} is not the transformer: it holds {other}")
    # A file ComfyUI saved: read without its prefix (the user's file named, not its link in the linked folder).
    refs = read_transformer_refs(files, str(files[0].resolve()))
    weight_scales({name: ref.dtype for name, ref in refs.items()}, str(root / "transformer"))  # fp8 or refused
    shapes = {name: ref.shape for name, ref in refs.items()}
    transformer_mismatch(config, shapes).raise_for(str(root / "transformer"))
    _check_floats(refs, str(root / "transformer"), "transformer")  # as the load does: a dry run says it too
    return to_model_names(shapes)[1]


def check_your_shapes(
    weights: Mapping[str, str | Path],
    configs: CheckpointConfigs,
    official: bool,
    gguf: bool = False,
    root: Path | None = None,
    text_encoder_gguf: bool = False,
) -> None:
    """The user's weight files (`weights`, checked by `locate_sources` already), their shapes from their headers,
    before the checkpoint downloads: against its configs at hand (`configs`; the text encoder's in the checkpoint
    folder `root`), else, for the official model (`official`), the official architecture bundled with motif-lite.
    Another model's config that is not here yet is not guessed: the run checks the files once it is. A transformer
    file is not read with a GGUF (`gguf`), nor a text encoder file with a text encoder GGUF (`text_encoder_gguf`).
    Raises `CheckpointError` naming the file."""
    for component, path in weights.items():
        file = check_weight_file(component, path)
        if component == "vae" and (configs.vae is not None or official):
            with_vae = configs if configs.vae is not None else CheckpointConfigs(vae=WanVAEConfig())
            check_your_weights(None, with_vae, component, file)
        elif component == "transformer" and not gguf and (configs.transformer is not None or official):
            _check_your_transformer(file, configs.transformer or TransformerConfig())
        elif component == "text_encoder" and not text_encoder_gguf:
            _check_your_text_encoder_at_hand(file, root, official)


def _check_your_text_encoder_at_hand(file: Path, root: Path | None, official: bool) -> None:
    """A text encoder file of the user's before the checkpoint downloads: against the checkpoint's config in `root`
    where it is there, else, for the official model, the official config bundled with motif-lite."""
    from motif_lite.encoders.text_config import official_text_encoder_config

    if root is not None and (root / "text_encoder" / "config.json").is_file():
        check_your_weights(root, CheckpointConfigs(), "text_encoder", file)
    elif official:
        _check_your_tensors(file, "text_encoder", _text_encoder_mismatches(official_text_encoder_config()))


def _check_your_transformer(file: Path, config: TransformerConfig) -> None:
    """A transformer file of the user's, every tensor against `config`, from its header (as `check_safetensors`
    checks the checkpoint's transformer/ folder once it is there)."""
    from motif_lite.weights.shapes import read_transformer_refs, transformer_mismatch

    refs = read_transformer_refs([file], str(file.resolve()))
    transformer_mismatch(config, {name: ref.shape for name, ref in refs.items()}).raise_for(str(file))
    _check_floats(refs, str(file), "transformer")


def _check_floats(refs: Mapping[str, TensorRef], source: str, what: str) -> None:
    """`check_floats` on the weights of `refs` (not a scaled fp8 file's companions, which the loader drops too):
    an integer or boolean tensor said before anything loads, in the load's words."""
    from motif_lite.weights.float8 import is_companion
    from motif_lite.weights.safetensors_files import check_floats

    check_floats({name: ref for name, ref in refs.items() if not is_companion(name)}, source, what)


def check_your_weights(root: Path | None, configs: CheckpointConfigs, component: str, file: Path) -> None:
    """A text encoder or VAE file of the user's, its tensor names and shapes against the checkpoint's config, from
    the header only. Without this a file of another component given as the text encoder would load: transformers
    initializes whatever it lacks at random, and the run would make a video from noise."""
    from motif_lite.weights.shapes import vae_mismatches

    if component == "vae":
        if configs.vae is None:
            return  # the loader names the missing config
        _check_your_tensors(file, component, lambda found: vae_mismatches(configs.vae, found))
        from motif_lite.weights.safetensors_files import read_tensor_refs

        _check_floats(read_tensor_refs([file]), str(file), "VAE")
        return
    if root is None:
        return  # no text encoder config to check it against
    from motif_lite.encoders.text_config import parse_text_encoder_config

    try:
        config = parse_text_encoder_config(root / "text_encoder" / "config.json")
    except (OSError, MotifLiteError):
        return  # the loader reports a config it cannot read, naming it
    _check_your_tensors(file, component, _text_encoder_mismatches(config))


def _text_encoder_mismatches(config: object) -> Callable[[Mapping[str, tuple[int, ...]]], list[str]]:
    """What `_check_your_tensors` compares a text encoder file's tensors with: a T5Gemma2 encoder of `config`."""
    from motif_lite.weights.shapes import text_encoder_mismatches

    return lambda found: text_encoder_mismatches(config, found)


def _check_your_tensors(
    file: Path, component: str, mismatches: Callable[[Mapping[str, tuple[int, ...]]], list[str]]
) -> None:
    """The tensors of a file of the user's (names and shapes, from its header) against what `component` holds
    (`mismatches` lists the differences): `CheckpointError` naming the component the file holds instead, else the
    tensors that do not match."""
    from motif_lite.vae.wan_names import is_wan_named
    from motif_lite.weights.safetensors_header import read_header
    from motif_lite.weights.shapes import named

    found = {name: tuple(t.shape) for name, t in read_header(file).tensors.items()}
    problems = mismatches(found)
    if not problems:
        return
    what = "VAE" if component == "vae" else component.replace("_", " ")
    other = other_component(component, found)
    if other is not None:
        raise CheckpointError(f"{file} is not the {what}: it holds {other}")
    if component == "vae" and is_wan_named(found):  # ComfyUI's wan_2.1_vae.safetensors, cut short or edited
        raise CheckpointError(
            f"{file} holds a VAE under Wan's names, but not all of Wan 2.1's: {len(problems)} tensor(s) do not match "
            f"vae/config.json ({named(problems)}); download it again, or pass the official VAE weights "
            f"({WEIGHT_NAMES[component]} of {MOTIF_REPO})"
        )
    names = "diffusers' names or Wan's" if component == "vae" else "diffusers' names"
    raise CheckpointError(
        f"{file} does not hold the {what} of Motif-Video under {names}: {len(problems)} tensor(s) do not "
        f"match {component}/config.json ({named(problems)}); pass the official {what} weights "
        f"({WEIGHT_NAMES[component]} of {MOTIF_REPO})"
    )


def check_dry_run_weights(
    root: Path | None,
    configs: CheckpointConfigs,
    component: str,
    file: Path,
    yours: Collection[Path],
    official: bool,
    gguf: bool,
    text_encoder_gguf: bool,
) -> None:
    """A weight file of the user's in a dry run, from its header: complete, the component's tensors (not another
    component's, given to the wrong flag), and their shapes as a run checks them before its download
    (`check_your_shapes`): against the checkpoint's configs at hand, else, for the `official` model, the official
    ones bundled with motif-lite; each error as a run says it. (A file a GGUF replaces, `gguf` /
    `text_encoder_gguf`, is not read by a run: nor here.)"""
    _check_your_header(component, file, yours)
    check_your_shapes({component: file}, configs, official, gguf, root, text_encoder_gguf)


def _check_your_header(component: str, file: Path, yours: Collection[Path]) -> None:
    """A weight file of the user's from its header: complete, not another component's (given to the wrong flag),
    each error naming the file and the flag that takes it; a transformer's with ComfyUI's prefix on all its names
    or none (`without_comfy_prefix`)."""
    from motif_lite.weights.safetensors_header import read_header
    from motif_lite.weights.shapes import read_transformer_refs

    check_complete(file, yours)
    what = "VAE" if component == "vae" else component.replace("_", " ")
    tensors = read_header(file).tensors
    other = other_component(component, tensors)
    if other is not None:
        raise CheckpointError(f"{file} is not the {what}: it holds {other}")
    if component == "transformer":  # names only some of which carry ComfyUI's prefix: refused here, in one line
        read_transformer_refs([file], str(file.resolve()))


def float8_notes(component: str, file: Path) -> list[str]:
    """ComfyUI's fp8 copies: the transformer's, plain or scaled (fp8_scaled), keeps its linear weights in 8 bits
    (`weights/float8.py`); a text encoder's or VAE's plain cast loads widened to the compute dtype, which a user
    who chose it to save memory should know, and a scaled one, whose scales a plain load would ignore (wrong
    weights), is refused. So is a file in another of ComfyUI's quantized formats (int8, NVFP4)."""
    from motif_lite.weights.float8 import SCALED_MARKER, weight_scales
    from motif_lite.weights.safetensors_header import read_header

    try:
        tensors = read_header(file).tensors
    except CheckpointError:
        return []  # a damaged file: the completeness check names it as the user's
    what = "VAE" if component == "vae" else component.replace("_", " ")
    scaled = weight_scales({name: t.dtype for name, t in tensors.items()}, str(file))
    float8 = sorted({t.dtype for t in tensors.values() if t.dtype.startswith("F8_")})
    if component == "transformer":
        kind = "scaled " if scaled else ""
        return [
            f"your transformer file {file.name} holds {kind}{', '.join(float8)} weights: its linear weights stay in "
            "8 bits and are widened layer by layer as they run, so the video keeps the fp8 copy's rounding"
        ] if float8 else []  # fmt: skip
    if scaled or SCALED_MARKER in tensors:
        raise CheckpointError(
            f"{file} is a scaled fp8 file (ComfyUI's fp8_scaled: each weight has a scale beside it), which "
            f"motif-lite reads only for the transformer; use the bf16 or fp16 {what} file"
        )
    if not float8:
        return []
    return [
        f"your {what} file {file.name} holds {', '.join(float8)} weights: they are widened to the compute dtype "
        "when loaded, so they take the memory of a 16-bit file and keep the fp8 copy's rounding"
    ]


def weight_locations(root: Path | None, replaced: Collection[str], files: Iterable[Path | None]) -> list[Path]:
    """Where a run reads weights from: the checkpoint folder `root` (unless other files replace the weights of
    every component: `replaced`) and each weight file in `files` (None: absent)."""
    from_root = root is not None and bool({"text_encoder", "vae", "transformer"} - set(replaced))
    return [*([root] if from_root else []), *(file for file in files if file is not None)]


def component_weights(root: Path, text_encoder: bool) -> list[Path]:
    """The VAE's safetensors and, unless a GGUF replaces them, the text encoder's (the transformer's are checked
    tensor by tensor against its config). The VAE's as its loader finds them: a broken index of them is named now,
    not after the text encoder has loaded."""
    from motif_lite.weights.safetensors_files import find_weight_files

    vae = [file for file in find_weight_files(root / "vae") if file.is_file()]
    encoder = sorted((root / "text_encoder").glob("*.safetensors")) if text_encoder else []
    if encoder:
        _check_text_encoder_index(root, encoder)
    return [*vae, *encoder]


def _check_text_encoder_index(root: Path, files: list[Path]) -> None:
    """Text encoder shards without their index (`text_encoder_index_problem`) named before any weights load."""
    if (found := text_encoder_index_problem(root, files)) is not None:
        problem, fix = found
        raise CheckpointError(f"{root / 'text_encoder'} {problem}: {fix}")


def text_encoder_index_problem(root: Path, files: list[Path]) -> tuple[str, str] | None:
    """(problem, fix) for a `root/text_encoder` of shards without their index, which `run` and `check` both say:
    transformers loads a text encoder in shards only through their `model.safetensors.index.json` (the
    transformer's loader reads them without it: `unindexed_shards`); the fix downloads the official index (a few
    kB) into the folder. A shard of them that is missing raises `CheckpointError` naming it. None otherwise."""
    from motif_lite.weights.safetensors_files import unindexed_shards

    folder = root / "text_encoder"
    if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
        return None
    if unindexed_shards(folder, files) is None:
        return None  # one file under another name, or several: transformers' own error names them
    index = "text_encoder/model.safetensors.index.json"
    return (
        f"holds the text encoder's {len(files)} shards ({files[0].name} ... {files[-1].name}) but not "
        "model.safetensors.index.json, without which transformers cannot load them",
        f"for the official shards, download it: {download_command(index, None, root)}; for others, copy the index "
        "they came with",
    )


def check_complete(file: Path, yours: Collection[Path] = (), model: str | None = None) -> None:
    """`file`'s header against its size: a truncated or corrupt download is named before any weights load (the
    loaders would otherwise fail deep inside, after minutes of loading the others). `yours`: the files the user
    gave, resolved (`io.linked`): not the checkpoint's downloads; `model`: -m as given (`damaged_weights_fix`)."""
    from motif_lite.weights.safetensors_header import read_header

    try:
        read_header(file)
    except CheckpointError as exc:
        fix = damaged_weights_fix(file, model)
        if file.resolve() in yours:
            fix = "it is your file: replace it with a complete copy of the official one"
        raise CheckpointError(f"{exc}; {fix}") from None


def damaged_weights_fix(file: Path, model: str | None) -> str:
    """The fix for a truncated or damaged weights file of the checkpoint -m names (`model`, as given): for a Hub
    repo, the command that downloads it again into the Hugging Face cache, as `motif-lite check` gives it (with
    --force-download: without it `hf download` keeps the damaged copy); for a local folder, whose files may be
    another checkpoint's than the official one, where to find that command."""
    if model is None or user_path(model).is_dir() or not is_repo_id(model):
        return "download it again (motif-lite check with the same -m gives the command)"
    rel = f"{file.parent.name}/{file.name}"  # a component's weights: vae/diffusion_pytorch_model.safetensors
    return f"download it again: {download_command(rel, cached_spelling(model), file.parent.parent, again=True)}"


class Problems:
    """What the checks of a run's sources found wrong, gathered so that one error says it all (`stop`)."""

    def __init__(self) -> None:
        self.found: list[str] = []  # one list throughout: `held_while` holds downloads while it is not empty
        self.missing: list = []  # the checkpoint's files to download (`MissingFilesError`)
        self._links: tuple[Path, Path, Mapping[str, Path]] | None = None

    def collect(self, step: Callable[[], T], keep_missing: bool = True) -> T | None:
        """Run one check; its failure becomes a problem so that the next check still runs. keep_missing=False: a
        `MissingFilesError` adds its lines only, not its files to download. A download held by the problems so far
        (`DownloadHeld`) ends the request: they are all there is to say."""
        try:
            return step()
        except DownloadHeld:
            raise
        except MissingFilesError as exc:
            self.found.extend(exc.problems)
            if keep_missing:
                self.missing.extend(exc.missing)
        except MotifLiteError as exc:
            self.found.append(str(exc))
        return None

    def name_files_behind(self, links: Path, checkpoint: Path, linked: Mapping[str, Path]) -> None:
        """From now on the problems name the user's files and `checkpoint`, not the folder `links` that
        `linked_checkpoint(checkpoint, linked)` made to stand for them."""
        self._links = (links, checkpoint, linked)

    def stop(self) -> None:
        """Raise the problems found so far, if any: `MissingFilesError` (with the download commands) when files are
        missing, else `CheckpointError`."""
        if self._links is not None:
            self.found[:] = [real_paths(problem, *self._links) for problem in self.found]
        if self.missing:
            raise MissingFilesError(self.missing, self.found)
        if self.found:
            raise CheckpointError("\n".join(self.found))
