"""`motif-lite run`: the command line over `GenerationRequest` and `load_pipeline`, with stable-diffusion.cpp flags.

    motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4

A failed or interrupted run never leaves a half-written output file (see `motif_lite.io.staging.staged_output`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from motif_lite.cli.run_flags import DEFAULTS, add_run_flags, weight_files
from motif_lite.cli.run_summary import summary
from motif_lite.cli.run_time import confirm_cpu_time, gpu_time_note
from motif_lite.request import GenerationRequest

if TYPE_CHECKING:
    import torch

    from motif_lite.checkpoint import ModelSources
    from motif_lite.io.hub import MissingFilesError
    from motif_lite.io.latents import SavedLatents
    from motif_lite.runtime.parallel import Parallel, ParallelLayout, Session
    from motif_lite.runtime.planner import Plan
    from motif_lite.settings import Settings

DRY_RUN_PROMPT = "(dry run)"  # a dry run needs no prompt: it encodes nothing

EPILOG = """\
examples:
  motif-lite run -p "a red fox runs through snow" -o fox.mp4
  motif-lite run --gguf Q4_K_M -p "a red fox runs through snow" -o fox.mp4
  motif-lite run -i first_frame.png -p "the fox turns its head" -o fox_i2v.mp4          (image-to-video)
  motif-lite run --gguf Q4_K_M -b 4 -p "a red fox runs through snow" -o fox.mp4        (4 seeds: fox-1..4.mp4)
  motif-lite run -W 832 -H 480 --video-frames 65 --steps 30 -p "..." -o fast.mp4        (faster, unofficial)
  motif-lite run --gpus 4 -p "a red fox runs through snow" -o fox.mp4                    (4 GPUs: cfg 2 x sp 2)
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m motif_lite run ...
                                                           (2 machines x 8 GPUs; see docs/parallel.md)

Defaults are the official settings: 1280x736, 121 frames at 24 fps, 50 steps and the official negative
prompt; sampler, flow shift and guidance come from the checkpoint's scheduler and guider configs (else Euler,
shift 15 T2V / 8 I2V, APG scale 8 with norm threshold 12 and momentum 0.1). A flag always wins; --dry-run and
the final summary list every setting with its source. See docs/usage.md.
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


def request_from_args(args: argparse.Namespace) -> GenerationRequest:
    """The request the flags describe; flags left out stay None so that the checkpoint decides."""
    return GenerationRequest(
        prompt=args.prompt if args.prompt is not None else DRY_RUN_PROMPT,
        negative_prompt=args.negative_prompt,
        width=args.width,
        height=args.height,
        frames=args.video_frames,
        fps=args.fps,
        steps=args.steps,
        guidance=args.guidance,
        cfg_scale=args.cfg_scale,
        apg_eta=args.apg_eta,
        apg_norm_threshold=args.apg_norm_threshold,
        apg_momentum=args.apg_momentum,
        flow_shift=args.flow_shift,
        sampler=args.sampling_method,
        seed=args.seed,
        image=args.image,
        output=args.output if args.output is not None else DEFAULTS.output,
    )


# The flags (dests) that say which video to make: a resumed run takes them all from its file.
REQUEST_DESTS = (
    "prompt", "negative_prompt", "width", "height", "video_frames", "fps", "steps", "guidance", "cfg_scale", "apg_eta",
    "apg_norm_threshold", "apg_momentum", "flow_shift", "sampling_method", "seed", "image", "batch_count",
)  # fmt: skip
# The flags that say which model runs, grouped where one flag of a group replaces the others (a transformer from
# --gguf or --diffusion-model): a resumed run takes each group the command line leaves out from its file.
MODEL_DEST_GROUPS = (
    ("model",), ("gguf", "diffusion_model"), ("text_encoder_gguf", "text_encoder"), ("vae",), ("dtype",),
    ("lora",), ("attention",),
)  # fmt: skip


