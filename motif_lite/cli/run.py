"""`motif-lite run`: the command line over `GenerationRequest` and `load_pipeline`, with stable-diffusion.cpp flags.

    motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4

A failed or interrupted run never leaves a half-written output file (see `motif_lite.io.staging.staged_output`).
The command's parts live beside it: its flags (run_flags), what its command line gave (run_inputs), the videos
they ask for (run_request), what it does before it loads (run_prepare), the dry run (dry_run), the run that loads
and makes the videos (run_videos), the lines on a batch (batch_notes), `--resume` (resume), `--gpus N` (launch),
the time estimates (run_time) and the summary (run_summary); what it shares with `serve` before loading is in
prepare, and what several commands share in common.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite import launcher_variables
from motif_lite.cli.batch_notes import batch_videos_note
from motif_lite.cli.before_download import tokenizer_notes_once
from motif_lite.cli.common import download_hint_repeats, lora_args, print_notes
from motif_lite.cli.dry_run import dry_run
from motif_lite.cli.launch import all_gpus, launch_run, parallel_layout, torchrun_notes
from motif_lite.cli.resume import (
    decode_finished_sampling,
    decode_in_one_process,
    earlier_runs,
    output_left_to_replace,
    request_from_file,
)
from motif_lite.cli.run_flags import add_run_flags, take_weight_flags
from motif_lite.cli.run_inputs import run_inputs
from motif_lite.cli.run_request import checked_request, resolve_requests, seed_was_drawn
from motif_lite.cli.run_videos import Run
from motif_lite.cli.settings_from import settings_from_args
from motif_lite.request import TEMPORAL_FACTOR, GenerationRequest
from motif_lite.weights.lora_values import warn_of_unusual_strengths

if TYPE_CHECKING:
    from motif_lite.io.clip import Clip
    from motif_lite.runtime.parallel import Parallel, ParallelLayout, Session

EPILOG = """\
examples:
  motif-lite run -p "a red fox runs through snow" -o fox.mp4
  motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4
  motif-lite run -i first_frame.png -p "the fox turns its head" -o fox_i2v.mp4          (image-to-video)
  motif-lite run --extend fox.mp4 -p "the fox stops and looks back" -o fox-10s.mp4      (go on from a clip)
  motif-lite run --gguf Q4_K_M -b 4 -p "a red fox runs through snow" -o fox.mp4        (4 seeds: fox-1..4.mp4)
  motif-lite run -W 832 -H 480 --video-frames 65 --steps 30 -p "..." -o fast.mp4        (faster, unofficial)
  motif-lite run --gpus 4 -p "a red fox runs through snow" -o fox.mp4                    (4 GPUs: cfg 2 x sp 2)
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m motif_lite run ...
                                                           (2 machines x 8 GPUs; see docs/parallel.md)

Defaults are the official settings: 1280x736, 121 frames at 24 fps, 50 steps and the official negative
prompt; sampler, flow shift and guidance come from the checkpoint's scheduler and guider configs (else Euler,
shift 15 T2V / 8 I2V, APG scale 8 with norm threshold 12 and momentum 0.1). A flag always wins; --dry-run and
the final summary list every setting with its source. See docs/usage.md.

