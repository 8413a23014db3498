"""What one run reads from disk, found and checked before any weights load: the checkpoint folder, the GGUF file,
their configs, and the transformer config that every transformer tensor is checked against (the checks of the
weight files themselves, the checkpoint's and the user's own, are `weight_checks`').

    sources = locate_sources("Motif-Technologies/Motif-Video-2B", gguf="Q4_K_M")  # fetches what is missing
    sources.root, sources.gguf          # the checkpoint folder, the .gguf file
    sources.configs                     # CheckpointConfigs: transformer, scheduler, guider, VAE, ... configs
    sources.transformer                 # Setting[TransformerConfig]: the config and where it came from
    at_hand = locate_sources(model, gguf, download=False, require_weights=False)  # dry runs: no network, no weights

With `--gguf`, the transformer config is the checkpoint's `transformer/config.json` (only that file is fetched
from the Hub, never the transformer's safetensors), else the one our quantizer embeds in the file, else a
`config.json` beside the file, else it is inferred from the tensor shapes with one note naming every assumed
value (`weights.gguf_loader.choose_gguf_config`). With `--text-encoder-gguf`, `text_encoder/`'s safetensors are not
needed either: the file's embedded config must agree with `text_encoder/config.json` where the checkpoint has one, and
its every tensor must fit that config (`encoders.text_gguf.read_text_encoder_gguf`). Every problem of a request (a
bad `--gguf` path next to missing checkpoint files, a foreign GGUF, a tensor whose shape does not fit the config) is
collected and raised as one error, with the download commands for whatever is missing
(`io.missing_report.MissingFilesError`). The files the user gave (weight files, a GGUF path, a text encoder GGUF)
are read before the checkpoint is looked for, and no download starts while a problem stands (`io.hub.held_while`):
a mistake on this machine is said before gigabytes download, not after them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from motif_lite.checkpoint_configs import CheckpointConfigs
from motif_lite.choices import MOTIF_REPO
from motif_lite.config import TransformerConfig
from motif_lite.errors import CheckpointError, ConfigError, MotifLiteError
from motif_lite.io.checkpoint_source import covering, find_checkpoint, missing_files, missing_patterns
from motif_lite.io.copied_links import refuse_link_texts
from motif_lite.io.gguf_source import (
    check_gguf_variant,
    find_gguf,
    foreign_gguf_fix,
    gguf_address_problem,
    gguf_file_fix,
    is_gguf_variant,
    named_type_note,
    partial_gguf_problem,
    single_gguf,
    text_encoder_gguf_fix,
)
from motif_lite.io.hub import (
    DownloadHeld,
    DownloadPlan,
    HubAccess,
    cached_snapshot,
    cached_spelling,
    held_while,
    is_repo_id,
)
from motif_lite.io.linked import check_weight_file, linked_checkpoint, refuse_file_beside_gguf
from motif_lite.io.missing_report import MissingFiles, MissingFilesError, download_command
from motif_lite.io.wsl import windows_drive_note
from motif_lite.json_values import read_json_object
from motif_lite.paths import blank_path_problem, user_path
from motif_lite.settings import CHECKPOINT, DEFAULT, Setting
from motif_lite.vae.config import WanVAEConfig
from motif_lite.weight_checks import (
    Problems,
    check_complete,
    check_dry_run_weights,
    check_safetensors,
    check_vae_file,
    check_your_files,
    check_your_weights,
    component_weights,
    layout_at_hand,
    weight_locations,
)

if TYPE_CHECKING:
    from motif_lite.encoders.text_gguf import TextEncoderGGUF
    from motif_lite.weights.gguf_file import GGUFCheckpoint

T = TypeVar("T")

# Files every run needs; `transformer/` only when no GGUF replaces it.
REQUIRED = {
    "text_encoder": ("text_encoder/config.json", "text_encoder/*.safetensors"),
    "tokenizer": ("tokenizer/tokenizer_config.json", "tokenizer/tokenizer.json"),
    "vae": ("vae/config.json", "vae/diffusion_pytorch_model.safetensors*"),
    "transformer": ("transformer/config.json", "transformer/*.safetensors*"),
}
# What a download fetches besides the required folders: small configs the settings come from.
OPTIONAL = ("model_index.json", "scheduler/*", "guider/*", "feature_extractor/*")
# Components a diffusers `model_index.json` may list, and the config file each one must then have.
LISTED_CONFIGS = {
    "scheduler": "scheduler/scheduler_config.json",
    "guider": "guider/guider_config.json",
    "feature_extractor": "feature_extractor/preprocessor_config.json",
}
# The checkpoint's config files a run parses: one it cannot read (broken JSON, a value of the wrong type) is
# downloaded again, as `motif-lite check` says.
CONFIG_FILES = (
    "model_index.json",
    *(config for config, *_ in REQUIRED.values()),
    "tokenizer/tokenizer.json",
    *LISTED_CONFIGS.values(),
)
TRANSFORMER_CONFIG = "transformer/config.json"
TEXT_ENCODER_CONFIG = "text_encoder/config.json"
CHECKPOINT_CONFIG_ORIGIN = "transformer/config.json of the checkpoint"


@dataclass(frozen=True)
class ModelSources:
    """Everything on disk one run reads, found and checked (`locate_sources`); no weights read."""

    model: str  # -m as given: a folder or a Hub repo id
    root: Path | None  # the checkpoint folder; None when not at hand (dry runs only)
    gguf: Path | None  # the .gguf file; None without --gguf, or when not at hand (dry runs only)
    gguf_request: str | None  # --gguf as given: a path or a variant name of the official GGUF repo
    configs: CheckpointConfigs
    transformer: Setting[TransformerConfig]
    notes: tuple[str, ...] = ()
    # --text-encoder-gguf, checked against the checkpoint's text_encoder/config.json (header and config: no weights)
    text_encoder_gguf: TextEncoderGGUF | None = None
    # component -> the user's own weight file that `root` links in its place (`io.linked`)
    weight_files: Mapping[str, Path] = field(default_factory=dict)
    # --quantize: the quantizer's recipe the transformer's safetensors are quantized to as they load
    # (`quantize_settings.with_quantize` sets it, checked; quantize/on_load.py)
    quantize: str | None = None
    # --text-encoder-quantize: the text encoder's recipe its safetensors are quantized to as they load (`with_quantize`)
    text_encoder_quantize: str | None = None
    # The --gguf file's tensor bytes as stored, counted from the header `locate_sources` read (memory plans: `sizes`)
    gguf_bytes: int | None = None
    # That header (`read_gguf`: the file memory-mapped), handed to the load so that the file's header is read once;
    # `load_pipeline` keeps its sources without it (`without_header`), so that a server does not map it for its life
    gguf_header: GGUFCheckpoint | None = field(default=None, compare=False, repr=False)

    def without_header(self) -> ModelSources:
        """These sources as a loaded pipeline keeps them: without the GGUF header handed to the load."""
        return replace(self, gguf_header=None)

    @property
    def takes_images(self) -> bool:
        """Whether the checkpoint has the image processor image-to-video needs (feature_extractor/, which
        `load_text_encoder` loads from the same folder): what the server plans for and accepts. Without the folder
        at hand (a dry run, or the official model before its download) the official checkpoint's answer: yes."""
        if self.root is None:
            return True
        return (self.root / LISTED_CONFIGS["feature_extractor"]).is_file()

    @property
    def gguf_variant(self) -> str | None:
        """The official variant name (e.g. "Q4_K_M") when --gguf gave one."""
        return self.gguf_request if self.gguf_request is not None and is_gguf_variant(self.gguf_request) else None


