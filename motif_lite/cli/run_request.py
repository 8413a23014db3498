"""The videos the `run` flags ask for, checked before anything loads: the request (`request_from_args`), the clip
it goes on from, read once (`read_run_clip`), the flag checks that need no model (`check_flags`, also made before
`--gpus N` starts its processes) and the resolved requests of a batch with their output names (`resolve_requests`)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from motif_lite.choices import quantized_twice
from motif_lite.cli.common import free_output
from motif_lite.errors import MotifLiteError, counted
from motif_lite.paths import user_path
from motif_lite.request import REQUEST_DEFAULTS, SIZE_MULTIPLE, GenerationRequest
from motif_lite.request.output_names import (
    COUNTER_PLACEHOLDERS,
    DATE_PLACEHOLDERS,
    PROMPT_PLACEHOLDERS,
    SEED_PLACEHOLDERS,
    name_placeholder,
    same_output,
    video_frame_placeholder,
)
from motif_lite.shell_syntax import quoted

if TYPE_CHECKING:
    from motif_lite.io.clip import Clip
    from motif_lite.io.latents import SavedLatents

DRY_RUN_PROMPT = "(dry run)"  # a dry run needs no prompt: it encodes nothing


class CheckedRequest(NamedTuple):
    """What `checked_request` found: the resumed run's latents and notes, the clip and the request, unresolved."""

    resume: SavedLatents | None
    resume_notes: list[str]
    clip: Clip | None
    unresolved: GenerationRequest


def checked_request(args: argparse.Namespace) -> CheckedRequest:
    """The request the flags (or the resumed run) ask for, with the checks that need no model made: one prelude for
    `run` and for `run --gpus N`'s launcher, which refuses before its processes start what each of them would."""
    from motif_lite.cli.resume import resume_args, resumed_request
    from motif_lite.io.video import check_crf

    resume, resume_notes = resume_args(args) if args.resume is not None else (None, [])  # request and model flags
    check_flags(args, resume)
    # The clip's size and frame rate, where no flag and no --settings-from gives them; read once for the run.
    clip = read_run_clip(args, resume)
    unresolved = request_from_args(args) if resume is None else resumed_request(resume, args.output)
    check_crf(unresolved.output, args.crf)  # the format is known now: -o's, or the resumed run's
    check_weight_flags(args, resume)
    return CheckedRequest(resume, resume_notes, clip, unresolved)


def check_weight_flags(args: argparse.Namespace, resume: SavedLatents | None) -> None:
    """The weight-file flags (--gguf, --text-encoder-gguf, --diffusion-model, --text-encoder, --vae) checked as
    paths (`checkpoint.check_weight_paths`; a --gguf variant by its name, in run's words), before the notes: a
    folder or a missing file was refused after the note that output.mp4 exists and output-2.mp4 is written, for a
    run that then made no video. Where one is wrong, the checks a run (or its dry run) makes before it loads say the
    whole refusal, every other problem with it (the device, the checkpoint's missing files: no download starts while
    a problem stands). A resumed run whose sampling is done reads the VAE alone: the sampling model's flags are
    named unused (`resume_args`), not checked."""
    from motif_lite.checkpoint import check_weight_paths
    from motif_lite.cli.common import lora_args
    from motif_lite.cli.prepare import preflight_flags, sources_at_hand
    from motif_lite.errors import CheckpointError
    from motif_lite.io.gguf_source import refuse_variant_flag

    if resume is not None and resume.sampling_done:
        check_weight_paths(args.model, weights={k: v for k, v in args.weights.items() if k == "vae"})
        return
    refuse_variant_flag(args.gguf)  # as `prepare` does first: `locate_sources` says it in Python's words
    try:
        check_weight_paths(args.model, args.gguf, args.text_encoder_gguf, args.weights)
    except CheckpointError:
        if args.dry_run:
            sources_at_hand(args)
        else:
            preflight_flags(args, args.device, None, lora_args(args.lora))
        raise  # said by those checks, which raise it too


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
        output=args.output if args.output is not None else str(REQUEST_DEFAULTS.output),  # run picks free names itself
        extend=args.extend,
    )


