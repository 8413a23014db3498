"""Imports flow one way: the command line and the server use the pipeline, the pipeline uses the components
(weights, encoders, VAE, sampling, runtime, files), the components use the model, and everything uses the config.

Every `import` in the package counts, also those inside functions (the lazy imports that keep `--help` fast),
relative ones and `importlib.import_module` of a literal name: a module may import its own layer and the layers
below it, never one above.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The three source folders and the packages they install as (pyproject.toml's package-dir).
SOURCES = {"motif_lite": "motif_lite", "kernels": "motif_lite.kernels", "quantize": "motif_lite.quantize"}

# Each unit (a module or a package directly under motif_lite) by layer, lowest first.
LAYERS = [
    # names, errors, bars, how sizes are written, ...
    {
        "errors",
        "paths",
        "progress",
        "choices",
        "config",
        "devices",
        "gpus",
        "gpu_memory",
        "dtypes",
        "numerics",
        "version",
        "units",
        "prompt_notes",
        "json_values",
        "stopping",
        "log_filters",
        "launcher_variables",
        "flag_spelling",
        "frame_rates",
        "console",
        "shell_syntax",
        "origins",
    },
    {"model"},  # the transformer's math: never kernels, weights or runtime (kernels plug in through model.ops)
    {"weights", "encoders", "vae", "sampling", "runtime", "io", "kernels", "quantize"},  # the components
    {
        "request",
        "settings",
        "checkpoint_configs",
        "checkpoint",
        "weight_checks",
        "checkup",
        "sizes",
        "preflight",
        "memory_plan",
        "quantize_settings",
        "decoding",
        "keeping",
        "memory_advice",
        "run_estimates",
        "ran_on",
    },  # one run's parts
    {"pipeline"},
    {"verify", "server"},
    {"cli", "__init__"},  # the commands, and the package's lazy public names
    {"entry_point", "__main__"},  # `motif-lite` and `python -m motif_lite`: import the command line once called
]
LAYER = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(path: Path) -> str:
    """The unit a source file belongs to: `motif_lite/runtime/planner.py` -> runtime, `kernels/norm.py` -> kernels."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] != "motif_lite":
        return parts[0]
    return "__init__" if parts[1:] == ("__init__",) else parts[1]


