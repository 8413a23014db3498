"""`motif-lite check`: is everything a run needs on disk, complete and consistent, and what can this machine do?

    report = check_setup("Motif-Video-2B/", gguf="motif-video-2b-Q4_K_M.gguf")
    print("\\n".join(report.lines())); exit(0 if report.passed else 2)

No weights are loaded: safetensors and GGUF files are checked from their headers, each component's tensor names
and shapes against a model built from its config on the `meta` device, every config parsed as a run parses it
(`checkpoint.py`); the machine's GPU, Triton and ffmpeg (`environment.py`); and the memory plan of a default
request. A Hub repo id is looked up in the local Hugging Face cache only: checking never downloads.

Findings have three levels: `ok`; `warning`, for what this machine or checkpoint cannot do while a run still works
(no GPU, no image-to-video); `problem`, for what makes a run fail or go wrong, each naming its file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import constants

from motif_lite.checkpoint import GGUFFilesRead, download_patterns, refuse_blank_paths, required_files
from motif_lite.checkup.checkpoint import check_checkpoint, check_gguf, check_image_input, check_text_encoder_gguf
from motif_lite.checkup.environment import check_environment
from motif_lite.checkup.report import CheckpointFiles, Checkup, Finding, first_line
from motif_lite.choices import GGUF_REPO, MOTIF_REPO
from motif_lite.errors import Audience, LFSPointerError, MemoryBudgetError, MotifLiteError
from motif_lite.io.checkpoint_source import find_checkpoint, refuse_lfs_pointers
from motif_lite.io.copied_links import CopiedLinksError
from motif_lite.io.gguf_source import (
    MissingGGUFError,
    find_gguf,
    gguf_address_problem,
    gguf_files,
    is_gguf_repo,
    is_gguf_variant,
    partial_gguf_problem,
    unknown_variant_problem,
    unrunnable_variant_problem,
)
from motif_lite.io.hub import (
    HubAccess,
    cache_disk,
    homeless_cache,
    model_address_problem,
    offline_set,
    revision_problem,
    stray_snapshots_note,
)
from motif_lite.io.linked import (
    FLAGS,
    GGUF_SETTINGS,
    WEIGHT_NAMES,
    VAEFolderError,
    check_weight_file,
    linked_checkpoint,
    refuse_file_beside_gguf,
)
from motif_lite.io.missing_report import MissingFilesError
from motif_lite.io.path_fixes import (
    CACHE_REPO_FOLDER,
    COMFYUI_INSTALL,
    COMFYUI_MODELS,
    GGUF_FOLDER,
    GGUF_REPO_AS_MODEL,
    HUB_CACHE_FOLDER,
    VAE_FOLDER,
    cache_repo_fix,
    checkpoint_folders_inside,
    close_checkpoint,
    comfyui_install_fix,
    comfyui_models_fix,
    expanded_as,
    file_fix,
    gguf_folder_fix,
    hub_cache_fix,
    is_component_folder,
    parent_as_given,
    vae_folder_as_model_fix,
)
from motif_lite.io.wsl import windows_drive_note
from motif_lite.paths import names_too_long_refused, user_path
from motif_lite.shell_syntax import quoted
from motif_lite.units import file_size, memory_size
from motif_lite.weight_checks import float8_notes, weight_locations

__all__ = ["CheckpointFiles", "Checkup", "Finding", "check_setup"]


def check_setup(
    model: str | Path = MOTIF_REPO,
    gguf: str | Path | None = None,
    text_encoder_gguf: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
) -> Checkup:
    """Check the machine, the checkpoint (its `transformer/` weights only without `gguf`, its `text_encoder/`
    weights only without `text_encoder_gguf`), the GGUF files and the memory plan of a default request; see the
    module docstring. `weights`: the user's own weight files for some components, checked in place of the
    checkpoint's (as a run links them, `io.linked`). A path no file can have (an empty one, a name longer than the
    file system allows, a `~user` this machine lacks) raises the `MotifLiteError` the command line prints for it."""
    refuse_blank_paths(model, gguf, text_encoder_gguf, weights)
    refuse_file_beside_gguf(weights or {}, gguf, text_encoder_gguf)
    with names_too_long_refused():
        return _check_setup(model, gguf, text_encoder_gguf, weights)


def _check_setup(
    model: str | Path,
    gguf: str | Path | None,
    text_encoder_gguf: str | Path | None,
    weights: Mapping[str, str | Path] | None,
) -> Checkup:
    report = Checkup()
    check_environment(report)
    replaced = {"transformer"} if gguf is not None else set()
    replaced |= {"text_encoder"} if text_encoder_gguf is not None else set()
    files = _local_checkpoint(str(model), report, linked=set(weights or {}), gguf=replaced)
    gguf_path = _local_gguf(str(gguf), report, str(model)) if gguf is not None else None
    downloads = [found for found in (files, gguf_path) if isinstance(found, NotInCache)]
    if downloads:  # said together: the command to type after them points at every folder they fill
        again = _check_command(downloads, model, gguf, text_encoder_gguf, weights)
        for missing in downloads:
            fix = "download it: " + "; ".join(item.command() for item in missing.error.missing)
            report.problem(missing.subject, missing.problem, f"{fix}; then: {again}")
        _download_room(report, gguf is not None)
    files = files if isinstance(files, CheckpointFiles) else None
    gguf_path = gguf_path if isinstance(gguf_path, Path) else None
    found = None if files is None else files.root  # before your own weight files are linked in
    if files is not None and weights:
        files = _with_weight_files(files, weights, report)
    root = None if files is None else files.root
    transformer = None  # the transformer's config a run would use
    if files is not None:
        transformer = check_checkpoint(
            report, files, with_transformer=gguf is None, with_text_encoder=text_encoder_gguf is None
        )
    gguf_header = None  # each GGUF file as its line read it: the memory plan does not read it again
    if gguf_path is not None:
        transformer, gguf_header = check_gguf(report, gguf_path, root, str(model))
    if files is not None:
        check_image_input(report, files, transformer)
    text_gguf = None
    if text_encoder_gguf is not None:
        text_gguf = check_text_encoder_gguf(report, str(text_encoder_gguf), root, str(model))
    text_path = None if text_gguf is None else text_gguf.path
    separate = [gguf_path, text_path, *(user_path(file) for file in (weights or {}).values())]
    _check_windows_drives(report, weight_locations(found, replaced | set(weights or {}), separate))
    if files is not None and not report.problems:
        _check_default_plan(report, files, gguf_path, text_path, GGUFFilesRead(gguf_header, text_gguf))
    return report


# README's "What you need" figures for a first run's download, as said and in bytes.
FIRST_RUN_GGUF = ("about 10 GB with a Q4_K_M GGUF", 10 * 10**9)
FIRST_RUN_BF16 = ("about 13 GB with the bf16 transformer", 13 * 10**9)


def _download_room(report: Checkup, gguf: bool) -> None:
    """Where files are missing: the free space of the disks they would go to, the Hugging Face cache's (a run's
    download; `gguf`: with a GGUF transformer, README's "What you need" figure for it) and, where it is another disk,
    the current folder's (the `hf download` commands of the fixes)."""
    if homeless_cache() is not None:  # no real cache folder to measure: a run says why
        return
    cache, here = cache_disk(), Path.cwd()
    first_run, needed = FIRST_RUN_GGUF if gguf else FIRST_RUN_BF16
    free = shutil.disk_usage(cache).free
    said = f"{file_size(free)} free on the disk of the Hugging Face cache {constants.HF_HUB_CACHE}, where "
    if constants.HF_HUB_OFFLINE:  # a run names the missing files and stops: it downloads nothing
        said += f"downloads are off ({offline_set()}; a first run needs {first_run})"
    else:
        said += (
            f"motif-lite run downloads what is missing ({first_run} for a first run; "
            "it says the size first, and refuses downloads that do not fit)"
        )
    if cache.stat().st_dev != here.stat().st_dev:
        said += (
            f"; {file_size(shutil.disk_usage(here).free)} free in the current folder, which the download commands "
            "above fill (for another disk: --local-dir /data/..., then -m and --gguf those folders)"
        )
    if free < needed:  # a run would refuse the download at once: say so here, not a green line
        report.warning("disk", f"{said}: not enough for a first run")
    else:
        report.ok("disk", said)


