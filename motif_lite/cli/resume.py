"""`motif-lite run --resume FILE`: going on with a run that stopped, from the latents file it saved, and the notes
on the files earlier runs of the same outputs left."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.cli.settings_from import Recalled
from motif_lite.launcher_variables import run_processes
from motif_lite.paths import user_path
from motif_lite.request import GenerationRequest, run_dest
from motif_lite.request.output_names import same_output
from motif_lite.shell_syntax import quoted
from motif_lite.weights.lora_values import split_strength

if TYPE_CHECKING:
    from motif_lite.io.latents import SavedLatents

# The flags (dests) that say which video to make, every request field's but the output's, and how many: a resumed
# run takes them all from its file.
REQUEST_DESTS = (
    *(run_dest(field.name) for field in dataclasses.fields(GenerationRequest) if field.name != "output"),
    "batch_count",
)


def resume_args(args: argparse.Namespace) -> tuple[SavedLatents, list[str]]:
    """`--resume FILE`: the stopped run it holds, checked, and its model flags put into `args` where the command
    line gives none (a given one wins: the notes say so). Flags that choose the video are an error: the file says
    it."""
    from motif_lite.cli.run_flags import take_weight_flags
    from motif_lite.cli.run_inputs import fill_unset, run_inputs
    from motif_lite.io.latents import LatentsFileError, read_latents
    from motif_lite.io.latents_saving import still_running
    from motif_lite.io.model_stamps import MODEL_FLAG_GROUPS, changed_file_notes, other_model_notes
    from motif_lite.request import RequestError

    inputs = run_inputs(args)
    # Read already where --gpus N, --sp or --comm-timeout is given (`decode_in_one_process`): taken, so that args do
    # not hold its tensors all run long.
    saved, inputs.resume_read = inputs.resume_read, None
    if saved is None:
        saved = read_latents(args.resume, command="resume")
    where = quoted(str(saved.file))
    if saved.denoised:
        # Its progress named too: a stopped run's file edited to `"progress": null` reads as such latents.
        raise LatentsFileError(f"{saved.file} holds a run's denoised latents, saved when its decode stopped (it "
                               "records no sampling progress): its sampling is done, so there is nothing to resume; "
                               f"make the video from them with motif-lite decode {where}")  # fmt: skip
    if saved.request is None or saved.run is None:
        raise LatentsFileError(f"{saved.file} does not say which request and model its run had: it is damaged")
    inputs = run_inputs(args)
    defaults, given = inputs.defaults, inputs.typed
    done, steps = saved.progress
    # Saved after the last step, before a decode that was killed: in one process, the VAE alone decodes it.
    decodes_alone = done == steps and run_processes(args.gpus) == 1
    if decodes_alone:
        notes = [f"resuming {saved.file}: all {steps} steps sampled, the decode only, with the VAE alone (as "
                 f"motif-lite decode {where} makes it)"]  # fmt: skip
    elif done == steps:  # not from the command line: --gpus N and torchrun's ranks decode it in one process
        notes = [f"resuming {saved.file}: all {steps} steps sampled, the decode only (motif-lite decode {where} "
                 "makes the video in less memory, with the VAE alone)"]  # fmt: skip
    else:
        notes = [f"resuming {saved.file}: {done} of {steps} steps sampled, {steps - done} to go"]
    if (pid := still_running(saved)) is not None:
        notes.append(f"the run that saved {saved.file} may still be running (process {pid} on this machine): two "
                     f"runs of one video compete for the GPU and its file; stop that one first (kill {pid} saves its "
                     "state), then resume")  # fmt: skip
    # As -m may be given again for a moved checkpoint, -i for a moved image, or for one whose file now holds another
    # image: going on with another first frame would make a video neither image gives.
    if (image_state := _image_gone_or_changed(saved)) is not None:
        if "image" not in given and decodes_alone and image_state == "gone":
            # The decode alone makes its video (`decode_finished_sampling`): the first frame is in the latents.
            notes.append(f"the run's input image {saved.request['image']} is no longer there: the decode needs "
                         "none")  # fmt: skip
        elif "image" not in given:
            # A file saved after the last step needs the image no more: the decode alone makes its video.
            decode = f"; or motif-lite decode {where}, which needs no image" if done == steps else ""
            raise RequestError(f"the input image of the run being resumed, {saved.request['image']}, "
                               f"{_IMAGE_STATES[image_state]}: give it again with -i FILE (the image "
                               f"{saved.file} names){decode}")  # fmt: skip
        else:
            saved, note = _image_given_again(saved, args.image, image_state)
            notes.append(note)
            given -= {"image"}
    if _clip_gone(saved):  # unlike an image, a clip is not given again: its frames, all of them, begin the video
        raise RequestError(f"the clip the run being resumed goes on from, {saved.request['extend']}, is no longer "
                           "there: put it back there to resume (the longer video begins with its frames; --extend "
                           f"of {saved.file})")  # fmt: skip
    if _clip_changed(saved):  # here, before any work: a resume that only decodes would join the other clip's frames
        raise RequestError(f"{saved.request['extend']} is not the clip the run {saved.file} went on from (its content "
                           "differs since): put that clip back where it was (the longer video begins with its "
                           "frames)")  # fmt: skip
    if clash := [dest for dest in REQUEST_DESTS if dest in given]:
        flags = ", ".join("--" + dest.replace("_", "-") for dest in clash)
        raise RequestError(f"--resume goes on with the video {saved.file} describes: leave out {flags} (-o may "
                           "name another output file)")  # fmt: skip
    then = {dest: saved.run.get(dest, defaults[dest]) for group in MODEL_FLAG_GROUPS for dest in group}
    # A group comes from the file whole where the command line gives none of its flags (-m alone is another model).
    from_file = {dest: then[dest] for group in MODEL_FLAG_GROUPS if not given & set(group) for dest in group}
    if decodes_alone:  # the VAE alone decodes: the sampling model's files are not read, so not taken (nor asked for)
        notes += _gone_unread(from_file)
        from_file = {dest: value for dest, value in from_file.items() if dest not in SAMPLING_MODEL_DESTS}
    if from_file.get("lora"):  # first: a LoRA whose strengths cancel is left out, and need not be there any more
        from_file["lora"], once = _each_lora_once(from_file["lora"])
        notes += once
    for dest, value in from_file.items():
        _check_still_there(dest, value)
    fill_unset(args, from_file, given, saved.file)
    step_cache = _step_cache_resumed(saved, args, given)
    if decodes_alone:  # nothing is sampled: the flags for the sampling's model change nothing
        notes += _unused_for_the_decode(given)
    else:
        notes += other_model_notes(then, vars(args), "what this command gives")
    # A weight file changed since is the rest of the video's sampling: of a decode, only the VAE's is read.
    read = {dest: value for dest, value in vars(args).items() if not decodes_alone or dest not in SAMPLING_MODEL_DESTS}
    notes += changed_file_notes(saved.run, read)
    notes += [] if decodes_alone else step_cache
    args.weights = take_weight_flags(args)
    inputs = run_inputs(args)
    inputs.recalled = resumed_settings(saved, given)
    inputs.took_from(saved.file, map(run_dest, inputs.recalled.taken))  # the settings table's rows of the file
    inputs.resumed_at = done  # the first step sampled: the memory plan's guidance (`planned_run`)
    if "dtype" in from_file:  # the stopped run's dtype, so its text encoder's too (not kept by files before it was)
        inputs.text_encoder_dtype = _kept_text_encoder_dtype(saved)
    return saved, notes


# The summary's line for a resumed run that sampled nothing (`decode_finished_sampling`).
DECODE_ONLY_LINE = (
    "resumed: every step sampled by the run that stopped, only the decode ran here (the VAE alone loaded: no "
    "transformer, no text encoder)"
)

# A dry run's first line for such a file: what the plan below it is of.
DECODE_PLAN_NOTE = (
    "every step is sampled: a run would load the VAE alone to decode (no transformer, no text encoder), with this plan"
)


def decode_finished_sampling(args: argparse.Namespace, saved: SavedLatents, output: str | Path) -> int:
    """`run --resume` of a file holding all the sampling (the state saved after the last step, before a decode that
    was killed), in one process: what `motif-lite decode` does (`cli.decode`: the VAE alone, its memory planned
    alone), into the resumed run's `output`; the dry run prints that plan. Once the video is written the file is
    removed, as a resumed run removes it."""
    from motif_lite.cli.common import print_notes
    from motif_lite.cli.decode import checked_decode, decode_plan_lines, decode_with_progress, decoded_lines

    job = checked_decode(args, saved, Path(output))
    print_notes(list(job.notes))
    if args.dry_run:
        print("\n".join([DECODE_PLAN_NOTE, *decode_plan_lines(job, args)]))
        return 0
    written, seconds = decode_with_progress(job, args.vram is not None, args.output is not None)
    print("\n".join(decoded_lines(job, written, seconds, DECODE_ONLY_LINE)))
    saved.file.unlink(missing_ok=True)  # the video is written: nothing left to resume
    return 0


# The run flags (dests) for the model that samples: a resumed run whose sampling is done decodes without it.
SAMPLING_MODEL_DESTS = (
    "gguf", "diffusion_model", "quantize", "text_encoder_gguf", "text_encoder", "text_encoder_quantize", "lora",
    "attention", "attention_backend", "step_cache", "batch_guidance", "compile", "kernels",
)  # fmt: skip


# The run flags (dests) for the sampling's load and time alone: --ram plans the host memory of the model's loading
# (a decode's plan takes --vram alone), --yes answers the question of a long CPU run before its sampling.
SAMPLING_RUN_DESTS = ("ram", "yes")

# The run flags (dests) for a run on several processes: a resumed run whose sampling is done decodes in this one
# (`decode_in_one_process`).
PARALLEL_DESTS = ("gpus", "sp", "comm_timeout")


def decode_in_one_process(args: argparse.Namespace, under_launcher: bool = False) -> bool:
    """For `--resume` of a file whose sampling is done, the flags for several processes (--gpus N, --sp,
    --comm-timeout) set aside: the VAE alone decodes it once, in this process (`decode_finished_sampling`), as
    `motif-lite decode` does, where N processes would each load the whole model to decode it; the note on the flags
    the decode does not use names them. `under_launcher`: this process is a rank of a torchrun job, whose processes
    are all started, so the file is read without those flags too (rank 0 then decodes it alone, `cli.run`).
    Whether the file's sampling is done. The file read is kept for `resume_args`, which reads it no more; one that
    cannot be read is left to `resume_args`, which says why (under torchrun, every rank, as before)."""
    from motif_lite.cli.run_inputs import run_inputs
    from motif_lite.io.latents import LatentsFileError, read_latents

    if args.resume is None:
        return False
    if not under_launcher and all(getattr(args, dest) is None for dest in PARALLEL_DESTS):
        return False
    try:
        saved = read_latents(args.resume)
    except LatentsFileError:
        return False
    run_inputs(args).resume_read = saved  # for `resume_args`: the file is read once
    if saved.sampling_done:
        for dest in PARALLEL_DESTS:
            setattr(args, dest, None)
    return saved.sampling_done


def _unused_for_the_decode(given: frozenset[str]) -> list[str]:
    """The note for the flags of the sampling's model, load and time, and for several processes, given with --resume
    of a file whose sampling is done, which `decode_finished_sampling` decodes with the VAE alone, in one process:
    they change nothing (-m, --vae and --dtype choose the VAE)."""
    unused = (*SAMPLING_MODEL_DESTS, *SAMPLING_RUN_DESTS, *PARALLEL_DESTS)
    flags = ["--" + dest.replace("_", "-") for dest in unused if dest in given]
    if not flags:
        return []
    return [f"every step is sampled, so {', '.join(flags)} {'is' if len(flags) == 1 else 'are'} not used: the VAE "
            "alone makes the video (-m, --vae and --dtype choose it)"]  # fmt: skip


def _kept_text_encoder_dtype(saved: SavedLatents) -> str | None:
    """The dtype the stopped run's text encoder ran in, as its file keeps it; None where it keeps none (an older
    file) or one no --dtype names (an edited file): the dtype decides, as before."""
    from motif_lite.dtypes import COMPUTE_DTYPES

    kept = saved.run.get("text_encoder_dtype")
    return kept if kept in COMPUTE_DTYPES else None


def resumed_settings(saved: SavedLatents, given: frozenset[str]) -> Recalled:
    """What a resumed run takes from its latents file: every field of the request it holds (None: the checkpoint or
    the default decided, for the stopped run as for this one) but the output -o gives (so that a refused -o is the
    user's, not the file's). Its model flags are put into the command's (`fill_unset`)."""
    from motif_lite.ran_on import RAN_ON_KEY

    taken = {field for field, value in saved.request.items() if value is not None and field not in given}
    # The machine the stopped run sampled on: a note compares it with this one's (`other_machine_note`).
    return Recalled(saved.file, frozenset(taken), None, (), ran_on=saved.video_metadata.get(RAN_ON_KEY))


