"""A request's fields in groups (the guidance fields, APG's own) and as `motif-lite run` names them: the flag that
sets each field and its argparse dest."""

from __future__ import annotations

from motif_lite.request.terms import RUN_FLAGS

# The guidance fields: the method, its scale, and APG's own parameters (which CFG refuses).
APG_FIELDS = ("apg_eta", "apg_norm_threshold", "apg_momentum")
GUIDANCE_FIELDS = ("guidance", "cfg_scale", *APG_FIELDS)


def run_flag(field: str) -> str:
    """The long `motif-lite run` flag that sets a request field: RUN_FLAGS' (--width, --video-frames), else the
    field's name with dashes (--prompt, --image, --extend, --output)."""
    return RUN_FLAGS.get(field, "--" + field.replace("_", "-")).split("/")[-1]


def run_dest(field: str) -> str:
    """The argparse dest of the run flag that sets a request field: video_frames for frames, sampling_method for
    sampler, else the field's own name."""
    return run_flag(field).removeprefix("--").replace("-", "_")