@dataclass(frozen=True)
class NotInCache:
    """A Hub repo's files that a check needs and the local cache lacks: said once every lookup is done, so that
    the command its fix gives after the downloads points at the folders of all of them (`_check_command`)."""

    subject: str  # as given: -m's or --gguf's value
    problem: str
    error: MissingFilesError


def _check_command(
    downloads: list[NotInCache],
    model: str | Path,
    gguf: str | Path | None,
    text_encoder_gguf: str | Path | None,
    weights: Mapping[str, str | Path] | None,
) -> str:
    """This check's command with -m / --gguf pointing at the folders the `downloads` fill (they download into a
    folder, not into the cache a repo id is looked up in), as a run's error gives its own command afterwards."""
    folders = {key: folder for missing in downloads for key, folder in missing.error.replacements.items()}
    flags = [("-m", folders.get("model", model)), ("--gguf", folders.get("gguf", gguf))]
    flags += [("--text-encoder-gguf", text_encoder_gguf)]
    flags += [(FLAGS.get(component, component), file) for component, file in (weights or {}).items()]
    given = [part for flag, value in flags if value is not None for part in (flag, quoted(str(value)))]
    return " ".join(["motif-lite check", *given])


def _check_windows_drives(report: Checkup, paths: list[Path]) -> None:
    """Under WSL2, weights on a Windows drive (/mnt/c, ...): a run reads them many times slower (a warning)."""
    note = windows_drive_note(path for path in paths if path.exists())
    if note is not None:
        report.warning("weights on a Windows drive", note)