def resume_args(args: argparse.Namespace) -> tuple[SavedLatents, list[str]]:
    """`--resume FILE`: the stopped run it holds, checked, and its model flags put into `args` where the command
    line gives none (a given one wins: the notes say so). Flags that choose the video are an error: the file says
    it."""
    from motif_lite.cli.run_flags import weight_files
    from motif_lite.io.latents import LatentsFileError, read_latents
    from motif_lite.request import RequestError

    saved = read_latents(args.resume)
    where = shlex.quote(str(saved.file))
    if saved.denoised:
        raise LatentsFileError(f"{saved.file} holds a run's denoised latents, not a stopped run: make the video "
                               f"from them with motif-lite decode {where}")  # fmt: skip
    if saved.request is None or saved.run is None:
        raise LatentsFileError(f"{saved.file} does not say which request and model its run had: it is damaged")
    defaults, given = _run_flags_given(args)
    if clash := [dest for dest in REQUEST_DESTS if dest in given]:
        flags = ", ".join("--" + dest.replace("_", "-") for dest in clash)
        raise RequestError(f"--resume goes on with the video {saved.file} describes: leave out {flags} (-o may "
                           "name another output file)")  # fmt: skip
    done, steps = saved.progress
    notes = [f"resuming {saved.file}: {done} of {steps} steps sampled, {steps - done} to go"]
    for group in MODEL_DEST_GROUPS:
        run = {dest: saved.run.get(dest, defaults[dest]) for dest in group}
        if not given & set(group):
            for dest, value in run.items():
                setattr(args, dest, value)
        elif any(getattr(args, dest) != run[dest] for dest in group):
            was = ", ".join(f"--{dest.replace('_', '-')} {run[dest]}" for dest in group if run[dest] not in (None, []))
            notes.append(f"the run being resumed had {was or 'the default'}: the rest of the video is sampled with "
                         "what this command gives")  # fmt: skip
    args.weights = weight_files(args)
    return saved, notes


def earlier_runs(requests: list[GenerationRequest]) -> list[str]:
    """Notes on the latents files an earlier run of these outputs left (it stopped, or its decode failed): this
    run starts again, and the note says how to use that work instead."""
    from motif_lite.io.latents import LatentsFileError, latents_path, read_latents

    notes = []
    for request in requests:
        path = latents_path(request.output)
        try:
            saved = read_latents(path) if path.is_file() else None
        except LatentsFileError:
            continue
        if saved is None:
            continue
        quoted = shlex.quote(str(path))
        if saved.denoised:
            notes.append(f"{path} holds the denoised latents of an earlier run of {request.output} whose decode "
                         f"failed: motif-lite decode {quoted} makes that video without sampling")  # fmt: skip
        else:
            done, steps = saved.progress
            notes.append(f"{path} holds an earlier run of {request.output} that stopped after step {done} of "
                         f"{steps}; this run starts again (its file gets another name). To go on with that one "
                         f"instead: motif-lite run --resume {quoted}")  # fmt: skip
    return notes


def _run_flags_given(args: argparse.Namespace) -> tuple[dict, set[str]]:
    """-> (every run flag's default, by dest; the dests the command line gave, also where it gave the default)."""
    from motif_lite.cli.run_flags import add_run_flags

    parser = argparse.ArgumentParser(add_help=False)
    add_run_flags(parser)
    defaults = vars(parser.parse_args([]))
    not_given = object()
    parser.set_defaults(**dict.fromkeys(defaults, not_given))
    argv = list(getattr(args, "argv", None) or [])
    parsed, _ = parser.parse_known_args(argv[argv.index("run") + 1 :] if "run" in argv else argv)
    return defaults, {dest for dest, value in vars(parsed).items() if value is not not_given}


def resumed_request(saved: SavedLatents, output: str | None) -> GenerationRequest:
    """The request of the run `saved` stopped (its output file, or `output` when given)."""
    from motif_lite.io.latents import LatentsFileError
    from motif_lite.io.video import check_output_fps

    fields = dict(saved.request)
    if output is not None:
        fields["output"] = output
    try:
        request = GenerationRequest(**fields)
    except TypeError as exc:  # a field this version does not know
        raise LatentsFileError(f"{saved.file}: its request does not fit this motif-lite ({exc})") from None
    if output is not None:  # --fps is refused with --resume: the way out is another format
        check_output_fps(output, request.fps, "--resume keeps the run's frame rate: give -o a .webp or .mp4 file")
    return request


