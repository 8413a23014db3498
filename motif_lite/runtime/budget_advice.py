"""Budget advice: what to tell the user of a video or a decode that no plan fits into the device budget: the
--vram that holds its smallest plan and the free GPU memory that budget needs, the longest and the largest video
of its shape that fit, and decoding on the CPU.

The memory planner (runtime/planner.py) words its refusals with them; the CLI and the memory advice give the same
figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from motif_lite.devices import CPU_DEVICE
from motif_lite.errors import Audience, Spelling
from motif_lite.units import RESERVED_RATIO, GiB
from motif_lite.vae.config import WanVAEConfig


def decode_on_the_cpu(audience: Audience = Audience.RUN_OR_PYTHON) -> str:
    """'decode on the CPU with --device cpu', the device named in `audience`'s words: both spellings to a caller of
    the Python API (`prepare_decode`), the flag alone to `motif-lite decode`'s user."""
    return f"decode on the CPU with {CPU_DEVICE.to(audience)}"


def decode_advice(audience: Audience = Audience.RUN_OR_PYTHON) -> str:
    """What to do when a decode does not fit the GPU's free memory, in `audience`'s words; the caller knows better
    where the budget came from (a --vram budget, the CPU's)."""
    return f"free device memory (close other programs using it) or {decode_on_the_cpu(audience)}"


SMALLEST_ADVISED = 128  # pixels on the longer side: the smallest size the advice for a too-large video names


def what_fits(
    fits: Callable[[int, int, int, bool], bool],
    width: int,
    height: int,
    frames: int,
    vae_config: WanVAEConfig,
    step: int,
) -> str:
    """Advice for a video too large for the budget: the most frames at this size, and the largest size of this
    aspect (`step` pixels apart on the longer side: the size multiple, 16) at this length, that `fits` (device
    peak only; its last argument False: without Triton's tuning buffer)."""
    ways = []
    # k + 1 latent frames (4k+1 frames), up to one latent frame fewer than this video's
    top = vae_config.latent_frames(frames) - 2
    longest = _largest(lambda k, tuning: fits(width, height, vae_config.video_frames(k + 1), tuning), top)
    if longest is not None:
        ways.append(f"{width}x{height}x{vae_config.video_frames(longest + 1)}")

    def scaled(i: int) -> tuple[int, int]:  # the i-th smaller size of this aspect, `step` pixels apart on its long side
        long, short = max(width, height), min(width, height)
        size = (long - step * (i + 1), max(step, round((long - step * (i + 1)) * short / long / step) * step))
        return size if width >= height else size[::-1]

    count = max(0, (max(width, height) - SMALLEST_ADVISED) // step)  # sizes down to SMALLEST_ADVISED on the longer side
    smaller = _largest(lambda i, tuning: fits(*scaled(count - 1 - i), frames, tuning), count - 1)  # 0: the smallest
    if smaller is not None:
        ways.append("{}x{}x{}".format(*scaled(count - 1 - smaller), frames))
    if not ways:
        return "Nothing shorter or smaller of this shape fits this budget."
    return f"At this budget {' or '.join(ways)} fits."


def vram_for(peak_bytes: int) -> float:
    """The --vram (GiB, 2 decimals, rounded up) whose budget holds `peak_bytes`."""
    return math.ceil(peak_bytes / GiB * 100) / 100


def free_for(vram_gib: float) -> float:
    """The free GPU memory (GiB, 2 decimals, rounded up) a budget of `vram_gib` needs: what the allocator reserves
    on top (a run without --vram plans for the free memory / RESERVED_RATIO)."""
    return math.ceil(vram_gib * RESERVED_RATIO * 100) / 100


def more_budget(peak_bytes: int, cuda: bool = True, audience: Audience = Audience.RUN_OR_PYTHON) -> str:
    """How to plan a video whose smallest plan peaks at `peak_bytes`: the --vram that holds it (in `audience`'s
    words), and on a GPU (`cuda`) the free memory a run needs for that budget."""
    vram, free = vram_for(peak_bytes), free_for(vram_for(peak_bytes))
    # No field of the server's API sets a budget: a server's is its operator's `serve --vram`.
    flag = Spelling(f"--vram {vram:.2f}", f"vram_gib={vram:.2f}", f"--vram {vram:.2f}").to(audience)
    if not cuda:
        return f"Or give it more: {flag} or more."
    without = Spelling("--vram", "vram_gib", "--vram").to(audience)  # a sentence of its own: no nested brackets
    return (
        f"Or give it more: {flag} or more, which needs {free:.2f} GiB free on the GPU (close what holds GPU "
        f"memory). Without {without} a run plans for the free memory / {RESERVED_RATIO:g}."
    )


def _largest(fits: Callable[[int, bool], bool], top: int) -> int | None:
    """The largest i in 0..top with fits(i, True); None if none. Peaks grow with the size but for Triton's tuning
    buffer, which only some token counts bring (docs/memory.md): fits(i, False), without it, holds up to some i and
    not above, so it is bisected, and the sizes below its limit are tried down to the first that fits with it."""
    if top < 0 or not fits(0, False):
        return None
    low, high = 0, top  # fits(low, False) holds
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle, False) else (low, middle - 1)
    return next((i for i in range(low, -1, -1) if fits(i, True)), None)
