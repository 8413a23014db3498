"""What a value read from JSON is (a checkpoint's config, a latents file's description, a job's row, PEFT's
settings): JSON has one number type, and Python's `true` is the integer 1, so `isinstance(value, int)` alone would
take `true` as a size."""

from __future__ import annotations


def is_int(value: object) -> bool:
    """A whole number (not `true` / `false`)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An integer or a float (not `true` / `false`; NaN and infinities included: bound them where they matter)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_count(value: object, at_most: int | None = None) -> bool:
    """A whole number above 0 (a size, a frame count), and at most `at_most` when given."""
    return is_int(value) and value > 0 and (at_most is None or value <= at_most)
