"""Placeholders in an output's file name (`fox_{seed}.mp4`): other tools fill them in, and a script's forgotten
f-string leaves them, but motif-lite takes a name as written. `motif-lite run -o` refuses them with the shell's way
to put the value in the name (cli/run_request.py), a request's `output=` with Python's (here)."""

from __future__ import annotations

import re
from pathlib import Path

from motif_lite.request.terms import RequestError

# The placeholders that other tools' output names, and scripts' forgotten f-strings, hold, by what they stand for.
# Other braces (`fox_{v2}.mp4`) are part of a name.
SEED_PLACEHOLDERS = ("seed",)
COUNTER_PLACEHOLDERS = ("n", "i", "idx", "index", "count", "counter", "num", "number", "batch", "batch_num")
PROMPT_PLACEHOLDERS = ("prompt",)
DATE_PLACEHOLDERS = ("date", "time", "datetime", "timestamp", "now")
KNOWN_PLACEHOLDERS = frozenset(SEED_PLACEHOLDERS + COUNTER_PLACEHOLDERS + PROMPT_PLACEHOLDERS + DATE_PLACEHOLDERS)
_NAME_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
# A frame number's placeholder, in a video file's name: a video holds all its frames.
_FRAME_PLACEHOLDER = re.compile(r"\{frame(?:_?(?:number|num|index|idx))?\}", re.IGNORECASE)


def name_placeholder(output: str | Path) -> re.Match | None:
    """The first known placeholder in the file name of `output` (`{seed}` in `renders/fox_{seed}.mp4`; group 1 is
    its name), else None. Only the file's name is read: a folder named `{v2}` is there already."""
    found = _NAME_PLACEHOLDER.finditer(Path(output).name)
    return next((match for match in found if match[1].lower() in KNOWN_PLACEHOLDERS), None)


def video_frame_placeholder(output: str | Path) -> re.Match | None:
    """A frame number's placeholder (`{frame}`) in the name of a video file (not a .png's: `check_output_path`
    says a PNG sequence's pattern), else None."""
    name = Path(output).name
    frame = _FRAME_PLACEHOLDER.search(name)
    return frame if frame is not None and Path(name).suffix.lower() != ".png" else None


def check_no_placeholder(output: object) -> bool:
    """True, or a `RequestError` for a request's `output` that holds a placeholder (`output="fox_{seed}.mp4"`, an
    f-string's missing f): the file would be named with the braces, and each call of a loop would replace the last
    one's video. Says how to put the value in the name in Python."""
    if not isinstance(output, str | Path):  # `check_output_path` names what output takes
        return True
    text = str(output)
    if (found := name_placeholder(text)) is not None:
        seed = (
            " (give seed=seed too; a seed left out is drawn, result.request.seed holds it, and the file keeps it in "
            "its metadata)"
            if found[1].lower() in SEED_PLACEHOLDERS
            else ""
        )
        raise RequestError(
            f"output {text!r} has {found[0]}, which motif-lite does not fill in: the file would be named with the "
            "braces, and each call of a loop would replace the last one's video; make the name in your code, with "
            f"an f-string: output=f{text!r}{seed}",
            ("output",),
        )
    if (frame := video_frame_placeholder(text)) is not None:
        frames = Path(text).with_name(Path(text).stem.replace(frame[0], "%03d") + ".png")
        raise RequestError(
            f"output {text!r} has {frame[0]}, which motif-lite does not fill in: a video file holds all its "
            f"frames; for a PNG per frame give output={str(frames)!r}",
            ("output",),
        )
    return True
