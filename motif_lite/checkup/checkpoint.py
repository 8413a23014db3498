"""The checkpoint's files, component by component, and a GGUF transformer: present, complete (from the headers:
no tensor data is read) and consistent with their configs (names and shapes against a model built on the `meta`
device), every config parsed the way a run parses it."""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.checkup.report import CheckpointFiles, Checkup, first_line
from motif_lite.errors import CheckpointError, LFSPointerError, MotifLiteError
from motif_lite.io.copied_links import dangling_links_problem
from motif_lite.io.linked import other_component
from motif_lite.json_values import NotAJSONObject, parse_json_object
from motif_lite.log_filters import WARNINGS_STATE
from motif_lite.paths import user_path
from motif_lite.shell_syntax import quoted
from motif_lite.units import file_size
from motif_lite.weights.float8 import is_companion, weight_scales
from motif_lite.weights.safetensors_files import TensorRef, check_floats, weight_files
from motif_lite.weights.safetensors_header import SafetensorsHeader, read_header
from motif_lite.weights.shapes import (
    Shapes,
    comfy_prefix,
    named,
    text_encoder_mismatches,
    transformer_mismatch,
    vae_mismatches,
    without_comfy_prefix,
)

if TYPE_CHECKING:
    from motif_lite.config import TransformerConfig
    from motif_lite.encoders.text_gguf import TextEncoderGGUF
    from motif_lite.weights.gguf_file import GGUFCheckpoint, PackedTensor

FAILED = object()  # what `_parsed` returns when the file could not be read (None can be a parsed value)


def check_checkpoint(
    report: Checkup, source: CheckpointFiles, with_transformer: bool = True, with_text_encoder: bool = True
) -> TransformerConfig | None:
    """Every file a run reads from the checkpoint folder, component by component, but the feature extractor's
    (`check_image_input`, once the transformer's config is known); without the transformer's or the text
    encoder's weights when a GGUF file replaces them. Returns the transformer's config when it was checked here
    and parses."""
    if source.downloads_to is None and (links := dangling_links_problem(source.root)) is not None:
        report.problem("symbolic links", *links)  # first: the files said missing below are these links
    _check_model_index(report, source)
    _check_text_encoder(report, source, with_text_encoder)
    _check_tokenizer(report, source)
    _check_vae(report, source)
    transformer = _check_transformer(report, source) if with_transformer else None
    _check_scheduler(report, source)
    _check_guider(report, source)
    return transformer


def _json(
    report: Checkup, source: CheckpointFiles, rel: str, missing: str | None = None, keep: bool = True
) -> dict | None:
    """The JSON object in `rel`; a problem if it is unreadable, and if it is absent: a problem, or with
    `missing` (what its absence limits) a warning. What it read is kept in `source.configs_read`: the file's
    parsers and the memory plan take it, not reading the file again. `keep` False: not kept, for a file that
    nothing takes from there (tokenizer.json, which transformers reads itself: the official file's ~33 MB stayed
    parsed there for the whole check)."""
    path = source.root / rel
    if not path.is_file():
        if missing is None:
            report.problem(rel, "missing", source.fetch(rel))
        else:
            report.warning(rel, f"absent: {missing}")
            source.configs_read[rel] = None
        return None
    try:
        values = parse_json_object(path.read_bytes())
        if keep:
            source.configs_read[rel] = values
        return values
    except OSError as exc:
        report.problem(rel, f"cannot be read ({exc.strerror or exc})", source.fetch(rel, again=True))
    except NotAJSONObject as exc:  # the line names the file already: what is wrong with it, alone
        report.problem(rel, str(exc), source.fetch(rel, again=True))
    return None


def _parsed(report: Checkup, source: CheckpointFiles, rel: str, parse: Callable[[], object], what: str) -> object:
    """`parse()` (reads `rel` as a run would), or `FAILED` after reporting its error as a problem naming `rel`. What
    the parser warns about that file (unknown keys, which a run ignores) is a warning finding of its own, not a
    stray Python warning above the report."""
    path = f"{source.root / rel}: "  # how the parsers name the file in their warnings
    with WARNINGS_STATE, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = parse()
        except Exception as exc:  # MotifLiteError, or whatever transformers raises for a config it rejects
            report.problem(rel, f"cannot be read as {what}: {first_line(exc)}", source.fetch(rel, again=True))
            value = FAILED
    if value is not FAILED:
        report.ok(rel, f"parses as {what}")
    for warning in caught:
        if str(warning.message).startswith(path):
            report.warning(rel, str(warning.message).removeprefix(path))
        else:  # another library's, not about this file: as it would have been shown
            _warn_again(warning)
    return value


