"""Placeholders in an output's file name (`fox_{seed}.mp4`): other tools fill them in, and a script's forgotten
f-string leaves them, but motif-lite takes a name as written. `motif-lite run -o` refuses them with the shell's way
to put the value in the name (cli/run_request.py), a request's `output=` with Python's (here), which also says
another tool's frame number in a .png name (`fox_{frame}.png`) in Python's words, as `check_output_path` says it to
run -o."""

from __future__ import annotations

import os
import re
from pathlib import Path

from motif_lite.paths import user_path
from motif_lite.request.terms import RequestError

# The placeholders that other tools' output names, and scripts' forgotten f-strings, hold, by what they stand for.
# Other braces (`fox_{v2}.mp4`) are part of a name, and so are str.format's positional fields (`{}`, `{0}`): no
# f-string leaves one (f"{}" does not compile), and without a name nothing says what value was meant.
SEED_PLACEHOLDERS = ("seed",)
COUNTER_PLACEHOLDERS = ("n", "i", "idx", "index", "count", "counter", "num", "number", "batch", "batch_num")
PROMPT_PLACEHOLDERS = ("prompt",)
DATE_PLACEHOLDERS = ("date", "time", "datetime", "timestamp", "now")
KNOWN_PLACEHOLDERS = frozenset(SEED_PLACEHOLDERS + COUNTER_PLACEHOLDERS + PROMPT_PLACEHOLDERS + DATE_PLACEHOLDERS)
# A field may convert (`{seed!r}`) and format (`{seed:04d}`) its value, as an f-string's.
_NAME_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)(?:![rsa])?(?::[^{}]*)?\}")
# A frame number's placeholder, in a video file's name: a video holds all its frames.
_FRAME_PLACEHOLDER = re.compile(r"\{frame(?:_?(?:number|num|index|idx))?(?::[^{}]*)?\}", re.IGNORECASE)


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


def check_no_placeholder(output: object, taken_output: str | Path | None = None, frames: int | None = None) -> bool:
    """True, or a `RequestError` for a request's `output` that holds a placeholder (`output="fox_{seed}.mp4"`, an
    f-string's missing f): the file would be named with the braces, and each call of a loop would replace the last
    one's video; or another tool's frame number in a .png name of a video of `frames` frames (`fox_{frame}.png`).
    Says how to put the value in the name in Python. `taken_output`: an output the caller takes as named
    (`GenerationRequest.resolve`'s), which passes."""
    from motif_lite.io.video import foreign_frame_number_problem  # torch and Pillow: once a request is resolved

    if not isinstance(output, str | Path):  # `check_output_path` names what output takes
        return True
    if taken_output is not None and same_output(output, taken_output):
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
            f"an f-string: output={_as_f_string(text)}{seed}{_frame_pattern_advice(text, found)}",
            ("output",),
        )
    if (foreign := foreign_frame_number_problem(user_path(text), frames, _in_python)) is not None:
        raise RequestError(foreign, ("output",))  # as check_output_path says it to run -o, in Python's words
    if (frame := video_frame_placeholder(text)) is not None:
        pattern = Path(text).with_name(Path(text).stem.replace(frame[0], "%03d") + ".png")
        raise RequestError(
            f"output {text!r} has {frame[0]}, which motif-lite does not fill in: a video file holds all its "
            f"frames; for a PNG per frame give output={str(pattern)!r}",
            ("output",),
        )
    return True


def same_output(a: str | Path, b: str | Path) -> bool:
    """Whether two spellings of an output name one file: `./fox.mp4` and its absolute path, `a/../fox.mp4`, a
    path through a symlinked folder. Resolved, not only made absolute: `resolve` follows the links of the part of
    the path that exists and reads each `..` after them as the file system does, so a file not written yet
    compares right too (`link/../fox.mp4` is beside the link's target, not beside the link). `os.path.realpath`,
    not `Path.resolve`: on a symlink loop (`loopa` -> `loopb` -> `loopa`) resolve raises RuntimeError on Python
    3.11, where realpath leaves the loop's link unresolved, and the output check then says the folder is missing."""
    return Path(os.path.realpath(user_path(a))) == Path(os.path.realpath(user_path(b)))


def _as_f_string(text: str) -> str:
    """`text` as the f-string that fills in its file name's known placeholders: every other brace (`fox_{v2}`, a
    folder's, a lone one) is doubled, so that it stays part of the name and the advice is valid Python."""
    name = Path(text).name
    start = len(text) - len(name) if text.endswith(name) else len(text)
    fields = [m.span() for m in _NAME_PLACEHOLDER.finditer(text, start) if m[1].lower() in KNOWN_PLACEHOLDERS]
    parts, at = [], 0
    for begin, end in fields:
        parts += [_doubled_braces(text[at:begin]), text[begin:end]]
        at = end
    parts.append(_doubled_braces(text[at:]))
    return "f" + repr("".join(parts))


def _doubled_braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _frame_pattern_advice(text: str, found: re.Match) -> str:
    """For a .png name with a counter (`frame_{i}.png`), most likely meant as the frame number: a PNG per frame
    takes printf's pattern, which motif-lite fills in (an f-string names one image, which only a 1-frame video is)."""
    name = Path(text).name
    if Path(name).suffix.lower() != ".png" or found[1].lower() not in COUNTER_PLACEHOLDERS or "%" in name:
        return ""
    frames = Path(text).with_name(name.replace(found[0], "%03d", 1))
    return (
        f" (one image per call: a 1-frame video, frames=1); for a PNG per frame give output={str(frames)!r} "
        "(motif-lite fills in the frame number)"
    )


def _in_python(output: Path) -> str:
    return f"output={str(output)!r}"
