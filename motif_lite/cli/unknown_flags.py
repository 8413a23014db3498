"""What to say about arguments a subcommand does not know: the flag meant, where one is recognizable.

People arrive with the names of the tools they used before (diffusers' `num_frames`, ComfyUI's `length`, ...) or
with a typo; argparse alone answers "unrecognized arguments" with the top-level usage.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable

from motif_lite import flag_spelling
from motif_lite.choices import (
    ATTENTION_BACKENDS,
    LATENTS_SUFFIX,
    SAMPLER_ALIASES,
    SAMPLERS,
    SIMPLE_SIGMAS,
    VIDEO_EXTENSIONS,
    choice_name,
    chosen_gpus_command,
    gpu_numbers,
    is_list,
    lines_size,
    sampler_hint,
    split_size,
)
from motif_lite.cli.lora_argv import extras_at, lora_strengths, repeat_once_joined
from motif_lite.cli.run_flags import run_only_parser
from motif_lite.cli.run_inputs import seconds_in_frames
from motif_lite.request import other_names_of_fields, run_flag
from motif_lite.shell_syntax import quoted, variable_set

# Names other tools give our settings, as flags -> the flag of ours: the request fields'
# (request.advice.OTHER_FIELD_NAMES, the one table the server and Python read too, as run's flags: --num-frames and
# --frame_num are --video-frames) and run's other flags' (ComfyUI's server flags, stable-diffusion.cpp's and
# ComfyUI's options).
_FIELD_NAMES_AS_FLAGS = {
    "--" + other.replace("_", "-"): run_flag(field) for other, field in other_names_of_fields().items()
}
OTHER_TOOLS_NAMES = {
    **{other: ours for other, ours in _FIELD_NAMES_AS_FLAGS.items() if other != ours},
    "--num-gpus": "--gpus",
    "--num-videos": "--batch-count",
    "--num-videos-per-prompt": "--batch-count",
    "--batch-size": "--batch-count",
    "--count": "--batch-count",
    "--batch": "--batch-count",
    "--listen": "--host",
    # a memory budget in GiB, as other tools spell it (text-generation-webui's --gpu-memory)
    "--vram-budget": "--vram",
    "--gpu-memory": "--vram",
    "--max-vram": "--vram",  # stable-diffusion.cpp's budget in GiB
    # stable-diffusion.cpp's component files; ComfyUI's loader nodes
    "--t5xxl": "--text-encoder",
    "--llm": "--text-encoder",
    "--clip": "--text-encoder",
    "--unet": "--diffusion-model",
    # ComfyUI's loader widgets typed as flags (UNETLoader's unet_name, VAELoader's vae_name, ...)
    "--unet-name": "--diffusion-model",
    "--vae-name": "--vae",
    "--clip-name": "--text-encoder",
    "--lora-name": "--lora",
    "--model-path": "--model",
    # attention switches of stable-diffusion.cpp and ComfyUI (their memory switches: _OTHER_TOOLS_ADVICE below)
    "--use-sage-attention": "--attention",
    "--sage": "--attention",
    "--sage-attention": "--attention",
    "--plan": "--dry-run",
    # speed switches of diffusers' users (xformers; FlashAttention's: _OTHER_TOOLS_ADVICE below), torch.compile
    # wrappers and step caches (TeaCache, cache-dit's First Block Cache)
    "--xformers": "--attention-backend",
    "--torch-compile": "--compile",
    "--fbcache": "--step-cache",
    "--cache-threshold": "--step-cache",
    # stable-diffusion.cpp's previews
    "--preview-path": "--preview",
    "--preview-interval": "--preview-every",
}


# Settings of other tools with no flag of the same meaning here: (their names, the flag of ours that must exist for
# the advice to apply, what to use instead). Advice naming an environment variable is a function: the variable is
# set in the words of the user's shell (`shell_syntax`), known only when a hint is given.
Advice = str | Callable[[], str]
_LORA_FILE_STRENGTH = "each LoRA is given with its file and strength: --lora DIR/NAME.safetensors:0.8 (repeatable)"
_OTHER_TOOLS_ADVICE = [
    # TeaCache / MagCache (Wan2GP, ComfyUI): a step cache too, but their thresholds measure something else.
    (("--teacache", "--tea-cache", "--magcache", "--rel-l1-thresh", "--teacache-thresh", "--magcache-thresh"),
     "--step-cache",
     "the step cache here is --step-cache THRESHOLD (First-Block-Cache style): TeaCache's and MagCache's thresholds "
     "measure other quantities, don't carry them over; start around 0.05 (docs/usage.md, 'Going faster')"),
    # Memory switches: ComfyUI's modes (--lowvram, --novram, ...), --reserve-vram and --disable-smart-memory,
    # WanVideoWrapper's blocks_to_swap, AUTOMATIC1111's and Forge's --medvram, stable-diffusion.cpp's
    # --offload-to-cpu, --vae-tiling and --clip-on-cpu, diffusers' offload and VAE methods (enable_model_cpu_offload,
    # ...), Wan2GP's --profile and --vae-config (its VAE tiling). Here no switch: the plan fits the free memory by
    # itself, so "did you mean --vram?" (a number of GiB) would send them wrong.
    (("--lowvram", "--low-vram", "--novram", "--no-vram", "--highvram", "--normalvram", "--gpu-only",
      "--medvram", "--med-vram", "--medvram-sdxl", "--enable-model-cpu-offload", "--enable-sequential-cpu-offload",
      "--enable-vae-tiling", "--enable-vae-slicing", "--vae-slicing",
      "--reserve-vram", "--cpu-vae", "--offload-to-cpu", "--offload", "--cpu-offload", "--model-cpu-offload",
      "--sequential-offload", "--sequential-cpu-offload", "--vae-tiling", "--vae-tiled", "--tiled", "--clip-on-cpu",
      "--vae-on-cpu", "--profile", "--preload", "--vae-tile-size", "--vae-tile-overlap", "--vae-relative-tile-size",
      "--attention-slicing", "--offload-model", "--t5-cpu", "--stream-layers", "--auto-fit", "--params-backend",
      "--disable-smart-memory", "--async-offload", "--blocks-to-swap", "--vae-config", "--tiled-vae"),
     "--vram",
     "memory is planned here, not switched: a run streams, offloads to the CPU and tiles what it must to fit the "
     "GPU's free memory (--dry-run prints the plan); --vram GiB plans for a smaller budget (what the run may use, "
     "not what it leaves free)"),
    # Low-precision switches (--fp8, ComfyUI's --fp8_e4m3fn-unet, ...): here low precision is the weight file's.
    (("--fp8", "--fp8-e4m3fn-unet", "--fp8-e5m2-unet", "--fp8-e8m0fnu-unet", "--weight-dtype"), "--gguf",
     "8-bit weights come from a GGUF file: --gguf Q8_0 (or Q4_K_M, ...), or from an fp8 copy of the transformer "
     "(--diffusion-model FILE, kept in 8 bits); 8-bit attention is --attention int8"),
    # ComfyUI's 8-bit text encoder switches: the text encoder's own quantization here.
    (("--fp8-e4m3fn-text-enc", "--fp8-e5m2-text-enc"), "--text-encoder-quantize",
     "an 8-bit text encoder is --text-encoder-quantize Q8_0 (quantized as it loads) or --text-encoder-gguf FILE "
     "(made once by python -m motif_lite.quantize --component text_encoder)"),
    # stable-diffusion.cpp's --type (q8_0, q4_k, ...) quantizes the weights as it loads them: --quantize here.
    (("--type",), "--quantize",
     "the transformer is quantized as it loads with --quantize Q8_0 (or Q4_K_M, ...); --gguf Q4_K_M downloads the "
     "official quantized file instead; --dtype is the compute type (bf16, fp16, fp32)"),
    # stable-diffusion.cpp's run mode (img_gen, vid_gen, upscale, convert): here the command says what to do. Keyed
    # with its own capital too: -M is not -m (--model).
    (("--mode", "-M"), "--prompt",
     "stable-diffusion.cpp's mode is the command here: motif-lite run makes a video (from text, or an image with "
     "-i); the GGUF converter is python -m motif_lite.quantize"),
    # The output's quality: diffusers' export_to_video(quality=0-10, higher is better), ffmpeg's bitrates. Here the
    # encoder's constant-rate factor, whose scale runs the other way: so no plain "did you mean".
    (("--quality", "--video-quality", "--bitrate"), "--crf",
     "the video's quality is --crf N, the encoder's constant-rate factor: lower is better and larger (.mp4 .mkv "
     ".mov: 0-51, default 18; .webm: 0-63, default 30)"),
    # stable-diffusion.cpp's CPU threads: torch's own setting here.
    (("--threads", "-t"), "--device",
     lambda: f"torch picks its CPU threads itself (one per core); {variable_set('OMP_NUM_THREADS', 'N')} before "
     "the command sets N"),
    # Inputs and options of stable-diffusion.cpp's (and ComfyUI's) video models with no counterpart here: each says
    # what Motif-Video does instead, rather than a "did you mean" that would send them wrong (--tae is not --vae,
    # --eta is not --apg-eta).
    (("--clip-vision",), "--text-encoder",
     "the image encoder (SigLIP) is part of Motif-Video's text encoder (--text-encoder, else the checkpoint's); "
     "the first frame is -i IMAGE"),
    (("--taesd", "--tae", "--taehv"), "--preview",
     "no tiny autoencoder is used: the VAE decodes the video, and --preview FILE keeps a preview of the sampling"),
    (("--end-img", "--end-image", "--last-frame", "--last-image"), "--image",
     "only the first frame can be given (-i IMAGE); a last frame is not offered"),
    (("--eta",), "--sampling-method",
     "the samplers here add no noise between steps, so they take no eta; APG guidance's eta is --apg-eta"),
    (("--rng", "--sampler-rng"), "--seed",
     "the noise is drawn on the CPU, so a seed gives the same noise on any device"),
    (("--high-noise-diffusion-model", "--moe-boundary"), "--diffusion-model",
     "Motif-Video has one transformer: Wan 2.2's high-noise and low-noise pair has no counterpart here"),
    # More of stable-diffusion.cpp's options (its --help's meanings) with no counterpart here. --img-cfg-scale was
    # "did you mean --cfg-scale?", which it is not: it weighs the image apart from the text, in inpainting and edit
    # models.
    (("--mask",), "--image",
     "there is no inpainting mask: -i IMAGE is the video's first frame as a whole, and nothing is painted in"),
    (("--embd-dir",), "--prompt",
     "textual-inversion embeddings are not taken: the text encoder (T5Gemma2) reads the prompt as plain text, so "
     "an embedding's name in it is just a word"),
    (("--photo-maker", "--pm-id-images-dir", "--pm-id-embed-path", "--pm-style-strength"), "--image",
     "PhotoMaker is not offered: to keep a person's look, start the video from a picture of them, -i IMAGE"),
    (("--vace-strength",), "--image",
     "Wan's VACE (a video guided by control frames) has no counterpart: a video starts from the prompt, a first "
     "frame (-i IMAGE) or a clip it goes on from (--extend CLIP)"),
    # stable-diffusion.cpp's --prediction (eps, v, sd3_flow, ...) overrides a model's prediction type.
    (("--prediction", "--prediction-type"), "--flow-shift",
     "the prediction type is the model's own: Motif-Video predicts a flow-matching velocity, with nothing to "
     "override; the schedule is shaped by --flow-shift"),
    (("--sigmas",), "--flow-shift",
     "custom sigmas are not taken: the schedule is flow matching's over --steps steps, shaped by --flow-shift"),
    (("--img-cfg-scale",), "--cfg-scale",
     "there is no separate image guidance: image-to-video has one scale, --cfg-scale, and the first frame (-i "
     "IMAGE) is used as it is"),
    (("--mmap",), "--model",
     "no switch needed: the weight files are always memory-mapped, and go into the model without a second copy"),
    (("--vae-conv-direct",), "--vae",
     "ggml's direct convolution has no counterpart: the VAE runs torch's convolutions (cuDNN on a GPU), tiled when "
     "memory asks for it (--dry-run prints the plan)"),
    # The transformer's one convolution is its patch embedding (the VAE's hint was said for this flag too).
    (("--diffusion-conv-direct",), "--diffusion-model",
     "ggml's direct convolution has no counterpart: the transformer's one convolution, its patch embedding, runs "
     "torch's (cuDNN on a GPU)"),
    # FlashAttention switches: llama.cpp's --flash-attn (-fa), stable-diffusion.cpp's --fa and --diffusion-fa,
    # diffusers users'. Here FlashAttention is a value of --attention-backend, one kernel among others, and auto
    # times them all: so not a plain "did you mean", which would leave the value to guess.
    (("--fa", "-fa", "--flash-attn", "--flash-attention", "--use-flash-attention", "--diffusion-fa"),
     "--attention-backend",
     "FlashAttention is --attention-backend flash (torch's) or fa3 (FlashAttention-3, on Hopper GPUs where its "
     f"package is installed); the flag takes {'|'.join(ATTENTION_BACKENDS)}, and auto (the default) times the "
     "kernels at the run's shapes and keeps the fastest"),
    # Training scripts' and diffusers examples' TF32 switch (not one of stable-diffusion.cpp's).
    (("--tf32", "--allow-tf32"), "--dtype",
     "there is no TF32 switch: TF32 changes only float32 arithmetic, and the compute type is --dtype: bf16 by "
     "default (fp16 before Ampere), fp32 if given"),
    # Settings of other tools that a close spelling would send to the wrong flag of ours ("--slg-scale: did you mean
    # --cfg-scale?", "--gpu: did you mean --gpus?"), and ones that no spelling tells: what each is here.
    (("--fp16", "--bf16", "--fp32", "--half", "--no-half", "--full-precision", "--force-fp16", "--force-fp32"),
     "--dtype", "the compute type is --dtype bf16, fp16 or fp32 (default bf16, fp16 on GPUs before Ampere)"),
    # ComfyUI's per-model types: one type for the run here.
    (("--bf16-unet", "--fp16-unet", "--fp32-unet", "--bf16-vae", "--fp16-vae", "--fp32-vae", "--bf16-text-enc",
      "--fp16-text-enc", "--fp32-text-enc"), "--dtype",
     "the compute type is one flag for the whole run, --dtype bf16, fp16 or fp32 (in fp16 the text encoder stays "
     "bf16)"),
    # ComfyUI's attention implementations: here the exact kernel is picked by --attention-backend.
    (("--use-pytorch-cross-attention", "--use-split-cross-attention", "--use-quad-cross-attention"),
     "--attention-backend",
     f"the exact attention kernel is --attention-backend ({'|'.join(ATTENTION_BACKENDS)}; sdpa is PyTorch's, and "
     "auto, the default, times the kernels and keeps the fastest); 8-bit attention is --attention int8"),
    # ComfyUI's --fast (fp16 accumulation, fp8 matrix multiplication, cuBLAS ops, autotuning): no one switch here.
    (("--fast",), "--compile",
     "there is no one speed switch: --compile is exact, --attention int8 and --step-cache THRESHOLD trade some "
     "quality, and fewer --steps or a smaller size are the rest (docs/usage.md, 'Going faster')"),
    # ComfyUI's --preview-method (auto, latent2rgb, taesd): "did you mean --preview?" left the value to guess.
    (("--preview-method",), "--preview",
     "a preview is --preview FILE, rewritten while sampling: .png (middle frame) or .webp (every latent frame), "
     "its colours read straight from the latents as latent2rgb does; there is no method to pick"),
    # ComfyUI's seed widget: what becomes of the seed after each run (fixed, increment, decrement, randomize).
    (("--control-after-generate",), "--seed",
     "a seed is never changed for the next run: -s SEED draws the same noise each time (fixed); -s -1, the "
     "default, draws a new seed per run and prints it (randomize); -b N makes N videos with seeds SEED, SEED+1, "
     "... (increment)"),
    # Video Combine's (VideoHelperSuite) output settings: the file's kind is the extension of -o here.
    (("--format",), "--output",
     "the format is the extension of -o: .mp4, .mkv or .mov (H.264), .webm (VP9), .webp, .gif, or PNG frames "
     "out_%03d.png; the quality is --crf"),
    (("--pingpong",), "--output", "no ping-pong: the file holds the frames once, forward"),
    (("--loop-count",), "--output", "a .gif or .webp loops forever (a loop count of 0); no other count is offered"),
    (("--cpu",), "--device", "the CPU is --device cpu"),
    # Other GPUs' switches (ComfyUI's --directml and Intel's IPEX ones, and the names users guess): "--mps: did you
    # mean --fps?" sent Mac users to the frame rate.
    (("--directml", "--mps", "--metal", "--xpu", "--rocm", "--hip", "--vulkan", "--disable-ipex-optimize",
      "--oneapi-device-selector"), "--device",
     "there is no switch per GPU kind: an AMD GPU is --device cuda under PyTorch's ROCm build (untested); a Mac's "
     "GPU, Intel GPUs and DirectML are not supported, and runs there use the CPU (docs/usage.md, 'Without an "
     "NVIDIA GPU (AMD, Apple silicon, Intel, CPU only)')"),
    # ... and stable-diffusion.cpp's --backend (the device of each component: "diffusion=cuda0"), which the plan
    # decides here
    (("--gpu", "--gpu-id", "--device-id", "--backend"), "--device",
     "one GPU is --device cuda:N (cuda:0 the first); several, --gpus N"),
    (("--list-devices",), "--device",
     "motif-lite check lists the GPUs (cuda:0, cuda:1, ...) with their free memory; a run takes one with --device "
     "cuda:N"),
    (("--slg-scale", "--skip-layers", "--skip-layer-start", "--skip-layer-end"), "--guidance",
     "skip-layer guidance is not offered: the guidance here is --guidance apg or cfg, at --cfg-scale"),
    (("--guidance-rescale", "--cfg-rescale"), "--guidance",
     "CFG rescale is not offered; APG, the default guidance (--guidance apg), is what damps over-saturation here: "
     "--apg-eta and --apg-norm-threshold"),
    (("--cache-mode", "--cache-option", "--cache-preset", "--easycache"), "--step-cache",
     "stable-diffusion.cpp's cache modes are not here; the step cache here is --step-cache THRESHOLD "
     "(First-Block-Cache style, lossy): start around 0.05 (docs/usage.md, 'Going faster')"),
    (("--clip-skip",), "--text-encoder",
     "there are no CLIP layers to skip: the text encoder is T5Gemma2, read as the reference pipeline reads it"),
    (("--control-net", "--control-image", "--control-strength", "--control-video", "--canny", "--ref-image", "-r"),
     "--image",
     "no ControlNet or reference images: besides the prompt, a video starts from a first frame, -i IMAGE, or goes "
     "on from a clip, --extend CLIP"),
    (("--upscale-model", "--upscale-repeats"), "--width",
     "no upscaler: make the video at the size wanted with -W and -H (multiples of 16), or upscale the file with "
     "another tool"),
    (("-v", "--verbose", "--debug", "--log-level", "-q", "--quiet"), "--help",
     lambda: "there are no log levels: warnings and notes go to stderr, the summary to stdout, and "
     f"{variable_set('TQDM_DISABLE', '1')} hides the progress bars"),
    # stable-diffusion.cpp's --color colors its log lines by level: nothing is colored here.
    (("--color", "--colour", "--no-color"), "--help",
     "nothing is colored here: notes, warnings and errors are plain text on stderr, marked note:, warning: or "
     "error:"),
    (("--ckpt", "--checkpoint", "--ckpt-name"), "--model",
     "a checkpoint folder in the official layout is -m FOLDER; one transformer file is --diffusion-model FILE (or "
     "--gguf FILE)"),
    # ComfyUI's server flags given to serve: its output folder and its CORS switch (an origin, '*' without one).
    (("--output-directory",), "--data",
     "the server keeps each job's video in its data folder, --data DIR (default ./motif-lite-data); clients fetch "
     "them from GET /v1/videos/ID/content"),
    # The `*` in the user's shell's quotes: cmd kept POSIX single quotes as part of the value, refused by serve.
    (("--enable-cors-header",), "--cors-origin",
     lambda: "browser pages of other origins are allowed with --cors-origin ORIGIN (repeatable), e.g. --cors-origin "
     f"http://localhost:3000, or --cors-origin {quoted('*')} for any"),
    # Overwrite switches (ffmpeg's -y, the quantizer's --force): here the output named with -o is replaced as it is.
    # Only for commands without a -y of their own: run's -y is --yes (start a long CPU run without asking), so
    # this answers decode's -y, while decode's --yes gets the advice on run's flags that decode leaves to run.
    (("--overwrite", "-y", "--force"), "--output",
     "a file named with -o is replaced, no switch needed; without -o an existing video is kept and a free name "
     "beside it is written"),
    # LoRA settings of other tools: stable-diffusion.cpp's --lora-model-dir (the folder its prompt's <lora:NAME:0.8>
    # tags are looked up in), diffusers' lora_scale, ComfyUI's strength_model; and the server's --lora-dir given to
    # run.
    (("--lora-model-dir",), "--lora", f"{_LORA_FILE_STRENGTH}; a <lora:NAME:0.8> tag in the prompt is read as text"),
    # stable-diffusion.cpp's --lora-apply-mode (auto, immediately, at_runtime): here the weights' kind decides, as
    # its auto does.
    (("--lora-apply-mode",), "--lora",
     "there is no switch: a LoRA is merged into float (safetensors) weights as they load, and computed beside "
     "quantized ones (GGUF, --quantize, fp8), which cannot absorb it (docs/usage.md, 'LoRA adapters')"),
    (("--lora-dir",), "--lora",
     f"{_LORA_FILE_STRENGTH}; --lora-dir is the server's folder of LoRAs jobs may name (motif-lite serve)"),
    (("--lora-scale", "--lora-strength", "--lora-weight", "--strength-model", "--lora-alpha"), "--lora",
     "a LoRA's strength goes after its file: --lora FILE:0.8"),
    # Multi-GPU settings of xDiT / xfuser (--ulysses-degree, --ring-degree, --use-cfg-parallel), Wan2.1's
    # generate.py (--ulysses-size, --ring-size, --dit-fsdp, --t5-fsdp) and torchrun's own flag given to the command.
    (("--ulysses-degree", "--ulysses-size"), "--sp",
     "Ulysses sequence parallel is --sp N here (a divisor of the 12 attention heads); the processes come from "
     "--gpus N or torchrun, and with guidance the other half of them runs the unconditional branch"),
    (("--ring-degree", "--ring-size"), "--sp",
     "ring attention is not offered: sequence parallel is Ulysses, --sp N, and guidance parallel is automatic on "
     "an even number of processes (docs/parallel.md)"),
    (("--use-cfg-parallel", "--cfg-parallel"), "--gpus",
     "guidance parallel is on by default: with guidance on an even number of processes half of them run the "
     "unconditional branch (--gpus 2 is cfg 2, --gpus 4 cfg 2 x sp 2)"),
    (("--dit-fsdp", "--t5-fsdp"), "--gpus",
     "weights are not sharded: every process loads the whole (2B) transformer, and only the first one the text "
     "encoder; --gguf Q8_0 or Q4_K_M makes the weights smaller"),
    (("--nproc-per-node", "--world-size"), "--gpus",
     "--gpus N starts N processes; torchrun's flags go before the command: torchrun --nproc-per-node N -m "
     "motif_lite run ..."),
    # diffusers' device_map and ComfyUI-MultiGPU's DisTorch place one model's layers on several GPUs ("Did you mean
    # --device?" would send them to one GPU). ComfyUI's --cuda-device and accelerate's --gpu-ids: `_gpu_list_hint`.
    (("--device-map", "--multi-gpu", "--distorch"), "--gpus",
     "one model is not split layer by layer over GPUs here: --gpus N runs N processes, each holding the whole "
     "transformer and doing part of every step (docs/parallel.md); on one small GPU a run streams the blocks that "
     "do not fit by itself"),
]  # fmt: skip


def _by_name(entries: list[tuple[tuple[str, ...], str, Advice]]) -> dict[str, tuple[str, Advice]]:
    """{name: (flag needed, advice)} for each entry's names; a name in two entries would lose one of them."""
    table: dict[str, tuple[str, Advice]] = {}
    for names, needs, advice in entries:
        for name in names:
            if name in table:
                raise ValueError(f"{name} has two entries in unknown_flags' advice")
            table[name] = (needs, advice)
    return table