def required_files(gguf: Collection[str] = (), linked: Collection[str] = ()) -> list[str]:
    """The file patterns a run needs from the checkpoint. `gguf`: the components a GGUF replaces (nothing of theirs
    is needed); `linked`: those whose weights come from a file of the user's (`io.linked`: their config still is,
    the transformer's only from a Hub repo, as with a GGUF)."""
    needed = []
    for group, (config, *weights) in REQUIRED.items():
        if group in linked:
            needed += [] if group == "transformer" else [config]
        elif group not in gguf:
            needed += [config, *weights]
    return needed


def download_patterns(gguf: Collection[str] = (), linked: Collection[str] = ()) -> list[str]:
    """What to fetch from the checkpoint's Hub repo for a run: for a component whose weights come from elsewhere
    (a GGUF, a file of the user's) its config.json only; a GGUF is checked against it."""
    replaced = {*gguf, *linked}
    groups = [f"{group}/config.json" if group in replaced else f"{group}/*" for group in REQUIRED]
    return [*groups, *OPTIONAL]


def refuse_wrong_weights(weights: object) -> None:
    """Raise `ConfigError` for a `weights` that is no mapping of component -> file path (None: none given): a list
    of pairs or a str was an AttributeError from inside the checks, a None file a TypeError from pathlib."""
    if weights is None:
        return
    if not isinstance(weights, Mapping):
        raise ConfigError(
            "weights must be a dict of component -> .safetensors file, e.g. {'vae': 'wan_2.1_vae.safetensors'} (or "
            f"None), got {type(weights).__name__} {weights!r}"
        )
    for component, file in weights.items():
        if not isinstance(file, str | os.PathLike):
            raise ConfigError(
                f"weights[{component!r}] must be the path of a .safetensors file (str or Path), got "
                f"{type(file).__name__} {file!r}"
            )


