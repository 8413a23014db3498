"""Per-job LoRAs: a job names LoRA files of the operator's `--lora-dir` folder, never a path of its own.

A create body's `loras` is a list of file names, or of `{"name": FILE, "strength": S}` objects (strength 1 when
left out); in a multipart form, the same list as JSON text. A name is a plain file name in the folder: no folder
parts, no `..`, nothing absolute, and once resolved (symlinks followed) it must still lie inside the folder, so that
a link cannot hand a client a file elsewhere on the server. Messages name the files as the client named them, never
the folder's path on the server.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from motif_lite.io.file_kinds import has_extension
from motif_lite.io.staging import unreachable_path
from motif_lite.log_filters import quiet_warnings
from motif_lite.server.schema import ApiError, named_once_advice
from motif_lite.weights.lora_values import same_file_positions, times, times_applied

if TYPE_CHECKING:
    from motif_lite.checkpoint import ModelSources
    from motif_lite.memory_advice import PlannedRun
    from motif_lite.pipeline import MotifVideoPipeline
    from motif_lite.runtime.planner import Plan
    from motif_lite.weights.lora_updates import LoRAFile


def lora_files(loras: list[tuple[str, float]], folder: Path | None) -> list[tuple[Path, float]]:
    """The files of a job's LoRAs inside `folder` (the server's --lora-dir); 400 when the server has no folder, or a
    name is no file of it (a symlink that leads out of it counts as none)."""
    if not loras:
        return []
    if folder is None:
        _refuse("this server takes no per-job LoRAs: its operator must start it with --lora-dir DIR, a folder of the "
                "LoRA files jobs may use")  # fmt: skip
    root = folder.resolve()
    files = []
    for name, strength in loras:
        try:
            path = _folder_file(root, name)
        except PermissionError as exc:
            _refuse_unreachable(exc)
        if path is None:
            available = available_loras(folder)
            meant = _meant(name, available)
            hint = f"; did you mean {meant!r}?" if meant else ""
            listing = ", ".join(available) or "none"
            _refuse(f"no LoRA file {name!r} in this server's LoRA folder{hint} (available: {listing})")
        files.append((path, strength))
    # One file given more than once, by one name or by several (a link in the folder): every entry of it, so that
    # the one strength offered gives what they all give.
    if (same := same_file_positions([path for path, _ in files])) is not None:
        names = [loras[i][0] for i in same]
        strengths = [loras[i][1] for i in same]
        first = names[0]
        advice = named_once_advice(first, *strengths)
        if (second := next((name for name in names if name != first), None)) is None:
            applied = times_applied(strengths)
            _refuse(f"loras names a file {times(len(names))}: {first}, which would apply {applied}: {advice}")
        why = why_one_file(folder, first, second)
        named = [repr(name) for name in names]
        _refuse(
            f"{', '.join(named[:-1])} and {named[-1]} are the same file of this server's LoRA folder ({why}), which "
            f"would apply {times_applied(strengths)}: {advice}"
        )
    return files


def one_file_named_again(loras: Sequence[tuple[str, float]], folder: Path | None) -> tuple[int, ...] | None:
    """The positions in a job's `loras` of every name of the first file they name more than once: by one name, or
    by names of one file of `folder` (the server's --lora-dir: a link, other capitals in a folder that ignores
    case), compared as `lora_files` compares them; None where each names another file. For a job whose `loras`
    were not checked by this server: a remix's source, a job queued before the server started."""
    if folder is None:  # no folder to look in: by the names alone
        names = [name for name, _ in loras]
        first = next((name for name in names if names.count(name) > 1), None)
        return None if first is None else tuple(i for i, name in enumerate(names) if name == first)
    root = folder.resolve()
    # `lora_files` refuses a name that is no file of the folder (missing, or a link that leads out of it) before it
    # compares any two: such a name is left to that refusal, which says what is wrong, and compared with none here.
    files = {i: path for i, (name, _) in enumerate(loras) if (path := _reachable_file(root, name)) is not None}
    same = same_file_positions(list(files.values()))
    return None if same is None else tuple(list(files)[i] for i in same)


def _folder_file(root: Path, name: str) -> Path | None:
    """The file `name` opens in the folder `root` (resolved), links followed; None where it is no file there (a link
    loop too) or the name leads out of the folder (a link elsewhere on the server counts as none)."""
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError):  # a link loop: Python 3.10-3.12 raise RuntimeError, "Symlink loop from ..."
        return None
    return path if path.parent == root and path.is_file() else None


