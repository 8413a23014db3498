"""Values read from JSON (a checkpoint's config, a latents file's description, a job's row, PEFT's settings), and
`read_json_object` (`parse_json_object` for text in memory) for every JSON object read from a file, so that all
of them say what is wrong in one form.
JSON has one number type, and Python's `true` is the integer 1, so `isinstance(value, int)` alone would take `true`
as a size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from motif_lite.errors import ConfigError, MotifLiteError


def is_int(value: object) -> bool:
    """A whole number (not `true` / `false`)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or a float (not `true` / `false`; NaN and infinities included: bound them where they matter)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A number a float holds: not NaN (no comparison is true of it), an infinity nor an integer past the largest
    float (for which math.isfinite raises OverflowError)."""
    return is_number(value) and abs(value) <= sys.float_info.max


def is_count(value: object, at_most: int | None = None) -> bool:
    """A whole number above 0 (a size, a frame count), and at most `at_most` when given."""
    return is_int(value) and value > 0 and (at_most is None or value <= at_most)


class NotAJSONObject(ValueError):
    """Why some text holds no JSON object, in words that follow "is": "not valid JSON (...)", "a list, not a JSON
    object"."""


# What a JSON value other than an object is called in a message (Python's type names say "dict", "int", "NoneType").
_JSON_KINDS = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}


def json_kind(value: object) -> str:
    """`value` named as JSON names it: "an object", "a list", "null", ..."""
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def parse_json_object(data: object) -> dict:
    """The JSON object `data` (text, or UTF-8 bytes) holds; `NotAJSONObject` saying why there is none. The bytes are
    read as UTF-8 alone, as diffusers and transformers read a config (`json.loads` would guess UTF-16 too)."""
    if not isinstance(data, str | bytes):  # e.g. a number where a GGUF's metadata should hold the text
        raise NotAJSONObject(f"{json_kind(data)}, not JSON text")
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError as e:
        raise NotAJSONObject(f"not valid JSON (not UTF-8 text: byte {e.start} is 0x{e.object[e.start]:02x})") from None
    except json.JSONDecodeError as e:
        raise NotAJSONObject(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except ValueError:  # valid JSON that Python refuses: an integer of over 4300 digits (`sys.get_int_max_str_digits`)
        raise NotAJSONObject("not readable JSON (a number of thousands of digits)") from None
    except RecursionError:  # brackets nested thousands deep: Python's parser gives up
        raise NotAJSONObject("not readable JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise NotAJSONObject(f"{json_kind(value)}, not a JSON object")
    return value


def read_json_object(path: Path, what: str, error: type[MotifLiteError] = ConfigError) -> dict:
    """The JSON object in the file `path` (`what` it is, e.g. "scheduler config"); `error` (a `MotifLiteError`) in
    one line naming the file and what is wrong: missing, unreadable, not JSON, or no object."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except OSError as e:
        raise error(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    try:
        return parse_json_object(data)
    except NotAJSONObject as e:
        raise error(f"{path}: the {what} is {e}") from None