@contextmanager
def request_from_file(saved: SavedLatents | None, recalled: Recalled | None = None) -> Iterator[None]:
    """Around resolving the request of a run resumed from `saved` (None: no resume), or made with the settings of a
    video (`recalled`, of `--settings-from`; None: none): a field refused came from the file (no flag but -o and -i
    may change a resumed run's), so the message names the file."""
    from motif_lite.cli.settings_from import refused_from_file
    from motif_lite.io.latents import LatentsFileError
    from motif_lite.request import RequestError

    try:
        yield
    except RequestError as exc:
        if saved is not None and set(exc.fields) - {"output", "image"}:
            raise LatentsFileError(f"{saved.file}: its request's {exc} (the file was edited or damaged)") from None
        if recalled is not None and (refusal := refused_from_file(recalled, exc)) is not None:
            raise refusal from None
        raise


@contextmanager
def refused_settings_of_resumed(args: argparse.Namespace) -> Iterator[None]:
    """Around resolving the settings of a run: a flow shift refused for a `--resume`d run (a DPM++ table diffusers
    cannot step, say) is advice --resume cannot follow, as it refuses the flags that choose the video; the message
    says to start a new run instead."""
    from motif_lite.cli.run_inputs import run_inputs
    from motif_lite.request import RequestError

    try:
        yield
    except RequestError as exc:
        if vars(args).get("resume") is None or "flow_shift" not in exc.fields:
            raise
        inputs = run_inputs(args)
        file = Path(args.resume).name
        takes_none = "--resume takes no --flow-shift, --steps or --sampling-method"
        # A file that left the shift or sampler to the checkpoint takes them from the one -m gives now: without -m,
        # the stopped run's model, whose settings it ran with.
        if "model" in inputs.typed and not {"flow_shift", "sampler"} <= inputs.given().files.keys():
            raise RequestError(
                f"{exc}; {takes_none}: leave out -m to go on with the model {file} names, and its settings",
                exc.fields,
            ) from None
        raise RequestError(
            f"{exc}; {takes_none} (it goes on with the settings {file} holds), so this run cannot go on: start a new "
            "one without --resume, with that change",
            exc.fields,
        ) from None


