"""Latents -> video file: the decode stage of a run (`MotifVideoPipeline.decode`), and `motif-lite decode`, which
decodes the latents a run saved when its own decode failed, or the state it saved after its last step (before a
decode that was killed), with the VAE alone (io/latents.py).

    saved = read_latents("fox.latents.safetensors")
    job = prepare_decode(saved, device="cuda")   # every check, the memory plan: no weights read yet
    run_decode(job)                              # loads the VAE (no transformer, no text encoder), writes fox.mp4

Both go through `decode_video`: the same latents, VAE dtype and VAE setup give the same frames as the run would
have written, with the same metadata in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from motif_lite.checkpoint import locate_vae
from motif_lite.choices import MOTIF_REPO
from motif_lite.devices import resolve_device
from motif_lite.dtypes import checked_dtype
from motif_lite.errors import Audience, CheckpointError, ConfigError, Spelling
from motif_lite.io.clip import Clip, ClipError, joined_frames, last_frame_file, read_clip
from motif_lite.io.latents import LatentsFileError, SavedLatents
from motif_lite.io.output_claims import unused_path
from motif_lite.io.staging import staged_output
from motif_lite.io.video import (
    check_crf,
    check_output_fps,
    check_output_path,
    replaces_file,
    write_video,
)
from motif_lite.memory_plan import device_budget
from motif_lite.numerics import check_finite
from motif_lite.paths import user_path
from motif_lite.ran_on import decoded_metadata, without_ran_on
from motif_lite.request import extended_frames
from motif_lite.runtime.budget_advice import decode_on_the_cpu
from motif_lite.runtime.planner import DecodePlan, plan_decode, positive_budget
from motif_lite.shell_syntax import quoted
from motif_lite.vae import WanVAE, load_vae
from motif_lite.vae.config import WanVAEConfig
from motif_lite.vae.tiling import VAEMode
from motif_lite.weight_checks import check_vae_file

if TYPE_CHECKING:
    from motif_lite.runtime.parallel import Parallel

# (stage, done, total), as `MotifVideoPipeline.generate`'s on_progress; the stage here is always "decode".
ProgressFn = Callable[[str, int, int], None]


def decode_video(
    vae: WanVAE,
    latents: torch.Tensor,
    output: Path,
    fps: float,
    metadata: dict,
    progress: ProgressFn,
    *,
    mode: VAEMode,
    parallel: Parallel | None = None,
    clip: Clip | None = None,
    crf: int | None = None,
) -> Path | None:
    """Decode `latents` (model space, [1, C, F, h, w]) and stream the frames straight into `output` (one latent frame
    of pixels alive at a time); `mode`: the VAE setup of a memory plan. In a parallel run every rank decodes its
    bands and rank 0 writes the file. Returns the file written: `output`, or `fox-new.mp4` beside it when `output`
    could not be replaced (on Windows, open in a player, a sync client or an antivirus scan), with a warning; None
    on the other ranks. `clip`: the clip these frames go on from (`run --extend`), whose frames the file holds
    first; the decoded first frame, its last frame again, is left out. `crf`: the video encoder's constant-rate
    factor (`write_video`; None: the codec's default)."""
    vae_dtype = vae.post_quant_conv.weight.dtype
    z = vae.denormalize_latents(latents.to(vae_dtype))
    total = z.shape[2]
    if z.is_cuda:  # hand the denoiser's cached blocks back first: fewer fragments next to the VAE's caches
        torch.cuda.empty_cache()

    def chunks() -> Iterator[torch.Tensor]:
        def on_step(done: int, steps: int) -> None:  # per latent frame, of every band
            progress("decode", done, steps)

        # In a parallel run: exact bands split across the ranks, gathered on rank 0, which counts the whole
        # decode's steps (the bands of every rank), as it says when it starts.
        if parallel is None:
            on_step(0, total * mode.bands)
            decoded = vae.decode_frames(z, mode.tile, mode.frame_by_frame, mode.bands, on_step)
        else:
            decoded = parallel.decode_frames(vae, z, mode, on_step)
        for pixels in decoded:
            check_finite(pixels, "the decoded frames")  # else they would be written as black pixels
            yield pixels[0]  # [3, n, H, W]

    if parallel is not None and not parallel.is_main:
        for _ in chunks():  # this rank's bands go to rank 0, which writes the file
            pass
        return None
    frames = extended_frames(vae.config.video_frames(total), clip.frames if clip is not None else None)
    written = chunks() if clip is None else joined_frames(clip, chunks())
    with staged_output(output, frames, fallback=_beside) as staged:
        write_video(written, staged.partial, fps, metadata, crf=crf)
    return staged.written


def _beside(output: Path) -> Path:
    """Where a video goes when `output` cannot be replaced: `fox-new.mp4` (or `fox-new-2.mp4`, ...), never a name a
    batch's later video takes (`fox-2.mp4`)."""
    return unused_path(output.with_name(f"{output.stem}-new{output.suffix}"))


@dataclass(frozen=True)
class DecodeJob:
    """A checked `motif-lite decode`: what to decode, where to write it, with which VAE, device and plan."""

    saved: SavedLatents
    output: Path
    root: Path  # the checkpoint folder the VAE loads from (`load_vae`)
    device: torch.device
    dtype: torch.dtype  # the VAE's
    plan: DecodePlan | None  # None: no budget (the CPU without --vram), the VAE's default setup
    clip: Clip | None = None  # the clip the run went on from (`run --extend`): the video holds its frames first
    notes: tuple[str, ...] = ()  # what the user should know before it decodes (a clip that is gone)
    crf: int | None = None  # the video encoder's constant-rate factor; None: the codec's default

    @property
    def frames(self) -> int:
        """The frames the video holds: the run's, after the clip's but its last (the run's first frame)."""
        return extended_frames(self.saved.frames, self.clip.frames if self.clip is not None else None)


def prepare_decode(
    saved: SavedLatents,
    output: str | Path | None = None,
    model: str | Path | None = None,
    vae_file: str | Path | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype | str | None = None,
    vram_gib: float | None = None,
    download: bool = True,
    crf: int | None = None,
    audience: Audience = Audience.RUN_OR_PYTHON,
) -> DecodeJob:
    """Every check of a decode before any weights load: the output path (default: the run's), the device, the dtype
    (default: the run's VAE dtype), the VAE's files (`model` / `vae_file` default to what the run used, else the
    official repo; downloaded when missing only if `download`) and config against the latents, and the memory
    plan (with `vram_gib`, or on CUDA: the GPU's free memory), as for a run's decode stage; `crf` against the
    output's format (`check_crf`). Raises a `MotifLiteError` naming the problem. `audience`: who the memory plan's
    advice and the refusals speak to (`motif-lite decode` passes `Audience.FLAGS`: its flags alone); by default, as
    a Python entry point as much as decode's, they name the flag and the keyword (errors.Audience)."""
    # No field of the server's API decodes latents: a setting's field is its flag.
    vram, out = Spelling("--vram", "vram_gib", "--vram").to(audience), Spelling("-o", "output=", "-o").to(audience)
    if vram_gib is not None and not positive_budget(vram_gib):
        raise ConfigError(f"{vram} must be a positive number of GiB, got {vram_gib!r}")
    if not saved.sampling_done:
        done, steps = saved.progress
        raise LatentsFileError(
            f"{saved.file or 'these latents'}: a run that stopped after step {done} of {steps}, not denoised yet: "
            f"sample the rest with {_resume_advice(saved, audience)}, which then writes the video"
        )
    output = user_path(output if output is not None else saved.output)
    clip, notes = _extended_clip(saved)
    frames = extended_frames(saved.frames, clip.frames if clip is not None else None)
    check_output_path(output, frames, frames_chosen=False, audience=audience)  # frames: the latents', no flag's
    check_crf(output, crf)
    if clip is not None and any(replaces_file(output, frames, file) for file in clip.files):
        raise ConfigError(f"the output {output} would replace the clip {clip.path} the run went on from; give "
                          f"{out} another name")  # fmt: skip
    keeps = f"a decode keeps the run's frame rate: give {out} a .webp or .mp4 file"
    check_output_fps(output, saved.fps, keeps, frames=frames)
    target = resolve_device(device)
    dtype = checked_dtype(dtype if dtype is not None else saved.dtype)
    root = _vae_checkpoint(saved, model, vae_file, download, audience)
    vae_config = WanVAEConfig.from_json(root / "vae" / "config.json")
    check_latents_fit(saved, vae_config, audience)
    plan = None
    if vram_gib is not None or target.type == "cuda":
        budget = device_budget(target, vram_gib)  # run's --vram: one above the GPU's memory is a slip, said
        advice = None  # the budget is the GPU's free memory: the planner's `decode_advice`
        if target.type == "cpu":
            advice = f"{vram} limits a decode on the CPU too: leave it out there (no limit)"
        elif vram_gib is not None:
            advice = decode_on_the_cpu(audience)
        plan = plan_decode(
            saved.width, saved.height, saved.frames, vae_config, budget, str(target), dtype, advice, audience
        )
    return DecodeJob(saved, output, root, target, dtype, plan, clip, notes, crf)


def video_made(saved: SavedLatents) -> bool:
    """Whether the run's output holds the video these latents make: a file there storing the settings the run would
    have stored (`motif-lite decode` of them wrote it, and kept the latents file, as it does). A decode given another
    -o wrote elsewhere: not known here."""
    import json

    from motif_lite.io.settings_file import SettingsFileError, read_settings

    try:
        stored = read_settings(saved.output).values
    except (SettingsFileError, OSError):  # nothing there, an empty claim, another tool's file
        return False
    # `ran_on` left out: the machine's record, not a setting (a decode on another machine adds `decoded_on` to it).
    written = json.loads(json.dumps(saved.video_metadata, sort_keys=True, default=str))  # as written
    return without_ran_on(stored) == without_ran_on(written)


def _resume_advice(saved: SavedLatents, audience: Audience) -> str:
    """How to go on with the sampling of a stopped run's latents, in `audience`'s words: `motif-lite decode`'s user
    resumes with run's flag, a Python caller (who has `saved` at hand) with the pipeline."""
    if audience is Audience.FLAGS:
        return f"motif-lite run --resume {quoted(str(saved.file or 'FILE'))}"
    return "pipe.generate(GenerationRequest(**saved.request), resume=saved)"


def replanned(job: DecodeJob, vram_gib: float) -> DecodePlan:
    """`job`'s decode planned again, as `prepare_decode` plans it, for a budget of `vram_gib` (the figure a decode
    that ran out of memory is advised); raises `MotifLiteError` when nothing fits it."""
    vae_config = WanVAEConfig.from_json(job.root / "vae" / "config.json")
    budget = device_budget(job.device, vram_gib)
    return plan_decode(
        job.saved.width, job.saved.height, job.saved.frames, vae_config, budget, str(job.device), job.dtype
    )


def _extended_clip(saved: SavedLatents) -> tuple[Clip | None, tuple[str, ...]]:
    """The clip an extension's latents go on from (`saved.clip`), read again to write its frames first; where it
    cannot be used now (moved, deleted, replaced by a clip of another size, or made again since: another last frame
    than the checksum the file keeps), the new part alone, with a note: the decode itself is what the user asked
    for, and the clip is theirs to join by hand."""
    from motif_lite.io.image import image_sha256

    if saved.clip is None:
        return None, ()
    try:
        clip = read_clip(saved.clip)
    except ClipError as exc:
        why = str(exc)
    else:
        expected = (saved.run or {}).get("clip_sha256")  # None in a file of an older motif-lite: nothing to compare
        if clip.size != (saved.width, saved.height):
            why = f"it is {clip.width}x{clip.height} now, the run {saved.width}x{saved.height}"
        elif expected is not None and image_sha256(last_frame_file(saved.clip)) != expected:
            # Made again since (a chain's earlier link): its frames would begin a video whose new part follows another.
            why = "its last frame, the run's first, holds another picture since the run"
        else:
            return clip, ()
    return None, (
        f"the clip this run went on from cannot be used ({why}): the video holds the new part only, whose first "
        f"frame is the clip's last; put the clip back at {saved.clip} and decode again to have them joined",
    )


def run_decode(job: DecodeJob, progress: ProgressFn | None = None) -> Path:
    """Load the VAE's decoder only (no transformer, no text encoder), decode, write `job.output`; return the file
    written (`decode_video`: another name when `job.output` could not be replaced)."""
    vae = load_vae(job.root, dtype=job.dtype, device=job.device, encoder=False)
    saved = job.saved
    latents = saved.latents.to(job.device)
    return decode_video(
        vae,
        latents,
        job.output,
        saved.fps,
        decoded_metadata(saved.video_metadata, job.device),  # `ran_on` names this machine where it decodes another's
        progress or _silent,
        mode=VAEMode() if job.plan is None else job.plan.vae,
        clip=job.clip,
        crf=job.crf,
    )


def _vae_checkpoint(
    saved: SavedLatents,
    model: str | Path | None,
    vae_file: str | Path | None,
    download: bool = True,
    audience: Audience = Audience.RUN_OR_PYTHON,
) -> Path:
    """`locate_vae` of the given checkpoint / VAE file, else of the run's (as the file says), else the official;
    the flags to give named in `audience`'s words (`prepare_decode`)."""
    if vae_file is not None:  # the user's own file: what is wrong with it is not the latents file's doing
        check_vae_file(vae_file)
    try:
        return locate_vae(model or saved.model or MOTIF_REPO, vae_file if vae_file is not None else saved.vae, download)
    except CheckpointError as exc:
        if model is not None or (saved.model is None and saved.vae is None):
            raise
        # The run's folder or VAE file may have moved since (or the latents came from another machine).
        where = Spelling("-m or --vae", "model= or vae_file=", "-m or --vae").to(audience)
        raise CheckpointError(f"{exc} (the checkpoint or VAE file of the run, as the latents file says: give "
                              f"its place now with {where})") from None  # fmt: skip


def check_latents_fit(
    saved: SavedLatents, vae_config: WanVAEConfig, audience: Audience = Audience.RUN_OR_PYTHON
) -> None:
    """`LatentsFileError` unless the latents have the VAE's channels and the shape of the video they describe; the
    flags to give named in `audience`'s words (`prepare_decode`)."""
    _, channels, frames, h, w = saved.latents.shape
    if channels != vae_config.z_dim:
        raise LatentsFileError(
            f"the latents have {channels} channels, but this VAE takes {vae_config.z_dim}: they come from another "
            f"model; decode them with the checkpoint ({_named('-m', 'model=', audience)}) or VAE file "
            f"({_named('--vae', 'vae_file=', audience)}) of the run that saved them"
        )
    expected = vae_config.latent_shape(saved.width, saved.height, saved.frames)[2:]
    if (frames, h, w) != expected:
        raise LatentsFileError(
            f"the latents' shape {tuple(saved.latents.shape)} does not fit a {saved.width}x{saved.height} video of "
            f"{saved.frames} frames with this VAE (latent frames, height, width {expected}): the file is damaged or "
            "comes from another model"
        )


def _named(flag: str, keyword: str, audience: Audience) -> str:
    """A flag inside a message's own parentheses in `audience`'s words: '-m, in Python model=', or the flag alone."""
    return flag if audience is Audience.FLAGS else f"{flag}, in Python {keyword}"


def _silent(stage: str, done: int, total: int) -> None:
    """No progress report."""