def refuse_blank_paths(model: object, gguf: object, text_encoder_gguf: object, weights: object) -> None:
    """An empty string given from Python for a file or folder (a notebook form's field left empty) is refused, with
    what to give or leave out: as Path('') it was the current folder, whose one .gguf file `gguf=""` took, and
    `model=""` was an incomplete checkpoint there to download into. A `weights` of the wrong shape first
    (`refuse_wrong_weights`)."""
    refuse_wrong_weights(weights)
    leave_out = "or leave it out (None) for the checkpoint's"
    fields = [
        (model, "model", f"give a checkpoint folder or a Hub repo id, or leave it out for {MOTIF_REPO}"),
        (gguf, "gguf", f"give a .gguf file or a variant name such as 'Q4_K_M', {leave_out} transformer"),
        (text_encoder_gguf, "text_encoder_gguf", f"give a text encoder .gguf file, {leave_out} text encoder"),
        *(
            (file, f"weights[{component!r}]", "give its .safetensors file")
            for component, file in (weights or {}).items()
        ),
    ]
    blanks = [problem for value, name, instead in fields if (problem := blank_path_problem(value, name, instead))]
    if blanks:
        raise CheckpointError("\n".join(blanks))


@dataclass(frozen=True)
class GGUFFilesRead:
    """What `check_gguf_files` read of --gguf and --text-encoder-gguf as serve started, handed to `locate_sources`
    so that neither file is read again: the transformer GGUF's header, the text encoder GGUF checked alone."""

    transformer: GGUFCheckpoint | None = None
    text_encoder: TextEncoderGGUF | None = None