def _warn_again(warning: warnings.WarningMessage) -> None:
    """Emit a recorded warning again as from where it was first raised: with its module's name, which module
    filters (`-W ignore:::transformers`) match, and that module's registry, which shows a "default" warning once
    per place."""
    modules = list(sys.modules.items())
    module = next((name for name, mod in modules if getattr(mod, "__file__", None) == warning.filename), None)
    registry = None if module is None else vars(sys.modules[module]).setdefault("__warningregistry__", {})
    warnings.warn_explicit(
        warning.message, warning.category, warning.filename, warning.lineno, module=module, registry=registry
    )


def _check_model_index(report: Checkup, source: CheckpointFiles) -> None:
    index = _json(report, source, "model_index.json", "not needed to run; `motif-lite verify` (diffusers) needs it")
    if index is not None:
        report.ok("model_index.json", f"{index.get('_class_name', 'no _class_name')}")


def _check_text_encoder(report: Checkup, source: CheckpointFiles, with_weights: bool = True) -> None:
    rel = "text_encoder/config.json"
    if not with_weights and not (source.root / rel).is_file():
        # A run builds the encoder from the config the text encoder GGUF embeds (and compares the two only when
        # this one is there): its absence is no problem.
        report.ok(rel, "absent: not needed, the text encoder GGUF embeds its config")
        return
    values = _json(report, source, rel)
    if values is None:
        return

    def parse() -> object:
        from motif_lite.encoders.text_config import config_from_values

        config = config_from_values(copy.deepcopy(values), str(source.root / rel))  # a copy: transformers changes it
        if config.model_type != "t5gemma2_encoder":
            raise MotifLiteError(f"model_type {config.model_type!r}, expected 't5gemma2_encoder'")
        return config

    config = _parsed(report, source, "text_encoder/config.json", parse, "a T5Gemma2 encoder config")
    if not with_weights:
        return
    headers = _weights(report, source, "text_encoder", "model.safetensors")
    if headers is not None and _text_encoder_index_missing(report, source, headers):
        return
    if config is FAILED or headers is None:
        return
    found = {name: t.shape for h in headers for name, t in h.tensors.items()}
    problems = text_encoder_mismatches(config, found)
    _report_weights(report, source, "text_encoder", headers, problems, "text_encoder/config.json")


def _text_encoder_index_missing(report: Checkup, source: CheckpointFiles, headers: list[SafetensorsHeader]) -> bool:
    """Whether the text encoder's files are shards without their index, said as a run says it (which refuses them:
    transformers cannot load them). A shard of them missing is `_weights`' to say."""
    from motif_lite.weight_checks import text_encoder_index_problem

    found = text_encoder_index_problem(source.root, [header.path for header in headers])
    if found is not None:
        report.problem("text_encoder/", *found)
    return found is not None


def _check_tokenizer(report: Checkup, source: CheckpointFiles) -> None:
    config = _json(report, source, "tokenizer/tokenizer_config.json")
    # Only whether it reads as a JSON object: the parsed file is not held while the tokenizer loads it again.
    vocabulary_read = _json(report, source, "tokenizer/tokenizer.json", keep=False) is not None
    if config is None or not vocabulary_read:
        return
    from motif_lite.encoders.tokenizer_config import check_tokenizer_values

    # Its values first, on its own line: a wrong one is this file's problem, not tokenizer.json's.
    rel = "tokenizer/tokenizer_config.json"
    if (
        _parsed(report, source, rel, lambda: check_tokenizer_values(config, source.root / rel), "a tokenizer config")
        is FAILED
    ):
        return

    notes: list[str] = []

    def parse() -> object:
        from motif_lite.encoders.text import load_tokenizer, tokenizer_notes_taken

        try:
            with tokenizer_notes_taken(notes):
                return load_tokenizer(source.root, config)  # as a run loads it
        except CheckpointError as exc:  # transformers' own words: the report's line names the file already
            raise exc.__cause__ or exc from None

    rel = "tokenizer/tokenizer.json"
    _parsed(report, source, rel, parse, "a tokenizer")
    for note in notes:  # read as a run reads it, but unlike the official file
        report.warning(rel, note.removeprefix(f"{source.root / rel}: "))