def read_run_clip(args: argparse.Namespace, resume: SavedLatents | None) -> Clip | None:
    """The clip the run goes on from, read once for the whole run (`resolve_requests` and the pipeline take it):
    `--extend`'s, which also gives -W, -H and --fps their defaults (`take_clip_defaults`), or the one the latents
    file of a resumed extension names. None for a run that goes on from no clip."""
    if args.extend is not None:
        return take_clip_defaults(args)
    if resume is None or resume.request.get("extend") is None:
        return None
    from motif_lite.io.clip import read_clip

    return read_clip(resume.request["extend"])  # where it was: `resume_args` asked a moved clip back there


def take_clip_defaults(args: argparse.Namespace) -> Clip:
    """-W, -H and --fps from the clip `--extend` names, for those the command line and --settings-from's file leave
    out: the longer video keeps the clip's size (which the request then checks) and plays at its rate. Returns the
    clip, read once for the whole run (`resolve_requests` and the pipeline take it)."""
    from motif_lite.cli.run_inputs import fill_unset, run_inputs
    from motif_lite.io.clip import read_clip
    from motif_lite.request import RequestError

    clip = read_clip(args.extend)  # a missing or unreadable clip: its error, before anything else
    inputs = run_inputs(args)
    given = inputs.typed
    taken = inputs.taken
    if {"width", "height"} & taken and (args.width, args.height) != clip.size:  # leaving -W/-H out cannot help
        file = inputs.recalled.file.name
        raise RequestError(f"{file} is {args.width}x{args.height} and the clip {clip.path.name} {clip.width}x"
                           f"{clip.height}: one video has one size; give -W {clip.width} -H {clip.height} to go on "
                           f"from the clip with {file}'s other settings")  # fmt: skip
    fill_unset(args, {"width": clip.width, "height": clip.height, "fps": clip.fps}, given | taken, clip.path)
    return clip


def resolve_requests(
    args: argparse.Namespace,
    unresolved: GenerationRequest,
    clip: Clip | None = None,
    claim: bool = False,
    claimed: Path | None = None,
) -> tuple[list[GenerationRequest], list[str]]:
    """`unresolved.resolve()` as the run's videos: one, or with `--batch-count N` N of them with seeds SEED,
    SEED+1, ... and files numbered -1, -2, ... before the extension; without -o, names that do not replace an
    earlier video, and with `claim` (a run, not a dry run) taken at once (`io.output_claims.claim`): the caller releases
    them (`io.output_claims.release_claims`); names given with -o are claimed too, and refused where another run writes
    one (`io.output_claims.claim_named_output`; released with `io.output_claims.release_named_claims`). `clip`: the clip
    `--extend` names, as `take_clip_defaults` read it. `claimed`: a name this run holds already (the claim a stopped
    run being resumed left, or the video it was to replace: `output_left_to_replace`)."""
    import dataclasses

    from motif_lite.io.output_checks import narrow_frame_numbers_note
    from motif_lite.io.output_claims import claim_named_outputs, release_claims, release_named_claims
    from motif_lite.io.preview import check_previews_come
    from motif_lite.io.video import stale_frames_note
    from motif_lite.request import extended_frames

    # -o is checked in run's words (`check_no_name_placeholder`); a resumed run's own output may hold braces (an
    # older motif-lite wrote `fox_{seed}.mp4` as named): `resolve` takes either as named.
    request, notes = unresolved.resolve(clip, taken_output=unresolved.output)
    path, count = Path(request.output), args.batch_count
    outputs = batch_outputs(path, count)
    if args.output is None and count == 1:
        output, note = (path, None) if path == claimed else free_output(path, args.dry_run, claim)
        outputs, notes = [output], notes + ([note] if note else [])
    elif args.output is None:
        outputs, note = free_batch_outputs(path, count, args.dry_run, claim)
        notes += [note] if note else []
    named = claim and args.output is not None and not args.dry_run
    if named:  # all or none; another run's claim, refused on, is not this run's to release
        claim_named_outputs(outputs)
    # The frames each video writes: an extension's hold the clip's too (a PNG sequence's frames after the new ones
    # alone were called stale, left from an earlier sequence, though the run writes them again).
    written = extended_frames(request.frames, clip.frames if clip is not None else None)
    try:
        if args.preview:
            _check_preview_is_no_frame(args.preview, outputs, written)
            check_previews_come(request.steps, args.preview_every)
        notes += [note for output in outputs if (note := stale_frames_note(output, written))]
        # Once per run: a batch's videos share the pattern's width and frame count. Told for the pattern as given,
        # whose -o is the one to type again (a numbered video's, f-1_%04d.png, would be numbered once more).
        narrow = narrow_frame_numbers_note(outputs[0] if count == 1 else path, written)
        notes += [narrow] if narrow else []
        replaced = args.output is not None and replaced_files_note(
            outputs, args.dry_run, seed_drawn=seed_was_drawn(args)
        )
        notes += [replaced] if replaced else []
        notes += empty_prompt_notes(args) + prompt_file_notes(args)
        notes += (sided := one_side_notes(args, request))
        if sided and request.image is not None:
            notes = _without_stretch_size(notes, request)
    except BaseException:
        if claim and args.output is None and not args.dry_run:  # refused after all: the names go back
            release_claims(outputs)
        release_named_claims(outputs if named else [])
        raise
    seeds = [(request.seed + i) % 2**32 for i in range(count)]
    return [dataclasses.replace(request, seed=s, output=o) for s, o in zip(seeds, outputs, strict=True)], notes