def locate_sources(
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    *,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    download: bool = True,
    require_weights: bool = True,
    before_download: Callable[[DownloadPlan], None] | None = None,
    header_read: GGUFFilesRead | None = None,
    configs_read: CheckpointConfigs | None = None,
) -> ModelSources:
    """Find and check everything a run reads, without reading any weights; one error lists every problem.

    text_encoder_gguf: a text encoder GGUF file (or a folder holding one) that replaces `text_encoder/`'s weights.
    weights: component ("transformer", "text_encoder", "vae") -> a .safetensors file of the user's that holds its
    official weights under another name (ComfyUI's copies; not with a GGUF file for the same component, a
    `ConfigError`); the checkpoint then supplies only the rest, and
    `root` is a folder linking both together (`io.linked`). download=False: the local folder and the Hugging Face
    cache only, no network. require_weights=False (dry runs): files that are not at hand become notes instead of
    errors, and the configs fall back to the official built-in values. before_download: called with each
    download's plan (the checkpoint's, a GGUF variant's) just before it starts (`HubAccess`); what it raises is one
    of the problems, and that download does not start. No download starts while a problem has been found (the
    files the user gave are read first): `io.hub.DownloadHeld` then lists them. Raises `MissingFilesError` (with
    the download commands) or `CheckpointError`. header_read: the GGUF files a caller read already
    (`check_gguf_files`, for serve): not read again where they are the files found. configs_read: the configs an
    earlier look at the same files read (the checks before one download locate with and without
    --text-encoder-gguf): not read again where their folder is the one found.
    """
    refuse_blank_paths(model, gguf, text_encoder_gguf, weights)
    refuse_file_beside_gguf(weights or {}, gguf, text_encoder_gguf)  # the CLI refuses the flags' pair alike
    problems = Problems()
    notes: list[str] = []
    hub = HubAccess(download, held_while(problems.found, before_download))  # no download while a problem stands
    files = {
        component: problems.collect(lambda c=component, f=file: check_weight_file(c, f))
        for component, file in (weights or {}).items()
    }
    if gguf is not None and require_weights:  # a typo in a variant: it holds the checkpoint's download (`hub`)
        problems.collect(lambda: check_gguf_variant(str(gguf), hub))
    gguf_replaced = {"transformer"} if gguf is not None else set()
    gguf_replaced |= {"text_encoder"} if text_encoder_gguf is not None else set()
    # The files the user gave, read before the checkpoint is looked for: their problems hold its download.
    file_notes = check_your_files(files, problems)
    gguf_path, gguf_header = None, None
    transformer_read = None if header_read is None else header_read.transformer
    text_read = None if header_read is None else header_read.text_encoder
    if gguf is not None and not is_gguf_variant(str(gguf)):
        gguf_path = problems.collect(lambda: find_gguf(str(gguf), hub, str(model)))
        gguf_header = _transformer_gguf_header(gguf_path, str(model), problems, transformer_read)
    text_gguf = None
    if text_encoder_gguf is not None:  # alone here; against the checkpoint's text encoder config once it is found
        text_gguf = problems.collect(lambda: find_text_encoder_gguf(None, text_encoder_gguf, str(model), text_read))
    found_root = problems.collect(
        lambda: _config_fixed(
            lambda: _find_root(str(model), gguf_replaced, set(files), hub, require_weights, notes, configs_read),
            str(model),
        )
    )
    root, index_read = found_root or (None, None)  # and model_index.json as finding the root read it
    linked = {component: file for component, file in files.items() if file is not None}
    found = root
    if root is not None and linked and not problems.found:
        root = problems.collect(lambda: linked_checkpoint(found, linked))
        notes.append("weights from your files instead of the checkpoint's: " + _listed(linked))
        if root is not None:
            problems.name_files_behind(root, found, linked)
    # A variant is looked up (downloaded) only for a checkpoint that can run: after a wrong -m, its error alone.
    if gguf is not None and is_gguf_variant(str(gguf)) and not problems.found:
        gguf_path = problems.collect(lambda: _find_gguf(str(gguf), hub, require_weights, notes, str(model)))
        gguf_header = _transformer_gguf_header(gguf_path, str(model), problems, transformer_read)
    text_encoder_read = None  # the checkpoint's text_encoder/config.json as the check against the GGUF read it
    if text_gguf is not None and root is not None:  # the file read above, its config against the checkpoint's
        checked = text_gguf
        against = problems.collect(lambda: _text_encoder_gguf_against(checked, root))
        text_gguf, text_encoder_read = against or (None, None)
    problems.stop()
    configs = problems.collect(
        lambda: _config_fixed(lambda: _configs_at(root, configs_read, text_encoder_read, index_read), str(model))
    )
    problems.stop()
    notes.extend(file_notes)
    yours = {file.resolve() for file in linked.values()}
    transformer = problems.collect(
        lambda: _config_fixed(
            lambda: _transformer_setting(root, configs, gguf_header, require_weights, notes, yours, str(model)),
            str(model),
        ),
        keep_missing=False,
    )
    replaced = (gguf is not None, text_encoder_gguf is not None)
    _check_weights(root, configs, str(model), linked, yours, replaced, require_weights, problems)
    problems.stop()
    separate = [gguf_path, text_gguf.path if text_gguf else None, *linked.values()]
    slow = windows_drive_note(weight_locations(found, gguf_replaced | set(linked), separate))
    notes.extend([slow] if slow else [])  # WSL2: said before minutes of slow loading
    gguf_request = None if gguf is None else str(gguf)
    return ModelSources(
        str(model), root, gguf_path, gguf_request, configs, transformer, tuple(notes), text_gguf, linked,
        gguf_bytes=None if gguf_header is None else gguf_header.nbytes(), gguf_header=gguf_header,
    )  # fmt: skip


def check_weight_paths(
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
) -> None:
    """The user's weight files (`locate_sources`' `gguf`, `text_encoder_gguf` and `weights`) checked as paths, no
    file read: a folder or a missing file, a web address, a quantizer's partial file (a --gguf variant is left to
    `refuse_variant_flag` and `locate_sources`). Every problem is raised in one `CheckpointError`, in the words and
    order `locate_sources` says them. For `run`, which checks these before it says which output it writes: a run
    that then refuses says nothing of a video it never makes. `model`: -m as given, which the fixes name."""
    refuse_blank_paths(model, gguf, text_encoder_gguf, weights)
    problems = Problems()
    for component, file in (weights or {}).items():
        problems.collect(lambda c=component, f=file: check_weight_file(c, f))
    if gguf is not None and not is_gguf_variant(str(gguf)):
        problems.collect(lambda: find_gguf(str(gguf), HubAccess(download=False), str(model)))
    if text_encoder_gguf is not None:
        problems.collect(lambda: _text_encoder_gguf_path(text_encoder_gguf, str(model)))
    problems.stop()