def _check_vae(report: Checkup, source: CheckpointFiles) -> None:
    from motif_lite.vae.config import WanVAEConfig

    _check_component(report, source, "vae", WanVAEConfig.from_dict, "a Wan2.1 VAE config", vae_mismatches)


def _check_transformer(report: Checkup, source: CheckpointFiles) -> TransformerConfig | None:
    from motif_lite.config import TransformerConfig

    what = "a Motif-Video transformer config"
    config = _check_component(report, source, "transformer", TransformerConfig.from_dict, what, _transformer_mismatches)
    return config if isinstance(config, TransformerConfig) else None


def _check_component(
    report: Checkup,
    source: CheckpointFiles,
    folder: str,
    load_config: Callable[[dict, str], object],
    what: str,
    mismatches: Callable[[object, Shapes], list[str]],
) -> object:
    """`folder`/config.json parses (as `what`, by `load_config(values, source)`) and its safetensors weights hold the
    tensors it implies. Returns the parsed config, None when the file is absent or unreadable, or `FAILED`."""
    config_file = f"{folder}/config.json"
    values = _json(report, source, config_file)
    if values is None:
        return None
    config = _parsed(report, source, config_file, lambda: load_config(values, str(source.root / config_file)), what)
    headers = _weights(report, source, folder, "diffusion_pytorch_model.safetensors")
    if config is FAILED or headers is None:
        return config
    found = {name: t.shape for h in headers for name, t in h.tensors.items()}
    _report_weights(report, source, folder, headers, mismatches(config, found), config_file)
    return config


def _transformer_mismatches(config: object, found: Shapes) -> list[str]:
    """Our loader's comparison: checkpoint names in our layout (without ComfyUI's prefix) against the model built
    from `config`. Names only some of which carry the prefix are compared as stored (`_report_weights` says why)."""
    with contextlib.suppress(MotifLiteError):
        found = without_comfy_prefix(found, "the transformer's files")
    try:
        return transformer_mismatch(config, found).lines()
    except MotifLiteError as exc:  # names that mix cross-attention layouts
        return [str(exc)]


def _check_scheduler(report: Checkup, source: CheckpointFiles) -> None:
    from motif_lite.config import diffusers_values
    from motif_lite.sampling import schedule_options, scheduler_shift
    from motif_lite.sampling.schedule import dynamic_shift

    rel = "scheduler/scheduler_config.json"
    config = _json(report, source, rel, "the flow shift defaults to 15 (text-to-video) / 8 (image-to-video)")
    if config is None:
        return

    def parse() -> float | None:  # as a run reads it: its shift, and its other schedule options checked
        schedule_options(config, rel)
        dynamic_shift(diffusers_values(config), rel)
        return scheduler_shift(diffusers_values(config), rel)  # the file read above, not read again

    shift = _parsed(report, source, rel, parse, "a scheduler config")
    if (shift is None or shift == 1.0) and not config.get("use_dynamic_shifting"):  # (FAILED was reported already)
        report.warning(rel, "no shift (or diffusers' default 1.0): runs use 15 (text-to-video) / 8 (image-to-video)")


def _check_guider(report: Checkup, source: CheckpointFiles) -> None:
    from motif_lite.sampling.guidance import guider_from_values

    rel = "guider/guider_config.json"
    values = _json(report, source, rel, "the official APG guidance (scale 8, norm threshold 12, momentum 0.1) is used")
    if values is None:
        return

    def parse() -> object:  # as `guidance_from_guider_config` reads the file: None where the guider is disabled
        guider = guider_from_values(values, source.root / rel)
        return guider.guidance_if_enabled

    guidance = _parsed(report, source, rel, parse, "a guider config")
    if guidance is None:
        report.warning(rel, "guidance disabled (enabled: false): one transformer call per step, no negative prompt")


def check_image_input(report: Checkup, source: CheckpointFiles, transformer: TransformerConfig | None) -> None:
    """Whether a run can take a first-frame image (-i): it needs the feature extractor's config and a transformer
    that takes an image (`image_embed_dim` not null: a run refuses -i otherwise). `transformer`: the config a run
    would use (the checkpoint's, or the one chosen for a GGUF); None when none could be read (its problem is said):
    the row then says image-to-video is unknown, not possible."""
    rel = "feature_extractor/preprocessor_config.json"
    text_only = "image-to-video (-i) is not possible with this checkpoint; text-to-video is"
    if _json(report, source, rel, text_only) is None:
        return
    if transformer is None:  # its config's problem is said: whether it takes an image is not known
        report.ok(rel, "present; image-to-video unknown: no transformer config was read")
        return
    if transformer.image_embed_dim is None:  # a text-to-video export
        report.warning(rel, f"present, but the transformer takes no image (image_embed_dim: null): {text_only}")
        return
    report.ok(rel, "image-to-video possible")