def _local_checkpoint(
    model: str, report: Checkup, linked: set[str], gguf: set[str]
) -> CheckpointFiles | NotInCache | None:
    """The checkpoint folder, found as a run finds it but in the Hugging Face cache only (a repo id it lacks: the
    download, for the caller to say); `linked`, `gguf`: the components whose weights the user's own files or a GGUF
    replace (so a download it suggests leaves them out, as a run's does: `download_patterns`)."""
    path = user_path(model)
    # -m ./Motif-Video-2B/transformer, a folder of checkpoints or of GGUF files: one problem, not one per file
    gguf_fix = gguf_folder_fix(model)
    if gguf_fix is not None:
        report.problem(model, GGUF_FOLDER, gguf_fix)
        return None
    cache_fix = cache_repo_fix(model)
    if cache_fix is not None:
        report.problem(model, CACHE_REPO_FOLDER, cache_fix)
        return None
    hub_fix = hub_cache_fix(model)
    if hub_fix is not None:
        report.problem(model, HUB_CACHE_FOLDER, hub_fix)
        return None
    comfyui_fix = comfyui_models_fix(model)
    if comfyui_fix is not None:
        report.problem(model, COMFYUI_MODELS, comfyui_fix)
        return None
    install_fix = comfyui_install_fix(model)
    if install_fix is not None:
        report.problem(model, COMFYUI_INSTALL, install_fix)
        return None
    vae_fix = vae_folder_as_model_fix(model)
    if vae_fix is not None:
        report.problem(model, VAE_FOLDER, vae_fix)
        return None
    if is_gguf_repo(model):  # -m names the GGUF repo: not a download of checkpoint files it does not have
        report.problem(model, *GGUF_REPO_AS_MODEL)
        return None
    if path.is_dir() and is_component_folder(path):
        parent = parent_as_given(model)
        fix = f"pass -m {quoted(parent)}"
        report.problem(model, f"is the {path.name}/ folder of the checkpoint {parent}", fix)
        return None
    inside = checkpoint_folders_inside(path) if path.is_dir() else []
    if inside:
        names = ", ".join(child.name for child in inside)
        report.problem(
            model,
            f"is not a checkpoint folder but holds the checkpoint folder{'s' if len(inside) > 1 else ''} {names}",
            f"pass -m {quoted(str(Path(model) / inside[0].name))}",
        )
        return None
    try:
        root = find_checkpoint(model, download=download_patterns(gguf, linked), hub=HubAccess(download=False))
        refuse_lfs_pointers(root, required_files(gguf, linked))
    except MissingFilesError as exc:  # a Hub repo id the cache lacks
        stray = stray_snapshots_note(model)  # or holds, in a snapshot its refs/main does not lead to
        return NotInCache(
            model, "not in the local Hugging Face cache (check never downloads)" + (f": {stray}" if stray else ""), exc
        )
    except (LFSPointerError, CopiedLinksError) as exc:  # a clone without git-lfs, a copy without links: one problem
        report.problem(model, exc.problem, exc.fix)
        return None
    except MotifLiteError:  # neither a folder nor a repo id
        if (revision := revision_problem(model)) is not None:
            report.problem(model, *revision)
            return None
        if (address := model_address_problem(model)) is not None:
            report.problem(model, *address)
            return None
        if (gguf_address := gguf_address_problem(model)) is not None:
            report.problem(model, "a GGUF file on the Hub, not a checkpoint", f"it goes to --gguf: {gguf_address[1]}")
            return None
        if path.exists():
            fix = file_fix(model) or f"pass the folder that holds model_index.json, or {MOTIF_REPO}"
            report.problem(model, "is a file, not a checkpoint folder", fix)
            return None
        meant = close_checkpoint(model)
        fix = f"did you mean -m {meant}?" if meant else f"pass the folder that holds model_index.json, or {MOTIF_REPO}"
        report.problem(model, f"no such checkpoint folder{expanded_as(model)}", fix)
        return None
    return CheckpointFiles(root) if path.is_dir() else CheckpointFiles(root, model)


