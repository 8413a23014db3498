"""What the request's modules share: its error, the official model's shapes and the bounds of a video, and the
names each interface (`motif-lite run`, the Python API, the server's API) gives a setting in messages."""

from __future__ import annotations

from typing import NamedTuple

from motif_lite.errors import Audience, MotifLiteError, Spelling, both_spellings


class OfficialVideo(NamedTuple):
    """A video's size and frame count."""

    width: int
    height: int
    frames: int


# The official recommended video (model card / diffusers pipeline): `GenerationRequest`'s defaults.
OFFICIAL_VIDEO = OfficialVideo(width=1280, height=736, frames=121)

# The official model's shapes, which a request is checked against before any model is loaded (and without torch,
# which importing motif_lite.vae brings): WanVAEConfig's spatial_factor x TransformerConfig's patch_size, and its
# temporal_factor (tests/test_preflight.py checks that they agree). A loaded model's shapes come from its configs.
SIZE_MULTIPLE = 16  # VAE downsampling 8 x transformer patch 2
TEMPORAL_FACTOR = 4  # the VAE compresses 4 frames into one latent frame (plus the first)
# The transformer's tokens (latent pixels / 4 x latent frames): 2**20 is 9 times the official 1280x736x121 video's
# 114,080 (3840x2176 at 121 frames fits); its attention grows with their square. A size far over it (a typo's 10**9)
# would otherwise fail to allocate its noise, a raw allocator error, before any check of the run's memory.
MAX_VIDEO_TOKENS = 2**20
# Settings named in messages as `motif-lite run`, the Python API and the server's API take them (all share these
# checks). The output is the server's own (no field of the API's): a server's job never writes over its inputs.
OUTPUT_FLAG = both_spellings("-o", "output=")
IMAGE_FLAG = Spelling("-i", "image=", "input_reference")
EXTEND_FLAG = Spelling("--extend", "extend=", "extend")
GO_ON = Spelling("motif-lite run --extend CLIP -p 'what happens next'", "extend=CLIP",
                 "a job with extend (that video's id) and a prompt of what happens next")  # fmt: skip
# GenerationRequest field -> the `motif-lite run` flag that sets it. A wrong value is named as the user of each typed
# it: '--video-frames (in Python frames) must be ...', but '--steps must be ...' where the flag is the field's name
# (and to a server's client by its API field, API_FIELDS: 'num_frames must be ...').
RUN_FLAGS = {
    "width": "-W/--width",
    "height": "-H/--height",
    "negative_prompt": "--negative-prompt",
    "frames": "--video-frames",
    "fps": "--fps",
    "steps": "--steps",
    "guidance": "--guidance",
    "cfg_scale": "--cfg-scale",
    "apg_eta": "--apg-eta",
    "apg_norm_threshold": "--apg-norm-threshold",
    "apg_momentum": "--apg-momentum",
    "flow_shift": "--flow-shift",
    "sampler": "--sampling-method",
    "seed": "--seed",
}
# GenerationRequest field -> the field of `motif-lite serve`'s API that sets it (docs/server.md): `size` holds both
# sides, `input_reference` the first frame, `extend` the id of the video to go on from.
API_FIELDS = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "width": "size",
    "height": "size",
    "frames": "num_frames",
    "fps": "fps",
    "steps": "steps",
    "guidance": "guidance_method",
    "cfg_scale": "guidance_scale",
    "apg_eta": "apg_eta",
    "apg_norm_threshold": "apg_norm_threshold",
    "apg_momentum": "apg_momentum",
    "flow_shift": "flow_shift",
    "sampler": "sampling_method",
    "seed": "seed",
    "image": "input_reference",
    "extend": "extend",
}


def setting_name(field: str, audience: Audience = Audience.RUN_OR_PYTHON) -> str:
    """A request's setting as messages name it: its run flag and, where the field is named otherwise, the field:
    '--video-frames (in Python frames)', but '--steps' and '--cfg-scale' (a Python user reads them as the keywords
    `steps` and `cfg_scale`, which no keyword can spell with dashes); to a server's client, its API field."""
    if audience is Audience.API:
        return API_FIELDS[field]
    flag = RUN_FLAGS[field]
    return flag if flag == "--" + field.replace("_", "-") else both_spellings(flag, field)


class RequestError(MotifLiteError, ValueError):
    """A generation setting is invalid (reported before any model is loaded). `fields`: the `GenerationRequest`
    fields found invalid, in the order of the message's lines (empty where no one field is at fault), so that the
    server can name the parameter."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


def frames_flag(frames: int, audience: Audience) -> str:
    """A frame count as `motif-lite run` (`--video-frames`), the Python API (`frames=`) and the server's API
    (`num_frames`) are given it."""
    return Spelling(f"--video-frames {frames}", f"frames={frames}", f"num_frames {frames}").to(audience)


def extended_frames(frames: int, clip_frames: int | None) -> int:
    """The frames of a video that goes on from a clip of `clip_frames` (None: from none) with `frames` of its own:
    the clip's, then the new ones but their first, which is the clip's last frame."""
    return frames if clip_frames is None else clip_frames + frames - 1


def video_seconds(frames: int, fps: float) -> float:
    """A video's length in seconds, to the hundredth, as the docs and the API's `seconds` count it: from its first
    frame to its last, (frames - 1) / fps (121 frames at 24 fps are 5 s); `frames_for_seconds` counts back."""
    return round((frames - 1) / fps, 2)


def positive_int(value: object) -> bool:
    """Whether `value` is an int of 1 or more (a bool is none)."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


# The largest videos the model was trained on (its last stages: 1280x736, 121 frames); beyond them it extrapolates.
TRAINED_FRAMES = 121
TRAINED_PIXELS = 1280 * 736
TRAINED_FPS = 24.0  # the rate of its training clips: the pace of the motion it makes, whatever --fps plays it at