def batch_outputs(output: Path, count: int) -> list[Path]:
    """The files of a run's `count` videos (`--batch-count`): `output` itself for one, else `output` numbered
    -1, -2, ... before the extension (`io.output_claims.numbered_path`)."""
    from motif_lite.io.output_claims import numbered_path

    return [output] if count == 1 else [numbered_path(output, i) for i in range(1, count + 1)]


def one_side_notes(args: argparse.Namespace, request: GenerationRequest) -> list[str]:
    """The note for a size given on one side only (`-W 832`): the other side stays the default (736), not the one
    that keeps the shape, which other tools' "keep proportions" may have taught; it names that side, for the first
    frame's shape in image-to-video, else the official 1280x736's. Empty when both or neither side was given (from
    the command line, --settings-from's file or --extend's clip) or when the default keeps the shape already."""
    from motif_lite.cli.run_inputs import run_inputs

    # Flags parsed without their command line (`args.argv`: a test's) are known as given nowhere: no note. Only the
    # note is at stake here; where a file's values fill flags, `RunInputs.flags` refuses such flags.
    inputs = run_inputs(args)
    given = (inputs.typed if inputs.argv is not None else frozenset()) | inputs.taken
    if ("width" in given) == ("height" in given) or args.extend is not None or args.resume is not None:
        return []
    if request.image is not None:
        from motif_lite.io.image import upright_size

        (shape_w, shape_h), whose = upright_size(request.image), "the image's"
    else:
        shape_w, shape_h, whose = REQUEST_DEFAULTS.width, REQUEST_DEFAULTS.height, "the official"
    if "width" in given:
        flag, missing, other = f"-W {request.width}", "-H", _side(request.width * shape_h / shape_w)
        default, fitting, side = request.height, f"-H {other}", "width"
    else:
        flag, missing, other = f"-H {request.height}", "-W", _side(request.height * shape_w / shape_h)
        default, fitting, side = request.width, f"-W {other}", "height"
    if other == default:
        return []
    return [
        f"{flag} is given without {missing}, so {missing} is the default {default} ({request.width}x"
        f"{request.height}); {fitting} keeps {whose} shape ({shape_w}x{shape_h}) at that {side}"
    ]


