"""Blocks that change the process's warnings state take turns across threads (`log_filters.WARNINGS_STATE`): the
server's upload check reads an image in an HTTP thread while its worker plans quietly or a submission checks its
LoRAs, and each `catch_warnings` puts back on exit what it found on entry."""

from __future__ import annotations

import ast
import threading
import warnings
from pathlib import Path

import PIL.Image

import motif_lite.io.image as image_module
from motif_lite.log_filters import quiet_warnings

ROOT = Path(__file__).resolve().parent.parent / "motif_lite"
# The blocks a command wraps whole, entered once in the main thread before any other starts: holding the lock for
# a whole `serve` would make its threads wait for ever.
WHOLE_COMMAND_BLOCKS = {("cli/__init__.py", "_warnings_to_stderr"), ("cli/launch.py", "warnings_left_to_the_ranks"),
                        ("checkup/__init__.py", "_files_warned_once")}  # fmt: skip


def test_a_quiet_plan_in_one_thread_and_an_upload_check_in_another_leave_the_warnings_state_as_it_was(monkeypatch):
    # Forced order: a quiet plan (server/loras.py's LoRA check, the worker's out-of-memory advice) enters, the
    # upload's open begins, the plan's block ends, the open ends. Without turns the upload's block put back the
    # plan's "ignore", and every later warning of the process was swallowed.
    import io

    buffer = io.BytesIO()
    PIL.Image.new("RGB", (8, 8)).save(buffer, "PNG")
    upload_in, plan_out = threading.Event(), threading.Event()
    real_open = PIL.Image.open

    def slow_open(*args, **kwargs):
        upload_in.set()
        plan_out.wait(10)
        return real_open(*args, **kwargs)

    def quiet_plan():
        with quiet_warnings():
            upload_in.wait(0.5)  # set unless the upload waits for this block to end
        plan_out.set()

    monkeypatch.setattr(PIL.Image, "open", slow_open)
    with warnings.catch_warnings():
        before = list(warnings.filters)
        plan = threading.Thread(target=quiet_plan)
        with quiet_warnings():  # the plan's thread enters first
            plan.start()
            http = threading.Thread(target=lambda: image_module.open_image(buffer, "input_reference").close())
            http.start()
        plan.join(10)
        http.join(10)
        assert list(warnings.filters) == before


def _held_lock(item: ast.withitem) -> bool:
    text = ast.unparse(item.context_expr)
    return text in ("WARNINGS_STATE", "quiet_warnings()")


def test_every_block_that_changes_the_warnings_state_takes_turns():
    # A new `catch_warnings` block without the lock brings the swallowed warnings back: each holds it (itself or
    # in a block around it), but the blocks a command wraps whole.
    missing = []
    for path in sorted(ROOT.rglob("*.py")):
        for function in [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)]:
            where = (path.relative_to(ROOT).as_posix(), function.name)
            missing += [f"{where[0]}:{line} ({where[1]})" for line in _unheld_blocks(function, held=False)]
            if where in WHOLE_COMMAND_BLOCKS:
                missing = [m for m in missing if not m.endswith(f"({where[1]})")]
    assert not missing, missing


def _unheld_blocks(node: ast.AST, held: bool) -> list[int]:
    """The lines of the `catch_warnings` blocks under `node` that hold no `WARNINGS_STATE`."""
    lines = []
    if isinstance(node, ast.With):
        held = held or any(_held_lock(item) for item in node.items)
        if not held and any("catch_warnings" in ast.unparse(item.context_expr) for item in node.items):
            lines.append(node.lineno)
    for child in ast.iter_child_nodes(node):
        lines += _unheld_blocks(child, held)
    return lines
