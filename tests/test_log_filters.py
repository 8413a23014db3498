"""`log_filters.filtered_log`: a library's log lines are left out only while a command's block runs, and the logger
is as it was afterwards, also when the block fails."""

from __future__ import annotations

import logging

import pytest

from motif_lite.log_filters import filtered_log

LOGGER = "motif_lite.tests.filtered"


def not_a_notice(record: logging.LogRecord) -> bool:
    return "notice" not in record.getMessage()


def said(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == LOGGER]


def test_a_filter_leaves_lines_out_only_inside_its_block(caplog):
    logger = logging.getLogger(LOGGER)
    with filtered_log(LOGGER, not_a_notice):  # by the logger's name, as the commands give it
        logger.warning("a notice")
        logger.warning("a warning")
    logger.warning("a notice after")
    assert said(caplog) == ["a warning", "a notice after"]


def test_a_filter_is_taken_off_when_its_block_fails(caplog):
    logger = logging.getLogger(LOGGER)
    with pytest.raises(RuntimeError), filtered_log(logger, not_a_notice):
        raise RuntimeError("the command failed")
    logger.warning("a notice after the failure")
    assert said(caplog) == ["a notice after the failure"]
