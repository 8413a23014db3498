"""`generate(resume=...)`: the sampling state a stopped run saved, checked against the request before any work."""

from __future__ import annotations

from pathlib import Path

import torch

from motif_lite.io.latents import LatentsFileError, SavedLatents, latents_path, read_latents
from motif_lite.pipeline.metadata import jsonable, stored_settings
from motif_lite.ran_on import RAN_ON_KEY
from motif_lite.request import GUIDANCE_FIELDS, GenerationRequest, RequestError
from motif_lite.sampling import SamplingState
from motif_lite.settings import Settings


def resumed_state(
    resume: SavedLatents,
    request: GenerationRequest,
    settings: Settings,
    latent_shape: tuple[int, ...],
    device: torch.device,
    dtype: torch.dtype,
    first_frame_sha256: str | None,
) -> SamplingState:
    """The sampling state `resume` holds, on `device` and in `dtype`, after checking that it continues `request`
    with `settings`, from a first frame whose file has the checksum `first_frame_sha256` (`ResolvedRequest`'s), and
    holds latents of the `latent_shape` the model samples (`RequestError` otherwise)."""
    if not isinstance(resume, SavedLatents):
        raise RequestError(f"resume takes the SavedLatents of read_latents(path), got {type(resume).__name__}")
    where = resume.file or "the saved state"
    # Every setting but the image's path (the saved request holds it absolute, the run may have had it relative) and
    # the clip's name (the server stores its upload's, `generate(stored_clip=...)`): whether there is one is
    # compared, and its contents by the checksum the run keeps (`_check_same_image`).
    saved, now = resume.video_metadata, jsonable(stored_settings(request, settings))
    saved_clip, now_clip = saved.get("extend") is not None, now.get("extend") is not None
    # The model may differ (`other_model_notes` says so), and so may the software's version and the machine (its
    # record, `ran_on`, is no setting).
    names = {"image", "image_sha256", "model", "version", "extend", "extend_sha256", RAN_ON_KEY}
    if "guidance_config" in saved and saved["guidance_config"] is None and now["guidance_config"] is None:
        # Unguided then and now, however the request says it: an older motif-lite's cfg_scale 1, or now's 0 or
        # classic CFG at 1 (`read_latents` resumes the former as the latter).
        names |= set(GUIDANCE_FIELDS)
    changed = [key for key in sorted({*saved, *now} - names) if saved.get(key) != now.get(key)]
    if saved_clip != now_clip:
        changed.insert(0, "extend")
    if changed:
        differences = "; ".join(f"{key}: {saved.get(key)!r} then, {now.get(key)!r} now" for key in changed[:4])
        raise RequestError(
            f"{where} continues another video than this request makes ({differences}): resume it with the "
            "request it holds and the checkpoint its run used"
        )
    _check_same_image(resume, request, first_frame_sha256)
    if tuple(resume.latents.shape) != latent_shape:
        raise RequestError(f"{where}: latents of shape {tuple(resume.latents.shape)}, but this model samples "
                           f"{latent_shape} for the request: they come from another model")  # fmt: skip

    _check_state_tensors(resume, latent_shape)

    def here(tensor: torch.Tensor) -> torch.Tensor:  # sigmas stay float32; latent-shaped tensors take our dtype
        return tensor.to(device, dtype if tensor.ndim else tensor.dtype)

    state = {name: here(tensor) for name, tensor in resume.state.items()}
    solver = {name.removeprefix("solver."): t for name, t in state.items() if name.startswith("solver.")}
    done = request.steps if resume.denoised else resume.progress[0]
    return SamplingState(done, here(resume.latents), solver, state.get("apg_running"))


