"""Going on from an uploaded video (a multipart file part: `video` on `POST /v1/videos/extensions`, the SDK's
`client.videos.extend(video=open(...))`; `extend` on `POST /v1/videos`): the file is written beside the job as
`inputs/ID.mp4` (where an extension of a server video keeps its link), with its checksum, and read and checked with
`motif-lite run --extend`'s own reading (`read_clip`) before the job is queued: 400 with `param` extend (`video` on
the extensions route) for anything `run --extend` refuses, 413 for a file over `--max-video-upload-mb`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from motif_lite.errors import Audience
from motif_lite.io.clip import Clip, ClipError, read_clip
from motif_lite.server.extension import renamed
from motif_lite.server.schema import ApiError, MiB

CHUNK = MiB
MAX_NAME = 120  # characters of the upload's file name kept (it names the video in messages and the job's settings)
UNNAMED = "the uploaded video"


@dataclass(frozen=True)
class UploadedClip:
    """A video file sent to go on from: its contents (the form parser's temporary file) and the name it was sent
    under, a plain file name (no folders), for messages and the job's record; never a path on the server."""

    file: BinaryIO
    name: str

    @classmethod
    def of(cls, file: BinaryIO, filename: str | None) -> UploadedClip:
        return cls(file, plain_name(filename))


def plain_name(filename: str | None) -> str:
    """The last part of the name a client gave its file, without control characters and at most `MAX_NAME` long."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(char for char in name if char.isprintable()).strip()[:MAX_NAME]
    return name if name not in ("", ".", "..") else UNNAMED


def video_upload_limit(max_bytes: int) -> str:
    """The video limit in the words of the flag that sets it, for a 413's message."""
    return f"--max-video-upload-mb {max_bytes / MiB:g}: videos to extend up to {max_bytes / MiB:g} MiB"


def save_upload(upload: UploadedClip, target: Path, max_bytes: int) -> str:
    """Write the uploaded video to `target` (the job's `inputs/ID.mp4`); its SHA-256. 413 over `max_bytes`, 400 for
    an empty file (the caller removes `target` on any error)."""
    digest = hashlib.sha256()
    written = 0
    upload.file.seek(0)
    with target.open("wb") as out:
        while piece := upload.file.read(CHUNK):
            written += len(piece)
            if written > max_bytes:
                raise upload_too_large(upload.name, max_bytes)
            digest.update(piece)
            out.write(piece)
    if written == 0:
        raise upload_error(f"extend: {upload.name} is empty (0 bytes): send the video file's contents")
    return digest.hexdigest()


def upload_too_large(name: str, max_bytes: int) -> ApiError:
    """The 413 for the uploaded video `name`, over `max_bytes` (--max-video-upload-mb)."""
    return ApiError(413, f"extend: {name} is larger than this server's limit ({video_upload_limit(max_bytes)})",
                    "extend", "video_too_large")  # fmt: skip


def read_upload(path: Path, upload: UploadedClip, max_pixels: int, names: dict[str, str]) -> Clip:
    """The uploaded video at `path`, read and checked as `motif-lite run --extend` reads its clip: a video (or an
    animated GIF, WebP or PNG) ffmpeg reads, not cut short, with more than one frame. Its size is taken from ffmpeg's
    header first and refused over `max_pixels` (no frame of it is decoded then); only then are its frames counted, which
    decodes it once (a second or two for 5 s at 720p). 400 with `param` extend, the message in the API's
    words and the client's `names`."""
    check_frame_size(path, upload.name, max_pixels, names)
    try:
        return read_clip(path, audience=Audience.API)
    except ClipError as exc:
        raise upload_error(f"extend: {renamed(str(exc), names)}") from None


def check_frame_size(path: Path, name: str, max_pixels: int, names: dict[str, str]) -> None:
    """Refuse the uploaded video `name` at `path` whose frames have more than `max_pixels` (40 megapixels, no flag),
    from the container's sizes and ffmpeg's header alone (its frames are not counted); 400 with `param` extend, as
    `read_upload` words it, also for a file ffmpeg cannot read."""
    try:
        header = read_clip(path, frames=2, audience=Audience.API)
    except ClipError as exc:
        raise upload_error(f"extend: {renamed(str(exc), names)}") from None
    check_pixels(name, header, max_pixels)


def check_pixels(name: str, clip: Clip, max_pixels: int) -> None:
    """Refuse the video `name`, read as `clip` (its header at least), whose frames have more than `max_pixels`."""
    if clip.width * clip.height > max_pixels:
        raise upload_error(f"extend: {name} is {clip.width}x{clip.height}, more than the {max_pixels:,} pixels "
                           "a frame this server takes")  # fmt: skip


def check_kept_upload(path: Path, name: str, max_bytes: int, max_pixels: int) -> None:
    """A queued job's copy of the video uploaded as `name`, checked again against this server's limits as
    `save_upload` and `read_upload` checked it at submission (the server may have restarted with smaller ones),
    with their messages. A file gone from `path` is left to the job's own read of it, which says so."""
    if not path.is_file():
        return
    if path.stat().st_size > max_bytes:
        raise upload_too_large(name, max_bytes)
    check_frame_size(path, name, max_pixels, {str(path): name, path.name: name})


def check_server_video(path: Path, video_id: str, max_bytes: int, max_pixels: int, clip: Clip | None = None) -> None:
    """A job's own hold (`path`) on the video of this server `video_id` that it goes on from, held to the limits an
    uploaded one is (`save_upload`, `read_upload`): the job reads that file whole and writes it again whole with its
    new frames, so extensions of extensions would otherwise grow it past anything a client may upload. 400 with
    `param` extend, not an upload's 413: the client sent an id, not the file. `clip`: the file as read already (its
    frame size is taken from it), else its header is read here. A file gone from `path` is left to the caller's own
    read of it, which says so."""
    if not path.is_file():
        return
    if (size := path.stat().st_size) > max_bytes:
        raise ApiError(400, f"extend: {video_id} is {size:,} bytes, larger than this server's limit "
                       f"({video_upload_limit(max_bytes)})", "extend", "video_too_large")  # fmt: skip
    if clip is None:
        check_frame_size(path, video_id, max_pixels, {str(path): video_id, path.name: video_id})
    else:
        check_pixels(video_id, clip, max_pixels)


def upload_names(clip: Path, upload: UploadedClip, output: Path) -> dict[str, str]:
    """The server's names -> the client's: the job's copy of the upload by the name it was sent under (its stem too,
    in the ffmpeg command that resizes it), the output as the job's video (the full paths first)."""
    stem = Path(upload.name).stem if upload.name != UNNAMED else "clip"
    return {str(clip): upload.name, str(output): "the video", clip.name: upload.name, clip.stem: stem}


def upload_error(message: str) -> ApiError:
    return ApiError(400, message, "extend", "invalid_value")


def uploaded_record(upload: UploadedClip, sha256: str) -> dict[str, str]:
    """What the job keeps of the video it went on from: the name it was sent under and its checksum (the file itself
    goes when the job ends)."""
    return {"name": upload.name, "sha256": sha256}