def _step_cache_resumed(saved: SavedLatents, args: argparse.Namespace, given: frozenset[str]) -> list[str]:
    """The stopped run's lossy step cache goes on in the resumed run unless --step-cache is given, as a model flag
    does (it changes the video as much); the note where a given one differs from it."""
    from motif_lite.cli.run_inputs import fill_unset

    then = saved.video_metadata.get("model", {}).get("step_cache")
    then = then if isinstance(then, float | int) and not isinstance(then, bool) else None  # kept only above 0
    if then is not None:
        fill_unset(args, {"step_cache": float(then)}, given, saved.file)
    if "step_cache" not in given or then == (args.step_cache or None):  # --step-cache 0 is the plain run
        return []
    had = "no --step-cache" if then is None else f"--step-cache {then:g}"
    return [f"the run being resumed had {had}: the rest of the video is sampled with what this command gives"]


def _check_still_there(dest: str, value: str | list | None) -> None:
    """Refuse a model file or folder the stopped run had (absolute in the file) that is no longer there, as on another
    machine or after a move, naming the flag that gives it again; a Hub repo id is no path and is left alone."""
    from motif_lite.request import RequestError

    if gone := _gone(dest, value):
        again = _loras_again(value) if dest == "lora" else f"give {_flag(dest)} again with where it is now"
        raise RequestError(f"the run being resumed had {gone[0]}, which is not there (moved, or the file comes from "
                           f"another machine): {again}")  # fmt: skip