def _check_state_tensors(resume: SavedLatents, latent_shape: tuple[int, ...]) -> None:
    """Refuse sampling-state tensors that no run saves (a damaged or hand-edited file) before any step: each is a
    float sigma (a scalar) or a float tensor of the latents' shape (a solver's previous estimate, APG's momentum)."""
    for name, tensor in resume.state.items():
        if not tensor.is_floating_point() or (tensor.ndim and tuple(tensor.shape) != latent_shape):
            raise RequestError(f"{resume.file or 'the saved state'}: its sampling state {name!r} is {tensor.dtype} "
                               f"of shape {tuple(tensor.shape)}, where a run saves floats of shape {latent_shape} (or "
                               "one number): the file is damaged; copy it again, or make the video again")  # fmt: skip


def _check_same_image(resume: SavedLatents, request: GenerationRequest, first_frame_sha256: str | None) -> None:
    """Refuse an input image other than the one the stopped run sampled from (by the checksum its file keeps; a file
    of an older motif-lite keeps none): its path is not compared, since a moved image may be given again, but a file
    overwritten in between would make a video whose first steps followed one image and the rest another."""
    had_image = resume.video_metadata.get("image") is not None
    if had_image != (request.image is not None):
        kinds = ("image-to-video", "text-to-video") if had_image else ("text-to-video", "image-to-video")
        raise RequestError(f"{resume.file or 'the saved state'} continues {kinds[0]} sampling, and this request is "
                           f"{kinds[1]}: resume it with the request it holds")  # fmt: skip
    clip = (resume.run or {}).get("clip_sha256")
    if clip is not None and request.extend is not None and first_frame_sha256 != clip:
        raise RequestError(f"{request.extend} is not the clip the run {resume.file or 'being resumed'} went on from "
                           "(its content differs since): put that clip back where it was")  # fmt: skip
    expected = (resume.run or {}).get("image_sha256")
    if expected is None or request.image is None:
        return
    if first_frame_sha256 != expected:
        raise RequestError(f"{request.image} is not the image the run {resume.file or 'being resumed'} sampled from "
                           "(its content differs since): give the run's image")  # fmt: skip


def earlier_run_note(output: str | Path) -> str | None:
    """A note when a stopped run of `output` left its work beside it (a notebook's cell stopped with Ctrl-C, then run
    again): this run starts over, and that file, which it does not touch, says how to use that work instead.
    `motif-lite run` says the same with its flags (`cli.resume.earlier_runs`)."""
    from motif_lite.decoding import video_made

    saved_path = latents_path(Path(output))
    try:
        saved = read_latents(saved_path) if saved_path.is_file() else None
    except LatentsFileError:  # not a latents file of ours, or damaged: nothing to offer
        return None
    if saved is None or saved.output != Path(output).absolute():
        return None
    if saved.sampling_done and video_made(saved):  # `motif-lite decode` made the video, and kept the file
        return (f"{saved_path} holds the latents of an earlier run of {output}, whose video is made already ({output} "
                "holds its settings; motif-lite decode keeps the file): this run samples again; delete that file "
                "once you no longer want to decode it")  # fmt: skip
    if saved.progress is None:
        return (f"{saved_path} holds the denoised latents of an earlier run of {output} whose decode failed; this run "
                "samples again. Without sampling: from motif_lite.decoding import prepare_decode, run_decode; "
                f"run_decode(prepare_decode(motif_lite.read_latents({str(saved_path)!r})))")  # fmt: skip
    if saved.sampling_done:  # saved after its last step: its decode was killed (keeping.py)
        return (f"{saved_path} holds an earlier run of {output} whose sampling finished but whose decode did not "
                "(killed, out of memory?); this run samples again. Without sampling: saved = "
                f"motif_lite.read_latents({str(saved_path)!r}); pipe.generate(motif_lite.GenerationRequest("
                "**saved.request), resume=saved)")  # fmt: skip
    done, steps = saved.progress
    return (f"{saved_path} holds an earlier run of {output} that stopped after step {done} of {steps}; this run "
            "starts again (its own state file gets another name). To go on with that one instead: saved = "
            f"motif_lite.read_latents({str(saved_path)!r}); pipe.generate(motif_lite.GenerationRequest("
            "**saved.request), resume=saved)")  # fmt: skip
