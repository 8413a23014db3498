"""A job as the job store keeps it: its statuses, its id (drawn at random; every file of the job is named after
it), the `Job` record one row of the database holds, and the checks that refuse a row the store did not write
(`DamagedJob`: edited by hand, or damaged).
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from motif_lite.errors import MotifLiteError
from motif_lite.io.staging import PARTIAL_PREFIX
from motif_lite.json_values import is_count, is_number
from motif_lite.request import extended_frames

QUEUED, IN_PROGRESS, COMPLETED, FAILED = "queued", "in_progress", "completed", "failed"
INTERRUPTED = "interrupted"  # error code of a job that was running when the server died
_ID = r"video_[0-9a-f]{32}"
JOB_ID = re.compile(rf"^{_ID}$")
# A file this store writes: named after its job's id, or the staged name of one (`.partial-PID-ID.mp4`, io.staging).
JOB_FILE = re.compile(rf"^(?:{re.escape(PARTIAL_PREFIX)}(?:\d+-)?)?{_ID}\.")


def new_job_id() -> str:
    return f"video_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Job:
    """One row of the store."""

    id: str
    seq: int
    status: str
    progress: int  # 0-100
    created_at: float  # unix seconds: queued (an old data folder's are whole seconds)
    started_at: float | None  # its last start (a job queued again by a shutdown starts again)
    completed_at: float | None  # completed or failed
    model: str
    settings: dict[str, Any]  # GenerationRequest fields except `image` and `output`; `image_name`: as sent
    effective: dict[str, Any]  # API name -> the checkpoint's (or official) value of a field left open
    has_image: bool  # image-to-video: the uploaded first frame waits in inputs/ID.png
    error_code: str | None
    error_message: str | None
    notes: list[str]  # e.g. "the image is stretched ...", as `motif-lite run` prints them
    loras: list[tuple[str, float]]  # (file name in the server's --lora-dir, strength); [] = the server's own
    extend: str | None = None  # the id of the job whose video this one goes on from (its frames come first)
    clip_frames: int | None = None  # the frames of that video
    crf: int | None = None  # the H.264 constant-rate factor its video is written at; None: the codec's default
    remixed_from: str | None = None  # the id of the job whose settings and seed it took with a new prompt
    # The uploaded video it goes on from instead of a video of this server: {"name": as sent, "sha256": ...}; its
    # frames are `clip_frames`, the file waits in inputs/ID.mp4 until the job ends.
    extend_file: dict[str, str] | None = None
    # The warnings the text encoder logs as it cuts the job's prompts (`truncation_warning`), which its notes say
    # already in more words: the worker keeps them out of its log.
    prompt_warnings: list[str] = field(default_factory=list)

    @property
    def extends(self) -> bool:
        """It goes on from a video: one of this server's (`extend`) or an uploaded one (`extend_file`)."""
        return self.extend is not None or self.extend_file is not None

    @property
    def extended_name(self) -> str | None:
        """What the client calls the video it goes on from: the id, or the uploaded file's name."""
        return self.extend if self.extend_file is None else self.extend_file["name"]

    @property
    def frames_in_file(self) -> int:
        """The frames of the job's video: its own, after those of the video it extends but that one's last (the
        same frame)."""
        return extended_frames(self.settings["frames"], self.clip_frames)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """The job a row holds; `DamagedJob` for a row this store never writes (edited by hand, or damaged)."""
        values = dict(row)
        for column in _JSON_COLUMNS:
            values[column] = _parsed_json(values, column)
        if values["extend_file"] is not None:  # NULL: no uploaded video
            values["extend_file"] = _parsed_json(values, "extend_file")
        if (problem := _row_problem(values)) is not None:
            raise DamagedJob(values["id"], problem)
        values["has_image"] = bool(values["has_image"])
        values["loras"] = [(name, strength) for name, strength in values["loras"]]
        return cls(**values)


_JSON_COLUMNS = ("settings", "effective", "notes", "loras", "prompt_warnings")
_LAST_TIME = 253402300800  # 10000-01-01: the first moment a date (the API's times) cannot show


def _parsed_json(values: dict[str, Any], column: str) -> Any:
    try:
        return json.loads(values[column])
    except (TypeError, ValueError, RecursionError):  # RecursionError: brackets nested too deeply for Python's parser
        raise DamagedJob(values["id"], f"{column} is not JSON") from None


def _row_problem(values: dict[str, Any]) -> str | None:
    """What in a job's row (its JSON columns parsed) is not what `JobStore` writes, in words; None when all is."""
    settings = values["settings"]
    checks = {
        "settings is not an object with the prompt, size, frames and fps": isinstance(settings, dict)
        and isinstance(settings.get("prompt"), str)
        and all(is_count(settings.get(key)) for key in ("width", "height", "frames"))
        and is_number(settings.get("fps"))
        and settings["fps"] > 0,
        "effective is not an object": isinstance(values["effective"], dict),
        "notes is not a list of texts": _is_texts(values["notes"]),
        "prompt_warnings is not a list of texts": _is_texts(values["prompt_warnings"]),
        "loras is not a list of [file name, strength] pairs": isinstance(values["loras"], list)
        and all(_is_lora(pair) for pair in values["loras"]),
        "created_at is not a time": _is_time(values["created_at"]),
        "started_at is not a time": values["started_at"] is None or _is_time(values["started_at"]),
        "completed_at is not a time": values["completed_at"] is None or _is_time(values["completed_at"]),
        "progress is not a whole number": isinstance(values["progress"], int),
        "clip_frames is not a frame count": values["clip_frames"] is None or is_count(values["clip_frames"]),
        "crf is not a whole number": values["crf"] is None or type(values["crf"]) is int,
        "remixed_from is not a video id": values["remixed_from"] is None or _is_job_id(values["remixed_from"]),
        "extend_file is not an object with a name and a sha256": values["extend_file"] is None
        or _is_uploaded_file(values["extend_file"]),
    }
    return next((problem for problem, fine in checks.items() if not fine), None)


def _is_texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(text, str) for text in value)


def _is_time(value: object) -> bool:
    return is_number(value) and 0 <= value < _LAST_TIME


def _is_job_id(value: object) -> bool:
    return isinstance(value, str) and JOB_ID.match(value) is not None


def _is_uploaded_file(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"name", "sha256"}
        and all(isinstance(text, str) for text in value.values())
    )


def _is_lora(pair: object) -> bool:
    return isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and is_number(pair[1])


class DamagedJob(MotifLiteError):
    """A row of the job database that this store did not write as it is: edited by hand, or damaged."""

    def __init__(self, job_id: object, problem: str) -> None:
        self.job_id, self.problem = job_id, problem
        super().__init__(f"{job_id}: {problem}")
