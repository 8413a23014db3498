"""Scoped filters on a library's log: while a command runs, lines that would say nothing to its user (a warning
already said in more words, one repeated at every call) are left out, and the logger is as it was afterwards."""

from __future__ import annotations

import contextlib
import logging
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
