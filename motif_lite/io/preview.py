"""Preview files: the middle frame as PNG or every frame as an animated WebP, replaced atomically so that an image
viewer watching the file never reads half of one. `PreviewFile` writes them on a background thread, so sampling
only hands the frames over."""

from __future__ import annotations

import contextlib
import logging
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL.Image

from motif_lite.errors import MotifLiteError, counted
from motif_lite.io.staging import check_writable_folder, closed_on_the_way
from motif_lite.paths import file_in_the_way, user_path, windows_long_path_problem, windows_name_problem
from motif_lite.shell_syntax import on_windows

PREVIEW_EXTENSIONS = (".png", ".webp")
SD_CPP_PREVIEW_METHODS = ("none", "proj", "tae", "vae")  # what stable-diffusion.cpp's --preview takes
PREVIEWS_PER_RUN = 4  # the default spacing: a quarter of the steps, so up to 3 previews and then the video
logger = logging.getLogger(__name__)


def preview_interval(steps: int, every: int | None) -> int:
    """The steps between previews: `every`, else 1/PREVIEWS_PER_RUN of the steps, rounded up. Previews come after
    every such step but the last (the video itself follows it): at most PREVIEWS_PER_RUN - 1 by default."""
    return every or max(1, math.ceil(steps / PREVIEWS_PER_RUN))


def preview_steps(steps: int, every: int | None) -> list[int]:
    """The steps after which a `steps`-step run writes a preview (the pipeline's rule: every interval-th step but
    the last)."""
    interval = preview_interval(steps, every)
    return list(range(interval, steps, interval))


def previews_after(steps: int, every: int | None, done: int) -> list[int]:
    """The steps after which a `steps`-step run resumed after step `done` writes a preview (`preview_steps`, past
    `done`); none for a resumed run past the last of them, or one whose sampling is done."""
    return [step for step in preview_steps(steps, every) if step > done]


def preview_note(path: str | Path, steps: int, every: int | None, done: int = 0) -> str:
    """What a run with `--preview path` writes and when: the terminal shows nothing else of the previews, and a
    user without an image viewer open may not know where to look. `done`: the steps a resumed run's stopped run
    sampled, after which it makes none of its previews."""
    after = previews_after(steps, every, done)
    if not after:  # a resumed run past the last preview step
        return (
            f"previews: none to {path}: this run goes on after step {done} of {steps}, past the last step a preview "
            "comes after (never after the last step)"
        )
    when = (
        ", ".join(map(str, after))
        if len(after) <= 5
        else f"{after[0]}, {after[1]}, ..., {after[-1]} ({len(after)} in all)"
    )
    what = "the middle frame" if Path(path).suffix.lower() == ".png" else "every latent frame, animated"
    return (
        f"previews: {path} ({what}, colours and layout rather than detail) is replaced after step"
        f"{'s' if len(after) > 1 else ''} {when} of {steps}; the last one stays after the run"
        + (f" (this run goes on after step {done})" if done else "")
    )


def check_previews_come(steps: int, every: int | None) -> None:
    """Refuse (`MotifLiteError`) a preview interval with which a `steps`-step run writes no preview at all: the
    file asked for would never come, which is better said before the run than after it."""
    if preview_interval(steps, every) < steps:
        return
    if every is None:  # the default interval is below any number of steps but 1
        raise MotifLiteError(f"--preview with --steps {steps} would write no preview: previews come between steps, "
                             "never after the last one; give --steps 2 or more, or leave out --preview")  # fmt: skip
    fix = f"give --preview-every {steps - 1} or less" if steps > 1 else "give --steps 2 or more"
    raise MotifLiteError(f"--preview-every {every} is not below --steps {steps}: previews come every K steps and never "
                         f"after the last one, so none would be written; {fix}")  # fmt: skip


def check_preview_path(path: str | Path) -> Path:
    """The preview path, after checking its format and folder, one in which a file can be created (a
    `MotifLiteError` otherwise). On Windows, a name it refuses is refused here, as -o's is: each preview's write
    would fail during the run, a warning at a time."""
    given, path = str(path), user_path(path)
    if path.suffix.lower() not in PREVIEW_EXTENSIONS:
        method = ""  # stable-diffusion.cpp's --preview takes a method; its file is --preview-path
        if str(path).lower() in SD_CPP_PREVIEW_METHODS:
            method = (" (stable-diffusion.cpp's preview method is not chosen here: previews are always a linear map "
                      "of the latents to RGB, as its proj)")  # fmt: skip
        raise MotifLiteError(f"preview must be a .png (middle frame) or .webp (every frame) file, got {path}: "
                             f"--preview names the file to write, e.g. --preview preview.webp{method}")  # fmt: skip
    try:
        is_folder = path.is_dir()
    except PermissionError:  # a folder on its way this process may not enter: Python 3.10-3.13 raise, not False
        raise MotifLiteError(
            f"preview {path}: this process may not enter {closed_on_the_way(path)} (it needs x, search permission "
            "there): write the preview to another folder"
        ) from None
    if is_folder:
        raise MotifLiteError(f"preview {path} is a folder; name a file in it, e.g. {path / 'preview.webp'}")
    # After the checks above, which refuse a path with no file name (`.`, `C:\`), and with it a device's bare
    # name (`nul`): the name Windows' refusal suggests in its place then passes them all.
    if on_windows():
        partial = len(partial_preview(path).name) - len(path.name)
        if windows := windows_name_problem(given, "--preview") or windows_long_path_problem(given, partial):
            raise MotifLiteError(f"preview {windows}")
    if (blocker := file_in_the_way(path.parent)) is not None:
        raise MotifLiteError(f"preview {path}: {blocker} is a file, not a folder: write the preview to another folder")
    if not path.parent.is_dir():  # as for -o: the run does not create folders
        raise MotifLiteError(f"preview {path}: the folder {path.parent} does not exist; create it first")
    check_writable_folder(path.parent, "preview folder")  # by creating a file there, as for -o
    return path