OTHER_TOOLS_SETTINGS = _by_name(_OTHER_TOOLS_ADVICE)


def suggestion(flag: str, known: list[str]) -> str | None:
    """The flag of `known` (a subcommand's option strings) that `flag` most likely means, or None."""
    name = flag_spelling.spelled(flag.split("=", 1)[0])
    if name in known:  # only its spelling differed (underscores, capitals)
        return name
    meant = OTHER_TOOLS_NAMES.get(name)
    if meant in known:
        return meant
    # A typo of our flag or of another tool's name for one (`--num-frame`, `--guidance_scal`): both are candidates.
    others = [other for other, ours in OTHER_TOOLS_NAMES.items() if ours in known]
    candidates = [k for k in known if k.startswith("--")] + others
    close = flag_spelling.closest_flag(name, candidates)
    return OTHER_TOOLS_NAMES.get(close, close) if close else None


def reject(parser: argparse.ArgumentParser, extras: list[str], args: argparse.Namespace) -> None:
    """Exit through `parser.error` (usage, one line, exit code 2) naming the unknown arguments and, for each
    unknown flag, the flag it most likely means; words without a flag in a command that takes a prompt are probably
    an unquoted prompt, or the rest of one (`args`: what was parsed, the prompt's first word included)."""
    known = flag_spelling.option_strings(parser)
    command = parser.prog.split()[-1]  # "motif-lite run" -> "run"; "motif-lite" itself without a command
    flags_by_advice: dict[str, list[str]] = {}  # advice -> the flags given it, in the order typed
    runs = []
    # A flag typed with full-width or typographic dashes (a Korean or Japanese input method on): said as such, not
    # taken for words of the prompt.
    lookalikes = {word: hint for word in extras if (hint := flag_spelling.lookalike_hint(word, known))}
    # Settings typed without their dashes (`seed=42`, `cfg 6`): as flags, not words of the prompt, where the
    # prompt hint would have put them.
    settings, taken = _bare_settings(extras, command, known, _switches(parser), args)
    # Strengths typed apart from their --lora's file: a negative one (`-1`) is one too, not a flag.
    argv = getattr(args, "argv", [])
    strengths, typed_apart = lora_strengths(argv) if "--lora" in known else ({}, set())
    not_flags = {*lookalikes, *strengths}
    typed_flags = [(i, word) for i, word in enumerate(extras) if word.startswith("-") and word not in not_flags]
    for index, flag in typed_flags:
        if hint := _flag_hint(flag, command, known, extras[index + 1 : index + 2], args):
            flags_by_advice.setdefault(hint.removeprefix(f"{flag}: "), []).append(flag)
        elif _left_to_run(flag, command, known):
            runs.append(flag)  # one hint for them all, after the loop
        elif flag.split("=", 1)[0] in known and "--" in extras[:index]:  # was "-h: did you mean -h?"
            flags_by_advice.setdefault("a flag after --, which ends the flags: leave the -- out", []).append(flag)
        elif meant := suggestion(flag, known):
            flags_by_advice.setdefault(f"did you mean {meant}?", []).append(flag)
    # One line per advice: stable-diffusion.cpp's --offload-to-cpu --vae-tiling --clip-on-cpu got the same
    # sentence three times over.
    hints = [
        *lookalikes.values(),
        *settings,
        *(f"{', '.join(flags)}: {advice}" for advice, flags in flags_by_advice.items()),
    ]
    if runs:
        hints.append(f"{', '.join(runs)}: {_LEFT_TO_RUN[command]}")
    # Only the words typed right after a --lora's file are strengths: a word of the prompt may be the same number.
    apart = extras_at(parser, argv, typed_apart) if typed_apart else set()
    # Words alone: a path without its flag, or a prompt.
    if not lookalikes and not typed_flags:
        rest = [(index, word) for index, word in enumerate(extras) if index not in taken]
        placed = {
            index: hint
            for index, word in rest
            if (hint := strengths[word] if index in apart else unit_apart_hint(word, argv) or path_hint(word, known))
            is not None
        }
        hints.extend(dict.fromkeys(placed.values()))  # a strength typed apart twice has one hint
        if apart and (repeat := repeat_once_joined(argv, typed_apart)) is not None:
            hints.append(repeat)  # said now: the --lora values the hint gives would be refused next for it
        loose = [word for index, word in rest if index not in placed]
        if "--prompt" in known and loose:
            words = [*([args.prompt] if getattr(args, "prompt", None) else []), *loose]
            hints.append(f'a prompt goes after -p, in quotes: -p "{" ".join(words)}"')
    elif apart:  # beside a mistyped flag too, as their place is known: else the flag's fix was refused for them next
        hints.extend(dict.fromkeys(strengths[extras[index]] for index in sorted(apart)))
        if (repeat := repeat_once_joined(argv, typed_apart)) is not None:
            hints.append(repeat)
    parser.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))


