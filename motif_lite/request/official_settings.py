"""The official recommended settings (model card, diffusers pipeline, the official ComfyUI workflows) that a request
defaults to, or that `motif_lite.settings` takes where neither the request nor the checkpoint gives one: the negative
prompt the model was trained against, the steps, and the flow shift of text-to-video and of image-to-video."""

from __future__ import annotations

# The negative prompt of the official ComfyUI workflows and the Replicate wrapper ("the model was trained against").
OFFICIAL_NEGATIVE_PROMPT = (
    "text overlay, graphic overlay, watermark, logo, subtitles, timestamp, broadcast graphics, UI elements, random "
    "letters, frozen pose, rigid, static expression, jerky motion, mechanical motion, discontinuous motion, flat "
    "framing, depthless, dull lighting, monotone, crushed shadows, blown-out highlights, shifting background, fading "
    "background, poor continuity, identity drift, deformation, flickering, ghosting, smearing, duplication, mutated "
    "proportions, inconsistent clothing, flat colors, desaturated, tonally compressed, poor background separation, "
    "exposure shift, uneven brightness, color balance shift"
)
T2V_SHIFT = 15.0  # model card / ComfyUI T2V workflow
I2V_SHIFT = 8.0  # ComfyUI I2V README and workflow
OFFICIAL_STEPS = 50  # the model card's