def _without_stretch_size(notes: list[str], request: GenerationRequest) -> list[str]:
    """`notes` with the stretch note of image-to-video cut to its statement: with one side given (`-i photo.jpg -W
    832`), its size of the image's shape changes both sides (`-W 896 -H 672`), while the one-side note keeps the side
    given (`-H 624`): two different fixes for one stretch read as a contradiction."""
    from motif_lite.io.image import upright_size
    from motif_lite.request import stretch_words

    stretched = stretch_words(upright_size(request.image), request.width, request.height)
    return [stretched if note.startswith(stretched) else note for note in notes]


def _side(exact: float) -> int:
    """A side of the video as near `exact` as the model allows: a multiple of 16, at least 16."""
    return max(SIZE_MULTIPLE, round(exact / SIZE_MULTIPLE) * SIZE_MULTIPLE)


def free_batch_outputs(wanted: Path, count: int, dry_run: bool, claim: bool = False) -> tuple[list[Path], str | None]:
    """The files of a batch of `count` videos without -o: `output-1.mp4`, `output-2.mp4`, ... or, when any of them is
    there, the whole batch under the first free name a single run would pick (`output-2-1.mp4`, `output-2-2.mp4`,
    ...), so that one batch's files share a name (each picking its own free name gave `output-1-2.mp4` beside
    `output-2.mp4`). With the note that says so (in a `dry_run`: what a run would write). `claim`: the names are
    taken at once (`io.output_claims.claim`), all of a batch or none."""
    from motif_lite.io.output_claims import candidate_paths, numbered_path

    def batch(base: Path) -> list[Path]:
        return [numbered_path(base, i) for i in range(1, count + 1)]

    is_free = _claim_all if claim and not dry_run else _none_exist
    for base in candidate_paths(wanted):
        outputs = batch(base)
        if is_free(outputs):
            break
    taken = [output for output in batch(wanted) if output.exists()]
    if base == wanted or not taken:  # (the names claimed are there now: they are no earlier videos)
        return outputs, None
    writing = "a run would write" if dry_run else "writing"
    there = f"{taken[0]} exists" if len(taken) == 1 else f"{taken[0]} and {counted(len(taken) - 1, 'other')} exist"
    return outputs, f"{there}: {writing} {outputs[0]} ... {outputs[-1]} instead (-o names the files and replaces them)"


def seed_was_drawn(args: argparse.Namespace) -> bool:
    """Whether the run draws its seed (-s -1, the default, and no settings file's seed): a batch's rerun then draws
    new ones, so it skips none of the videos an earlier run made."""
    return args.seed is None or args.seed == -1


def replaced_files_note(
    outputs: list[Path], dry_run: bool, command: str = "run", seed_drawn: bool = False
) -> str | None:
    """The note for the videos named with -o that are there already: -o replaces them, as stable-diffusion.cpp and
    ffmpeg's -y do, where ComfyUI never replaces one; said before the work, so that a video to keep can be moved in
    time. An empty file is no video (the name another run claimed, `io.output_claims.claim`): not said. None without
    any. `command`: what replaces them ("run", "decode"). `seed_drawn`: the run draws its seeds, so a batch skips
    none of them (`seed_was_drawn`)."""
    from motif_lite.io.staging import frame_file, is_frame_sequence

    def first_file(output: Path) -> Path:
        return frame_file(output, 0) if is_frame_sequence(output) else output

    def video_there(output: Path) -> bool:
        try:
            return first_file(output).stat().st_size > 0
        except OSError:  # nothing there (or a folder now unreachable)
            return False

    there = [output for output in map(user_path, outputs) if video_there(output)]
    if not there:
        return None
    first = there[0] if first_file(there[0]) == there[0] else f"{there[0]} ({first_file(there[0]).name} ...)"
    which = f"{first} is" if len(there) == 1 else f"{first} and {counted(len(there) - 1, 'other')} are"
    replaced = f"a {command} would replace" if dry_run else f"this {command} replaces"
    them, when = ("it", "when its video is done") if len(there) == 1 else ("them", "as their videos are done")
    if len(outputs) > 1 and command == "run" and seed_drawn:  # new seeds: no file holds this run's video
        return (
            f"{which} there already: {replaced} {them} {when}; its seeds are drawn (no -s): to go on where a stopped "
            f"batch stopped, run it with -s and that batch's first seed (give -o another name to keep {them})"
        )
    if len(outputs) > 1 and command == "run":  # a batch goes on where a stopped run of it stopped (`made_before`)
        skip, replace = ("a run would skip", "replace") if dry_run else ("this run skips", "replaces")
        holds = "it if it holds" if len(there) == 1 else "each that holds"
        others = "it otherwise" if len(there) == 1 else "the others"
        return (
            f"{which} there already: {skip} {holds} its video already (made with these settings, as checked once "
            f"the model is loaded) and {replace} {others} {when} (give -o another name to keep {them})"
        )
    return f"{which} there already: {replaced} {them} {when} (give -o another name to keep {them})"


