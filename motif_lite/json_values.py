"""Values read from JSON (a checkpoint's config, a latents file's description, a job's row, PEFT's settings), and
`read_json_object` for the configs that must hold a JSON object (scheduler, guider, text encoder, model index).
JSON has one number type, and Python's `true` is the integer 1, so `isinstance(value, int)` alone would take `true`
as a size."""

from __future__ import annotations

import json
from pathlib import Path

from motif_lite.errors import ConfigError


def is_int(value: object) -> bool:
    """A whole number (not `true` / `false`)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or a float (not `true` / `false`; NaN and infinities included: bound them where they matter)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_count(value: object, at_most: int | None = None) -> bool:
    """A whole number above 0 (a size, a frame count), and at most `at_most` when given."""
    return is_int(value) and value > 0 and (at_most is None or value <= at_most)


def read_json_object(path: Path, what: str) -> dict:
    """The JSON object in `path` (a checkpoint's `what`, e.g. "scheduler config"); ConfigError if unreadable."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable JSON {what} ({e})") from e
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config