def check_gguf_files(
    model: str | Path = MOTIF_REPO, gguf: str | Path | None = None, text_encoder_gguf: str | Path | None = None
) -> GGUFFilesRead:
    """The checks `locate_sources` makes of --gguf and --text-encoder-gguf before anything else, on this machine
    alone (the Hub not asked, the checkpoint not read): a blank or wrong path, a web address, a quantizer's partial
    file, a damaged or another model's file, a variant that is no type's name or one motif-lite cannot run. For
    `serve`, which says where it listens before its model loads: such a mistake is its one-line error at once, not
    after "serving". `model`: -m as given, which the fixes name. Returns what it read, for `locate_sources`'
    `header_read`: the --gguf file's header (None for a variant, not read here) and the --text-encoder-gguf file
    checked alone."""
    refuse_blank_paths(model, gguf, text_encoder_gguf, None)
    hub = HubAccess(download=False)
    header = None
    if gguf is not None and is_gguf_variant(str(gguf)):
        check_gguf_variant(str(gguf), hub)
    elif gguf is not None:
        header = _read_transformer_gguf(find_gguf(str(gguf), hub, str(model)), str(model))
    text_encoder = None
    if text_encoder_gguf is not None:  # alone: against the checkpoint's text encoder config once it is found
        text_encoder = find_text_encoder_gguf(None, text_encoder_gguf, str(model))
    return GGUFFilesRead(header, text_encoder)


def _transformer_gguf_header(
    path: Path | None, model: str, problems: Problems, header_read: GGUFCheckpoint | None = None
) -> GGUFCheckpoint | None:
    """The header of the transformer GGUF found at `path` (None: none found, or its problem added to `problems`):
    `header_read` where that is this file's (read already), else read now."""
    if path is None:
        return None
    if header_read is not None and header_read.path == path:
        return header_read
    return problems.collect(lambda: _read_transformer_gguf(path, model), keep_missing=False)


def _check_weights(
    root: Path | None,
    configs: CheckpointConfigs | None,
    model: str,
    linked: Mapping[str, Path],
    yours: Collection[Path],
    replaced: tuple[bool, bool],
    require_weights: bool,
    problems: Problems,
) -> None:
    """Check the weight files a run reads, adding what is wrong to `problems`: with `require_weights`, every
    component's files whole (the problems so far are raised before the user's own `linked` files are compared with
    the checkpoint's configs); in a dry run only the user's files, from their headers, refused as a run refuses
    them. `replaced`: (a transformer GGUF given, a text encoder GGUF given); `yours`: the user's files, resolved."""
    _, text_encoder_gguf = replaced
    if root is not None and require_weights:
        component_files = problems.collect(
            lambda: _config_fixed(lambda: component_weights(root, not text_encoder_gguf), model), keep_missing=False
        )
        for file in component_files or []:
            problems.collect(lambda file=file: check_complete(file, yours, model), keep_missing=False)
        problems.stop()
        for component, file in linked.items():
            if component == "vae" or (component == "text_encoder" and not text_encoder_gguf):
                problems.collect(
                    lambda c=component, f=file: check_your_weights(root, configs, c, f), keep_missing=False
                )
    elif linked:  # a dry run: the user's files from their headers, refused as a run refuses them
        official = model == MOTIF_REPO
        for component, file in linked.items():
            problems.collect(
                lambda c=component, f=file: check_dry_run_weights(root, configs, c, f, yours, official, *replaced),
                keep_missing=False,
            )


def locate_vae(model: str | Path = MOTIF_REPO, vae: str | Path | None = None, download: bool = True) -> Path:
    """The checkpoint folder to load the VAE alone from (`load_vae`; `motif-lite decode`): only its `vae/` folder
    is needed (fetched from the Hub when the cache lacks it and `download`, nothing else). `vae`: a .safetensors
    file of the user's with the VAE's weights, linked in place of the checkpoint's (`io.linked`): then only
    vae/config.json is needed. Raises `MissingFilesError` (with the download command) or `CheckpointError`."""
    config, weights = REQUIRED["vae"]
    yours = None if vae is None else check_vae_file(vae)
    required = [config] if yours else [config, weights]
    root = find_checkpoint(str(model), required, [config] if yours else ["vae/*"], HubAccess(download))
    if yours is None:
        for file in sorted((root / "vae").glob("*.safetensors")):  # a truncated download, named before loading
            check_complete(file, model=str(model))
        return root
    # Its shapes against the config, before linking: an error then names the user's file, not its link.
    check_your_weights(root, CheckpointConfigs(vae=WanVAEConfig.from_json(root / config)), "vae", yours)
    return linked_checkpoint(root, {"vae": yours})


def _listed(files: Mapping[str, Path]) -> str:
    return ", ".join(f"{component.replace('_', ' ')} {file}" for component, file in files.items())


