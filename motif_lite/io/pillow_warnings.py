"""Pillow's warnings while an image file is read (damaged EXIF data, a malformed MPO, a tag past the file's end):
recorded apart from other code's warnings, which keep to the host's filters, and said as notes on the image."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from motif_lite.log_filters import WARNINGS_STATE

# Pillow's warnings can only be caught through the process's warnings state: every block here that changes it
# holds log_filters.WARNINGS_STATE, as the other modules' blocks do, so that blocks of two threads take turns.
PILLOW = r"PIL\."  # the modules of Pillow's warnings, for a filter
CORRUPT_EXIF = re.compile(r"(possibly )?corrupt exif", re.IGNORECASE)  # Pillow's warnings for damaged EXIF data


@contextlib.contextmanager
def pillows_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Pillow's UserWarnings given inside (about the image file read), recorded in the list it yields, whatever the
    host's filters say of them. Other warnings are left to the host's filters (only Pillow's are let through here),
    and those that pass are shown once the block ends, as they would have been: not recorded for good."""
    with WARNINGS_STATE:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.filterwarnings("always", category=UserWarning, module=PILLOW)
                yield caught
        finally:  # also when reading failed: the others are not lost
            others = [warning for warning in caught if not _is_pillows(warning)]
            caught[:] = [warning for warning in caught if _is_pillows(warning)]
            for warning in others:
                warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno,
                                     warning.file, warning.line)  # fmt: skip


def _is_pillows(warning: warnings.WarningMessage) -> bool:
    """Whether a recorded warning is one of Pillow's UserWarnings (given by Pillow's code)."""
    return issubclass(warning.category, UserWarning) and "PIL" in Path(warning.filename).parts


# Pillow's warnings about an image file's metadata (its EXIF data, a TIFF's tags), not its pixels.
METADATA_WARNING = re.compile(r"exif|tag|metadata", re.IGNORECASE)


def pillow_notes(caught: list[warnings.WarningMessage], exif_note: str) -> list[str]:
    """Notes for the warnings Pillow gave while reading an image file ("Image appears to be a malformed MPO file",
    "Tag data larger than file. Skipping tag 274"), which a run printed as warnings pointing into Pillow's code: the
    image is used as Pillow reads it, as the reference uses it (`pillows_warnings` records Pillow's only)."""
    notes = []
    for warning in caught:
        if METADATA_WARNING.search(str(warning.message)):
            notes.append(exif_note)
        else:
            notes.append(f"Pillow says of the image file: {str(warning.message).strip()}; it is used as Pillow reads "
                         "it, as the reference pipeline uses it")  # fmt: skip
    return notes