def _reachable_file(root: Path, name: str) -> Path | None:
    """`_folder_file`, None where the folder cannot be entered now (`lora_files` refuses that, saying so)."""
    try:
        return _folder_file(root, name)
    except PermissionError:
        return None


def _refuse_unreachable(exc: PermissionError) -> NoReturn:
    """503 for a LoRA folder this process may no longer enter (no x, search permission on it or on a folder above
    it: taken away while the server runs), which `Path.is_file` raises as a PermissionError: it was a 500 for each
    job naming a LoRA. The client is told what its operator must do, without the folder's path (`unreachable_path`
    words the same refusal for the command line, with it)."""
    if unreachable_path(exc) is None:  # a file it may not read: not the folder's state
        raise exc
    raise ApiError(503, "this server's LoRA folder (--lora-dir) cannot be reached now: the server's user may not "
                   "enter it or a folder above it (it needs x, search permission there); its operator must give "
                   "that permission back, then send the job again", "loras", "lora_folder_unreachable")  # fmt: skip


def why_one_file(folder: Path, first: str, second: str) -> str:
    """Why the names `first` and `second` open one file of `folder`: a link, else what the folder does not tell
    apart in them (`one_file_reason`)."""
    root = folder.resolve()
    linked = any((root / name).is_symlink() for name in (first, second))
    return "one name is a link to the other" if linked else one_file_reason(first, second)


# What a folder may not tell apart in two names of one file, each with what takes it out of a name: capitals (a
# folder that ignores case: macOS' and Windows' by default), Unicode's two forms of an accented letter (`é` as one
# character, NFC, or as `e` and a combining accent, NFD: macOS' file systems take them for one name) and a trailing
# dot or space (Windows drops it).
_NAME_DIFFERENCES = (
    ("its capitals (the folder ignores case)", str.casefold),
    ("its Unicode form (é as one character or as e and an accent: one name to macOS)",
     lambda name: unicodedata.normalize("NFC", name)),
    ("a trailing dot or space (Windows drops it)", lambda name: name.rstrip(". ")),
)  # fmt: skip


def one_file_reason(first: str, second: str) -> str:
    """Why the names `first` and `second`, which the folder opened as one file, are one: by what differs between
    them (`_NAME_DIFFERENCES`: capitals, Unicode form, a trailing dot or space); a link where they differ otherwise
    (`style.safetensors`, `style-v2.safetensors`)."""

    def without(kept: str | None, name: str) -> str:
        for reason, plain in _NAME_DIFFERENCES:
            if reason != kept:
                name = plain(name)
        return name

    if without(None, first) != without(None, second):
        return "one name is a link to the other"
    # A difference counts where the names differ with it alone kept: `Café` and `cafe\u0301` in capitals and form.
    differing = [reason for reason, _ in _NAME_DIFFERENCES if without(reason, first) != without(reason, second)]
    if not differing:  # one name sent twice: `lora_files` refuses it as such before asking
        return "one name given twice"
    return "the same name but for " + " and ".join(differing)


def available_loras(folder: Path) -> list[str]:
    """The LoRA files a job may name: the .safetensors files directly in `folder` that stay inside it, hidden ones
    left out. Only those: a LoRA folder shared with ComfyUI or a Civitai helper also holds previews
    (`style.preview.png`), notes and `.civitai.info` files, and one copied from a Mac `._style.safetensors` (its
    AppleDouble metadata), which no job can apply (a pickle `.ckpt` neither: a job naming one is told to convert it).
    An empty list where the folder cannot be read now (removed, or a share gone since the server started): a client
    can name none of them, and that is no failure of the server's own data folder."""
    root = folder.resolve()
    try:
        return sorted(
            p.name
            for p in root.iterdir()
            if has_extension(p, ".safetensors")
            and not p.name.startswith(".")
            and _folder_file(root, p.name) is not None
        )
    except OSError:
        return []


def _meant(name: str, files: list[str]) -> str | None:
    """The file a missing `name` most likely meant: the one it names without its extension (`style` for
    style.safetensors, as ComfyUI's lists and A1111's `<lora:style:0.8>` show them), else the closest spelling.
    Names are compared without their extensions, which most share and would make any two look alike."""
    by_stem = {Path(file).stem: file for file in files}
    if name in by_stem:
        return by_stem[name]
    close = difflib.get_close_matches(Path(name).stem, list(by_stem), 1)
    return by_stem[close[0]] if close else None


def _refuse(message: str) -> NoReturn:
    raise ApiError(400, message, "loras", "invalid_value")