Coming from ComfyUI, Wan2GP or stable-diffusion.cpp: type their setting as they name it (--cfg 6, length=81,
--lowvram) and the error names ours; docs/usage.md, "Coming from ComfyUI or stable-diffusion.cpp", has the table.
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `run` to the `motif-lite` subcommands."""
    run = commands.add_parser(
        "run",
        help="generate a video from a prompt (and optionally a first-frame image)",
        description="Generate a video with Motif-Video 2B.",
        usage="motif-lite run -p PROMPT [options]   (every option: motif-lite run --help)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_flags(run)
    run.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """The `run` handler: check every setting and file, plan, load, generate, print a summary. With `--gpus N`
    (outside torchrun) it checks the settings, then starts N processes that each run this handler under torchrun."""
    # A malformed WORLD_SIZE, and under torchrun RANK or LOCAL_WORLD_SIZE, is refused before anything is read.
    torchrun_world = launcher_variables.torchrun_world()
    rank = None
    if torchrun_world > 1:
        rank = launcher_variables.launcher_number("RANK")
        launcher_variables.launcher_number("LOCAL_WORLD_SIZE", torchrun_world, smallest=1)  # read by a dry run
    args.weights = take_weight_flags(args)  # a .gguf given as --diffusion-model / --text-encoder becomes --gguf / ...
    if rank is not None:  # under torchrun --gpus is ignored: torchrun started the ranks
        return _run_under_torchrun(args, rank, torchrun_world)
    _read_settings_from(args)
    decode_in_one_process(args)  # --resume of a finished sampling: the VAE alone decodes it, here, not on --gpus N
    if args.gpus == "all":
        args.gpus = all_gpus(args.device)
    if args.gpus is not None and args.gpus > 1 and not args.dry_run:
        return launch_run(args)
    return _run(args)


def _run_under_torchrun(args: argparse.Namespace, rank: int, world: int) -> int:
    """One rank of a parallel run that torchrun (or `--gpus N`) started: it joins the process group and runs; for
    `--resume` of a finished sampling every rank leaves it again and rank 0 decodes alone (`_decode_on_rank_0`)."""
    if args.dry_run:  # loads nothing and needs no other rank: the main rank prints the plan once, the others nothing
        if decode_in_one_process(args, under_launcher=True):  # the plan of the VAE alone
            return _decode_on_rank_0(args, rank, world)
        _read_settings_from(args)
        return _run(args) if rank == 0 else 0
    from motif_lite.cli import path_error_said
    from motif_lite.errors import MotifLiteError
    from motif_lite.runtime import parallel

    session = parallel.start(args.device)
    try:
        # Each rank reads these files itself: one that cannot (another machine's path) stops every rank here, not
        # itself alone while the others wait for it (also a --resume file rank 0 alone will decode).
        parallel.check_every_rank_reads(_files_every_rank_reads(args))
        # --resume of a finished sampling, as rank 0 reads the file it decodes: every rank leaves the group (below)
        # or every rank goes on, none waiting for one that went the other way.
        decodes_alone = args.resume is not None and parallel.rank_0s(decode_in_one_process(args, under_launcher=True))
        if not decodes_alone:
            _read_settings_from(args)
            if args.dtype is None:  # each rank's default is its own GPU's
                from motif_lite.settings import resolve_dtype

                parallel.check_same_dtype(resolve_dtype(None, session.device).value)
            return _run(args, session)
    except Exception as exc:  # user errors print "[rank r] error: ..." in cli.main; anything else is logged here
        if (lost := parallel.lost_peer(exc)) is not None:  # another rank's failure: one line, no traceback
            parallel.wait_for_the_lost_peer()
            raise lost from exc
        # cli.main says these in one line, with no traceback: "failed:" before it would be a second line of one error.
        said_in_one_line = isinstance(exc, MotifLiteError) or (isinstance(exc, OSError) and path_error_said(exc))
        if not said_in_one_line:
            print(f"[rank {session.rank}] failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        parallel.stop()
    return _decode_on_rank_0(args, session.rank, session.world)  # out of the group: no rank waits for another


def _decode_on_rank_0(args: argparse.Namespace, rank: int, world: int) -> int:
    """`--resume` under torchrun of a file whose sampling is done: rank 0 decodes it with the VAE alone, as one
    process does (`decode_finished_sampling`), where each rank would load the whole model for it; the other ranks
    end at once, silent and successful. Every rank has left the process group (or a dry run never joined it), so
    none waits for one that ended."""
    if rank != 0:
        return 0
    others = "the other process" if world == 2 else f"the other {world - 1} processes"
    ends = "ends" if world == 2 else "end"
    # Said with the resume's notes, once every check passed: a flag --resume refuses, or denoised latents (nothing
    # to resume: motif-lite decode them), is the error alone, with no note that the decode goes ahead.
    alone = f"every step of {args.resume} is sampled: rank 0 alone decodes it, and {others} torchrun started {ends} "
    alone += "without loading anything"
    # The launcher's variables set aside while it runs as one process; `cli.main` still says an error as rank 0's.
    with launcher_variables.one_process():
        _read_settings_from(args)
        return _run(args, decode_note=alone)


def _read_settings_from(args: argparse.Namespace) -> None:
    """--settings-from: the file's settings become flags before anything reads them (also before --gpus N starts
    its processes)."""
    if args.settings_from is not None:
        run_inputs(args).recalled = settings_from_args(args)


def _files_every_rank_reads(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The input files of a parallel run that every rank reads itself, as (flag, path); -i is read by rank 0 alone
    (it makes the conditioning) and -o and --preview are written by rank 0 alone."""
    from motif_lite.errors import MotifLiteError
    from motif_lite.weights.lora_specs import LoRASpec

    files = [(flag, path) for flag, path in (("--resume", args.resume), ("--settings-from", args.settings_from),
                                             ("--extend", args.extend)) if path is not None]  # fmt: skip
    for value in args.lora:
        try:
            files.append(("--lora", str(LoRASpec.parse(value).path)))
        except MotifLiteError:  # a strength that is no number, a folder with no LoRA: its own check says so
            continue
    return files


