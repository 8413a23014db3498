"""Every launch of our Triton kernels states its FP fusion (kernels/launch.py) instead of leaving it to Triton's
default, which Triton 3.9 warns about on the first compile of each process and Triton 3.10 turns off.

Read from the source: a launch `kernel[grid](...)` must pass `enable_fp_fusion=` or unpack (`**`) a dict that
states it, directly or through another such dict (`flags = dict(..., **FUSED_FP)`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import motif_lite.kernels

KERNELS = Path(motif_lite.kernels.__file__).parent


def dict_assignments(scope: ast.Module | ast.FunctionDef) -> dict[str, ast.expr]:
    """name -> the expression first assigned to it: a module's top-level statements, or anywhere in a function."""
    found = {}
    for node in scope.body if isinstance(scope, ast.Module) else ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found.setdefault(node.targets[0].id, node.value)
    return found


def states_fusion(expr: ast.expr, names: dict[str, ast.expr], seen: frozenset[str] = frozenset()) -> bool:
    """Whether a dict expression (`{...}` or `dict(...)`), or the name of one, sets enable_fp_fusion."""
    if isinstance(expr, ast.Name):
        return expr.id not in seen and expr.id in names and states_fusion(names[expr.id], names, seen | {expr.id})
    if isinstance(expr, ast.Dict):
        keys = [k.value for k in expr.keys if isinstance(k, ast.Constant)]
        unpacked = [v for k, v in zip(expr.keys, expr.values, strict=True) if k is None]
        return "enable_fp_fusion" in keys or any(states_fusion(v, names, seen) for v in unpacked)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == "dict":
        return any(kw.arg == "enable_fp_fusion" or (kw.arg is None and states_fusion(kw.value, names, seen))
                   for kw in expr.keywords)  # fmt: skip
    return False


def launches() -> list[tuple[str, ast.Call, dict[str, ast.expr]]]:
    """(where, call, the names visible to it) for every `kernel[grid](...)` in the kernels package."""
    shared = dict_assignments(ast.parse((KERNELS / "launch.py").read_text()))  # FUSED_FP, imported by the others
    found = []
    for path in sorted(KERNELS.glob("*.py")):
        module = ast.parse(path.read_text())
        module_names = {**shared, **dict_assignments(module)}
        for function in ast.walk(module):
            if not isinstance(function, ast.FunctionDef):
                continue
            names = {**module_names, **dict_assignments(function)}
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Subscript):
                    found.append((f"{path.name}:{node.lineno}", node, names))
    return found


def test_the_rule_is_read_from_real_launches() -> None:
    """Guards the test itself: it finds the launches (attention, 8-bit attention, its two pre-passes, dequantize,
    dequant-matmul fixed and autotuned, the two norms), and tells a launch that states fusion from one that does
    not."""
    assert len(launches()) >= 9
    names = dict_assignments(ast.parse("FUSED_FP = {'enable_fp_fusion': True}\nflags = dict(A=1, **FUSED_FP)"))
    call = ast.parse("k[g](x, **flags)").body[0].value
    bare = ast.parse("k[g](x, A=1)").body[0].value
    assert all(kw.arg is None and states_fusion(kw.value, names) for kw in call.keywords)
    assert not any(kw.arg is None and states_fusion(kw.value, names) for kw in bare.keywords)


@pytest.mark.parametrize(("where", "call", "names"), launches(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_launch_states_fp_fusion(where: str, call: ast.Call, names: dict[str, ast.expr]) -> None:
    stated = any(
        kw.arg == "enable_fp_fusion" or (kw.arg is None and states_fusion(kw.value, names)) for kw in call.keywords
    )
    assert stated, f"{where}: the launch leaves enable_fp_fusion to Triton's default (pass **FUSED_FP)"