def check_loras_fit(pipe: MotifVideoPipeline, files: list[tuple[Path, float]], folder: Path | None) -> list[LoRAFile]:
    """400 when a LoRA does not fit the served transformer (read from file headers only, as `set_loras` checks them
    first), so that the job is refused now rather than failing in the queue; its message names the file as the
    client did, without the folder's path. The transformer's outline is built again from its file's header for each
    such job, not kept: on the 2B layout that took 0.1-0.2 s (measured on two busy CPU cores), in the submit thread,
    next to a job of minutes. -> the files read (none where there is nothing to check)."""
    from motif_lite.preflight import check_loras
    from motif_lite.weights.lora_errors import LoRAError, PackedDiffError, UnreadableLoRAError
    from motif_lite.weights.lora_specs import lora_specs

    if not files or folder is None or getattr(pipe, "sources", None) is None:  # not from load_pipeline: no switch
        return []
    try:
        return check_loras(lora_specs(files), pipe.sources)
    except UnreadableLoRAError as exc:  # the file's permissions: its operator's to put right, not the client's
        raise ApiError(503, f"{without_folder(str(exc.path), folder)!r} of this server's LoRA folder "
                       "(--lora-dir) cannot be read now: the server's user may not read it; its operator must give "
                       "that user read permission, then send the job again", "loras",
                       "lora_folder_unreachable") from None  # fmt: skip
    except PackedDiffError as exc:  # its advice (leave out --gguf) is the operator's flags, not the client's
        _refuse(without_folder(exc.for_a_client(), folder))
    except LoRAError as exc:
        _refuse(without_folder(str(exc), folder))


def check_loras_fit_plan(files: list[LoRAFile], planned: PlannedRun | None, plan: Plan | None) -> None:
    """400 when the adapters a job's LoRAs keep beside packed (GGUF, fp8) layers do not fit the memory `plan` the
    server loaded with (made for `planned`, with the server's own --lora files): the transformer is loaded again
    for the job with that plan's placement, which the server does not change, as it refuses a job over the size
    it planned for. The plan is made again for the same largest video and budget with the job's files in place of
    the server's; it fits when the planner still picks that placement, or a faster one. No plan (None), or no
    files: nothing to check; on float weights the LoRAs merge and the plan is the same."""
    from motif_lite.errors import MotifLiteError

    if not files or planned is None or plan is None:
        return
    with_files = dataclasses.replace(planned, loras=tuple(files), sources=_with_header(planned.sources))
    budget = _loaded_budget_gib(plan)  # not the memory free now
    try:
        with quiet_warnings():  # the budget's and the host's warnings were the operator's, at start
            again: Plan | None = with_files.plan(vram_gib=budget)
    except MotifLiteError:  # nothing fits that budget with them
        again = None
    # The planner picks the fastest placement that fits: the loaded one, or a faster one where the job's adapters
    # are smaller than the server's own --lora ones (the loaded placement, which needs less, fits then too).
    if again is not None and (again.ladder_index < plan.ladder_index or _placement(again) == _placement(plan)):
        return
    _refuse(_no_room(with_files, plan))


def _no_room(with_files: PlannedRun, plan: Plan) -> str:
    """Why the loaded `plan` has no room for the LoRAs of `with_files`, naming what does not fit with the advice that
    helps it: their adapters' weights, kept beside the packed layers for the whole run (fewer LoRAs or a lower rank
    makes them smaller), or the temporaries their updates keep beside a layer's output as it runs, which grow with
    the tokens a layer takes at once, not with the rank (a smaller video, or a plan in smaller token pieces, makes
    them smaller). The temporaries are to blame where the weights alone fit (`_weights_alone_fit`)."""
    from motif_lite.runtime.planner import TOKEN_CHUNKS
    from motif_lite.units import memory_size

    packed = _packed_modules(with_files)  # read once: from a GGUF's header, or a recipe's model built on meta
    weights, temporaries = _adapter_bytes(with_files, packed), _temporary_bytes(with_files, plan, packed)
    video = f"{plan.width}x{plan.height}x{plan.frames}"
    if plan.budget_bytes is not None:
        budget, flag = f"a budget of {memory_size(plan.budget_bytes)}", "--vram"
    else:  # no device budget (a CPU server): what has no room is its host memory, --ram
        ram = "" if with_files.ram_gib is None else f" of {memory_size(round(with_files.ram_gib * 2**30))}"
        budget, flag = f"a host memory budget (--ram){ram}", "--ram"
    loaded = f"the memory plan this server loaded with ({budget} for a {video} video)"
    figures = (
        f"these LoRAs keep {memory_size(weights)} of adapter weights beside the transformer's packed layers, and "
        f"their updates need {memory_size(temporaries)} of temporaries as the largest layer runs"
    )
    if not _weights_alone_fit(with_files, plan):
        return (
            f"{figures}; {loaded} has no room for the adapter weights: ask for fewer LoRAs or ones of lower rank, or "
            f"restart the server with a larger {flag} or a smaller --max-video"
        )
    # A smaller --vram plans the tokens in smaller pieces; --ram does not change the pieces.
    smallest = plan.token_chunk is not None and plan.token_chunk <= min(TOKEN_CHUNKS)
    pieces = "" if smallest or flag == "--ram" else (
        ", or a smaller --vram, whose plan runs the tokens in smaller pieces"
    )  # fmt: skip
    return (
        f"{figures}; the weights fit {loaded}, the temporaries do not: they grow with the tokens a layer takes at "
        "once, not with the rank, so fewer LoRAs or a lower rank frees little of them; restart the server with a "
        f"smaller --max-video{pieces}"
    )


