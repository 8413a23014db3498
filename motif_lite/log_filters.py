"""Scoped filters on a library's log: while a command runs, lines that would say nothing to its user (a warning
already said in more words, one repeated at every call) are left out, and the logger is as it was afterwards."""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def filtered_log(
    logger: logging.Logger | str, keep: logging.Filter | Callable[[logging.LogRecord], bool]
) -> Iterator[None]:
    """While inside, `logger` (or the logger of that name) passes only the records `keep` keeps."""
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


# Every short block that changes the process's warnings state (`warnings.catch_warnings`) holds this lock. Python
# 3.11 has one filter list and one `showwarning` for the whole process, and `catch_warnings` puts back on exit what
# it found on entry: two blocks overlapping in two threads (the server's upload check reading an image while its
# worker plans quietly, two submissions checking LoRAs) left the one that exits last putting back the other's
# filters, and every later warning of the process was swallowed. So they take turns. The blocks a command wraps
# whole (cli's `_warnings_to_stderr`) are entered once, before any thread starts, and do not take it: a server's
# threads would wait for its end.
WARNINGS_STATE = threading.RLock()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Inside, no warning is shown (a plan made again to compare, whose warnings were given already); the
    process's warnings state is as it was afterwards, and no other thread's block overlaps (`WARNINGS_STATE`)."""
    with WARNINGS_STATE, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