def _with_weight_files(files: CheckpointFiles, weights: Mapping[str, str | Path], report: Checkup) -> CheckpointFiles:
    """The checkpoint with the user's weight files linked in (each one that exists; the others are problems)."""
    valid = {}
    for component, file in weights.items():
        try:
            valid[component] = check_weight_file(component, file)
        except VAEFolderError as exc:  # its fix names the file in the folder that is Motif-Video's VAE
            report.problem(str(file), exc.problem, exc.fix.flag or exc.fix.none_is)
            continue
        except MotifLiteError as exc:
            report.problem(str(file), str(exc), _weight_file_fix(component, file))
            continue
        try:  # ComfyUI's fp8 copies, as a run says it
            for note in float8_notes(component, valid[component]):
                report.warning(str(file), note)
        except MotifLiteError as exc:
            report.problem(str(file), str(exc), "pass the bf16 or fp16 file")
    if not valid:
        return files
    try:
        root = linked_checkpoint(files.root, valid)
    except MotifLiteError as exc:
        report.problem(str(files.root), str(exc), "pass a checkpoint folder that holds the weights (-m)")
        return files
    named = {WEIGHT_NAMES[component]: path for component, path in valid.items()}
    report.ok("weight files", "yours, checked below under their official names: " + ", ".join(
        f"{name} = {path}" for name, path in named.items()
    ))  # fmt: skip
    return CheckpointFiles(root, files.repo, named, downloads_to=files.root)


def _weight_file_fix(component: str, file: str | Path) -> str:
    """The fix for a weight file `check_weight_file` refused (but a folder of VAE files, whose refusal has its own),
    as concrete as the refusal: a folder's one .safetensors file (or .gguf file, for a flag that takes one), with its
    flag; -m for one shard of several (its flag takes whole files only); else the file's path. A fixed "pass the path
    of the .safetensors file" contradicted the refusal of a shard, which says to use -m."""
    flag = FLAGS.get(component)
    if flag is None:  # a component no flag takes (the Python API's `weights` keys): the refusal names the ones
        return f"name one of {', '.join(WEIGHT_NAMES)}"
    path = user_path(file)
    suffixes = ("*.safetensors", "*.gguf") if component in GGUF_SETTINGS else ("*.safetensors",)
    inside = sorted(p for suffix in suffixes for p in path.glob(suffix)) if path.is_dir() else []
    if len(inside) == 1 and not _one_shard_of_several(inside[0]):
        return f"{flag} {quoted(str(inside[0]))}"
    if any(_one_shard_of_several(p) for p in [path, *inside]):
        return f"-m with the checkpoint folder that holds every shard, and no {flag}"
    return f"pass the path of the .safetensors file to {flag}"


def _one_shard_of_several(path: Path) -> bool:
    """Whether `path` is named as one shard of a sharded component (text_encoder/model-00001-of-00002.safetensors)."""
    shard = re.search(r"-\d+-of-(\d+)\.safetensors$", path.name)
    return shard is not None and int(shard[1]) > 1