def _find_root(
    model: str,
    gguf: set[str],
    linked: set[str],
    hub: HubAccess,
    require_weights: bool,
    notes: list[str],
    configs_read: CheckpointConfigs | None = None,
) -> tuple[Path | None, dict | None]:
    """The checkpoint folder, and its model_index.json's object where finding it read that folder's file (None
    where it did not, or there is none: `CheckpointConfigs.read` takes it, not reading the file again); `gguf`,
    `linked`: the components whose weights a GGUF / a file of the user's replaces (`required_files`). A local folder
    is refused as a run refuses it, dry run or not; one that lacks the scheduler's or the guider's config takes the
    official values, as `motif-lite check` says (a Hub repo's are fetched when its `model_index.json` lists them)."""
    required = required_files(gguf, linked)
    download = download_patterns(gguf, linked)
    folder = user_path(model)
    if folder.is_dir():
        refuse_link_texts(folder)  # before model_index.json is read: a link's target there is no JSON to fix
        # The configs model_index.json lists (the feature extractor's) are required as a run requires them: a dry
        # run's note names them too, with the command that fetches them.
        # model_index.json as an earlier look at this folder read it (`configs_read`), else read now
        known = configs_read.index if configs_read is not None and configs_read.root == folder else None
        index = known if known is not None else _model_index(folder)
        listed = [file for file in _missing_listed(folder, index) if file not in OFFICIAL_WITHOUT]
        if require_weights:
            root = find_checkpoint(model, required + listed, download, hub)
        else:
            root = _dry_run_folder(model, required + listed, download, hub, notes)
        notes.extend(official_config_notes(root, model))
        return root, index
    if not require_weights:
        try:
            return find_checkpoint(model, hub=hub), None
        except MissingFilesError:
            notes.append(
                f"the checkpoint {model} is not at hand (not in the Hugging Face cache; a dry run downloads no "
                "weights): planned with the official architecture's built-in values"
            )
            return None, None
    # A Hub repo has both: fetch them if an older run's cache lacks them.
    required += ["model_index.json", TRANSFORMER_CONFIG] if "transformer" in gguf | linked else ["model_index.json"]
    root = find_checkpoint(model, required, download, hub)
    index = _model_index(root)
    listed = _missing_listed(root, index)
    if listed:  # model_index.json names a component whose config is not here: fetch it, or report it
        fetched = find_checkpoint(model, required + listed, download, hub)
        # The Hub's main may have moved since the cached snapshot: the download is then a new snapshot folder,
        # whose own model_index.json is the one to check its configs against (read again, with them).
        return fetched, index if fetched == root else None
    return root, index


def _dry_run_folder(model: str, required: list[str], download: list[str], hub: HubAccess, notes: list[str]) -> Path:
    """A local -m folder for a dry run: refused as a run refuses it when it holds none of a checkpoint's files (a
    checkpoint's component folder, a folder of checkpoints, an empty one); a note names what else a run needs, the
    shards a weights index names but the folder lacks (an interrupted download) too."""
    folder = user_path(model)
    missing = missing_files(folder, required)
    if len(missing_patterns(folder, [*required, "model_index.json"])) == len(required) + 1:
        find_checkpoint(model, required, download, hub)  # raises the run's error
    if missing:
        fetch = MissingFiles(MOTIF_REPO, tuple(missing), covering(missing, download), model, "", in_folder=True)
        notes.append(
            f"{fetch.describe()}: planned without them (from the official architecture's built-in values where a "
            f"config is missing); a run needs them: {fetch.command()}"
        )
    return folder


# What a run uses when a local checkpoint folder lacks a config (`motif-lite check` warns with the same words).
OFFICIAL_WITHOUT = {
    "scheduler/scheduler_config.json": "the sampler and flow shift take the official values (Euler; shift 15 "
    "text-to-video, 8 image-to-video) unless a flag sets them",
    "guider/guider_config.json": "guidance takes the official values (APG scale 8, norm threshold 12, momentum 0.1) "
    "unless a flag sets them",
}


def official_config_notes(root: Path, model: str) -> list[str]:
    """The notes on the scheduler and guider configs a local checkpoint folder lacks: the official values are used."""
    return [f"{model} has no {rel}: {used}" for rel, used in OFFICIAL_WITHOUT.items() if not (root / rel).is_file()]


