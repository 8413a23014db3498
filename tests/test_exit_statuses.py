"""One Ctrl-C exit status for every program of the package (`motif-lite`, the quantizer): `stopping.EXIT_INTERRUPTED`,
which no other module spells out on its own, so that a change of it reaches them all."""

from __future__ import annotations

import ast
from pathlib import Path

from motif_lite.stopping import EXIT_INTERRUPTED

ROOT = Path(__file__).resolve().parent.parent
SOURCE_FOLDERS = ("motif_lite", "quantize", "kernels")  # installed as motif_lite, motif_lite.quantize and .kernels
ITS_HOME = ROOT / "motif_lite" / "stopping.py"


def test_no_module_but_stopping_spells_out_the_interrupted_exit_status():
    spelled_out = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for folder in SOURCE_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ITS_HOME
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value == EXIT_INTERRUPTED
    ]
    assert spelled_out == [], "use motif_lite.stopping.EXIT_INTERRUPTED"