def resolve_requests(
    args: argparse.Namespace, unresolved: GenerationRequest
) -> tuple[list[GenerationRequest], list[str]]:
    """`unresolved.resolve()` as the run's videos: one, or with `--batch-count N` N of them with seeds SEED,
    SEED+1, ... and files numbered -1, -2, ... before the extension; without -o, names that do not replace an
    earlier video."""
    import dataclasses

    from motif_lite.io.video import numbered_path, stale_frames_note

    request, notes = unresolved.resolve()
    path, count = Path(request.output), args.batch_count
    outputs = [path] if count == 1 else [numbered_path(path, i) for i in range(1, count + 1)]
    if args.output is None:
        free = [free_output(output) for output in outputs]
        notes += [note for _, note in free if note is not None]
        outputs = [chosen for chosen, _ in free]
    seeds = [(request.seed + i) % 2**32 for i in range(count)]
    notes += [note for output in outputs if (note := stale_frames_note(output, request.frames))]
    return [dataclasses.replace(request, seed=s, output=o) for s, o in zip(seeds, outputs, strict=True)], notes


def free_output(wanted: Path) -> tuple[Path, str | None]:
    """`wanted`, or the next free name beside it when a file is there (a default output never replaces an earlier
    video), with the note that says so."""
    from motif_lite.io.video import unused_path

    chosen = unused_path(wanted)
    if chosen == wanted:
        return wanted, None
    return chosen, f"{wanted} exists: writing {chosen} instead (-o names the file and replaces it)"


