"""Other tools' flags: the names diffusers, ComfyUI, stable-diffusion.cpp and others give our settings, and the
advice for their settings that have no flag of the same meaning here.

Tables, with no logic but indexing the advice by name: `unknown_flags` reads them to answer a flag a
subcommand does not know.
"""

from __future__ import annotations

from collections.abc import Callable

from motif_lite.choices import ATTENTION_BACKENDS
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
    "--qwen2vl": "--text-encoder",
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
    # ...), Wan2GP's --profile and --vae-config (its VAE tiling), ComfyUI's VAE Decode (Tiled) widgets (tile_size,
    # overlap, temporal_size, temporal_overlap). Here no switch: the plan fits the free memory by
    # itself, so "did you mean --vram?" (a number of GiB) would send them wrong.
    (("--lowvram", "--low-vram", "--novram", "--no-vram", "--highvram", "--normalvram", "--gpu-only",
      "--medvram", "--med-vram", "--medvram-sdxl", "--enable-model-cpu-offload", "--enable-sequential-cpu-offload",
      "--enable-vae-tiling", "--enable-vae-slicing", "--vae-slicing",
      "--reserve-vram", "--cpu-vae", "--offload-to-cpu", "--offload", "--cpu-offload", "--model-cpu-offload",
      "--sequential-offload", "--sequential-cpu-offload", "--vae-tiling", "--vae-tiled", "--tiled", "--clip-on-cpu",
      "--vae-on-cpu", "--profile", "--preload", "--vae-tile-size", "--vae-tile-overlap", "--vae-relative-tile-size",
      "--attention-slicing", "--offload-model", "--t5-cpu", "--stream-layers", "--auto-fit", "--params-backend",
      "--disable-smart-memory", "--async-offload", "--blocks-to-swap", "--vae-config", "--tiled-vae",
      "--tile-size", "--overlap", "--temporal-size", "--temporal-overlap"),
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
    (("--clip-vision", "--llm-vision", "--qwen2vl-vision"), "--text-encoder",
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
    # ... and stable-diffusion.cpp's settings for the high-noise model's steps (they had no hint at all).
    (("--high-noise-steps", "--high-noise-cfg-scale", "--high-noise-img-cfg-scale", "--high-noise-guidance",
      "--high-noise-sampling-method", "--high-noise-scheduler", "--high-noise-eta", "--high-noise-slg-scale",
      "--high-noise-skip-layers", "--high-noise-skip-layer-start", "--high-noise-skip-layer-end"), "--steps",
     "Motif-Video has one transformer, so the high-noise steps have no settings apart: --steps, --cfg-scale and "
     "--sampling-method cover every step"),
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
    # ... and SaveWEBM's codec, SaveAnimatedWEBP's lossless switch.
    (("--format", "--codec", "--lossless"), "--output",
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
    (("--control-net", "--control-image", "--control-strength", "--control-video", "--canny", "--ref-image", "-r",
      "--control-net-cpu", "--increase-ref-index", "--disable-auto-resize-ref-image"),
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
    # ComfyUI's LoraLoader's strength for the text encoder: such layers are refused here (docs/usage.md).
    (("--strength-clip",), "--lora",
     "a LoRA changes the transformer only: its strength goes after its file, --lora FILE:0.8, and a LoRA with text "
     "encoder layers is refused"),
    # KSamplerAdvanced's widgets for sampling part of the steps: a run here samples all of them, from noise.
    (("--add-noise", "--start-at-step", "--end-at-step", "--return-with-leftover-noise"), "--steps",
     "a run samples all --steps steps, from noise to the video; part of the steps is not offered"),
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
    # --device?" would send them to one GPU). ComfyUI's --cuda-device and accelerate's --gpu-ids:
    # `flag_hints._gpu_list_hint`.
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