def _gone_unread(from_file: dict[str, object]) -> list[str]:
    """The note on the files of the sampling's model (`SAMPLING_MODEL_DESTS`) that a resume which only decodes would
    take from its latents file (`from_file`, by dest) and that are no longer there: the VAE alone reads none."""
    gone = [path for dest in SAMPLING_MODEL_DESTS if dest in from_file for path in _gone(dest, from_file[dest])]
    if not gone:
        return []
    return [f"the run's {', '.join(gone)} {'is' if len(gone) == 1 else 'are'} no longer there: the decode needs none "
            "of the sampling model's files"]  # fmt: skip


def _gone(dest: str, value: str | list | None) -> list[str]:
    """The files or folders of model flag `dest` (`value`: as the stopped run had it, absolute) that are no longer
    there, each as its flag and path ("--gguf /models/tr.gguf"); a Hub repo id is no path and is left alone."""
    # --lora items are "PATH:STRENGTH" (model_flags' form); the others one path or None.
    paths = [split_strength(item)[0] for item in value] if isinstance(value, list) else [value]
    return [f"{_flag(dest)} {path}" for path in paths if path and Path(path).is_absolute() and not Path(path).exists()]


def _flag(dest: str) -> str:
    """The command-line flag of a run flag's dest ("text_encoder_gguf": "--text-encoder-gguf")."""
    return "--" + dest.replace("_", "-")