def _check_preview_is_no_frame(preview: str, outputs: list[Path], frames: int) -> None:
    """Refuse a --preview that is one of the videos' PNG frames (`-o f_%03d.png --preview f_000.png`): the video
    would replace it at the end. (The same file as -o is refused by `check_flags`, before the frames are known.)"""
    from motif_lite.io.video import replaces_file
    from motif_lite.request import RequestError

    for output in outputs:
        if replaces_file(output, frames, preview):
            raise RequestError(f"--preview {preview} is one of the frames of the video -o {output}, which would "
                               "replace the preview at the end; give the preview its own file")  # fmt: skip


# The placeholders that other tools' output names, and scripts' forgotten f-strings (`"fox_{seed}.mp4"` without
# the f), hold, and what a script writes instead of each. Other braces (`fox_{v2}.mp4`) are part of a name. A frame
# number (`out_{frame}.png`) is another tool's PNG-sequence pattern, told ours by `check_output_path`.
_SEED_NAME = '-s "$seed" -o "fox_$seed.mp4"; each file keeps its seed in its metadata'
_COUNTER_NAME = (
    "-b N numbers a batch's files -1, -2, ... itself, and a loop names each run's file "
    '(n=$((n + 1)); -o "clip$n.mp4")'
)
_PROMPT_NAME = (
    'a loop names each prompt\'s file (n=$((n + 1)); -o "clip$n.mp4"), and each file keeps its prompt in its '
    "metadata (--settings-from reads it)"
)
_DATE_NAME = '-o "fox_$(date +%Y%m%d-%H%M%S).mp4" puts the time in the name'
_PLACEHOLDER_ADVICE = {
    **dict.fromkeys(SEED_PLACEHOLDERS, _SEED_NAME),
    **dict.fromkeys(COUNTER_PLACEHOLDERS, _COUNTER_NAME),
    **dict.fromkeys(PROMPT_PLACEHOLDERS, _PROMPT_NAME),
    **dict.fromkeys(DATE_PLACEHOLDERS, _DATE_NAME),
}


def check_no_stdin_dash(args: argparse.Namespace) -> None:
    """Refuse a prompt (-p) or negative prompt (-n) typed as a single dash, many tools' name for standard input
    (`echo "a fox" | motif-lite run -p -`): nothing reads standard input, so the video would show the text '-'. Only
    a dash typed as its own word after the flag: `--prompt=-` (a script's `--prompt="$prompt"`) is that text on
    purpose, and a prompt --settings-from or --resume took from a file was made so."""
    from motif_lite.request import RequestError

    words = vars(args).get("argv")
    texts = ((("-p", "--prompt"), "prompt", "prompt", "prompt.txt"),
             (("-n", "--negative-prompt"), "negative_prompt", "negative prompt", "neg.txt"))  # fmt: skip
    for flags, dest, which, file in texts:
        if words is None:  # no command line (a Namespace made in code): the value is all there is to go by
            typed = flags[0] if getattr(args, dest) == "-" else None
        else:
            typed = next((word for word, then in itertools.pairwise(words) if word in flags and then == "-"), None)
        if typed is not None:
            raise RequestError(f'{typed} - would make the {which} the text "-": motif-lite reads no {which} from '
                               f'standard input; give the text itself ({typed} "$(cat)" reads standard input, '
                               f'{typed} "$(cat {file})" a file; {flags[1]}=- is the text "-")')  # fmt: skip


