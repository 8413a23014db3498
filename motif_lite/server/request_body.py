"""Reading a create body: the fields of a JSON or multipart request, and the first frame or video it uploads.

A form's mistakes (a field sent twice, an unexpected file, a JSON body sent as a form) are 400s with a documented
code, as the JSON's are.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from motif_lite.server.clip_upload import UNNAMED, UploadedClip, plain_name
from motif_lite.server.schema import FORM_LORA_KEYS, ApiError, MiB, form_loras, json_noting_repeats


def _not_utf8(exc: UnicodeDecodeError, content_type: str) -> str:
    """Why a JSON body that is not UTF-8 is refused: JSON is exchanged as UTF-8 (RFC 8259, 8.1), and the server reads
    no other charset, even one its Content-Type names (`charset=latin-1`, which a client's library may add)."""
    charset = next((part.split("=", 1)[1].strip(' "') for part in content_type.split(";")[1:]
                    if part.strip().lower().startswith("charset=")), None)  # fmt: skip
    named = f" (its Content-Type names charset={charset}, which this server does not read)" if charset else ""
    return (f"the body is not valid JSON: it is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
            f"send the JSON encoded as UTF-8, as JSON is exchanged{named}")  # fmt: skip


async def read_create_body(request: Request) -> tuple[dict[str, Any], tuple[bytes | None, str | None], bool]:
    """(fields, (uploaded first frame, the file name it was sent under), whether the fields are form strings) of a
    JSON or multipart body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await _read_form(request)
        if content_type == "application/x-www-form-urlencoded" and _looks_like_json(form.keys()):
            raise ApiError(400, "the body looks like JSON: send it with Content-Type: application/json (curl: -H "
                           "'Content-Type: application/json')", None, "invalid_value")  # fmt: skip
        fields, image = await _form_fields(form)
        return fields, image, True
    # A Content-Type the server does not read is HTTP's 415 Unsupported Media Type (it was a 400), with what to send.
    if content_type == "text/plain" and (await request.body()).lstrip().startswith(b"{"):
        # A browser's fetch() labels a string body text/plain unless told: JSON.stringify's output arrives so.
        raise ApiError(415, "the body looks like JSON: send it with Content-Type: application/json (fetch sends a "
                       "string body as text/plain unless its headers say otherwise)", None,
                       "invalid_value")  # fmt: skip
    if content_type and not _is_json(content_type):
        raise ApiError(415, f"send application/json or multipart/form-data, not {content_type}", None,
                       "invalid_value")  # fmt: skip
    raw = await request.body()
    if not raw.strip():  # curl -X POST without -d: json's "Expecting value: line 1 column 1" says nothing useful
        raise ApiError(400, 'the body is empty: send a JSON object, e.g. {"prompt": "a cat surfing"} (curl: -H '
                       "'Content-Type: application/json' -d '{...}')", None, "invalid_value")  # fmt: skip
    try:
        body, repeated = json_noting_repeats(raw)
    except UnicodeDecodeError as exc:  # Python's words ("'utf-8' codec can't decode byte ...") named no fix
        raise ApiError(400, _not_utf8(exc, request.headers.get("content-type", "")), None, "invalid_value") from exc
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", None, "invalid_value") from exc
    except (ValueError, RecursionError) as exc:  # valid JSON that Python's parser refuses (not the client's bug)
        raise ApiError(400, "the body holds an integer of over 4300 digits or is nested too deeply to be read", None,
                       "invalid_value") from exc  # fmt: skip
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object", None, "invalid_value")
    _refuse_repeated_keys(repeated)
    return body, (None, None), False


def _refuse_repeated_keys(repeated: list[list[str]]) -> None:
    """A key twice in one JSON object is a 400, as a form field sent twice is: Python's parser (and Go's, and a
    browser's) kept the last value without a word, so which one the client meant was a guess. The body's own object
    is the last one parsed; a repeat inside a field's value (`input_reference`, a LoRA entry) names no field."""
    if repeated[-1]:
        key = repeated[-1][0]
        raise ApiError(400, f"{key} was sent twice (the JSON object names it twice)", key, "invalid_value")
    if nested := next((keys for keys in repeated if keys), None):
        raise ApiError(400, f"{nested[0]!r} was sent twice in one of the body's JSON objects", None,
                       "invalid_value")  # fmt: skip


async def _form_fields(form: FormData) -> tuple[dict[str, Any], tuple[bytes | None, str | None]]:
    """(fields, (uploaded first frame, the file name it was sent under)) of a parsed form."""
    fields: dict[str, Any] = {}
    image, image_name = None, None
    lora_items: dict[str, list[str]] = {}  # the SDK's form encoding of a list: `loras[]`, `loras[][name]`, ...
    for key, value in form.multi_items():
        if key in FORM_LORA_KEYS and isinstance(value, str):
            lora_items.setdefault(key, []).append(value)
        elif isinstance(value, UploadFile):
            if key in ("video", "extend"):  # a video to go on from (the SDK's extend sends `video`)
                if key in fields:
                    raise ApiError(400, f"{key} was sent twice", key, "invalid_value")
                fields[key] = UploadedClip.of(value.file, value.filename)  # written beside the job once checked
                continue
            if key != "input_reference":
                raise ApiError(400, f"unexpected file field {key!r}; the first frame goes in input_reference, a "
                               "video to extend in extend (video on /v1/videos/extensions)", key,
                               "unknown_parameter")  # fmt: skip
            image = await value.read()
            image_name = _image_name(value.filename)
        elif key == "input_reference[image_url]":  # the SDK's form encoding of {"image_url": ...}
            fields["input_reference"] = {"image_url": value}
        elif key in fields:
            raise ApiError(400, f"{key} was sent twice", key, "invalid_value")
        else:
            fields[key] = value
    if lora_items:
        if "loras" in fields:
            raise ApiError(400, "loras was sent twice", "loras", "invalid_value")
        fields["loras"] = form_loras(lora_items)
    return fields, (image, image_name)


async def _read_form(request: Request) -> FormData:
    """The parsed form; a form over the parser's limits (a second file, too many fields, a field over 2 MiB) is a 400
    with a documented code, not Starlette's HTTPException (code null)."""
    try:
        return await request.form(max_files=1, max_fields=64, max_part_size=2 * MiB)
    except StarletteHTTPException as exc:
        if exc.status_code != 400:
            raise
        if "Too many files" in exc.detail:
            raise ApiError(400, f"{exc.detail} Send one image, as input_reference", "input_reference",
                           "invalid_value") from exc  # fmt: skip
        raise ApiError(400, f"the form could not be read: {exc.detail}", None, "invalid_value") from exc


def _is_json(content_type: str) -> bool:
    """Whether a media type (lower case, without parameters) is JSON: application/json, or a structured-syntax type
    of JSON (RFC 6839: `application/merge-patch+json`, `application/vnd.api+json`), which is JSON text too."""
    kind, _, subtype = content_type.partition("/")
    return kind == "application" and (subtype == "json" or (subtype.endswith("+json") and subtype != "+json"))


def _looks_like_json(keys) -> bool:
    """A JSON object sent without its content type: `curl -d '{...}'` (no -H) labels it a form, whose parser makes
    the whole object one field name."""
    first = next(iter(keys), "")
    return first.lstrip().startswith("{")


def _image_name(filename: str | None) -> str | None:
    """The plain file name an uploaded first frame was sent under, None when it came without one."""
    name = plain_name(filename)
    return None if name == UNNAMED else name