def _each_lora_once(loras: list[str]) -> tuple[list[str], list[str]]:
    """A stopped run's --lora values (`PATH:STRENGTH`) with a file it gave more than once given once, where it was
    first, at the sum of its strengths (left out where they cancel), and a note for each such file. Until runs
    refused it, a file given twice was applied at that sum; its --lora values, read back as given, are refused now,
    and a --lora given with --resume replaces the run's others too."""
    from motif_lite.weights.lora_values import lora_flag, same_file_twice, strengths_cancel, times_applied

    merged: list[tuple[str, list[float]]] = []  # each file once, with the strengths the run gave it
    for item in loras:
        file, strength = split_strength(item)
        file, strength = (item, 1.0) if strength is None else (file, strength)  # no strength: as a run reads it
        twice = same_file_twice([*(Path(earlier) for earlier, _ in merged), Path(file)])
        if twice is None:
            merged.append((file, [strength]))
        else:  # the new one is the second of the pair: the files before it are each another
            merged[twice[0]][1].append(strength)

    def goes_on(strengths: list[float]) -> str:
        # Strengths that cancel applied nothing (0.1 + 0.2 - 0.3 too, 5.6e-17 in floats): the file is left out, not
        # loaded to change nothing. Others are summed as `strengths_cancel` sums them, exactly (fsum): the floats'
        # sum of 1e16, 1 and -1e16 is 0, which went on at 0 with strengths that do not cancel.
        return "without it" if strengths_cancel(strengths) else f"with it given once, at {math.fsum(strengths):g}"

    notes = [
        f"the run being resumed gave --lora {file} {times_applied(strengths)}, which applied it at the sum: it goes "
        f"on {goes_on(strengths)}"
        for file, strengths in merged
        if len(strengths) > 1
    ]
    return [
        lora_flag(file, math.fsum(strengths)) for file, strengths in merged if not strengths_cancel(strengths)
    ], notes