def _weights_alone_fit(with_files: PlannedRun, plan: Plan) -> bool:
    """Whether the adapters' weights alone fit the loaded `plan`: planned again at its own budget with the weights
    counted and their temporaries left out, the planner keeps its placement or picks a faster one (the test
    `check_loras_fit_plan` makes with both). The budget stays as it is: one raised by the temporaries could let a
    faster placement in whose encode or decode stage is over the loaded budget, and the weights took the blame."""
    from motif_lite.errors import MotifLiteError

    try:
        with quiet_warnings():
            alone = with_files.plan(vram_gib=_loaded_budget_gib(plan), adapter_temporaries=False)
    except MotifLiteError:
        return False
    return alone.ladder_index < plan.ladder_index or _placement(alone) == _placement(plan)


def _loaded_budget_gib(plan: Plan) -> float | None:
    """The budget `plan` was made for, in GiB (None: the planned run's own, not the memory free now)."""
    return None if plan.budget_bytes is None else plan.budget_bytes / 2**30


def _with_header(sources: ModelSources) -> ModelSources:
    """`sources` with their GGUF's header read once for this job's check: the plans and a refusal's figures each ask
    which weights load packed, and without it each read the header again. Dropped with the check: the server keeps
    its sources without it, not to map the file for its life (`ModelSources.without_header`)."""
    if sources.gguf is None or sources.gguf_header is not None:
        return sources
    from motif_lite.weights.gguf_file import read_gguf

    return dataclasses.replace(sources, gguf_header=read_gguf(sources.gguf))


def _placement(plan: Plan) -> tuple[object, ...]:
    """What the loaded pipeline keeps of a plan: where the text encoder and the blocks are, in what pieces."""
    return (
        plan.ladder_index, plan.text_placement, plan.resident_blocks, plan.token_chunk, plan.vae, plan.prefetch,
        plan.cfg_batch, plan.heads_per_call,
    )  # fmt: skip


def _adapter_bytes(planned: PlannedRun, packed: set[str]) -> int:
    """The bytes the planner counts for `planned`'s LoRA adapters (in the run's dtype, on the `packed` layers)."""
    from motif_lite.weights.lora_apply import side_adapter_bytes

    adapters = side_adapter_bytes(list(planned.loras), planned.dtype)
    return sum(sum(tensors) for module, tensors in adapters.items() if module in packed)


def _temporary_bytes(planned: PlannedRun, plan: Plan, packed: set[str]) -> int:
    """The bytes the planner counts for the temporaries of `planned`'s LoRA adapters beside the `packed` layers at
    `plan`'s placement: the largest layer's, at the rows its calls take
    (`activation_memory.adapter_temporary_bytes`)."""
    from motif_lite.runtime.activation_memory import adapter_temporary_bytes
    from motif_lite.weights.lora_apply import side_adapter_temporary_bytes

    per_token = side_adapter_temporary_bytes(list(planned.loras), planned.dtype)
    token_bytes = {module: n for module, n in per_token.items() if module in packed}
    tokens = math.ceil(plan.video_tokens / planned.sequence_parallel)  # one rank's share, as the planner counts
    return adapter_temporary_bytes(token_bytes, tokens, plan.token_chunk, plan.cfg_batch, plan.image_tokens)


def _packed_modules(planned: PlannedRun) -> set[str]:
    """The transformer's linears whose weights load packed (a LoRA on a float one merges: nothing beside it)."""
    from motif_lite.sizes import packed_weight_names

    return {name.removesuffix(".weight") for name in packed_weight_names(planned.sources)}


def without_folder(message: str, folder: Path) -> str:
    """`message` with the folder's path taken off the files it names: a client sees their names only."""
    return message.replace(f"{folder.resolve()}{os.sep}", "")