def _run(args: argparse.Namespace, session: Session | None = None, decode_note: str | None = None) -> int:
    """The run (or its dry run) of this process, `session`'s rank of a parallel one; `decode_note`: the note of a
    decode rank 0 makes alone under torchrun (`_decode_on_rank_0`), said first among the notes, after the checks."""
    from motif_lite.cli import use_expandable_segments
    from motif_lite.io.output_claims import release
    from motif_lite.io.preview import previews_after

    use_expandable_segments()  # before torch starts CUDA
    resume, resume_notes, clip, unresolved = checked_request(args)
    torchrun_world = launcher_variables.torchrun_world()
    # A dry run under torchrun joins no process group (no session): torchrun's WORLD_SIZE counts its processes.
    world = session.world if session is not None else launcher_variables.run_processes(args.gpus)
    layout = parallel_layout(args, unresolved, world) if world > 1 or args.sp not in (None, 1) else None
    # The file at a stopped run's output that predates its last save (its claim, or the video its -o replaces) is
    # this run's to replace, as it was the stopped run's.
    if resume is not None and args.output is None:
        left_behind, replacing = output_left_to_replace(resume)
        resume_notes += [replacing] if replacing else []
    else:
        left_behind = None
    with request_from_file(resume, run_inputs(args).recalled):
        parallel, requests, notes = _resolve(args, unresolved, session, layout, clip, left_behind)
    request = requests[0]  # the videos differ in seed and file only: the first stands for all in the checks
    main_rank = parallel is None or parallel.is_main
    # The default names the main rank claimed (empty files): freed again unless a video replaced them; the names
    # given with -o it claimed (`claim_named_output`): freed as the run ends.
    claimed = [r.output for r in requests] if main_rank and not args.dry_run else []
    on_preview = None
    try:
        say = print if main_rank else _quiet
        decodes_alone = resume is not None and resume.sampling_done and world == 1  # nothing to sample: the VAE alone
        # A decode reads no LoRA: a --lora file given that is not there is named unused (`resume_args`), not refused.
        loras = [] if decodes_alone else lora_args(args.lora)
        warn_of_unusual_strengths(loras)  # once, here: the other looks at --lora (before a download, ...) do not
        done = resume.progress[0] if resume is not None else 0  # a resumed run previews only the steps it samples
        previews = _preview_notes(args.preview, request.steps, args.preview_every, done)
        # A resumed run past the last preview step (a decode alone too) makes none, which its note says: no writer,
        # whose close would warn of it again as the run ends.
        comes = bool(previews_after(request.steps, args.preview_every, done))
        writes = args.preview and main_rank and comes
        on_preview = _preview_writer(args.preview, request.fps, args.dry_run) if writes else None
        ignored = torchrun_notes(args.gpus, torchrun_world)
        # A decode uses none of the sampling's flags, which a note of `resume_args` names: nothing to say of them.
        flags = [] if decodes_alone else flag_notes(args, layout)
        recalled = run_inputs(args).recalled
        recalled_notes = list(recalled.notes) if recalled is not None else []
        first = [decode_note] if decode_note is not None else []
        print_notes([*first, *resume_notes, *recalled_notes, *notes, *previews, *flags, *ignored], say)
        if decodes_alone:
            return decode_finished_sampling(args, resume, request.output)
        if args.dry_run:
            # A dry run before running a stopped run's command again says, as the run would, that --resume goes on.
            earlier = earlier_runs(requests) if resume is None else []
            print_notes([*earlier, *batch_videos_note(requests, drawn=seed_was_drawn(args))], say)
            return dry_run(args, requests, loras, layout)
        device = args.device if session is None else session.device
        with download_hint_repeats(run_inputs(args).argv), tokenizer_notes_once():
            return Run(args, parallel, say, resume, clip, on_preview).generate(requests, device, loras)
    finally:
        if on_preview is not None:
            on_preview.close()
        release(claimed, named=args.output is not None)