def module_of(path: Path) -> str:
    """The module a source file installs as: `kernels/norm.py` -> motif_lite.kernels.norm."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join([SOURCES[parts[0]], *parts[1:]])


def imported_modules(tree: ast.AST, module: str) -> set[str]:
    """The absolute names of the modules (or their names) that `module`'s code imports anywhere in it."""
    package = module.rpartition(".")[0]  # motif_lite.runtime.__init__ -> motif_lite.runtime
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from motif_lite import devices, __version__` names units; `from x.y import z` imports x.y
            found |= {f"{base}.{alias.name}" for alias in node.names} if base == "motif_lite" else {base}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            name = node.args[0] if node.args else None  # a literal name, or an f-string's literal start
            if isinstance(name, ast.JoinedStr) and name.values:
                name = name.values[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.add(name.value)
    return found


def imported_units(tree: ast.AST, module: str) -> set[str]:
    """The motif_lite units the module `module` imports anywhere in its code (an f-string's `motif_lite.{name}`
    names none)."""
    units = {name.split(".")[1] for name in imported_modules(tree, module) if name.startswith("motif_lite.")}
    return {"__init__" if unit == "__version__" else unit for unit in units if unit}


def package_files() -> dict[Path, str]:
    return {path: path.read_text() for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py"))}


def package_units() -> set[str]:
    """The units that are modules or packages on disk: `from motif_lite import NAME` of any other NAME takes a public
    name of the package's `__init__` (`load_pipeline`)."""
    motif_lite = ROOT / "motif_lite"
    modules = {path.stem for path in motif_lite.glob("*.py")} | {
        path.parent.name for path in motif_lite.glob("*/__init__.py")
    }
    return modules | {unit_of(ROOT / folder / "__init__.py") for folder in SOURCES if folder != "motif_lite"}


def upward_imports(files: dict[Path, str]) -> list[str]:
    """Each import of a unit in a higher layer. A unit without a layer is left to test_every_unit_has_a_layer, whose
    message says what to do (here it was a KeyError in every test of this file)."""
    units = package_units() | {unit_of(path) for path in files}
    found = []
    for path, text in files.items():
        unit = unit_of(path)
        if unit not in LAYER:
            continue
        imported = {
            target if target in units else "__init__" for target in imported_units(ast.parse(text), module_of(path))
        }
        for target in sorted(imported - {unit}):
            if target in LAYER and LAYER[target] > LAYER[unit]:
                found.append(f"{path.relative_to(ROOT)} ({unit}, layer {LAYER[unit]}) imports {target} (layer "
                             f"{LAYER[target]})")  # fmt: skip
    return found


def test_every_unit_has_a_layer():
    assert {unit_of(path) for path in package_files()} - set(LAYER) == set(), (
        "give each new module or package of motif_lite/ a layer in LAYERS (tests/test_layers.py) and a line in "
        "README.md's Layout"
    )


def test_imports_flow_one_way():
    assert upward_imports(package_files()) == [], (
        "a module imports only its own layer and the layers below it (LAYERS in tests/test_layers.py, README.md's "
        "Layout): move the import, or the code that needs it, to a layer that may make it"
    )


# Negative controls: an upward import in each form the detection reads, in each source folder: (file, code added,
# what must be reported).
UPWARD = {
    "in a function": (
        "motif_lite/model/ops.py",  # the model importing the runtime, as a kernel wired into the model math would
        "def _kernel():\n    from motif_lite.runtime.kernels import use_triton\n",
        "motif_lite/model/ops.py (model, layer 1) imports runtime (layer 2)",
    ),
    "import a.b.c": (
        "motif_lite/model/ops.py",
        "import motif_lite.runtime.kernels\n",
        "motif_lite/model/ops.py (model, layer 1) imports runtime (layer 2)",
    ),
    "from the package": (
        "motif_lite/model/ops.py",
        "from motif_lite import kernels\n",  # the model's math never uses the kernels directly
        "motif_lite/model/ops.py (model, layer 1) imports kernels (layer 2)",
    ),
    "relative": (
        "motif_lite/runtime/planner.py",
        "def _plan():\n    from ..preflight import plan_generation\n",
        "motif_lite/runtime/planner.py (runtime, layer 2) imports preflight (layer 3)",
    ),
    "relative, from the package": (
        "kernels/norm.py",  # motif_lite.kernels: `..` is motif_lite
        "from .. import pipeline\n",
        "kernels/norm.py (kernels, layer 2) imports pipeline (layer 4)",
    ),
    "import_module": (
        "motif_lite/runtime/kernels.py",
        'importlib.import_module(f"motif_lite.cli.{name}")\n',
        "motif_lite/runtime/kernels.py (runtime, layer 2) imports cli (layer 6)",
    ),
    "in the quantizer": (
        "quantize/convert.py",
        "from motif_lite.pipeline import load_pipeline\n",
        "quantize/convert.py (quantize, layer 2) imports pipeline (layer 4)",
    ),
    "a public name of the package": (
        "motif_lite/model/ops.py",
        "from motif_lite import load_pipeline\n",  # a lazy name of motif_lite/__init__.py, no module of its own
        "motif_lite/model/ops.py (model, layer 1) imports __init__ (layer 6)",
    ),
    "the pipeline importing a command": (
        "motif_lite/pipeline/generation.py",
        "from motif_lite.verify import verify\n",
        "motif_lite/pipeline/generation.py (pipeline, layer 4) imports verify (layer 5)",
    ),
}


def added_upward_imports(files: dict[Path, str], path: str, code: str) -> list[str]:
    """The upward imports that adding `code` to `path` in `files` adds: a control reports its own import whatever
    the tree holds (an upward import elsewhere failed every control beside test_imports_flow_one_way)."""
    text = files[ROOT / path]  # upward_imports reads each file alone: the others cannot change what this one adds
    before = set(upward_imports({ROOT / path: text}))
    return [found for found in upward_imports({ROOT / path: text + "\n\n" + code}) if found not in before]


@pytest.mark.parametrize("form", UPWARD)
def test_an_upward_import_is_found(form):
    path, code, reported = UPWARD[form]
    assert added_upward_imports(package_files(), path, code) == [reported]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("kernels/norm.py", "from .errors import KernelInputError\nfrom . import launch\n"),  # motif_lite.kernels.*
        ("kernels/__init__.py", "from . import norm\n"),  # a package's own `.` is itself
        ("motif_lite/runtime/__init__.py", "from .planner import plan_memory\nfrom ..runtime import kernels\n"),
    ],
)
def test_relative_imports_within_a_unit_are_its_own(path, code):
    assert imported_units(ast.parse(code), module_of(ROOT / path)) == {unit_of(ROOT / path)}


def test_a_unit_without_a_layer_fails_only_its_own_test():
    # A new module with no layer yet, importing and imported: only test_every_unit_has_a_layer reports it.
    files = package_files()
    files[ROOT / "motif_lite/new_module.py"] = "from motif_lite import pipeline\n"
    files[ROOT / "motif_lite/model/ops.py"] += "\n\nfrom motif_lite import new_module\n"
    assert upward_imports(files) == []


def test_a_control_reports_its_import_beside_an_upward_import_elsewhere():
    files = package_files()
    files[ROOT / "motif_lite/model/rope.py"] += "\n\nimport motif_lite.runtime.kernels\n"
    path, code, reported = UPWARD["relative"]
    assert added_upward_imports(files, path, code) == [reported]