# ------------------------------------------------------------------------------------------- weights


def _weights(report: Checkup, source: CheckpointFiles, folder: str, single: str) -> list[SafetensorsHeader] | None:
    """The headers of a component's safetensors files (an index's shards, else `single`, else the one file, as a
    run finds them: `weight_files`)."""
    directory = source.root / folder
    try:
        files, _ = weight_files(directory, single)
    except MotifLiteError as exc:  # an unreadable index, or several files and none
        problem = first_line(exc).replace(f"{directory}/", "").replace(f"{directory} ", "")
        report.problem(f"{folder}/", problem, source.fetch(f"{folder}/*.safetensors*", again=True))
        return None
    headers, complete = [], True
    for path in files:
        rel = f"{folder}/{path.name}"
        if not path.is_file():
            report.problem(rel, "missing", source.fetch(f"{folder}/*.safetensors*"))
            complete = False
            continue
        try:
            headers.append(read_header(path))
        except LFSPointerError as exc:
            report.problem(rel, exc.problem, exc.fix)
            complete = False
        except MotifLiteError as exc:
            report.problem(rel, first_line(exc).replace(f"{path}: ", ""), source.fetch(rel, again=True))
            complete = False
    return headers if complete else None


def _report_weights(
    report: Checkup,
    source: CheckpointFiles,
    folder: str,
    headers: list[SafetensorsHeader],
    problems: list[str],
    config: str,
) -> None:
    files = ", ".join(f"{folder}/{h.path.name}" for h in headers)
    names = [name for h in headers for name in h.tensors]
    official = f"replace it with the official file: {source.fetch(folder + '/*', again=True)}"
    prefix = comfy_prefix([n for n in names if not is_companion(n)]) if folder == "transformer" else None
    # Some weights' names with ComfyUI's prefix, some without (and no other component's names): one line.
    if folder == "transformer" and other_component(folder, names) is None:
        try:
            without_comfy_prefix(dict.fromkeys(names), files)
        except MotifLiteError as exc:
            report.problem(files, str(exc).removeprefix(f"{files}: "), official)
            return
    try:  # ComfyUI's fp8 copies load (their scales beside the weights); its int8 and NVFP4 formats do not
        weight_scales({name: t.dtype for h in headers for name, t in h.tensors.items()}, files)
        _check_floats(folder, headers, files)
    except MotifLiteError as exc:
        report.problem(files, str(exc), official)
        return
    if problems:
        fix = f"the weights and the config come from different models: {source.fetch(folder + '/*', again=True)}"
        yours = [file for name, file in source.linked.items() if name.startswith(f"{folder}/")]
        other = other_component(folder, names)
        if yours and other is not None:  # a file of the user's given to the wrong flag
            fix = f"your file {yours[0]} holds {other}"
        report.problem(files, f"{len(problems)} tensor(s) do not match {config}: {named(problems)}", fix)
        return
    count = sum(len(h.tensors) for h in headers)
    size = sum(h.data_bytes for h in headers)
    read = "" if prefix is None else f" (read without ComfyUI's prefix {prefix!r})"
    report.ok(files, f"complete, {count} tensors ({file_size(size)}), names{read} and shapes match {config}")


FLOATS_CHECKED = {"transformer": "transformer", "vae": "VAE"}  # the components whose loaders refuse other dtypes


def _check_floats(folder: str, headers: list[SafetensorsHeader], files: str) -> None:
    """The run's refusal of integer or boolean tensors in `files` (`check_floats`, as the transformer's and the
    VAE's loaders call it, a scaled fp8 file's companions aside): a run refuses such a file before it loads."""
    if folder not in FLOATS_CHECKED:
        return
    refs = {
        name: TensorRef(h.path, name, t.shape, t.dtype)
        for h in headers
        for name, t in h.tensors.items()
        if not is_companion(name)
    }
    check_floats(refs, files, FLOATS_CHECKED[folder])