def _resolve(
    args: argparse.Namespace,
    unresolved: GenerationRequest,
    session: Session | None,
    layout: ParallelLayout | None,
    clip: Clip | None,
    claimed: Path | None = None,
) -> tuple[Parallel | None, list[GenerationRequest], list[str]]:
    """-> (this process's part of a parallel run, else None; the run's videos; their notes), every setting checked
    before anything loads. In a parallel run rank 0 checks the settings (its output folder, its image), draws the
    seed and names the outputs, and the other ranks get its answer."""
    if session is None:
        return None, *resolve_requests(args, unresolved, clip, claim=True, claimed=claimed)
    from motif_lite.runtime.parallel import DEFAULT_STEP_TIMEOUT_S, Parallel

    timeout = args.comm_timeout if args.comm_timeout is not None else DEFAULT_STEP_TIMEOUT_S
    parallel = Parallel.create(layout, session.device, timeout)
    return parallel, *parallel.share(lambda: resolve_requests(args, unresolved, clip, claim=True, claimed=claimed))


def flag_notes(args: argparse.Namespace, layout: ParallelLayout | None) -> list[str]:
    """The notes on flags this run does not use as given (from the flags alone): a step cache threshold that reuses
    nearly every step, an attention backend that int8 attention leaves unused, a flag for (or against) a run on
    several processes (`layout`: how they split the run; None on one), and what --quantize costs there."""
    from motif_lite.runtime.attention import unused_backend_note
    from motif_lite.runtime.step_cache import threshold_note

    # A bad threshold was refused as the flags were read.
    notes = [threshold_note(args.step_cache) if args.step_cache is not None else None]
    notes.append(unused_backend_note(args.attention, args.attention_backend))
    several_processes = layout is not None
    if not several_processes and args.comm_timeout is not None:
        notes.append("--comm-timeout is for a run on several processes (--gpus N, torchrun): this one has no others")
    if layout is not None and args.batch_guidance:
        # cfg 1 (--sp given, or no guidance) runs the predictions on the same ranks: no "side by side" there.
        how = (
            "the two guidance predictions run side by side, each on its own processes"
            if layout.cfg == 2
            else "every prediction is shared by all of them, one after another (sequence parallelism does not batch)"
        )
        notes.append(f"--batch-guidance is not used on several processes ({layout.describe()}): {how}")  # fmt: skip
    if several_processes and args.quantize is not None:  # docs/parallel.md, "Quantizing as it loads"
        notes.append(f"--quantize on several processes: each one quantizes the transformer to {args.quantize} itself "
                     "as it loads (the work times the processes, and each holds its packed weights in host memory "
                     "until they move to its GPU); a file made once, given as --gguf, is read by all of them from "
                     "one copy in the page cache")  # fmt: skip
    return [note for note in notes if note]


def _quiet(*values: object, **kwargs: object) -> None:
    """Ranks other than 0 print nothing but errors."""


def _preview_notes(path: str | None, steps: int, every: int | None, done: int) -> list[str]:
    """Where and when the previews come (after step `done`, where a resumed run starts): a terminal shows nothing
    of them otherwise."""
    from motif_lite.io.preview import preview_note

    return [preview_note(path, steps, every, done)] if path else []


def _preview_writer(path: str, fps: float, dry_run: bool = False):
    """The `on_preview` callback writing `path` in the background (its path checked now, before anything loads);
    a `dry_run` checks the path alone: a writer that wrote nothing warns, as it closes, that no preview was
    written."""
    from motif_lite.io.preview import PreviewFile, check_preview_path

    if dry_run:
        check_preview_path(path)
        return None
    return PreviewFile(path, fps / TEMPORAL_FACTOR)  # one preview frame per latent frame