def _loras_again(loras: list[str]) -> str:
    """How to give a stopped run's LoRAs again when one moved: --lora given replaces all of them, and a file given
    without its strength runs at 1, so each is named with its strength."""
    from motif_lite.io.model_stamps import model_flags_text

    return (
        "give --lora again for each of its LoRAs, with where the file is now and its strength (the run had "
        f"{model_flags_text({'lora': loras})})"
    )


def earlier_runs(requests: list[GenerationRequest]) -> list[str]:
    """Notes on the latents files an earlier run of these outputs left (it stopped, or its decode failed): this
    run starts again, and the note says how to use that work instead."""
    from motif_lite.decoding import video_made
    from motif_lite.io.latents import latents_path
    from motif_lite.io.latents_saving import still_running

    notes = []
    fallback_names = _fallback_names()  # listed once: a glob per output made `-b 10000` take seconds
    for request in requests:
        path = latents_path(request.output)
        # Beside the output, else where a run keeps them when the output's folder took no file (a full disk).
        saved = _earlier_run(path) or _kept_in_fallback(path, request.output, fallback_names)
        if saved is None:
            continue
        path = saved.file
        pasted = quoted(str(path))
        if saved.sampling_done and video_made(saved):  # `motif-lite decode` made the video, and kept the file
            notes.append(f"{path} holds the latents of an earlier run of {request.output}, whose video is made "
                         f"already ({saved.output} holds its settings; motif-lite decode keeps the file): this run "
                         f"samples again; delete {pasted} once you no longer want to decode it")  # fmt: skip
        elif saved.denoised:
            notes.append(f"{path} holds the denoised latents of an earlier run of {request.output} whose decode "
                         f"failed: motif-lite decode {pasted} makes that video without sampling")  # fmt: skip
        elif (pid := still_running(saved)) is not None:
            notes.append(f"{path} is the saved state of a run of {request.output} that may still be running "
                         f"(process {pid} on this machine): this run starts again beside it (its file gets another "
                         "name)")  # fmt: skip
        elif saved.sampling_done:  # saved after its last step: its decode was killed (keeping.py)
            notes.append(f"{path} holds an earlier run of {request.output} whose sampling finished but whose decode "
                         "did not (killed, out of memory?); this run starts again (its file gets another name). To "
                         f"make that video without sampling: motif-lite run --resume {pasted} (or motif-lite decode "
                         f"{pasted}, which keeps the file)")  # fmt: skip
        else:
            done, steps = saved.progress
            notes.append(f"{path} holds an earlier run of {request.output} that stopped after step {done} of "
                         f"{steps}; this run starts again (its file gets another name). To go on with that one "
                         f"instead: motif-lite run --resume {pasted}")  # fmt: skip
    return notes


def kept_anywhere(path: Path, output: str | Path) -> bool:
    """Whether a run of `output` that meant to keep its work in `path` kept some: there, or, when that folder took
    no file, in the folder a run falls back on (`fallback_folder`)."""
    return path.exists() or _kept_in_fallback(path, output, _fallback_names()) is not None


def kept_state(path: Path, output: str | Path) -> SavedLatents | None:
    """What a run of `output` that meant to keep its work in `path` kept (as `kept_anywhere` finds it), if it reads."""
    return _earlier_run(path) or _kept_in_fallback(path, output, _fallback_names())


def goes_on_with_resume(kept: SavedLatents | None, resumed: SavedLatents | None) -> bool:
    """Whether the keeper's advice on `kept` is a `--resume` command this run gave: a sampling state (denoised
    latents are advised `motif-lite decode`, as `keeping._kept` does), and, for a run that `resumed` a file, one
    saved past where it began (else that file is as it was and the command the user typed goes on from it)."""
    return kept is not None and not kept.denoised and (resumed is None or kept.progress != resumed.progress)


def _fallback_names() -> list[str]:
    """The names in the folder a run keeps its latents in when the output's folder takes no file
    (`fallback_folder`); none when there is no such folder (or it cannot be read)."""
    from motif_lite.io.latents_saving import fallback_folder

    try:
        return sorted(os.listdir(fallback_folder()))
    except OSError:  # not there (no run ever needed it), not a folder, or unreadable: nothing kept there
        return []