def check_no_control_character(output: str | None) -> None:
    """Refuse an -o whose name holds a control character, named as the flag (`io.video.check_no_control_character`,
    which `check_output_path` runs for run, decode and Python alike): here before `--gpus N` starts its processes."""
    from motif_lite.io.video import check_no_control_character as check
    from motif_lite.request import RequestError

    if output is None:
        return
    try:
        check(output, named="-o")
    except MotifLiteError as exc:
        raise RequestError(str(exc)) from None


def check_no_name_placeholder(output: str | None, naming: str | None = None) -> None:
    """Refuse an -o whose file name holds a placeholder other tools fill in (`fox_{seed}.mp4`): motif-lite takes a
    name as written, so the file would be named with the braces and every run of a loop would replace the last one's
    video. The error says how a script puts that value in the name itself. Only the file's name is read: a folder
    named `{v2}` is there already. `naming`: how a command whose flags are not run's names its file (in place of
    each placeholder's advice)."""
    from motif_lite.request import RequestError

    if output is None:
        return
    if (known := name_placeholder(output)) is not None:
        placeholder, advice = known[0], naming or _PLACEHOLDER_ADVICE[known[1].lower()]
        raise RequestError(f"-o {output} has {placeholder}, which motif-lite does not fill in: the file would be named "
                           "with the braces, and each run of a loop would replace the last one's video; name the "
                           f"file in the script instead: {advice}")  # fmt: skip
    if (frame := video_frame_placeholder(output)) is not None:
        frames = Path(output).with_name(Path(output).stem.replace(frame[0], "%03d") + ".png")
        raise RequestError(f"-o {output} has {frame[0]}, which motif-lite does not fill in: a video file holds all "
                           f"its frames; for a PNG per frame give -o {quoted(frames)}")  # fmt: skip


def empty_prompt_notes(args: argparse.Namespace) -> list[str]:
    """The note for an empty -p that a first frame lets through (`check_flags`): the same as -p "$PROMPT" with
    PROMPT unset, which the run should not take without a word. None for a prompt a file gave (--settings-from,
    --resume): no -p was empty."""
    from motif_lite.cli.run_inputs import run_inputs

    if args.prompt is None or args.prompt.strip() or args.resume is not None:
        return []
    recalled = run_inputs(args).recalled
    if recalled is not None and "prompt" in recalled.taken:
        return []
    return ['the prompt is empty (-p "$PROMPT" with PROMPT unset?): the video animates the first frame with no text']


def prompt_file_notes(args: argparse.Namespace) -> list[str]:
    """The note for a prompt (-p) or negative prompt (-n) that is, whole, the path of an existing file (`prompt.txt`,
    or `@prompt.txt` as curl writes "this file's contents"): it is the text, as typed; the note says how to read the
    file instead."""
    from motif_lite.shell_syntax import file_text

    notes = []
    for flag, which, text in (("-p", "prompt", args.prompt), ("-n", "negative prompt", args.negative_prompt)):
        if text is not None and (file := _file_named(text)) is not None:
            notes.append(f"the {which} is the text {text!r}; to read a {which} from a file use {flag} "
                         f"{file_text(file)}")  # fmt: skip
    return notes