def partial_preview(path: Path) -> Path:
    """The name a preview is written under first, then renamed to `path`: no viewer reads half of one."""
    return path.with_name(f".{path.name}.partial")


def write_preview(frames: np.ndarray, path: Path, fps: float) -> None:
    """frames: uint8 [F, H, W, 3]. PNG gets the middle frame; WebP all frames at `fps` (fast, lossy settings)."""
    partial = partial_preview(path)
    images = [PIL.Image.fromarray(frame) for frame in frames]
    try:
        if path.suffix.lower() == ".png":
            images[len(images) // 2].save(partial, format="PNG", compress_level=1)
        else:
            options = dict(save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0)
            images[0].save(partial, format="WEBP", quality=75, method=0, **options)
        os.replace(partial, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the cleanup must not hide the reason
            partial.unlink(missing_ok=True)
        held = ""
        # os.replace's error names both files; one writing the .partial file (an antivirus holding it) names one.
        replacing = exc.filename2 is not None
        if on_windows() and isinstance(exc, PermissionError) and replacing:  # an image viewer has it open
            held = " (Windows refuses to replace a file another program has open: close it there)"
        raise MotifLiteError(f"cannot write preview {path}: {exc}{held}") from exc


class PreviewFile:
    """An `on_preview` callback (`MotifVideoPipeline.generate`) that keeps `path` rewritten on one background thread.

    Encoding a WebP of every latent frame at 720p takes a few hundred milliseconds of CPU; here it overlaps the next
    steps instead of delaying them. A preview that arrives while the previous one is still being written is dropped
    (the next one is newer anyway). A failed write warns and never stops the run; a later one that fails for the same
    reason (a viewer that holds the file open on Windows, a full disk) is counted, not said again, and `close()`
    says how many. `close()` waits for the last one, and warns when the run made no preview at all: the user asked
    for one, and a file already at `path` (an earlier run's) would otherwise pass for this run's.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = check_preview_path(path), fps
        self.dropped = 0
        self._earlier = self.path.exists()  # a file of an earlier run, which each preview replaces
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="motif-lite-preview")
        self._pending: Future | None = None
        self._failure: str | None = None  # the warning of the last failed write
        self._failed_alike = 0  # the writes after it that failed with the same warning, not said again

    def __call__(self, done: int, steps: int, frames: np.ndarray) -> None:
        if self._pending is not None and not self._pending.done():
            self.dropped += 1
            return
        self._pending = self._executor.submit(self._write, frames)

    def _write(self, frames: np.ndarray) -> None:
        try:
            write_preview(frames, self.path, self.fps)
            self._say_failed_alike()
            self._failure = None
        except MotifLiteError as exc:  # logged: the CLI prints it as a `warning:` line, as the run's other warnings
            self._failed(f"preview not written: {exc}")
        except Exception as exc:  # anything else (Pillow's encoder): kept in the Future, nobody would ever see it
            self._failed(f"preview not written: {type(exc).__name__}: {exc}")

    def _failed(self, warning: str) -> None:
        """Say `warning`, unless the last failed write said the same: then count it. A preview held open every
        --preview-every steps gave the same warning dozens of times, burying the run's progress."""
        if warning == self._failure:
            self._failed_alike += 1
            return
        self._say_failed_alike()
        self._failure = warning
        logger.warning(warning)

    def _say_failed_alike(self) -> None:
        if self._failed_alike:
            logger.warning(f"the preview was not written {counted(self._failed_alike, 'more time')} for that reason")
        self._failed_alike = 0

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._say_failed_alike()
        if self._pending is None:  # logged: the CLI prints it as a `warning:` line
            earlier = (
                f"; the {self.path.name} there is an earlier run's" if self._earlier and self.path.exists() else ""
            )
            logger.warning(
                f"no preview was written to {self.path}: previews come every --preview-every steps and never after "
                f"the last one, and this run made none (too few steps, or it stopped first){earlier}"
            )