def check_text_encoder_gguf(report: Checkup, value: str, root: Path | None, model: str) -> TextEncoderGGUF | None:
    """A quantized text encoder (`--text-encoder-gguf`), checked as a run checks it: one file, a readable header,
    an embedded config equal to the checkpoint's text_encoder/config.json, every tensor as that config says
    (`model`: -m as given, which a fix that makes the file again names). Returns the file as read (for the memory
    plan, which then does not read it again), or None after reporting the problem."""
    from motif_lite.checkpoint import TextEncoderGGUFError, find_text_encoder_gguf
    from motif_lite.io.gguf_source import text_encoder_gguf_fix
    from motif_lite.weights.gguf_file import UnfinishedGGUFError

    path = user_path(value)  # "~/te.gguf" as the shell would have expanded it; a "~user" this machine lacks raises
    try:
        found = find_text_encoder_gguf(root, value, model)
    except MotifLiteError as exc:
        if isinstance(exc, (TextEncoderGGUFError, UnfinishedGGUFError)):  # its fix is said apart from the problem
            problem, fix = first_line(exc.problem), exc.fix
        else:
            problem = first_line(exc)
            fix = _other_kind_fix(exc, path) or _safetensors_fix(path, "--text-encoder", "text_encoder")
            fix = fix or text_encoder_gguf_fix(path, model)
        for prefix in (f"{value}: ", f"{value} ", f"{path}: ", f"{path} "):  # the line names the file already
            problem = problem.removeprefix(prefix)
        report.problem(value, problem, fix)
        return None
    recipe = made_as_and_by(found.recipe, found.quantizer_version)
    compared = root is not None and (root / "text_encoder" / "config.json").is_file()  # as a run compares them
    against = "; its config matches text_encoder/config.json" if compared else ""
    summary = f"text encoder GGUF{recipe}, {len(found.tensors)} tensors: {types_and_sizes(found.tensors)}{against}"
    report.ok(str(found.path), summary)
    return found


def check_gguf(
    report: Checkup, path: Path, root: Path | None, model: str
) -> tuple[TransformerConfig | None, GGUFCheckpoint | None]:
    """A GGUF transformer: readable, complete, known quant types, and every tensor as its config says (`model`: -m
    as given, which a fix that makes the file again names). Returns that config (None when there is none) and the
    file's header as read (None when it could not be read: for the memory plan, which then does not read it again).

    The config is chosen as `motif-lite run` chooses it (`choose_gguf_config`): the checkpoint's
    `transformer/config.json` when there is one, else the one our quantizer embeds, else a `config.json` beside the
    file, else inferred from the tensor shapes (which cannot show rope_theta: a warning says so)."""
    from motif_lite.config import TransformerConfig
    from motif_lite.io.gguf_source import gguf_file_fix
    from motif_lite.weights.gguf_file import UnfinishedGGUFError, read_gguf
    from motif_lite.weights.gguf_loader import check_gguf_config

    subject = str(path)
    try:
        checkpoint = read_gguf(path)
    except (LFSPointerError, UnfinishedGGUFError) as exc:
        report.problem(subject, exc.problem, exc.fix)
        return None, None
    except MotifLiteError as exc:
        problem = first_line(exc).replace(f"{path}: ", "").replace(f"{path} ", "")
        fix = _other_kind_fix(exc, path) or _safetensors_fix(path, "--diffusion-model", "transformer")
        fix = fix or _foreign_fix(exc, path, model)
        report.problem(subject, problem, fix or gguf_file_fix(path, model))
        return None, None
    report.ok(subject, gguf_summary(checkpoint))
    config_path = None if root is None else root / "transformer" / "config.json"
    try:  # the config `motif-lite run` would choose, with the same notes
        ours = None
        if config_path is not None and config_path.is_file():
            ours = TransformerConfig.from_json(config_path), "transformer/config.json"
        choice, mismatch = check_gguf_config(checkpoint, ours)
    except MotifLiteError as exc:
        report.problem(subject, f"no usable transformer config: {first_line(exc)}", gguf_file_fix(path, model))
        return None, checkpoint
    config, origin = choice.config, choice.origin
    if not origin.endswith("config.json"):  # "embedded in x.gguf (...)", "inferred from the GGUF tensor shapes"
        origin = f"the config {origin}"
    if choice.inferred:
        report.warning(subject, f"no transformer config at hand: rope_theta {config.rope_theta:g} is assumed")
    else:  # configs ranked below the chosen one that disagree with it or cannot be read
        for note in choice.notes:
            report.warning(subject, note)
    if mismatch:
        problems = mismatch.lines()
        report.problem(
            subject, f"{len(problems)} tensor(s) do not match {origin}: {named(problems)}", gguf_file_fix(path, model)
        )
    else:
        report.ok(subject, f"names and shapes match {origin}")
    return config, checkpoint