def _kept_in_fallback(path: Path, output: str | Path, fallback_names: list[str]) -> SavedLatents | None:
    """The latents a run of `output` that meant to keep them in `path` left in the fallback folder, whose names
    are `fallback_names` (`_fallback_names`): under `path`'s name, or under the name `unused_path` gave it there
    when another output's file had that name (fox.latents-2.safetensors); the newest when several are that
    output's."""
    from motif_lite.io.latents_saving import fallback_folder

    name = Path(path.name)  # fox.latents.safetensors: its numbered forms are fox.latents-N.safetensors
    prefix, suffix = f"{name.stem}-", name.suffix
    candidates = [n for n in fallback_names if n == path.name or _has_ends(n, prefix, suffix)]
    if not candidates:
        return None
    folder = fallback_folder()
    found = [s for n in candidates if (s := _earlier_run(folder / n, user_path(output))) is not None]
    return max(found, key=lambda saved: saved.file.stat().st_mtime, default=None)


def _has_ends(name: str, prefix: str, suffix: str) -> bool:
    """Whether `name` is `prefix`, anything, `suffix` (the glob `prefix*suffix`, the two ends not overlapping)."""
    return len(name) >= len(prefix) + len(suffix) and name.startswith(prefix) and name.endswith(suffix)


def _earlier_run(path: Path, output: Path | None = None) -> SavedLatents | None:
    """The latents an earlier run left in `path`, if any; with `output`, only those of that output (in a folder
    that holds the latents of many outputs)."""
    from motif_lite.io.latents import LatentsFileError, read_latents

    try:
        saved = read_latents(path) if path.is_file() else None
    except LatentsFileError:
        return None
    if saved is None or (output is not None and not same_output(saved.output, output)):
        return None
    return saved


# What happened to a stopped run's input image (`_image_gone_or_changed`), as the messages say it.
_IMAGE_STATES = {"gone": "is no longer there", "overwritten": "holds another image since the run stopped"}
_SHORT_STATES = {"gone": "no longer there", "overwritten": "overwritten since"}


def _image_gone_or_changed(saved: SavedLatents) -> str | None:
    """What happened to the stopped run's input image, if anything: "gone" from where it was, or "overwritten" (that
    file's content differs from the checksum the run kept); None when it is there as it was, or the run had none."""
    from motif_lite.io.image import image_sha256

    image = saved.request.get("image")
    if image is None:
        return None
    if not Path(image).exists():
        return "gone"
    expected = saved.run.get("image_sha256")  # None in a file of an older motif-lite: nothing to compare
    if expected is not None and image_sha256(Path(image)) != expected:
        return "overwritten"
    return None


def _clip_gone(saved: SavedLatents) -> bool:
    """Whether the stopped run went on from a clip (`--extend`) that is no longer where it was."""
    from motif_lite.io.clip import last_frame_file

    clip = saved.request.get("extend")
    return clip is not None and not last_frame_file(clip).is_file()


def _clip_changed(saved: SavedLatents) -> bool:
    """Whether the clip the stopped run went on from holds another last frame now (the run's first frame: a chain's
    earlier link made again, say), by the checksum its file keeps (a file of an older motif-lite keeps none)."""
    from motif_lite.io.clip import last_frame_file
    from motif_lite.io.image import image_sha256

    clip, expected = saved.request.get("extend"), saved.run.get("clip_sha256")
    return clip is not None and expected is not None and image_sha256(last_frame_file(clip)) != expected


