"""The settings motif-lite stored in an output file it wrote, read back (`motif-lite run --settings-from FILE`).

`write_video` stores them as one JSON string in each format's comment: the container's `comment` tag (.mp4, .mkv,
.mov, .webm; read here with `ffmpeg -f ffmetadata`, the ffmpeg of imageio-ffmpeg), the `comment` text chunk of a
PNG, the GIF comment and the EXIF ImageDescription of a WebP (read with Pillow).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from motif_lite.choices import FFMPEG_FORMATS, LATENTS_SUFFIX, VIDEO_EXTENSIONS
from motif_lite.errors import MotifLiteError
from motif_lite.io.ffmpeg import file_argument, find_ffmpeg
from motif_lite.io.staging import first_frame_number, frame_file, is_frame_sequence
from motif_lite.io.video import EXIF_IMAGE_DESCRIPTION
from motif_lite.json_values import NotAJSONObject, parse_json_object
from motif_lite.paths import user_path
from motif_lite.shell_syntax import quoted

READ_TIMEOUT_S = 30.0  # ffmpeg reads only the container's header: seconds at most, even for a long video
_TAKES = "--settings-from takes a video or image that motif-lite wrote"
# What another image tool keeps in a PNG's text chunks, by the chunk's name: the tool, what it keeps, and where its
# prompt shows. Its settings are for another model (its seed gives other noise here): the prompt is what carries
# over.
_COMFYUI = ("ComfyUI", "its workflow", "open the image in ComfyUI to see them")
_OTHER_TOOLS = {
    "workflow": _COMFYUI,  # the graph; "prompt" is the same run in ComfyUI's API format
    "prompt": _COMFYUI,
    "parameters": (
        "the AUTOMATIC1111 web UI (or Forge, or another tool writing its format)",
        "its settings",
        "the chunk's first lines are the prompt, and the negative prompt follows 'Negative prompt:'",
    ),
}


class SettingsFileError(MotifLiteError):
    """A file whose motif-lite settings cannot be read: not there, not a format motif-lite writes, or without them."""


@dataclass(frozen=True)
class StoredSettings:
    """The settings a motif-lite output file stores (`motif_lite.pipeline.metadata.stored_settings` wrote them)."""

    file: Path
    values: dict

    @property
    def writer(self) -> str:
        """Who wrote the file, as messages name it: "motif-lite 0.1.0"; a file from before the version was stored
        (2026-12-02) names none, which "motif-lite unknown" told no one."""
        if "version" not in self.values:
            return "an older motif-lite, which stored no version"
        return f"motif-lite {self.values['version']}"


def read_settings(path: str | Path) -> StoredSettings:
    """The motif-lite settings stored in the output file at `path`; `SettingsFileError` (one line saying what to do)
    for a file that is not there, a latents file, a format motif-lite does not write, or a file without them."""
    path = user_path(path)
    if path.name.endswith(LATENTS_SUFFIX):  # first: it may be there or not, the answer is another command
        pasted = quoted(str(path))
        raise SettingsFileError(
            f"{path} is a latents file a run kept, not a video: motif-lite run --resume {pasted} goes on with a "
            f"stopped run, motif-lite decode {pasted} makes the video of a failed decode"
        )
    if path.is_dir():
        raise SettingsFileError(f"{path} is a folder ({_TAKES}): give one of its files; of a PNG sequence, one frame, "
                                "e.g. fox_000.png")  # fmt: skip
    if not path.is_file():
        frame = _first_frame(path)
        if frame is None:
            raise SettingsFileError(f"no such file: {path} ({_TAKES})")
        # The pattern a run was given (-o fox_%03d.png), as --extend takes it in a chain of extensions: every frame
        # keeps the settings, so its first frame's are the sequence's.
        path = frame
    suffix = path.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise SettingsFileError(f"{path}: {suffix or 'a file without extension'} is no format motif-lite writes "
                                f"({_TAKES}: {', '.join(VIDEO_EXTENSIONS)})")  # fmt: skip
    comment, chunks = (_ffmpeg_comment(path), set()) if suffix in FFMPEG_FORMATS else _pillow_text(path)
    values = _motif_lite_settings(comment)
    if values is None and (tool := _other_tool(path, chunks)) is not None:
        raise SettingsFileError(tool)
    if values is None:
        raise SettingsFileError(
            f"{path} holds no motif-lite settings: another tool made it, or rewrote it without its comment (motif-lite "
            "stores a run's settings there); give a video or image motif-lite wrote"
        )
    return StoredSettings(path, values)


def _other_tool(path: Path, chunks: set[str]) -> str | None:
    """What to tell of a PNG that another image tool made (ComfyUI, AUTOMATIC1111: `_OTHER_TOOLS`), naming the tool
    and what to do with its prompt, from the names of its text chunks; None for one whose chunks name none."""
    chunk = next((name for name in _OTHER_TOOLS if name in chunks), None)
    if chunk is None:
        return None
    tool, kept, where = _OTHER_TOOLS[chunk]
    return (
        f"{path} was made by {tool}: it keeps {kept} ('{chunk}' text chunk), not motif-lite's settings, which are "
        f"all --settings-from reads. Give its prompt with -p and its negative prompt with -n ({where}); its seed, "
        "steps and sampler are another model's"
    )


def _first_frame(pattern: Path) -> Path | None:
    """The first frame there is of the PNG sequence `pattern` names, found as --extend finds it
    (`first_frame_number`: fox_%03d.png gives fox_000.png, else fox_001.png, ...), or None (no pattern, or no
    such frame)."""
    if not is_frame_sequence(pattern):
        return None
    try:
        number = first_frame_number(pattern)
    except (TypeError, ValueError):  # another % in the name
        return None
    return None if number is None else frame_file(pattern, number)


def _motif_lite_settings(comment: str | None) -> dict | None:
    """The settings in a file's comment, or None when it holds none of motif-lite's."""
    try:
        values = parse_json_object(comment) if comment else None
    except NotAJSONObject:  # another tool's comment
        return None
    if not isinstance(values, dict) or values.get("software") != "motif-lite":
        return None
    return _with_guidance_object(values)


# The files of motif-lite's first days (up to 2026-11-30, cc3f50b; they store no version) hold the guidance as its
# dataclass's repr, "APGConfig(scale=8.0, norm_threshold=12.0, ...)" (json.dumps' default=str), where later ones hold
# the object {"method": "APGConfig", "scale": 8.0, ...}: the same class and parameter names, so read as that object.
_GUIDANCE_REPR = re.compile(r"(APGConfig|CFGConfig)\((.{0,1000})\)", re.DOTALL)


def _with_guidance_object(values: dict) -> dict:
    """`values` with an older file's guidance repr as the object this version stores; other values as they are (a
    string that is no such repr is then named as an edit or damage, as any other)."""
    text = values.get("guidance_config")
    if "version" in values or not isinstance(text, str) or not (match := _GUIDANCE_REPR.fullmatch(text)):
        return values
    try:
        call = ast.parse(f"_({match.group(2)})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:  # "scale=1)+_(eta=2": no repr, nor a value by position
            return values
        parameters = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
        if None in parameters:  # **mapping
            return values
        # The tuples as the JSON lists stored now; a literal JSON cannot hold (1j, a set, bytes) is no repr any
        # version wrote, so damage as well.
        stored = json.loads(json.dumps({"method": match.group(1), **parameters}))
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return values
    return {**values, "guidance_config": stored}


def _ffmpeg_comment(path: Path) -> str | None:
    """The `comment` tag of a video's container, as `ffmpeg -i FILE -f ffmetadata -` prints it (escapes undone)."""
    command = [find_ffmpeg(), "-v", "error", "-nostdin", "-i", file_argument(path), "-f", "ffmetadata", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=READ_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SettingsFileError(f"cannot read {path}: ffmpeg gave no answer in {READ_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise SettingsFileError(f"cannot read {path} as a video" + (f": ffmpeg said: {said[-1]}" if said else ""))
    return ffmetadata_value(done.stdout.decode("utf-8", errors="replace"), "comment")


def ffmetadata_value(text: str, key: str) -> str | None:
    """The value of `key` (in any case: Matroska's tags are upper case) in the global section of an FFMETADATA file,
    with its escapes undone (`=`, `;`, `#`, `\\` and a newline each come after a `\\`,
    `io.ffmpeg_writer._ffmetadata`)."""
    pattern = rf"^{re.escape(key)}=((?:[^\\\n]|\\.|\\\n)*)"
    header = text.split("\n[", 1)[0]  # the global section: a stream's or chapter's starts with "["
    match = re.search(pattern, header, flags=re.MULTILINE | re.IGNORECASE)
    return None if match is None else re.sub(r"\\(.)", r"\1", match.group(1), flags=re.DOTALL)


def _pillow_text(path: Path) -> tuple[str | None, set[str]]:
    """The comment Pillow reads from a PNG frame, a GIF or a WebP, where `io.video` writes it, and the names of a
    PNG's text chunks (where other image tools keep their settings: `_other_tool`), from one read of the file."""
    import PIL.Image

    try:
        with PIL.Image.open(path) as image:
            if image.format == "WEBP":
                comment = image.getexif().get(EXIF_IMAGE_DESCRIPTION)
            else:  # PNG: a text chunk; GIF: its comment extension (bytes)
                comment = image.info.get("comment")
            chunks = set(image.info) if image.format == "PNG" else set()
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a file that is no image it reads
        raise SettingsFileError(f"cannot read {path} as an image: {exc}") from None
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", errors="replace")
    return comment, chunks


def first_frame_needed(stored: StoredSettings, image: object) -> str:
    """Why an image-to-video file's settings need its first frame (`image`: the name the file keeps) given again with
    -i, naming the image's SHA-256 where the file keeps it too (a server's upload): run's and verify's refusal."""
    checksum = stored.values.get("image_sha256")
    if checksum is None:
        return (f"{stored.file.name} was made image-to-video from {image}, and the file keeps the image's name only: "
                "give it again with -i PATH")  # fmt: skip
    return (f"{stored.file.name} was made image-to-video from a first frame the file keeps the name and SHA-256 of "
            f"only: give the first frame again with -i PATH ({image}, sha256 {checksum})")  # fmt: skip
