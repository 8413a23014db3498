"""What a test does when this machine lacks a tool it needs (g++ for inductor, Chromium, Triton's ptxas): a skip on
a developer's machine, a failure on CI, whose image has every tool, so that a test cannot silently stop running
there. CI is told apart by the `CI` variable, which CI services set and .ci/run sets too."""

from __future__ import annotations

import os

import pytest


def skip_here_fail_on_ci(message: str) -> None:
    """Skip the test with `message`, or fail it with `message` under CI."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
