"""Imports flow one way: the command line and the server use the pipeline, the pipeline uses the components
(weights, encoders, VAE, sampling, runtime, files), the components use the model, and everything uses the config.

Every `import` in the package counts, also those inside functions (the lazy imports that keep `--help` fast):
a module may import its own layer and the layers below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The three source folders and the packages they install as (pyproject.toml's package-dir).
SOURCES = {"motif_lite": "motif_lite", "kernels": "motif_lite.kernels", "quantize": "motif_lite.quantize"}

# Each unit (a module or a package directly under motif_lite) by layer, lowest first.
LAYERS = [
    {"errors", "choices", "config", "devices", "numerics"},  # names, errors and the config: import nothing above
    {"model"},  # the transformer's math: never kernels, weights or runtime (kernels plug in through model.ops)
    {"weights", "encoders", "vae", "sampling", "runtime", "io", "kernels", "quantize"},  # the components
    {"request", "settings", "checkpoint", "checkup", "sizes", "preflight", "decoding", "keeping"},  # one run's parts
    {"pipeline"},
    {"verify", "server"},
    {"cli", "__main__", "__init__"},  # the commands, and the package's lazy public names
]
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(path: Path) -> str:
    """The unit a source file belongs to: `motif_lite/runtime/planner.py` -> runtime, `kernels/norm.py` -> kernels."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] != "motif_lite":
        return parts[0]
    return "__init__" if parts[1:] == ("__init__",) else parts[1]


def imported_units(tree: ast.AST) -> set[str]:
    """The motif_lite units a module imports anywhere in its code."""
    units = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "motif_lite":  # from motif_lite import devices, __version__
                units |= {alias.name for alias in node.names}
            elif node.module.startswith("motif_lite."):
                units.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            units |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("motif_lite.")}
    return {"__init__" if unit == "__version__" else unit for unit in units}


def package_files() -> dict[Path, str]:
    return {path: path.read_text() for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py"))}


def upward_imports(files: dict[Path, str]) -> list[str]:
    found = []
    for path, text in files.items():
        unit = unit_of(path)
        for target in sorted(imported_units(ast.parse(text)) - {unit}):
            if LAYER[target] > LAYER[unit]:
                found.append(f"{path.relative_to(ROOT)} ({unit}, layer {LAYER[unit]}) imports {target} (layer "
                             f"{LAYER[target]})")  # fmt: skip
    return found


def test_every_unit_has_a_layer():
    assert {unit_of(path) for path in package_files()} - set(LAYER) == set(), "give each new unit a layer in LAYERS"


def test_imports_flow_one_way():
    assert upward_imports(package_files()) == []


def test_an_upward_import_is_found():
    # The negative control: the model importing the runtime (as a kernel wired into the model math would).
    files = package_files()
    ops = ROOT / "motif_lite" / "model" / "ops.py"
    files[ops] += "\n\ndef _kernel():\n    from motif_lite.runtime.kernels import use_triton\n"
    assert upward_imports(files) == ["motif_lite/model/ops.py (model, layer 1) imports runtime (layer 2)"]