def gguf_summary(checkpoint: GGUFCheckpoint) -> str:
    """What a transformer GGUF holds, in one line: the type it was made as, its tensors by type with their sizes
    (what `gguf-dump` would list tensor by tensor), and an architecture label that another tool gave it."""
    from motif_lite.weights.gguf_file import EXPECTED_ARCH, recorded_type, recorded_version

    made = made_as_and_by(recorded_type(checkpoint.metadata), recorded_version(checkpoint.metadata))
    tensors = checkpoint.tensors
    line = f"complete GGUF{made}, {len(tensors)} tensors: {types_and_sizes(tensors)}"
    arch = checkpoint.metadata.get("general.architecture")
    if arch != EXPECTED_ARCH:  # accepted for its tensor names (gguf_file.MOTIF_VIDEO_NAMES)
        label = "no general.architecture" if arch is None else f"general.architecture {arch!r}"
        line += f"; {label}, read as {EXPECTED_ARCH} from its tensor names"
    return line


def made_as_and_by(made_as: str | None, version: str | None) -> str:
    """What a GGUF line says of how the file was made: " (Q4_K_M, made by motif-lite 0.1.0)", its type and the
    motif-lite `version` whose quantizer wrote it (both from the metadata its read gave), for a bug report about the
    file; each left out where the file does not record it (an older file, another tool's), and "" when it records
    neither."""
    said = [made_as] if made_as else []
    said += [f"made by motif-lite {version}"] if version else []
    return f" ({', '.join(said)})" if said else ""


def types_and_sizes(tensors: Mapping[str, PackedTensor]) -> str:
    """A GGUF's tensors by type, the largest share first: "Q4_K x300 0.85 GB, F32 x500 1.2 MB"."""
    by_type: dict[str, list[int]] = {}
    for tensor in tensors.values():
        by_type.setdefault(tensor.qtype.name, []).append(tensor.nbytes)
    largest_first = sorted(by_type.items(), key=lambda item: -sum(item[1]))
    return ", ".join(f"{name} x{len(sizes)} {file_size(sum(sizes))}" for name, sizes in largest_first)


def _foreign_fix(error: MotifLiteError, path: Path, model: str) -> str | None:
    """For another model's GGUF given as the transformer: where ours comes from (`foreign_gguf_fix`); None for any
    other error. (A text encoder GGUF's error carries its own fix: `TextEncoderGGUFError`.)"""
    from motif_lite.io.gguf_source import foreign_gguf_fix
    from motif_lite.weights.gguf_file import ForeignGGUFError

    return foreign_gguf_fix(path, model, "transformer") if isinstance(error, ForeignGGUFError) else None


def _other_kind_fix(error: MotifLiteError, path: str | Path) -> str | None:
    """For a GGUF that is fine but given to the wrong flag (the two kinds are easily swapped), the flag it goes
    to; a download or a new quantization would not help. None for any other error."""
    from motif_lite.weights.gguf_file import OtherGGUFKindError

    if not isinstance(error, OtherGGUFKindError):
        return None
    return f"pass it as {error.flag} {quoted(path)}"


def _safetensors_fix(path: Path, flag: str, component: str) -> str | None:
    """For a safetensors file given where a GGUF goes (ComfyUI's and sd.cpp's model folders hold both kinds): the
    flag that takes it as it is, or the command that quantizes it; a download would not help. None otherwise."""
    if not path.is_file():
        return None
    try:
        header = read_header(path)
    except MotifLiteError:
        return None
    if (other := other_component(component, header.tensors)) is not None:  # e.g. the VAE's file given to --gguf
        return f"it is a safetensors file that holds {other}"
    quantize = f"python -m motif_lite.quantize {quoted(path)}"  # pasted: a path with a space is quoted
    if component == "text_encoder":  # its config.json must sit beside it
        quantize += " --component text_encoder -o te-Q8_0.gguf"
    else:
        quantize += f" -o {quoted(f'{path.stem}-Q4_K_M.gguf')}"
    return f"it is a safetensors file: pass it as {flag} {quoted(path)}, or quantize it: {quantize}"