def find_text_encoder_gguf(
    root: Path | None, value: str | Path, model: str | None = None, read: TextEncoderGGUF | None = None
) -> TextEncoderGGUF:
    """The text encoder GGUF file, its header, config and every tensor checked (against the checkpoint's
    text_encoder/config.json when there is one); no weights read. A missing or damaged file's error ends with
    the quantizer's command that makes it (again) from `model` (-m as given). `read`: this function's answer for
    the file found, checked alone (root None) already: taken, not read again."""
    from motif_lite.encoders.text_gguf import read_text_encoder_gguf  # transformers: only when asked for
    from motif_lite.weights.gguf_file import DamagedGGUFError, ForeignGGUFError

    path = _text_encoder_gguf_path(value, model)
    if read is not None and read.path == path:
        return read if root is None else _text_encoder_gguf_against(read, root)[0]
    try:
        return read_text_encoder_gguf(path, root / TEXT_ENCODER_CONFIG if root is not None else None)
    except (DamagedGGUFError, ForeignGGUFError) as exc:
        foreign = isinstance(exc, ForeignGGUFError)
        fix = foreign_gguf_fix(path, model, "text_encoder") if foreign else text_encoder_gguf_fix(path, model)
        raise TextEncoderGGUFError(f"{exc}; {fix}", str(exc), fix) from None


def _text_encoder_gguf_path(value: str | Path, model: str | None) -> Path:
    """The text encoder GGUF file --text-encoder-gguf's `value` names (a folder's one .gguf file), unread; a
    `TextEncoderGGUFError` where it is a web address, a quantizer's partial file or no file here, whose fix makes it
    from `model` (-m as given)."""
    if (address := gguf_address_problem(str(value), "--text-encoder-gguf")) is not None:  # not "no such file"
        problem, fix = address
        raise TextEncoderGGUFError(f"{value}: {problem}; {fix}", problem, fix)
    path = user_path(value)
    if (partial := partial_gguf_problem(path, model, " --component text_encoder")) is not None:
        problem, fix = partial
        raise TextEncoderGGUFError(f"{value}: {problem}; {fix}", problem, fix)
    if path.is_dir():  # found as a --gguf folder is: searched through, its .cache/ left out
        path = single_gguf(path, "--text-encoder-gguf")
    if not path.is_file():
        fix = text_encoder_gguf_fix(path, model)
        raise TextEncoderGGUFError(f"no such text encoder GGUF file: {path} ({fix})", "no such file", fix)
    return path


def _configs_at(
    root: Path | None, read: CheckpointConfigs | None, text_encoder_read: dict | None, index_read: dict | None
) -> CheckpointConfigs:
    """The configs of the checkpoint at `root`: `read` where they were read at that folder already, else read now
    (with its text_encoder/config.json and model_index.json as read already, where they were)."""
    if read is not None and read.root == root:
        return read
    return CheckpointConfigs.read(root, text_encoder_read=text_encoder_read, index_read=index_read)


def _text_encoder_gguf_against(text_gguf: TextEncoderGGUF, root: Path) -> tuple[TextEncoderGGUF, dict | None]:
    """`text_gguf` (read by `find_text_encoder_gguf` before the checkpoint was found), its config checked against
    the checkpoint's at `root` as `find_text_encoder_gguf(root, ...)` checks it, without reading the file again;
    with the checkpoint's text_encoder/config.json as read (None without one)."""
    from motif_lite.encoders.text_gguf import check_against_checkpoint

    return text_gguf, check_against_checkpoint(text_gguf.path, text_gguf.config, root / TEXT_ENCODER_CONFIG)


class TextEncoderGGUFError(CheckpointError):
    """A missing or damaged text encoder GGUF, or another model's: the message a run prints, and its parts for
    `motif-lite check`, which says the problem and the fix (where the right file comes from) apart."""

    def __init__(self, message: str, problem: str, fix: str) -> None:
        super().__init__(message)
        self.problem, self.fix = problem, fix


def _config_fixed(step: Callable[[], T], model: str) -> T:
    """`step()`; its error about one config file of the checkpoint ends with the command that downloads the file
    again, the fix `motif-lite check` gives (without it a run said only what is wrong)."""
    try:
        return step()
    except (MissingFilesError, DownloadHeld):
        raise
    except MotifLiteError as exc:
        fix = damaged_config_fix(str(exc), model)
        if fix is None:
            raise
        raise CheckpointError(f"{exc}; {fix}") from None