class StageProgress:
    """One tqdm bar per stage (encode, denoise with s/it, decode), fed by `generate`'s on_progress."""

    UNITS = {"encode": "input", "denoise": "step", "decode": "latent frame"}

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None  # tqdm of the current stage

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            from tqdm import tqdm

            unit = self.UNITS.get(stage, "it")  # `initial`: a resumed run's bar starts at the steps already done
            self.bar = tqdm(total=total, initial=done, desc=f"{stage:>7}", unit=unit, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.stage, self.bar = None, None


def main(args: argparse.Namespace) -> int:
    """The `run` handler: check every setting and file, plan, load, generate, print a summary. With `--gpus N`
    (outside torchrun) it checks the settings, then starts N processes that each run this handler under torchrun."""
    args.weights = weight_files(args)  # a .gguf given as --diffusion-model / --text-encoder becomes --gguf / ...
    torchrun_world = int(os.environ.get("WORLD_SIZE", "1"))
    if torchrun_world == 1 and args.gpus is not None and args.gpus > 1 and not args.dry_run:
        return _launch(args)
    if torchrun_world == 1:
        return _run(args)
    from motif_lite.errors import MotifLiteError
    from motif_lite.runtime import parallel

    session = parallel.start(args.device)
    try:
        return _run(args, session)
    except Exception as exc:  # user errors print "[rank r] error: ..." in cli.main; anything else is logged here
        if not isinstance(exc, MotifLiteError):
            print(f"[rank {session.rank}] failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise
    finally:
        parallel.stop()


def _run(args: argparse.Namespace, session: Session | None = None) -> int:
    from motif_lite.cli import use_expandable_segments

    use_expandable_segments()  # before torch starts CUDA
    from motif_lite.devices import torch_dtype  # torch and the rest load here, not when --help builds the parser
    from motif_lite.runtime.parallel import DEFAULT_STEP_TIMEOUT_S, Parallel

    resume, resume_notes = resume_args(args) if args.resume is not None else (None, [])  # request and model flags
    check_flags(args, resume)
    dtype = torch_dtype(args.dtype)
    unresolved = request_from_args(args) if resume is None else resumed_request(resume, args.output)
    world = session.world if session is not None else args.gpus or 1
    layout = _layout(args, unresolved, world) if world > 1 or args.sp not in (None, 1) else None
    parallel = None
    if session is None:
        requests, notes = resolve_requests(args, unresolved)  # every setting checked before anything loads
    else:  # rank 0 checks the settings (its output folder, its image), draws the seed and names the outputs
        timeout = args.comm_timeout if args.comm_timeout is not None else DEFAULT_STEP_TIMEOUT_S
        parallel = Parallel.create(layout, session.device, timeout)
        requests, notes = parallel.share(lambda: resolve_requests(args, unresolved))
    request = requests[0]  # the videos differ in seed and file only: the first stands for all in the checks
    say = print if parallel is None or parallel.is_main else _quiet
    loras = lora_args(args.lora)
    on_preview = None
    if args.preview and (parallel is None or parallel.is_main):
        on_preview = _preview_writer(args.preview, request.fps)
    if args.step_cache is not None:  # a bad threshold was refused as the flags were read
        from motif_lite.runtime.step_cache import threshold_note

        notes += [note] if (note := threshold_note(args.step_cache)) else []
    from motif_lite.runtime.attention import unused_backend_note

    notes += [note] if (note := unused_backend_note(args.attention, args.attention_backend)) else []
    if layout is None and args.comm_timeout is not None:
        notes.append("--comm-timeout is for a run on several processes (--gpus N, torchrun): this one has no others")
    if layout is not None and args.batch_guidance:
        notes.append("--batch-guidance is not used on several processes: there the two guidance predictions are "
                     "separate calls, side by side on their own processes with cfg 2")  # fmt: skip
    _print_notes([*resume_notes, *notes], say)
    if args.dry_run:
        return dry_run(args, request, dtype, layout)
    device = args.device if session is None else session.device
    try:
        with download_hint_repeats(getattr(args, "argv", None)):
            return _generate(args, requests, dtype, device, loras, on_preview, parallel, say, resume)
    finally:
        if on_preview is not None:
            on_preview.close()


def check_flags(args: argparse.Namespace, resume: SavedLatents | None) -> None:
    """The checks of flags that need no model, made before anything starts (also before `--gpus N` starts its
    processes, each of which would fail with the same message)."""
    from motif_lite.request import RequestError

    if args.prompt is None and not args.dry_run and resume is None:
        raise RequestError('a prompt is required: -p "what the video shows" (only --dry-run runs without one)')
    if args.preview_every is not None and not args.preview:  # alone it would do nothing, without a word
        raise RequestError("--preview-every says how often the --preview file is rewritten: add --preview FILE")
    if args.preview and args.output and _same_file(args.preview, args.output):
        raise RequestError(f"--preview and -o both name {args.output}: the video would replace the preview at the end; "
                           "give the preview its own file")  # fmt: skip
    if args.preview and args.image and _same_file(args.preview, args.image):
        raise RequestError(f"--preview and -i both name {args.image}: the previews would replace your image; give the "
                           "preview its own file")  # fmt: skip


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def dry_run(
    args: argparse.Namespace, request: GenerationRequest, dtype: torch.dtype, layout: ParallelLayout | None = None
) -> int:
    """Print the effective settings, the sizes and the memory plan; reads no weights and never downloads."""
    import torch

    from motif_lite.checkpoint import locate_sources
    from motif_lite.devices import parse_device
    from motif_lite.preflight import AT_HAND
    from motif_lite.settings import resolve_settings
    from motif_lite.sizes import model_sizes

    sources = locate_sources(args.model, args.gguf, args.text_encoder_gguf, weights=args.weights, **AT_HAND)
    settings = resolve_settings(request, sources.configs, sources.transformer)
    _print_notes([*sources.notes, *settings.notes])
    device = parse_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available() and args.vram is None:
        _print_notes(["no CUDA device on this machine: planned without a budget; give --vram GiB to plan for yours"])
    if str(args.device) == "auto" and device.type == "cpu":
        _print_notes(["no CUDA device on this machine: planned for the CPU; --device cuda plans for a GPU"])
    if device.type == "cpu" or torch.cuda.is_available():  # the device is here: check the speed flags as a run would
        from motif_lite.preflight import check_kernels, check_strict_int8
        from motif_lite.runtime.attention import check_backend_runs
        from motif_lite.runtime.compile import check_compile_possible

        check_kernels(args.kernels, device)
        check_strict_int8(args.attention, args.kernels, device)
        if args.attention == "exact":
            check_backend_runs(args.attention_backend, device, dtype)
        if args.compile:
            check_compile_possible(device)
    plan = _plan(args, request, sources, dtype, device, layout)
    described = plan.describe() if layout is None else f"{layout.describe()}; per rank:\n{plan.describe()}"
    _, note = planned_batch_guidance(args.batch_guidance and layout is None, plan, settings)
    _print_notes([note] if note else [])
    sizes = model_sizes(sources, dtype).lines()
    print("\n".join([*settings.lines(), dry_run_speed(args, device), *sizes, *_lora_lines(args, sources), described]))
    return 0


def dry_run_speed(args: argparse.Namespace, device: torch.device) -> str:
    """The speed flags as a run on `device` would use them, in one line (the settings table has none of them)."""
    gpu = device.type == "cuda"
    if args.attention == "int8":
        where = "on the CPU" if not gpu else "with --kernels torch" if args.kernels == "torch" else None
        attention = f"int8, which falls back to exact {where}" if where else "int8 (lossy)"
    elif args.attention_backend == "auto":
        attention = "exact, auto (timed at the first step, or as an earlier run chose)" if gpu else "exact, sdpa (auto)"
    else:
        attention = f"exact, {args.attention_backend}"
    parts = [f"attention {attention}"]
    if args.compile:
        parts.append("compiled blocks (the first step compiles)")
    if args.step_cache is not None:
        parts.append(f"step cache {args.step_cache:g}" + (" (lossy)" if args.step_cache else " (exact)"))
    return "speed: " + "; ".join(parts)


def _lora_lines(args: argparse.Namespace, sources) -> list[str]:
    """The --lora files, read and checked against the transformer's layers as a run would (headers and the config:
    no weights): a LoRA of another model fails the dry run too."""
    from motif_lite.weights.loader import build_model
    from motif_lite.weights.lora import LoRASpec, linear_shapes, read_loras

    specs = [LoRASpec(path, strength) for path, strength in lora_args(args.lora)]
    if not specs:
        return []
    files = read_loras(specs, linear_shapes(build_model(sources.transformer.value)))
    return ["loras: " + ", ".join(f.describe() for f in files)]


def _generate(
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    dtype: torch.dtype,
    device: str | torch.device,
    loras: list[tuple[Path, float]],
    on_preview: Callable | None,
    parallel: Parallel | None,
    say: Callable,
    resume: SavedLatents | None = None,
) -> int:
    from motif_lite.devices import dtype_note
    from motif_lite.pipeline import load_pipeline
    from motif_lite.preflight import preflight
    from motif_lite.settings import resolve_settings

    request = requests[0]  # the videos differ in seed and file only
    if resume is None:
        _print_notes(earlier_runs(requests), say)
    # Every check, before any weights.
    sources, device = preflight(
        args.model, args.gguf, device, args.kernels, args.text_encoder_gguf, weights=args.weights
    )
    if args.attention == "exact":  # a fixed attention kernel that this device lacks in this dtype
        from motif_lite.runtime.attention import check_backend_runs

        check_backend_runs(args.attention_backend, device, dtype)
    settings = resolve_settings(request, sources.configs, sources.transformer)
    dtype_advice = dtype_note(device, dtype)  # before loading: bf16 on a GPU without bf16 tensor cores
    _print_notes([*sources.notes, *settings.notes, *([dtype_advice] if dtype_advice else [])], say)
    if device.type == "cpu" and parallel is None:
        confirm_cpu_time(request, settings, sources.configs, dtype, args.yes, len(requests))
    elif device.type == "cuda" and parallel is None:
        note = gpu_time_note(request, settings, sources.configs, dtype, device, len(requests))
        _print_notes([note] if note else [], say)
    plan = None
    if args.vram is not None or args.ram is not None or device.type == "cuda":
        # Raises if nothing fits, before anything loads. In a parallel run: the plan of one rank.
        layout, main = (None, True) if parallel is None else (parallel.layout, parallel.is_main)
        plan = _plan(args, request, sources, dtype, device, layout, text_encoder=main)
        say(plan.describe(), file=sys.stderr)
    # A parallel run never batches them, and says so (_run's notes).
    batch_guidance, note = planned_batch_guidance(args.batch_guidance and parallel is None, plan, settings)
    _print_notes([note] if note else [], say)
    seeds = ", ".join(str(r.seed) for r in requests)
    say(f"seed{'s' if len(requests) > 1 else ''}: {seeds}", file=sys.stderr)
    start = time.perf_counter()
    speed = dict(
        batch_guidance=batch_guidance,
        compile=args.compile,
        # With int8 no exact kernel is chosen (unused_backend_note says so): none to check against this device.
        attention_backend=args.attention_backend if args.attention == "exact" else "auto",
        step_cache=args.step_cache,
    )
    pipe = load_pipeline(
        sources, dtype=dtype, device=device, kernels=args.kernels, plan=plan, loras=loras,
        attention=args.attention, parallel=parallel, **speed,
    )  # fmt: skip
    load_seconds = time.perf_counter() - start
    text_encoder = sources.text_encoder_gguf.describe() if sources.text_encoder_gguf is not None else None
    # Nothing else in the summary says where and in what precision it ran (a CPU run prints no memory plan).
    ran_on = f"{pipe.device}, {str(dtype).removeprefix('torch.')}"
    ran_on += f", transformer {sources.gguf.name}" if sources.gguf is not None else ""
    for number, video in enumerate(requests, 1):
        if len(requests) > 1:
            say(f"video {number} of {len(requests)}: seed {video.seed}, {video.output}", file=sys.stderr)
        progress = StageProgress() if parallel is None or parallel.is_main else None
        try:
            result = pipe.generate(video, progress, on_preview, args.preview_every, resume=resume)
        except BaseException:
            _print_notes(unstarted_videos(requests[number:]), say)
            raise
        finally:
            if progress is not None:
                progress.close()
        first = number == 1
        say(summary(result, load_seconds if first else 0.0, plan, pipe.loras, text_encoder, first, ran_on))
    return 0


def unstarted_videos(requests: list[GenerationRequest]) -> list[str]:
    """The note on the videos of a batch that a failure left unstarted: which, and the command for each."""
    if not requests:
        return []
    videos = ", ".join(f"{r.output} (seed {r.seed})" for r in requests)
    return [f"not started: {videos}; each is an ordinary run of the same command with -b 1, -s SEED and -o FILE"]


def planned_batch_guidance(
    wanted: bool | None, plan: Plan | None, settings: Settings
) -> tuple[bool | None, str | None]:
    """`--batch-guidance` as the memory plan allows, and the note when it does not: the planner falls back to one
    row per forward where batch 2 does not fit, and a batch-2 forward would then need twice the activation memory
    the plan counted."""
    from motif_lite.sampling import needs_uncond

    if wanted and plan is not None and plan.cfg_batch < 2 and needs_uncond(settings.guidance.value):
        return False, (
            "--batch-guidance does not fit the memory plan (room for one prediction per transformer forward): the "
            "two guidance predictions run one after the other; allow more memory (--vram) to batch them"
        )
    return wanted, None


def _plan(
    args: argparse.Namespace,
    request: GenerationRequest,
    sources: ModelSources,
    dtype: torch.dtype,
    device: torch.device | str,
    layout: ParallelLayout | None,
    text_encoder: bool = True,
) -> Plan:
    """The memory plan of the run the flags ask for (raises when nothing fits); in a parallel run (`layout`) the plan
    of one rank, which never batches the guidance branches (they run one call each, on their own ranks with cfg 2):
    one row per forward. Only the main rank loads the text encoder (`text_encoder`); the plans printed before a
    run are the main rank's."""
    from motif_lite.preflight import plan_generation

    return plan_generation(
        request, sources, dtype=dtype, device=device, vram_gib=args.vram, kernels=args.kernels,
        attention=args.attention, sequence_parallel=layout.sp if layout is not None else 1, ram_gib=args.ram,
        batch_guidance=False if layout is not None else args.batch_guidance, step_cache=bool(args.step_cache),
        text_encoder=text_encoder,
    )  # fmt: skip


@contextlib.contextmanager
def download_hint_repeats(argv: list[str] | None) -> Iterator[None]:
    """Missing files raised inside end their download hint with the user's own command (`argv`, the subcommand
    first: run, verify, serve), pointed at the folders the downloads fill."""
    from motif_lite.io.hub import MissingFilesError

    try:
        yield
    except MissingFilesError as exc:
        exc.run_command = rerun_command(argv, exc)
        raise


def rerun_command(argv: list[str] | None, error: MissingFilesError) -> str:
    """The user's command with -m / --gguf pointing at the folders the download commands fill."""
    tokens = list(argv or ["run", "-p", "..."])
    for flags, key in (((("--gguf",), "gguf")), (("-m", "--model"), "model")):  # each goes first: -m ends first
        if key in error.replacements:
            tokens = _replace_flag(tokens, flags, error.replacements[key])
    return "motif-lite " + shlex.join(tokens)


def _replace_flag(tokens: list[str], flags: tuple[str, ...], value: str) -> list[str]:
    out, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token in flags and i + 1 < len(tokens):
            i += 2
            continue
        if any(token.startswith(f"{flag}=") for flag in flags if flag.startswith("--")):
            i += 1
            continue
        out.append(token)
        i += 1
    return [*out[:1], flags[0], value, *out[1:]]


def _print_notes(notes, say: Callable = print) -> None:
    for note in notes:
        say(f"note: {note}", file=sys.stderr)


def _layout(args: argparse.Namespace, request: GenerationRequest, world: int) -> ParallelLayout:
    """How `world` ranks split the work; a layout that cannot work is an error before anything loads."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.preflight import AT_HAND
    from motif_lite.runtime.parallel import ParallelError, choose_layout
    from motif_lite.sampling import needs_uncond
    from motif_lite.settings import resolve_guidance

    sources = locate_sources(args.model, args.gguf, weights=args.weights, **AT_HAND)  # configs at hand, else built-in
    guided = needs_uncond(resolve_guidance(request, sources.configs.guider).value)
    layout = choose_layout(world, guided, sources.transformer.value.num_attention_heads, args.sp)
    if args.step_cache is not None:  # else each process would refuse it as it loads
        raise ParallelError("--step-cache is not supported in a parallel run (--gpus / torchrun) yet: leave it out")
    return layout


def _launch(args: argparse.Namespace) -> int:
    """Check the settings and the GPUs, then start `args.gpus` processes with torch's elastic launcher."""
    import torch

    from motif_lite.runtime.parallel import ParallelError, check_device, launch

    check_device(args.device)
    resume = resume_args(args)[0] if args.resume is not None else None
    check_flags(args, resume)
    unresolved = request_from_args(args) if resume is None else resumed_request(resume, None)
    request, _ = unresolved.resolve()
    layout = _layout(args, request, args.gpus)
    lora_args(args.lora)  # the files exist
    if args.vram is not None:
        _plan_before_launch(args, request, layout)
    if args.preview:
        from motif_lite.io.preview import check_preview_path

        check_preview_path(args.preview)
    if args.device != "cpu" and torch.cuda.device_count() < args.gpus:
        found = torch.cuda.device_count()
        raise ParallelError(
            f"--gpus {args.gpus}: this machine has {found} CUDA device(s) (--device cpu: CPU processes)"
        )
    return launch(args.gpus, args.argv)


def _plan_before_launch(args: argparse.Namespace, request: GenerationRequest, layout: ParallelLayout) -> None:
    """With --vram every rank plans for the same budget: plan once here, so that a run that does not fit is refused
    once, before N processes start and each prints the refusal. Only with the files at hand: otherwise this plan
    would count built-in sizes, and the ranks plan with the files they download."""
    from motif_lite.checkpoint import locate_sources
    from motif_lite.devices import torch_dtype
    from motif_lite.preflight import AT_HAND

    sources = locate_sources(args.model, args.gguf, args.text_encoder_gguf, weights=args.weights, **AT_HAND)
    if sources.root is None or (args.gguf is not None and sources.gguf is None):
        return
    _plan(args, request, sources, torch_dtype(args.dtype), "cpu" if args.device == "cpu" else "cuda", layout)


def _quiet(*values: object, **kwargs: object) -> None:
    """Ranks other than 0 print nothing but errors."""


def _preview_writer(path: str, fps: float):
    """The `on_preview` callback writing `path` in the background (its path checked now, before anything loads)."""
    from motif_lite.io.preview import PreviewFile

    return PreviewFile(path, fps / 4)  # one preview frame per latent frame, i.e. per 4 video frames


def lora_args(values: list[str]) -> list[tuple[Path, float]]:
    """`--lora FILE[:STRENGTH]` values as (path, strength), each file checked to exist before anything loads."""
    from motif_lite.weights.lora import LoRAError, LoRASpec

    specs = [LoRASpec.parse(value) for value in values]
    for spec in specs:
        if not spec.path.is_file():
            raise LoRAError(_missing_lora(spec.path))
    return [(spec.path, spec.strength) for spec in specs]


def _missing_lora(path: Path) -> str:
    """What to say about a --lora that names no file: a strength that is not a number makes the whole value read
    as a path (so that a path with colons still works), which is then the likelier mistake when the file before
    the last colon exists."""
    file, _, strength = str(path).rpartition(":")
    if file and Path(file).is_file():
        return f"--lora {path}: the strength {strength!r} is not a number; use FILE:STRENGTH, e.g. {file}:0.8"
    return f"LoRA file not found: {path}"