def lookalike_command(argv: list[str], parser: argparse.ArgumentParser) -> str | None:
    """The error line for a flag of `motif-lite` itself typed with look-alike dashes where the command goes
    (`motif-lite －－help`), which argparse answers "invalid choice"; else None."""
    hint = flag_spelling.lookalike_hint(argv[0], flag_spelling.option_strings(parser)) if argv else None
    return f"{parser.prog}: error: {hint}" if hint else None


def _flag_hint(flag: str, command: str, known: list[str], following: list[str], args: argparse.Namespace) -> str | None:
    """The advice on one unknown `flag` of `command` (whose option strings are `known`; `following`: the word after
    it), or None. The first that applies wins: the command's own advice before another tool's names."""
    name = flag.split("=", 1)[0]
    spelled = flag_spelling.spelled(name)
    if name in DURATION_FLAGS and "--video-frames" in known:
        return _duration_hint(flag, following, args)
    needs, valued = VALUED_HINTS.get(spelled, (None, None))
    if needs in known:  # a hint that shows the flags for the value given (--size 1280x720: -W 1280 -H 720)
        return f"{flag}: {valued(_value_of(flag, following))}"
    meant = OTHER_TOOLS_NAMES.get(spelled)
    if meant == "--cfg-scale" and meant in known and _is_one(_value_of(flag, following)):
        return f"{flag}: {CLASSIC_CFG_ONE if getattr(args, 'guidance', None) == 'cfg' else CFG_ONE}"
    if meant == "--sampling-method" and meant in known and (other := _other_sampler(_value_of(flag, following))):
        return f"{flag}: the sampler is --sampling-method {'|'.join(SAMPLERS)}{other}"
    if spelled == "--version":  # a flag of motif-lite itself, not of its commands
        return f"{flag}: the version is motif-lite --version"
    if (command, spelled) in _COMMAND_ADVICE:
        return f"{flag}: {_COMMAND_ADVICE[command, spelled]}"
    if spelled == "--lora" and "--lora" not in known:  # check, decode, verify
        return f"{flag}: {LORA_CHECKED_BY_DRY_RUN}"
    needs, advice = OTHER_TOOLS_SETTINGS.get(name) or OTHER_TOOLS_SETTINGS.get(spelled, (None, None))
    if needs not in known:
        return None
    return f"{flag}: {advice() if callable(advice) else advice}"