def damaged_config_fix(problem: str, model: str) -> str | None:
    """The fix for an error that names one config file (or safetensors index) of the checkpoint -m names (`model`,
    as given): download it again, into the local folder or the Hugging Face cache. None for any other error, and
    for one naming several files (two configs that disagree: that message says which to change)."""
    folder = user_path(model)
    if "download" in problem or (not folder.is_dir() and not is_repo_id(model)):
        return None  # its own advice (e.g. the shards an index names, to download), or -m's own error
    repo = None if folder.is_dir() else cached_spelling(model)
    root = folder if repo is None else cached_snapshot(repo)
    if root is None:
        return None
    indexes = [index.relative_to(root).as_posix() for index in root.glob("*/*.safetensors.index.json")]
    named = [rel for rel in [*CONFIG_FILES, *indexes] if str(root / rel) in problem]
    if len(named) != 1:
        return None
    return f"download it again: {download_command(named[0], repo, root, again=True)}"


def listed_configs(root: Path) -> list[str]:
    """The config files of the components `model_index.json` lists that are missing under `root`."""
    return _missing_listed(root, _model_index(root))


def _model_index(root: Path) -> dict | None:
    """`root`'s model_index.json object; None without the file."""
    index = root / "model_index.json"
    return read_json_object(index, "model index", CheckpointError) if index.is_file() else None


def _missing_listed(root: Path, components: dict | None) -> list[str]:
    """The config files of the components `components` (model_index.json's object, None without one) lists that
    are missing under `root`."""
    if components is None:
        return []
    listed = [
        file
        for name, file in LISTED_CONFIGS.items()
        if isinstance(components.get(name), list) and None not in components[name]
    ]
    return [file for file in listed if not (root / file).is_file()]


def _find_gguf(gguf: str, hub: HubAccess, require_weights: bool, notes: list[str], model: str) -> Path | None:
    if require_weights or not is_gguf_variant(gguf):
        return find_gguf(gguf, hub, model)
    try:
        return find_gguf(gguf, hub, model)
    except MissingFilesError:
        notes.append(f"the GGUF file of variant {gguf} is not at hand (not in the Hugging Face cache)")
        return None


def _transformer_setting(
    root: Path | None,
    configs: CheckpointConfigs,
    gguf: GGUFCheckpoint | None,
    require_weights: bool,
    notes: list[str],
    yours: Collection[Path] = (),
    model: str = MOTIF_REPO,
) -> Setting[TransformerConfig]:
    """The transformer config, where it came from, and every transformer tensor at hand checked against it
    (`gguf`: the GGUF's header, read by `_read_transformer_gguf`; `yours`: the user's own weight files, resolved,
    `io.linked`; `model`: -m as given, for a fix that names it)."""
    from motif_lite.weights.gguf_file import recorded_type
    from motif_lite.weights.gguf_loader import check_gguf_config

    if gguf is not None:
        ours = (configs.transformer, CHECKPOINT_CONFIG_ORIGIN) if configs.transformer is not None else None
        choice, mismatch = check_gguf_config(gguf, ours)
        notes.extend(choice.notes)
        if (named := named_type_note(gguf.path, recorded_type(gguf.metadata))) is not None:
            notes.append(named)
        mismatch.raise_for(str(gguf.path))
        return Setting(choice.config, DEFAULT if choice.inferred else CHECKPOINT, choice.origin)
    if configs.transformer is None:
        return Setting(TransformerConfig(), DEFAULT, "official architecture (built-in)")
    if root is not None and require_weights:
        # The model built is in the cross-attention layout its weights are stored in, not config.json's default:
        # the config says so, as what is checked against it (a LoRA's layers, `check_loras`) must see that model.
        layout = check_safetensors(root, configs.transformer, yours, model)
        return Setting(configs.transformer.replace(cross_attention_layout=layout), CHECKPOINT, TRANSFORMER_CONFIG)
    # A dry run's: the layout of the weights at hand, as a run finds it, so that a LoRA is checked as a run checks it.
    layout = layout_at_hand(root) if root is not None else None
    config = configs.transformer if layout is None else configs.transformer.replace(cross_attention_layout=layout)
    return Setting(config, CHECKPOINT, TRANSFORMER_CONFIG)


def _read_transformer_gguf(path: Path, model: str) -> GGUFCheckpoint:
    """The GGUF transformer's header (`read_gguf`: memory-mapped, no tensor data read); a damaged file's error ends
    with the fix `motif-lite check` gives: download it again, or make it again from -m with the type it was made
    with; another model's file's, with where ours comes from."""
    from motif_lite.weights.gguf_file import DamagedGGUFError, ForeignGGUFError, read_gguf  # torch: once needed

    try:
        return read_gguf(path)
    except DamagedGGUFError as exc:
        raise CheckpointError(f"{exc}; {gguf_file_fix(path, model)}") from None
    except ForeignGGUFError as exc:
        raise CheckpointError(f"{exc}; {foreign_gguf_fix(path, model, 'transformer')}") from None