def _image_given_again(saved: SavedLatents, image: str, image_state: str) -> tuple[SavedLatents, str]:
    """`saved` going on with `image` (-i) in place of its moved or changed one (`image_state` says which), checked
    against the checksum the file keeps (a file of an older motif-lite keeps none: the note says so); and the
    note."""
    from motif_lite.io.image import image_sha256
    from motif_lite.request import RequestError

    old, new = saved.request["image"], user_path(image).absolute()
    if not new.is_file():
        raise RequestError(f"input image not found: {new}")
    expected = saved.run.get("image_sha256")
    if expected is not None and image_sha256(new) != expected:
        raise RequestError(f"{new} is not the image the run being resumed used ({old}, "
                           f"{_SHORT_STATES[image_state]}): its content differs; give -i that image")  # fmt: skip
    if expected is None:
        check = "it must be the same image (this file, saved by an older motif-lite, cannot check it)"
    else:
        check = "the same image (its checksum matches)"
    note = f"the run's input image {old} {_IMAGE_STATES[image_state]}: going on with {new}, {check}"
    return dataclasses.replace(saved, request={**saved.request, "image": str(new)}), note


def output_left_to_replace(saved: SavedLatents) -> tuple[Path | None, str | None]:
    """The stopped run's output, where the file there is the stopped run's to replace, and the note that says so:
    the resumed run writes its video there, as the stopped run would have. That file was last written before the
    run's last save, so it is no video made since the run stopped: the empty file the run took the name with
    (`io.output_claims.claim`) and left behind, killed outright (`kill -9`, the kernel's out-of-memory killer; no
    note), or the video its -o named to replace (there as that run began, which its kept state says; the run said
    so as it began). (None, None) otherwise: nothing there (the name is free), a file written after the run's last
    save (another run's video, or its claim: it may be running), a video the run did not begin over (one written
    there since the run's claim was released, its file's time kept by a copy; or a file of an older motif-lite,
    which does not say), or any file while that run may still be running; the resumed run then writes beside it."""
    from motif_lite.io.latents_saving import still_running
    from motif_lite.io.output_claims import written_before

    if saved.file is None or still_running(saved) is not None:
        return None, None
    try:
        last_saved = saved.file.stat().st_mtime
    except OSError:
        return None, None
    output = Path(saved.request["output"])
    size = written_before(output, last_saved)
    if size is None:
        return None, None
    if size == 0:
        return output, None
    if not (saved.run or {}).get("replaces_output"):  # a video the stopped run did not begin over: another's
        return None, None
    return output, (f"{output} is there already, older than the stopped run's last save: this run replaces it when "
                    "its video is done, as that run was to (-o names another file)")  # fmt: skip


def resumed_request(saved: SavedLatents, output: str | None) -> GenerationRequest:
    """The request of the run `saved` stopped (its output file, or `output` when given)."""
    from motif_lite.io.latents import LatentsFileError, writer_of
    from motif_lite.io.video import check_output_fps
    from motif_lite.request import RequestError, unknown_choices
    from motif_lite.version import VERSION

    fields = dict(saved.request)
    if saved.sampling_done and fields.get("image") is not None and not Path(fields["image"]).exists():
        # Left to a decode that needs no image (`resume_args` refused it otherwise): not read to resolve the request.
        fields["image"] = None
    if output is not None:
        fields["output"] = output
    elif not Path(fields["output"]).parent.is_dir():  # the file came from another machine, or the folder moved
        raise LatentsFileError(f"the run being resumed wrote to {fields['output']}, and that folder is not here: "
                               "give -o for the video")  # fmt: skip
    try:
        request = GenerationRequest(**fields)
    except TypeError as exc:  # a field this version does not know
        raise LatentsFileError(f"{saved.file}: its request does not fit this motif-lite ({exc})") from None
    except RequestError as exc:  # a field edited to what no flag gives
        raise LatentsFileError(f"{saved.file}: its request's {exc} (the file was edited or damaged)") from None
    if unknown := unknown_choices(fields):  # a newer version's: no flag may choose another for a stopped run
        field, value = next(iter(unknown.items()))
        raise LatentsFileError(f"{saved.file}: its run samples with the {field} {value!r}, which motif-lite "
                               f"{VERSION} does not have (the run was started by {writer_of(saved.video_metadata)}): "
                               "upgrade motif-lite to go on with it")  # fmt: skip
    if output is not None:  # --fps is refused with --resume: the way out is another format
        check_output_fps(output, request.fps, "--resume keeps the run's frame rate: give -o a .webp or .mp4 file")
    return request