def _switches(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    """The option strings of `parser` that take no value, each with the one that turns it the other way where
    there is one (a BooleanOptionalAction's `--batch-guidance` and `--no-batch-guidance`), else None."""
    switches: dict[str, str | None] = {}
    for action in (action for action in parser._actions if action.nargs == 0):
        for option in action.option_strings:
            other = "--" + option[5:] if option.startswith("--no-") else "--no-" + option.removeprefix("--")
            switches[option] = other if isinstance(action, argparse.BooleanOptionalAction) else None
    return switches


def _bare_settings(
    extras: list[str], command: str, known: list[str], switches: dict[str, str | None], args: argparse.Namespace
) -> tuple[list[str], set[int]]:
    """The hints for settings among `extras` typed without their dashes, as NAME=VALUE (`seed=42`, as a ComfyUI
    widget or a config file writes it) or as NAME and a number where NAME is spelled as no word of a prompt is
    (`batch_size 2`, `cfg 6`: `_setting_name`), and the indices of the words they take. Only a NAME that --NAME
    answers counts (`_setting_hint`; `switches`: the option strings that take no value, `_switches`)."""
    hints: list[str] = []
    taken: set[int] = set()
    for index, word in enumerate(extras):
        following = extras[index + 1] if index + 1 < len(extras) else ""
        if index in taken or word.startswith("-"):
            continue
        if "=" in word:
            name, _, value = word.partition("=")
            said, used = word, {index}
        elif flag_spelling.is_number(following) and _setting_name(word):
            name, value, said, used = word, following, f"{word} {following}", {index, index + 1}
        else:
            continue
        if hint := _setting_hint(name, value, command, known, switches, args):
            hints.append(f"{said}: {hint}")
            taken |= used
    return hints, taken


def _setting_name(word: str) -> bool:
    """Whether `word`, before a number, is a setting's name rather than a word of an unquoted prompt: one in lower
    case, as flags and ComfyUI's widgets are spelled, joined with an underscore (`batch_size`) or without a vowel
    (`cfg`, `fps`, `crf`). Plain words that name flags (model, type, steps, seed, length, image) are prose too:
    `-p a tesla model 3 driving` lost "model 3"; and so are acronyms in capitals: `a LLM 3 robot` lost "LLM 3" to
    --text-encoder 3, `an FPS 2 game` its "FPS 2" to --fps 2."""
    return word.islower() and ("_" in word or not re.search(r"[aeiouy]", word))


# A switch given one of these (`compile=0`) was meant off, which is what leaving the switch out gives.
_OFF_VALUES = ("0", "false", "no", "off", "none", "disable", "disabled")


def _setting_hint(
    name: str, value: str, command: str, known: list[str], switches: dict[str, str | None], args: argparse.Namespace
) -> str | None:
    """What --NAME VALUE is here, when --NAME is a flag of ours or another tool's name with a hint (`seed`, 42:
    --seed 42; `length`, 81: --video-frames 81); for a switch (`switches`: `compile`), the switch alone, which
    takes no value, or for an off value the switch that turns it off (`batch_guidance=0`: --no-batch-guidance), or
    none; else None. Only exact names count: a close spelling is more likely a word of an unquoted prompt."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        return None
    flag = flag_spelling.spelled("--" + name)
    typed = f"{flag}={value}"
    if flag not in known and (advice := _flag_hint(typed, command, known, [], args)):
        return advice.removeprefix(f"{typed}: ")
    ours = flag if flag in known else OTHER_TOOLS_NAMES.get(flag)
    if ours not in known:
        return None
    if ours in switches:  # `--compile 1` is refused again, its 1 taken for a word of the prompt
        if value.strip().lower() not in _OFF_VALUES:
            return f"switches are flags here, and take no value: {ours}"
        # --batch-guidance is on by default where the memory plan allows: leaving it out does not turn it off.
        if (other := switches[ours]) is not None:
            return f"switches are flags here, and take no value: {other}"
        return f"{ours} is a switch that takes no value, and off unless given: leave it out"
    return f"settings are flags here: {ours} {quoted(value)}"


def _left_to_run(flag: str, command: str, known: list[str]) -> bool:
    """Whether `flag` is one of run's that `command` (decode, check; its option strings `known`) leaves to run."""
    spelled = flag_spelling.spelled(flag.split("=", 1)[0])
    return command in _LEFT_TO_RUN and spelled not in known and spelled in _run_option_strings()


def _run_option_strings() -> list[str]:
    return flag_spelling.option_strings(run_only_parser())


SERVER_ON_ONE_GPU = ("the server runs on one GPU; for several, start one server per GPU (motif-lite serve --device "
                     "cuda:1 --port 8001), or use motif-lite run --gpus N")  # fmt: skip
SERVER_FROM_A_FILE = ("a server loads its transformer once, from a GGUF file: make it once with python -m "
                      "motif_lite.quantize CHECKPOINT --type Q8_0 -o transformer-Q8_0.gguf and serve --gguf "
                      "transformer-Q8_0.gguf, or serve --gguf Q4_K_M (the official file)")  # fmt: skip
QUANTIZED_FROM_A_FILE = ("this command reads quantized weights from a GGUF file: --gguf Q4_K_M (the official "
                         "file) or one python -m motif_lite.quantize CHECKPOINT --type Q8_0 makes; run's --quantize "
                         "quantizes the transformer as it loads")  # fmt: skip
TEXT_ENCODER_FROM_A_FILE = ("this command loads a quantized text encoder from a GGUF file: make it once with "
                            "python -m motif_lite.quantize CHECKPOINT --component text_encoder --type Q8_0 -o "
                            "te-Q8_0.gguf, then --text-encoder-gguf te-Q8_0.gguf; run's --text-encoder-quantize "
                            "quantizes it as it loads")  # fmt: skip
LORA_CHECKED_BY_DRY_RUN = (
    "this command takes no LoRA (LoRAs change the transformer); a dry run checks one "
    'against it without generating: motif-lite run -p "..." --lora FILE --dry-run'
)
DECODE_KEEPS_THE_RUNS = (
    "decode makes the video of the latents a run sampled: its prompt, seed, size, frames, fps and steps were the "
    "run's (stored in the file) and no transformer runs; it takes -o, --crf, -m, --vae, --dtype, --device, --vram "
    "and --dry-run (another video: motif-lite run)"
)
CHECK_PLANS_A_DEFAULT_RUN = (
    "check takes only the files' flags (-m, --gguf, --text-encoder-gguf, --diffusion-model, --text-encoder, --vae) "
    "and plans the official default run; your run's settings, files and memory plan, without loading anything: "
    "motif-lite run with the same flags and --dry-run"
)
VERIFY_DRY_RUN = ("verify has no dry run: motif-lite check with the same -m and files checks them and this "
                  "machine without loading anything")  # fmt: skip
CHECK_IS_A_DRY_RUN = ("check is one already: it reads no weights and downloads nothing; a run's own settings and "
                      "memory plan: motif-lite run with the same flags and --dry-run")  # fmt: skip
DURATION_FLAGS = ("--seconds", "--duration")  # a clip's length in seconds, as other tools take it
# A command's own advice on a flag it lacks (and run takes), by (command, flag).
_COMMAND_ADVICE = {
    **{("serve", flag): SERVER_ON_ONE_GPU for flag in ("--gpus", "--sp")},
    **{("serve", flag): SERVER_FROM_A_FILE for flag in ("--quantize", "--type")},
    **{(command, flag): QUANTIZED_FROM_A_FILE for command in ("check", "verify") for flag in ("--quantize", "--type")},
    # serve, check and verify take --text-encoder-gguf only
    **{(command, "--text-encoder-quantize"): TEXT_ENCODER_FROM_A_FILE for command in ("serve", "check", "verify")},
    ("verify", "--dry-run"): VERIFY_DRY_RUN,
    ("check", "--dry-run"): CHECK_IS_A_DRY_RUN,
}
# The commands that leave the flags of run they lack to it (a flag with advice of its own gets that instead), and the
# one hint for them all: decode's latents file holds the run's settings; check plans the official default run.
_LEFT_TO_RUN = {"decode": DECODE_KEEPS_THE_RUNS, "check": CHECK_PLANS_A_DEFAULT_RUN}


def unit_apart_hint(word: str, argv: list[str]) -> str | None:
    """The hint for a memory budget's unit typed as a word of its own (`--vram 8 GB`, `--ram=32 GB`), or None: the
    budget was read without it, and the unit was taken for a word of the prompt."""
    if word.lower() not in ("g", "gb", "gib", "m", "mb", "mib"):
        return None
    for index in range(1, len(argv)):
        if argv[index] != word:
            continue
        flag, equals, value = argv[index - 1].partition("=")  # `--vram=8 GB`
        if not equals and index >= 2:  # `--vram 8 GB`
            flag, value = argv[index - 2], argv[index - 1]
        if flag in ("--vram", "--ram"):
            return f"{word}: the unit goes with its number, no space: {flag} {value}{word}"
    return None


def path_hint(word: str, known: list[str]) -> str | None:
    """Where a path given without its flag goes, for a command whose option strings are `known`, or None: diffusers'
    `from_pretrained(path)`, the quantizer and sd.cpp's `-m` make a checkpoint folder the first thing people type,
    and `run -p "a fox" fox.mp4` names the output without -o. Without this, the path was taken for part of a
    prompt."""
    lower, pasted = word.lower(), quoted(word)
    if lower.endswith(LATENTS_SUFFIX) and "--resume" in known:
        return f"{word}: a stopped run's latents go after --resume: --resume {pasted}"
    if lower.endswith(".gguf") and "--gguf" in known:
        return f"{word}: a GGUF file goes after --gguf: --gguf {pasted}"
    if lower.endswith(VIDEO_EXTENSIONS) and "--output" in known:
        return f"{word}: the output goes after -o: -o {pasted}"
    folder = os.path.expanduser(word)
    # A word of an unquoted prompt may name a folder here too ("snow"): a path or a checkpoint, not a plain word.
    looks_like_one = "/" in word or os.sep in word or os.path.isfile(os.path.join(folder, "model_index.json"))
    if os.path.isdir(folder) and looks_like_one and "--model" in known:
        return f"{word}: a checkpoint folder goes after -m: -m {pasted}"
    return None


def _value_of(flag: str, following: list[str]) -> str | None:
    """The value an unknown flag was given: after its `=`, else the next word unless that is a flag."""
    if "=" in flag:
        return flag.split("=", 1)[1]
    return following[0] if following and not following[0].startswith("-") else None


# ComfyUI's schedules that step evenly through flow time: `simple` picks the very sigmas of the flow-matching schedule
# here at a step count that divides 1000, and rounds them to its table's at others (`SIMPLE_SIGMAS`); `normal` and
# `sgm_uniform` step from other ends. "Not offered" sent a user of `simple` looking for a schedule they had.
NEAR_SCHEDULES = ("normal", "sgm-uniform")


def _schedule_hint(value: str | None) -> str:
    """What a sigma schedule (stable-diffusion.cpp's --scheduler, ComfyUI's scheduler) is here: the flow-matching
    schedule, shaped by --flow-shift, which steps through flow time as ComfyUI's simple does; any other is not
    offered."""
    spelled = (value or "").lower().replace("_", "-")
    if spelled == "simple":
        return (
            f"{value} needs no flag: the schedule here takes even steps through flow time as it does, shaped by "
            f"--flow-shift (ModelSamplingSD3's shift); with euler or unipc its sigmas are {SIMPLE_SIGMAS}: leave "
            "it out"
        )
    if spelled in NEAR_SCHEDULES:
        return (
            f"{value} is not offered: it ends its steps a little differently from the schedule here, which takes "
            "even steps through flow time as ComfyUI's simple does (shaped by --flow-shift)"
        )
    named = (
        f"a {value} schedule is"
        if re.fullmatch(r"[A-Za-z][\w-]*", value or "")
        else "sigma schedules such as karras are"
    )
    return (
        f"{named} not offered: Motif samples on the flow-matching schedule, which --flow-shift shapes; the sampler "
        "is --sampling-method"
    )


# ComfyUI's and stable-diffusion.cpp's cfg 1 is no guidance; the official guider's formulation (cond + s·update) still
# guides at 1, so "did you mean --cfg-scale?" sent them to a guided run at twice the cost.
CFG_ONE = ("did you mean --cfg-scale? No guidance (their cfg 1) is --cfg-scale 0 with the official guider, where 1 "
           "still guides")  # fmt: skip
# Classic CFG (--guidance cfg) reads the scale as they do (uncond + s·(cond − uncond)): 1 is no guidance there, and 0
# keeps the negative prompt's prediction alone, so the official guider's advice would send them to that.
CLASSIC_CFG_ONE = ("did you mean --cfg-scale? With --guidance cfg, --cfg-scale 1 is no guidance, as their cfg 1 is "
                   "(0 keeps only the negative prompt's prediction)")  # fmt: skip


def _other_sampler(value: str | None) -> str | None:
    """For a sampler given to another tool's sampler flag (ComfyUI's `sampler_name euler_ancestral`) that
    --sampling-method would refuse, what its refusal adds (ours closest to it, or the one it misspells), so that the
    hint gives the value to type too; None for a sampler --sampling-method takes, no value, or one it names none for."""
    if value is None or choice_name(value, tuple(SAMPLERS), SAMPLER_ALIASES) in SAMPLERS:
        return None
    return sampler_hint(value)


def _is_one(value: str | None) -> bool:
    """Whether `value` reads as the number 1."""
    return flag_spelling.is_number(value or "") and float(value or "") == 1


NO_STRENGTH = ("there is no strength: -i IMAGE is the video's first frame as it is, and --extend CLIP goes on from a "
               "clip")  # fmt: skip


def _strength_hint(value: str | None) -> str:
    """What a denoising strength is here (ComfyUI's denoise, img2img's strength): 1, a full denoise from noise, is
    what every run does; no other value has a counterpart."""
    try:
        whole = float(value or "") == 1
    except ValueError:
        whole = False
    return f"{value} is a full denoise from pure noise, which every run does: leave it out" if whole else NO_STRENGTH


def _size_hint(value: str | None) -> str:
    """-W and -H for a size given as one value: WIDTHxHEIGHT (`split_size`'s forms) or lines (720p), as -W and -H
    themselves read it (`size_side`)."""
    size = split_size(value or "") or lines_size(value or "")
    if size is None:
        return "the size is two flags here, -W WIDTH -H HEIGHT (multiples of 16, e.g. -W 1280 -H 736)"
    return f"the size is two flags here: -W {size[0]} -H {size[1]}"


def _prompt_file_hint(value: str | None) -> str:
    """How to give a prompt kept in a file: there is no prompt-file flag, -p takes the text."""
    from motif_lite.shell_syntax import file_text

    return (
        f"-p takes the prompt's text: read it from the file with -p {file_text(value or 'FILE')} (several prompts: "
        'one run each, docs/usage.md, "Batches")'
    )


def _output_folder_hint(value: str | None) -> str:
    """-o with a file in the folder another tool's output-folder flag names."""
    example = quoted(os.path.join(value, "fox.mp4")) if value else "DIR/fox.mp4"
    return f"-o names the video's file, its folder included: -o {example} (the folder must exist)"


def _gpu_list_hint(value: str | None) -> str:
    """ComfyUI's --cuda-device and accelerate's --gpu-ids choose GPUs: the run on the GPUs the value names, in its
    own numbers ("Did you mean --device?" would send them to one GPU)."""
    numbers = gpu_numbers(value or "")
    example = chosen_gpus_command(numbers or ["2", "3"])  # an example where the value names no GPU
    if numbers is not None and len(numbers) == 1:
        example = f"--device cuda:{numbers[0]}"
    return f"one GPU is --device cuda:N; several are --gpus N, CUDA_VISIBLE_DEVICES choosing which ({example})"


def _devices_hint(value: str | None) -> str:
    """PyTorch Lightning's --devices: a count of GPUs (`2`), or a list of their numbers (`0,1`), run with theirs."""
    numbers = gpu_numbers(value or "") if is_list(value or "") else None
    chosen = f": {chosen_gpus_command(numbers)}" if numbers is not None else ""
    return (
        f"several GPUs: --gpus N (one process each, CUDA_VISIBLE_DEVICES picks which){chosen}; one GPU: --device cuda:N"
    )


# Other tools' flags whose hint shows ours for the value given, with the flag of ours the hint needs.
VALUED_HINTS = {
    **dict.fromkeys(("--cuda-device", "--gpu-ids"), ("--device", _gpu_list_hint)),
    "--devices": ("--gpus", _devices_hint),
    **dict.fromkeys(("--strength", "--denoise", "--denoising-strength"), ("--image", _strength_hint)),
    **dict.fromkeys(("--size", "--resolution", "--res"), ("--width", _size_hint)),
    **dict.fromkeys(("--scheduler", "--schedule"), ("--flow-shift", _schedule_hint)),
    **dict.fromkeys(("--prompt-file", "--prompts-file", "--from-file"), ("--prompt", _prompt_file_hint)),
    **dict.fromkeys(
        ("--output-dir", "--outdir", "--out-dir", "--output-folder", "--save-dir", "--output-directory"),
        ("--output", _output_folder_hint),
    ),
}


def _duration_hint(flag: str, following: list[str], args: argparse.Namespace) -> str:
    """What a length in seconds is here: --video-frames, counted as `seconds_in_frames` counts it."""
    try:
        seconds = float(_value_of(flag, following) or "")
    except ValueError:
        seconds = None
    return f"{flag}: the length is --video-frames here: {seconds_in_frames(seconds, args)}"
