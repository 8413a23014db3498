"""`motif-lite decode`: make the video from the latents a run saved when its decode failed, without sampling again.

    motif-lite decode fox.latents.safetensors

Loads the VAE alone (no transformer, no text encoder), plans its memory like a run's decode stage and writes the
video the run would have written, with the same metadata (see motif_lite.decoding).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.choices import DTYPE_NAMES, MOTIF_REPO, dtype_name
from motif_lite.cli.flag_numbers import vram_gib
from motif_lite.cli.run_flags import add_crf_flag
from motif_lite.frame_rates import rate_said
from motif_lite.log_filters import quiet_warnings
from motif_lite.paths import path_arg
from motif_lite.shell_syntax import quoted

if TYPE_CHECKING:
    import torch

    from motif_lite.decoding import DecodeJob
    from motif_lite.io.latents import SavedLatents

DESCRIPTION = """\
Decode latents that `motif-lite run` saved beside its output when the decode failed (out of memory, inf/NaN, a
full disk, Ctrl-C): fox.mp4 -> fox.latents.safetensors. Only the VAE is loaded; its memory is planned for the
device like a run's decode stage. The video gets the settings of the run in its metadata."""

EPILOG = """\
examples:
  motif-lite decode fox.latents.safetensors                      (writes the run's output, e.g. fox.mp4)
  motif-lite decode fox.latents.safetensors -o fox.webm
  motif-lite decode fox.latents.safetensors --crf 28             (a smaller file: H.264 at CRF 28, not 18)
  motif-lite decode fox.latents.safetensors --device cpu         (no GPU memory needed; slower)
  motif-lite decode fox.latents.safetensors --vram 4             (plan the decode for 4 GiB)
  motif-lite decode fox.latents.safetensors --vram 4 --dry-run   (check and plan it, then exit)

-m, --vae and --dtype default to what the run used, as stored in the file.
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `decode` to the `motif-lite` subcommands."""
    decode = commands.add_parser(
        "decode",
        help="make the video from latents a failed decode saved (fox.latents.safetensors), without sampling again",
        description=DESCRIPTION,
        usage="motif-lite decode LATENTS [-o OUTPUT] [options]",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    decode.add_argument("latents", type=path_arg, metavar="LATENTS", help="the .latents.safetensors file a run saved")
    decode.add_argument(
        "-o",
        "--output",
        type=path_arg,
        help="the video file, .mp4 .mkv .mov .webm .webp .gif or out_%%03d.png (default: the run's output; a name "
        "beside it when that exists)",
    )
    add_crf_flag(decode)
    decode.add_argument(
        "-m",
        "--model",
        type=path_arg,
        help=f"checkpoint folder or Hub repo with the VAE (default: the run's, else {MOTIF_REPO})",
    )
    decode.add_argument(
        "--vae",
        type=path_arg,
        metavar="FILE",
        help="the Wan2.1 VAE as one .safetensors file (default: the run's, else -m's)",
    )
    decode.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    decode.add_argument("--dtype", type=dtype_name, choices=DTYPE_NAMES, help="the VAE's dtype (default: the run's)")
    decode.add_argument(
        "--vram",
        type=vram_gib,
        metavar="GiB",
        help="device memory budget: bands/tiles to fit it (default: the GPU's free memory; CPU: no limit)",
    )
    decode.add_argument(
        "--dry-run",
        action="store_true",
        help="check the latents, the VAE's files and the output, print the memory plan, then exit: loads no "
        "weights, downloads nothing",
    )
    decode.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """The `decode` handler: read and check the file, find the VAE, plan, decode, say where the video is."""
    from motif_lite.cli import use_expandable_segments
    from motif_lite.cli.run_request import check_no_control_character, check_no_name_placeholder

    # The -o a script builds is held to run's rules, before any work: a CRLF name's \r or a line break in the file's
    # name, another tool's {seed} left in it.
    check_no_control_character(args.output)
    check_no_name_placeholder(args.output, naming='-o "$name.mp4"; each file keeps its seed in its metadata')
    use_expandable_segments()  # before torch starts CUDA, as for run: the decode's memory plan assumes it
    from motif_lite.io.latents import LatentsFileError, read_latents
    from motif_lite.io.output_claims import named_claims, release_claims

    saved = read_latents(args.latents, command="decode")
    if args.output is None and not saved.output.parent.is_dir():  # from another machine, or the folder moved
        raise LatentsFileError(f"the run that saved {saved.file} wrote to {saved.output}, and that folder is not "
                               "here: give -o for the video")  # fmt: skip
    if args.output is not None:
        # Claimed as run claims its -o: a run or a decode writing that file already refuses this one before any
        # work, where the last to finish would replace the other's video.
        output = Path(args.output)
        with named_claims([] if args.dry_run else [output], "decode"):
            return _decode(args, saved, output)
    # The default name is claimed (an empty file) as run claims its own: a decode of the same latents started at the
    # same moment then picks the next name instead of writing this file too. Freed again unless the video replaced it.
    output = _free(saved.output, args.dry_run)
    try:
        return _decode(args, saved, output)
    finally:
        if not args.dry_run:
            release_claims([output])


def _decode(args: argparse.Namespace, saved: SavedLatents, output: Path) -> int:
    """Check, plan and decode `saved` into `output`; say where the video is."""
    from motif_lite.cli.common import print_notes
    from motif_lite.cli.run_request import replaced_files_note

    job = checked_decode(args, saved, output)
    replaced = replaced_files_note([job.output], args.dry_run, "decode") if args.output is not None else None
    print_notes([*job.notes, *([replaced] if replaced else [])])  # before the decode: time to move a video to keep
    if args.dry_run:
        print("\n".join(decode_plan_lines(job, args)))
        return 0
    written, seconds = decode_with_progress(job, args.vram is not None, args.output is not None)
    print("\n".join(decoded_lines(job, written, seconds)))
    # Unlike a run, which removes its latents once the video is written: they may be decoded again (another -o),
    # and a later run of the same output names them as its video's (`decoding.video_made`).
    print(f"note: the latents stay in {saved.file}: delete it once you no longer want to decode them again",
          file=sys.stderr)  # fmt: skip
    return 0


def checked_decode(args: argparse.Namespace, saved: SavedLatents, output: Path) -> DecodeJob:
    """`prepare_decode` of `saved` into `output` with the flags `decode` and `run` share (-m, --vae, --device,
    --dtype, --vram, --crf, --dry-run: downloads nothing), named as flags in its messages."""
    from motif_lite.cli.common import download_hint_repeats
    from motif_lite.decoding import prepare_decode
    from motif_lite.dtypes import torch_dtype
    from motif_lite.errors import Audience

    dtype = torch_dtype(args.dtype) if args.dtype is not None else None
    with download_hint_repeats(getattr(args, "argv", None)):
        return prepare_decode(
            saved, output, args.model, args.vae, args.device, dtype, args.vram, not args.dry_run, crf=args.crf,
            audience=Audience.FLAGS,  # the command's flags: its user writes no Python
        )  # fmt: skip


def decode_plan_lines(job: DecodeJob, args: argparse.Namespace) -> list[str]:
    """What a dry run of `job` says: its memory plan, the VAE it would load, and the file it would write."""
    saved = job.saved
    plan = job.plan.describe() if job.plan is not None else "no memory plan: on the CPU without --vram, no limit"
    vae = args.vae or saved.vae or job.root  # the user's file, not the folder it is linked into
    joined = f" ({job.clip.describe()} first)" if job.clip is not None else ""
    return [plan, f"VAE: {vae}, {str(job.dtype).removeprefix('torch.')} on {job.device}",
            f"would write: {job.output}{joined}"]  # fmt: skip


def decode_with_progress(job: DecodeJob, vram_given: bool, named: bool = False) -> tuple[Path, float]:
    """Decode `job` with progress bars (its memory plan said first); -> the file written and the seconds it took.
    Out of memory, the error gets the decode's figures (`vram_given`: the plan's budget was --vram's); any failure
    says the latents file is untouched, with the command that decodes it again (`named`: into the output -o gave,
    which that command repeats)."""
    import torch

    from motif_lite.decoding import run_decode
    from motif_lite.progress import ProgressBars

    if job.plan is not None:
        print(job.plan.describe(), file=sys.stderr)
    start = time.perf_counter()
    progress = ProgressBars()
    try:
        written = run_decode(job, progress)
    except BaseException as exc:  # out of memory, a full disk, Ctrl-C, SIGTERM: the latents file is never touched
        progress.close()  # its bar ends its line first: the note ran on from the bar's line
        if isinstance(exc, torch.OutOfMemoryError):  # printed in place of cli's, which speaks of a GPU's plan
            with contextlib.suppress(Exception):  # a help: failing to make it must not hide the error it is for
                planned = job.plan is not None
                exc.add_note(decode_out_of_memory_advice(job, vram_given) if planned else unplanned_advice(job.device))
        # Without -o the command decodes into the run's output: the one given is repeated.
        output = f" -o {quoted(str(job.output))}" if named else ""
        with contextlib.suppress(OSError):  # a terminal that hung up (SIGHUP) takes no more lines
            print(f"note: the latents stay in {job.saved.file}: decode them again with motif-lite decode "
                  f"{quoted(str(job.saved.file))}{output} (-o for another disk, {_less_memory(job.device)})",
                  file=sys.stderr)  # fmt: skip
        raise
    finally:
        progress.close()
    return written, time.perf_counter() - start


def decoded_lines(job: DecodeJob, written: Path, seconds: float, resumed: str | None = None) -> list[str]:
    """What a finished decode of `job` says: the video's size, frames and seed, the time, the clip it extends, and
    the file `written`; `resumed`: a line on the run it finishes (`run --resume`), before the file's."""
    from motif_lite.errors import counted
    from motif_lite.io.staging import described_output
    from motif_lite.request import video_seconds

    saved = job.saved
    meta = saved.video_metadata
    seed = f", seed {meta['seed']}" if "seed" in meta else ""
    lines = [f"done: {saved.width}x{saved.height}, {counted(saved.frames, 'frame')}{seed}, decoded in "
             f"{seconds:.1f}s on {job.device}"]  # fmt: skip
    if job.clip is not None:  # as run's summary says it: the done line counts the new part
        lines.append(f"extended: {job.clip.path.name}'s {counted(job.clip.frames, 'frame')}, then {saved.frames - 1} "
                     f"new: {job.frames} frames, {video_seconds(job.frames, saved.fps):g} s at "
                     f"{rate_said(saved.fps)}")  # fmt: skip
    return [*lines, *([resumed] if resumed else []), f"output: {described_output(written, job.frames)}"]


def decode_out_of_memory_advice(job: DecodeJob, vram_given: bool) -> str:
    """What to do when a planned decode ran out of device memory, in a run's figures (`memory_advice`): its plan's
    budget (`vram_given`: --vram's, else the free memory's) and estimated peak, and the --vram just under that peak,
    which plans the decode in less memory (what it does then); where none does, the CPU. Where other processes now
    hold so much of the GPU that the plan's reserve cannot fit beside them, what they hold, and the --vram that fits
    what they left (`memory_advice.lower_budget`), as a run's advice says it; where what they left is under even the
    decode's smallest plan, what that plan needs and both ways out (close what holds GPU memory, or the CPU)."""

    from motif_lite.decoding import replanned
    from motif_lite.errors import Audience, MemoryBudgetError, MotifLiteError
    from motif_lite.memory_advice import LEAST_VRAM, budget_source, lower_budget
    from motif_lite.runtime.budget_advice import decode_on_the_cpu, free_for
    from motif_lite.units import RESERVED_RATIO, memory_size

    plan = job.plan
    said = (
        f"the decode's memory plan had a budget of {memory_size(plan.budget_bytes)} ({budget_source(vram_given)}) "
        f"for an est. peak of {memory_size(plan.stage.peak_bytes)}"
    )
    # As a run's advice: where other processes now hold too much for the plan beside them, what they hold, and the
    # --vram that fits what they left (the one just under the peak would run out again).
    peak = plan.stage.peak_bytes
    budget = lower_budget(job.device, peak, int(peak * RESERVED_RATIO), "a decode")
    held, said = said + budget.held, said + budget.held + budget.advice
    lower, why, room = budget.vram_gib, budget.why, budget.room_bytes
    cpu = decode_on_the_cpu(Audience.FLAGS)  # the planner's words for it: "decode on the CPU with --device cpu"
    if lower is None and room is None:
        return f"{said}; {cpu}"
    try:
        with quiet_warnings():  # the budget's warnings were given with the plan
            smaller = replanned(job, LEAST_VRAM if lower is None else lower)  # LEAST_VRAM: for the smallest's figure
    except MemoryBudgetError as exc:  # nothing fits under it
        if room is not None and exc.smallest_vram_gib is not None:
            # Other processes left less than even the smallest plan needs: smaller plans than the one that ran out
            # may exist, so not "no plan needs less", and not "plan for what is left", which nothing fits.
            least = exc.smallest_vram_gib
            return (
                f"{held}. What the GPU leaves a decode now ({memory_size(room)}) is under this decode's smallest "
                f"plan, --vram {least:.2f}, which needs {free_for(least):.2f} GiB free: close what holds GPU memory, "
                f"or {cpu}"
            )
        return f"{said}. No plan of this decode needs less: {cpu}"
    except MotifLiteError:  # nothing fits under this plan's peak
        return f"{said}. No plan of this decode needs less: {cpu}"
    if lower is None:  # planned only for the smallest plan's figure
        return f"{said}; {cpu}"
    return (
        f"{said}. --vram {lower:.2f} ({why}) plans it in less: est. peak "
        f"{memory_size(smaller.stage.peak_bytes)}, {smaller.stage.chunks}"
    )


def _less_memory(device: torch.device) -> str:
    """The flags that decode in less of `device`'s memory, as the note after a failed decode names them: on the CPU,
    --vram alone (it is on the CPU already)."""
    if device.type == "cpu":
        return "--vram GiB for less memory"
    return f"--device cpu or --vram GiB for less {'GPU' if device.type == 'cuda' else device.type} memory"


def unplanned_advice(device: torch.device) -> str:
    """What to do when a decode without a memory plan (the CPU, or a device whose free memory is not read, such as
    Apple's MPS, without --vram) ran out of memory: plan it with --vram; elsewhere than the CPU, or use the CPU."""
    if device.type == "cpu":
        return ("the decode had no memory plan (on the CPU without --vram, no limit): --vram GiB plans it in bands or "
                "tiles to fit that much memory; or close what holds memory")  # fmt: skip
    return (f"the decode had no memory plan ({device.type}'s free memory is not read without --vram): --vram GiB plans "
            f"it in bands or tiles to fit that much of its memory, or --device cpu uses none of it")  # fmt: skip


def _free(path: Path, dry_run: bool) -> Path:
    """The run's output, or the next free name beside it when a file is there now (said on stderr); claimed unless in
    a `dry_run`, which writes nothing."""
    from motif_lite.cli.common import free_output

    free, note = free_output(path, dry_run, claim=True, command="decode")
    if note is not None:
        print(f"note: {note}", file=sys.stderr)
    return free
