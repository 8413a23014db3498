"""Remixing a completed video (`POST /v1/videos/{id}/remix`, the SDK's `client.videos.remix`): a new job with the
source job's settings, its seed included, and a new prompt. The same seed and size give the same starting noise, so
the remix keeps the source's composition and follows the new words, as `motif-lite run --settings-from` makes a
video again from its file with the flags given winning."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from motif_lite.server.job_record import COMPLETED, IN_PROGRESS, QUEUED, Job
from motif_lite.server.loras import lora_files, one_file_named_again, why_one_file
from motif_lite.server.schema import MAX_STRENGTH, MOTIF_FIELDS, ApiError, is_upload, named_once_advice
from motif_lite.weights.lora_values import summed_strength, times_applied


def remix_fields(
    source: Job, given: Mapping[str, Any], image: bytes | None, lora_dir: Path | None = None
) -> dict[str, Any]:
    """The create fields of a remix of `source`: its settings, under the fields the client gave (the new prompt, and
    any create field it changes); an extension's size is left to the video it goes on from, as for any extension.
    400 for a source that is not completed, a missing prompt, and an image-to-video source whose first frame is not
    sent again (the server does not keep it once a job ends), and likewise an extension of an uploaded video whose
    video is not sent again, and a source whose loras name one file twice (an older motif-lite's), by one name or by
    two names of one file of `lora_dir` (the server's --lora-dir), or LoRAs this server can no longer apply (a file
    gone from `lora_dir`, or no `lora_dir`), unless loras are sent."""
    if source.status != COMPLETED:
        wait = "; wait until it is completed" if source.status in (QUEUED, IN_PROGRESS) else ""
        raise ApiError(400, f"video {source.id} is {source.status}: only a completed video can be remixed{wait}",
                       "video_id", "invalid_value")  # fmt: skip
    if given.get("prompt") in (None, ""):
        raise ApiError(400, "prompt is required: a remix is the video's settings and seed with a new prompt", "prompt",
                       "missing_required_parameter")  # fmt: skip
    if source.has_image and image is None and given.get("input_reference") in (None, ""):
        raise ApiError(400, f"video {source.id} was made from a first frame (input_reference), which the server does "
                       "not keep once a job ends: send the image again as input_reference to remix it (the SDK: "
                       'extra_body={"input_reference": {"image_url": "data:image/png;base64,..."}})',
                       "input_reference", "missing_required_parameter")  # fmt: skip
    uploaded = source.extend_file
    if uploaded is not None and not is_upload(given.get("extend")):
        raise ApiError(400, f"video {source.id} went on from an uploaded video ({uploaded['name']}, sha256 "
                       f"{uploaded['sha256']}), which the server does not keep once a job ends: send it again as the "
                       "file extend in a multipart body to remix it (curl: -F extend=@FILE)", "extend",
                       "missing_required_parameter")  # fmt: skip
    if "loras" not in given and (same := one_file_named_again(source.loras, lora_dir)) is not None:
        # An older motif-lite ran it so, or a name has become a link to another since; copied into the remix, they
        # were refused as if the client had sent them.
        names = [source.loras[i][0] for i in same]
        strengths = [source.loras[i][1] for i in same]
        first, others = names[0], _with_its_other_loras(source.loras, same)
        advice = f"send loras with the remix, and {named_once_advice(first, *strengths)}{others}"
        if (second := next((name for name in names if name != first), None)) is None:
            raise ApiError(400, f"video {source.id} was made with loras naming {first} {times_applied(strengths)}: "
                           "the motif-lite that made it took that, this one refuses it (it would apply the file "
                           f"twice); {advice}", "loras", "invalid_value")  # fmt: skip
        assert lora_dir is not None  # two names are one file only in a folder
        named = [repr(name) for name in names]
        raise ApiError(400, f"video {source.id} was made with loras naming {', '.join(named[:-1])} and {named[-1]}, "
                       f"one file of this server's LoRA folder ({why_one_file(lora_dir, first, second)}), which "
                       f"would apply {times_applied(strengths)}; {advice}", "loras", "invalid_value")  # fmt: skip
    if "loras" not in given:
        _check_source_loras(source, lora_dir)
    fields = source_fields(source)
    if given.get("seconds") not in (None, ""):  # the client's length: else the source's frames would win over it
        del fields["num_frames"]
    if source.extends:  # an extension's size is its video's: another file sent to go on from brings its own
        del fields["size"]
    return {**fields, **given}


# How a remix says "no LoRAs": in a multipart form (a remix that sends a first frame or a video again) the SDK's form
# encoding of an empty list sends no field at all, so the source's LoRAs were taken; a form's loras is JSON text.
WITHOUT_ANY = "loras [] makes it without any; in a multipart form, loras=[] as JSON text: curl -F 'loras=[]'"


def _check_source_loras(source: Job, lora_dir: Path | None) -> None:
    """400 where this server cannot apply the LoRAs `source` was made with, which its remix takes when the client
    sends no loras: a file gone from `lora_dir`, or no folder (`lora_files`'s refusal). That refusal alone spoke of
    a `loras` field as if the client had sent it."""
    try:
        lora_files(source.loras, lora_dir)
    except ApiError as refused:
        if refused.status >= 500:  # the folder cannot be reached now: the server's state, not the video's LoRAs
            raise
        raise ApiError(400, f"video {source.id} was made with LoRAs this server can no longer apply, and its remix "
                       f"takes them unless loras is sent: {refused.message}; send loras with the remix to replace "
                       f"them ({WITHOUT_ANY})", "loras", "invalid_value") from None  # fmt: skip


def _with_its_other_loras(loras: list[tuple[str, float]], same: tuple[int, ...]) -> str:
    """For a video whose `loras` name a file more than once (at the positions `same`, by one name or several) that
    has other LoRAs too: the whole `loras` to send with its remix, each file once at its strengths' sum
    (`summed_strength`), so that pasted, it keeps the others (the repeated file's object alone dropped them); "" for
    one file, or where a sum is past what a job takes."""
    first = loras[same[0]][0]
    merged: dict[str, list[float]] = {}
    for position, (name, strength) in enumerate(loras):
        merged.setdefault(first if position in same else name, []).append(strength)
    totals = {name: summed_strength(*strengths) for name, strengths in merged.items()}
    if len(totals) == 1 or any(abs(total) > MAX_STRENGTH for total in totals.values()):
        return ""
    kept = [{"name": name, "strength": total} for name, total in totals.items() if total != 0]
    return f" (with its other LoRAs: loras {json.dumps(kept)})"


def source_fields(source: Job) -> dict[str, Any]:
    """The create fields that queue `source`'s settings again: those it was queued with, resolved (the seed it
    drew, its frames in 4k+1). The fields it left open (null) stay open, so the server's checkpoint decides them as
    it did for the source; its LoRAs, its crf, and the video it extends, if any."""
    settings = source.settings
    fields = {name: settings.get(field) for name, (field, _) in MOTIF_FIELDS.items()}
    fields["size"] = f"{settings['width']}x{settings['height']}"
    fields["extend"] = source.extend
    fields["loras"] = [{"name": name, "strength": strength} for name, strength in source.loras]
    fields["crf"] = source.crf
    return fields


def other_upload_note(source: Job, uploaded: dict[str, str]) -> str | None:
    """The note of a remix of `source` sent another video file to go on from than the one `source` went on from (by
    their SHA-256): the remix goes on from the file sent, as it takes any field the client gives; None when it is the
    same file, or `source` went on from no uploaded video."""
    before = source.extend_file
    if before is None or before["sha256"] == uploaded["sha256"]:
        return None
    return (f"extend: {uploaded['name']} (sha256 {uploaded['sha256']}) is not the video {source.id} went on from "
            f"({before['name']}, sha256 {before['sha256']}): the remix goes on from the file sent")  # fmt: skip
