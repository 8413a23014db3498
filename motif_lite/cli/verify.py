"""`motif-lite verify`: our pipeline against diffusers' on the same weights, stage by stage (see motif_lite.verify).

    motif-lite verify -m ./Motif-Video-2B --gguf ./motif-video-2b-Q4_K_M.gguf

Prints one line per stage with its relative difference, then `verdict: match` (exit 0), `verdict: mismatch at
STAGE` or, when the reference gives inf/NaN too, `verdict: inf/NaN at STAGE, in the reference too` with what to do
(exit 1). Without diffusers it says how to install it (exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from motif_lite.choices import DTYPE_NAMES, dtype_name
from motif_lite.cli.common import text_from_argv
from motif_lite.cli.flag_numbers import frame_count, seed_value, size_side, whole_number
from motif_lite.cli.run_flags import StoreOnce, add_checkpoint_flags, add_weight_file_flags, take_weight_flags
from motif_lite.errors import MotifLiteError
from motif_lite.paths import path_arg
from motif_lite.request import MAX_SEED

if TYPE_CHECKING:
    from motif_lite.io.settings_file import StoredSettings
    from motif_lite.verify import ForcedSettings, StageResult, VerifySettings

EXIT_MISMATCH = 1

EPILOG = """\
examples:
  motif-lite verify -m ./Motif-Video-2B             (fp32 on the CPU, bf16 on a GPU)
  motif-lite verify -m ./Motif-Video-2B --gguf ./motif-video-2b-Q4_K_M.gguf --device cuda
  motif-lite verify -m tiny -W 64 -H 64             (docs/usage.md's tiny random checkpoint: seconds on a CPU)
  motif-lite verify -m ./Motif-Video-2B -i first.png  (image-to-video)
  motif-lite verify -m ./Motif-Video-2B --settings-from fox.mp4  (the settings fox.mp4 was made with)

Exit code 0: every stage matches; 1: a mismatch (the verdict names its stage); 2: a mistake, or diffusers missing.
Memory: both pipelines are loaded (the text encoder once): on the real weights about 18 GB of GPU memory in bf16
(less with --gguf), 35 GB of RAM in fp32 on the CPU.

stages: text (prompt embeddings), transformer (one forward), guidance (the guided velocity of step 0), vae
(one decode), frames (both pipelines end to end). Each stage gets the same inputs on both sides, so the first
mismatch names the part that differs. On real weights this settles the checkpoint's rope_theta, guidance
settings and VAE statistics, and a GGUF file's tensor layout. With -i, diffusers' image-to-video pipeline is the
reference and two stages follow text: image (the first frame's SigLIP embeddings) and conditioning (its VAE latents
and mask in the transformer's input); frames then runs both image-to-video pipelines.

--settings-from FILE takes a video's size, steps, seed and prompts (a flag given wins) and its sampler, flow shift
and guidance for both sides (diffusers' scheduler and guider built from them); refused before anything loads where
diffusers has no equivalent: the dpm++2m sampler, --lora, --step-cache, --attention int8.

--force NAME=VALUE sets one of ours deliberately wrong (a negative control: verify must name its stage):
  rope_theta=1 (transformer), apg_eta=0 (guidance, as --apg-eta 0), latents_mean_shift=0.5 (vae),
  max_prompt_tokens=4 (text), image_mean_shift=0.5 (image, with -i)
"""


def register(commands: argparse._SubParsersAction) -> None:
    """Add `verify` to the `motif-lite` subcommands."""
    verify = commands.add_parser(
        "verify",
        help="compare motif-lite with the diffusers pipeline on the same weights, stage by stage",
        description=(
            "Run motif-lite and diffusers' MotifVideoPipeline on the same checkpoint at a small size and compare them\n"
            'stage by stage. Needs the verify extra: pip install -e ".[verify]".'
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint_flags(verify)
    verify.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    verify.add_argument(
        "--dtype", type=dtype_name, choices=DTYPE_NAMES, help="compute dtype (default fp32 on the CPU, bf16 on a GPU)"
    )
    verify.add_argument("-W", "--width", type=size_side, help="width in pixels, multiple of 16 (default 256)")
    verify.add_argument("-H", "--height", type=size_side, help="height in pixels, multiple of 16 (default 256)")
    verify.add_argument(
        "--video-frames", type=frame_count, help="frames, 4k+1 (others are rounded as by run; default 9)"
    )
    verify.add_argument("--steps", type=whole_number, help="sampling steps (default 2)")
    verify.add_argument(
        "-s", "--seed", type=seed_value, help=f"seed, 0 to {MAX_SEED}; -1 = random, printed (default 0)"
    )
    # A second, different prompt or first frame is refused as by run (`StoreOnce`), not silently taken for the first.
    verify.add_argument(
        "-p", "--prompt", action=StoreOnce, type=text_from_argv, help="prompt (default: a short fixed one)"
    )
    verify.add_argument(
        "-n",
        "--negative-prompt",
        action=StoreOnce,
        type=text_from_argv,
        help="negative prompt (default: the official one)",
    )
    verify.add_argument(
        "-i",
        "--image",
        "--init-img",
        action=StoreOnce,
        why="one verify compares image-to-video from one image, its first frame",
        type=path_arg,
        metavar="IMAGE",
        help="first frame for image-to-video: compare both image-to-video pipelines (read and refused as by run)",
    )
    verify.add_argument(
        "--settings-from",
        type=path_arg,
        metavar="FILE",
        help="verify the settings a video or image motif-lite wrote stores: its size, steps, seed, prompts, sampler "
        "and guidance (a flag given wins over the file's)",
    )
    verify.add_argument(
        "--force", action="append", default=[], metavar="NAME=VALUE", help="set one of ours wrong (see below)"
    )
    # Not offered (diffusers cannot read the file), but known: `main` says why, where argparse would suggest
    # --text-encoder, which refuses a GGUF in turn.
    verify.add_argument("--text-encoder-gguf", type=path_arg, metavar="FILE", help=argparse.SUPPRESS)
    add_weight_file_flags(verify, text_encoder_gguf=False)
    verify.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import functools

    from motif_lite.cli.common import download_hint_repeats, hub_bars_on, print_notes
    from motif_lite.cli.kernel_cache import writable_kernel_cache
    from motif_lite.devices import parse_device
    from motif_lite.dtypes import torch_dtype
    from motif_lite.io.settings_file import read_settings
    from motif_lite.verify import resolve_verify_settings, stage_names, verify

    forced, weights = check_flags(args)
    stored = None if args.settings_from is None else read_settings(args.settings_from)
    settings, notes = verify_settings(args, stored)
    settings, resolve_notes = resolve_verify_settings(settings)  # as `run` resolves them: frames rounded to 4k+1
    notes += resolve_notes
    print_notes(notes)
    dtype = torch_dtype(args.dtype) if args.dtype else None
    print_notes(filter(None, [writable_kernel_cache(os.environ, "auto", parse_device(args.device))]))  # as run does

    def say_loading() -> None:  # once the flags and files are checked: a mistake is said before the wait, not after
        print(f"verify: loading both pipelines from {args.model} ...", file=sys.stderr, flush=True)

    with download_hint_repeats(getattr(args, "argv", None)):
        result = verify(
            *(args.model, args.gguf, args.device, dtype, settings, forced),
            on_stage=functools.partial(_say_stage_done, stage_names(args.image is not None)),
            weights=weights,
            on_loading=say_loading,
            library_bars=hub_bars_on(),  # diffusers' bars, as the Hub's: none in a log
            settings_from=stored,
        )
    print("\n".join(result.lines()))
    return 0 if result.mismatch is None else EXIT_MISMATCH


# verify's flags of the request fields a --settings-from file gives: (the dest, the flag a command is written with).
_FLAGS = {
    "width": ("width", "-W"),
    "height": ("height", "-H"),
    "frames": ("video_frames", "--video-frames"),
    "steps": ("steps", "--steps"),
    "seed": ("seed", "-s"),
    "prompt": ("prompt", "-p"),
    "negative_prompt": ("negative_prompt", "-n"),
}
_PROMPTS = ("prompt", "negative_prompt")


def verify_settings(args: argparse.Namespace, stored: StoredSettings | None) -> tuple[VerifySettings, list[str]]:
    """The settings verify runs: each flag given, else the `--settings-from` file's value (`stored`), else
    `VerifySettings`' default; with the file, refused (one line) where verify cannot make its video on both sides,
    and a note naming what the file gave and which flags replaced its values (as `run --settings-from` says it)."""
    from motif_lite.cli.settings_from import taken_note
    from motif_lite.shell_syntax import quoted, quoted_text
    from motif_lite.verify import VerifySettings
    from motif_lite.verify.refusals import refuse_what_verify_cannot_reproduce

    given = {field: value for field, (dest, _) in _FLAGS.items() if (value := getattr(args, dest)) is not None}
    if stored is None:
        return VerifySettings(**given, image=args.image), []
    files = {field: stored.values[field] for field in _FLAGS if stored.values.get(field) is not None}
    # Where verify refuses one of the file's settings, the command that verifies the rest: its values as flags,
    # after the flags of the weights, device, dtype and first frame this command was given (without them it would
    # compare other weights, or text-to-video).
    shown = {**files, **given}
    # A prompt as run's lines show one (`quoted_text`): a prompt file's line ends as escapes, the refusal one line.
    words = {field: (quoted_text if field in _PROMPTS else quoted)(str(value)) for field, value in shown.items()}
    flags = [f"{flag} {words[field]}" for field, (_, flag) in _FLAGS.items() if field in shown]
    instead = " ".join(["motif-lite verify", *_model_flags(args), *flags])
    refuse_what_verify_cannot_reproduce(stored, args.image is not None, instead)
    taken = {field for field in files if field not in given}
    taken |= {field for field in ("sampler", "flow_shift", "cfg_scale") if stored.values.get(field) is not None}
    taken |= {"guidance", "cfg_scale"} if "guidance_config" in stored.values else set()
    note = taken_note(stored.file, stored.writer, taken, set(files) & set(given), files.get("seed"))
    return VerifySettings(**shown, image=args.image), [note]


# The flags of verify's weights, device, dtype and first frame, by their dests, in the order they are written.
_MODEL_FLAGS = {
    "model": "-m",
    "gguf": "--gguf",
    "diffusion_model": "--diffusion-model",
    "text_encoder": "--text-encoder",
    "vae": "--vae",
    "device": "--device",
    "dtype": "--dtype",
    "image": "-i",
}


def _model_flags(args: argparse.Namespace) -> list[str]:
    """The flags of `_MODEL_FLAGS` this command was given, as a command line's words (quoted); -m always, --device
    where it is not auto."""
    from motif_lite.shell_syntax import quoted

    given = {dest: getattr(args, dest, None) for dest in _MODEL_FLAGS}
    given["device"] = None if given["device"] == "auto" else given["device"]
    return [f"{_MODEL_FLAGS[dest]} {quoted(str(value))}" for dest, value in given.items() if value is not None]


def check_flags(args: argparse.Namespace) -> tuple[ForcedSettings, dict[str, str]]:
    """`--force` and the weight files, checked before anything loads: (the forced settings, the weight files)."""
    from motif_lite.verify import ForcedSettings

    forced = ForcedSettings.parse(args.force)
    weights = take_weight_flags(args)  # moves a .gguf given to --text-encoder to --text-encoder-gguf
    if getattr(args, "text_encoder_gguf", None) is not None:
        raise MotifLiteError("verify compares with diffusers, which cannot read a text encoder GGUF; pass the "
                             "text encoder's .safetensors file, or leave it to -m")  # fmt: skip
    return forced, weights


def _say_stage_done(names: list[str], stage: StageResult) -> None:
    """Progress on stderr as each stage ends (`names`: the stages this verify runs, in order): on the real weights
    the stages take minutes, the table comes last."""
    done = names.index(stage.stage) + 1
    following = f"; next: {names[done]}" if done < len(names) else ""
    print(f"verify: stage {done}/{len(names)} {stage.stage}: {stage.outcome}{following}", file=sys.stderr, flush=True)