def _file_named(text: str) -> str | None:
    """The existing file that `text` names, whole or after a leading @, else None."""
    for name in dict.fromkeys((text, text.removeprefix("@"))):
        try:
            if name.strip() and len(name) < 4096 and user_path(name).is_file():
                return name
        except (OSError, ValueError):  # a name too long for the file system, a NUL character: no file
            continue
    return None


def check_flags(args: argparse.Namespace, resume: SavedLatents | None) -> None:
    """The checks of flags that need no model, made before anything starts (also before `--gpus N` starts its
    processes, each of which would fail with the same message)."""
    from motif_lite.io.clip import is_clip_file
    from motif_lite.request import RequestError

    starts_from_frame = args.image is not None or args.extend is not None
    if args.prompt is None and not args.dry_run and resume is None and args.settings_from is None:
        none = '; -p "" animates the first frame with no text' if starts_from_frame else ""
        raise RequestError('a prompt is required: -p "what the video shows" (only --dry-run and --settings-from '
                           f"run without one){none}")  # fmt: skip
    # An empty prompt is taken with a first frame (`request.field_checks.check_prompt`), and said
    # (`empty_prompt_notes`).
    if args.prompt is not None and not args.prompt.strip() and resume is None and not starts_from_frame:
        raise RequestError('the prompt is empty (-p "$PROMPT" with PROMPT unset?): -p takes what the video shows, '
                           'e.g. -p "a red fox runs through snow"; an empty prompt is taken only with a first frame '
                           "(-i or --extend), which it then animates with no text")  # fmt: skip
    check_no_stdin_dash(args)
    check_no_control_character(args.output)
    # A resumed run's own name (-o given as it is) keeps the braces an older version wrote, as without -o.
    resumed_output = resume.request.get("output") if resume is not None and args.output is not None else None
    if resumed_output is None or not same_output(args.output, resumed_output):
        check_no_name_placeholder(args.output)
    if args.quantize is not None and args.gguf is not None:  # before any download of either
        raise RequestError(quantized_twice("", args.quantize, args.gguf))
    if args.text_encoder_quantize is not None and args.text_encoder_gguf is not None:  # a .gguf --text-encoder too
        raise RequestError(quantized_twice("text-encoder-", args.text_encoder_quantize, args.text_encoder_gguf))
    if args.preview_every is not None and not args.preview:  # alone it would do nothing, without a word
        raise RequestError("--preview-every says how often the --preview file is rewritten: add --preview FILE")
    if args.preview and args.output and same_output(args.preview, args.output):
        raise RequestError(f"--preview and -o both name {args.output}: the video would replace the preview at the end; "
                           "give the preview its own file")  # fmt: skip
    if args.preview and args.image and same_output(args.preview, args.image):
        raise RequestError(f"--preview and -i both name {args.image}: the previews would replace your image; give the "
                           "preview its own file")  # fmt: skip
    resumed_image = resume.request.get("image") if resume is not None and args.preview else None  # --resume: no -i
    if resumed_image and same_output(args.preview, resumed_image):
        raise RequestError(f"--preview {args.preview} is the input image of the run being resumed: the previews would "
                           "replace your image; give the preview its own file")  # fmt: skip
    resumed_clip = resume.request.get("extend") if resume is not None and args.preview else None  # no --extend
    clip = args.extend or resumed_clip
    if args.preview and clip and is_clip_file(clip, args.preview):
        raise RequestError(f"--preview {args.preview} is the clip {clip} the run goes on from (or one of its frames): "
                           "the previews would replace it; give the preview its own file")  # fmt: skip


def _none_exist(paths: list[Path]) -> bool:
    return not any(path.exists() for path in paths)


def _claim_all(paths: list[Path]) -> bool:
    """Whether every one of `paths` was free and is now claimed (`io.output_claims.claim`); when one is not, those
    claimed are released, so that the batch moves on to its next name whole."""
    from motif_lite.io.output_claims import claim, release_claims

    claimed = []
    for path in paths:
        if not claim(path):
            release_claims(claimed)
            return False
        claimed.append(path)
    return True