def _local_gguf(gguf: str, report: Checkup, model: str) -> Path | NotInCache | None:
    """The GGUF file, found as a run finds it (a file, a folder's one file, a variant) but in the cache only (a
    variant it lacks: the download `run` would suggest, for the caller to say); `model` (-m as given) is what the fix
    for a quantizer's partial file makes it again from."""
    try:
        return find_gguf(gguf, HubAccess(download=False))
    except MissingFilesError as exc:
        return NotInCache(gguf, f"no single file of variant {gguf} in the local cache of {GGUF_REPO}", exc)
    except MotifLiteError as exc:
        path = user_path(gguf)
        if (address := gguf_address_problem(gguf)) is not None:
            report.problem(gguf, *address)
        elif (partial := partial_gguf_problem(path, model)) is not None:
            report.problem(gguf, *partial)
        elif (path / "model_index.json").is_file():  # the checkpoint given to --gguf instead of -m
            fix = f"it goes to -m: -m {quoted(gguf)}; --gguf takes a .gguf file, or a variant such as Q4_K_M"
            report.problem(gguf, "is a checkpoint folder (it holds model_index.json), not a GGUF file", fix)
        elif path.is_dir():
            report.problem(gguf, f"holds {len(gguf_files(path))} .gguf files", _one_gguf_of(path))
        elif is_gguf_variant(gguf) and (refused := _variant_problem(gguf)) is not None:  # as run says it
            report.problem(gguf, *refused)
        elif isinstance(exc, MissingGGUFError):  # as run says it: the variant a name or repo id means
            report.problem(gguf, exc.problem, exc.fix)
        else:
            fix = "pass the path of a .gguf file (or its folder), or a variant name such as Q4_K_M"
            report.problem(gguf, "no such GGUF file", fix)
    return None


def _one_gguf_of(folder: Path, most: int = 6) -> str:
    """The fix for a --gguf folder that holds several .gguf files or none: the files to choose from (at most `most`,
    then how many more), as a run's refusal lists them; it said only "pass the path of one .gguf file"."""
    files = [quoted(str(file)) for file in gguf_files(folder)]
    if not files:
        return "pass the path of one .gguf file"
    more = f", and {len(files) - most} more" if len(files) > most else ""
    return f"pass the path of one .gguf file: {', '.join(files[:most])}{more}"


def _variant_problem(variant: str) -> tuple[str, str] | None:
    """(problem, fix) for a variant that `run` refuses by its name: no type's name (Q4KM), or a type motif-lite
    cannot run (TQ1_0)."""
    flags = Audience.FLAGS  # as run's own check of --gguf says it
    return unknown_variant_problem(variant, audience=flags) or unrunnable_variant_problem(variant, audience=flags)


def _check_default_plan(
    report: Checkup,
    files: CheckpointFiles,
    gguf: Path | None,
    text_encoder_gguf: Path | None,
    header_read: GGUFFilesRead,
) -> None:
    """The memory plan of a default `motif-lite run` (official size and settings) on this machine, from the configs
    and GGUF headers as the file checks read them (`files.configs_read`, `header_read`: each file read once). A plan
    that does not fit the memory is a warning (a smaller video still runs); any other refusal is a problem: a run
    refuses it whatever its size."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.checkpoint_configs import CheckpointConfigs
    from motif_lite.memory_plan import AT_HAND, plan_generation
    from motif_lite.request import GenerationRequest

    root = files.root
    request = GenerationRequest("check")
    size = f"{request.width}x{request.height}x{request.frames}"
    try:
        with _files_warned_once(root):
            configs = CheckpointConfigs.read(root, files_read=files.configs_read)
            sources = locate_sources(
                root,
                gguf,
                text_encoder_gguf=text_encoder_gguf,
                header_read=header_read,
                configs_read=configs,
                **AT_HAND,
            )
            plan = plan_generation(request, sources, dtype=None, device="auto")
    except MemoryBudgetError as exc:
        report.warning("memory plan", f"the default {size} does not fit here: {first_line(exc)}")
        return
    except MotifLiteError as exc:  # not about memory: its message says what to change
        report.problem("memory plan", f"a run is refused: {first_line(exc)}", "change what the refusal names")
        return
    report.plan = plan
    budget = "none on the CPU" if plan.budget_bytes is None else f"{memory_size(plan.budget_bytes)} free"
    report.ok(
        "memory plan",
        f"default {size}: {plan.rank}, estimated peak {memory_size(plan.peak_bytes)}, budget {budget}",
    )


@contextlib.contextmanager
def _files_warned_once(root: Path) -> Iterator[None]:
    """Python's warnings inside, but those about the checkpoint's files (`root/...`: unknown config keys), which
    the file checks reported as findings already, read again by the plan."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            yield
        finally:
            shown = [w for w in caught if not str(w.message).startswith(f"{root}{os.sep}")]
    for warning in shown:  # outside the block: shown as they would have been
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
