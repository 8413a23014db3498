"""Which line of ours an op came from, for the bench tools that count ops under a dispatch mode
(bench/traffic.py, bench/launches.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TORCH_DIR = str(Path(torch.__file__).resolve().parent)


def call_site(skip: str) -> str:
    """The innermost calling line outside torch, contextlib and the file `skip` (the counting tool's own):
    `path:line (function)`, the path from the repository."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(TORCH_DIR) and name != skip and "contextlib" not in name:
            path = Path(name)
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
            return f"{shown}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "?"
