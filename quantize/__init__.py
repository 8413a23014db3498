"""The GGUF quantizer (`python -m motif_lite.quantize`): K-quants, recipes and the conversion tool, for the
transformer and (`--component text_encoder`) the T5Gemma2 text encoder."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The public names, imported on first use (as motif_lite's own): `python -m motif_lite.quantize` imports this package
# first, and torch with it took seconds in which Ctrl-C was a traceback instead of the quantizer's "interrupted".
_PUBLIC = {
    **dict.fromkeys(("COMPONENTS", "TEXT_ENCODER", "TRANSFORMER", "Component"), ".components"),
    **dict.fromkeys(("Summary", "quantize_checkpoint"), ".convert"),
    **dict.fromkeys(
        ("ALIASES", "RECIPES", "Recipe", "get_recipe", "parse_keep", "plan_types", "recipe_names", "tensor_class"),
        ".recipes",
    ),
    "open_source": ".sources",
    **dict.fromkeys(("SUPPORTED_TYPES", "quantize_tensor"), ".tensor"),
    **dict.fromkeys(("TEXT_RECIPES", "TextRecipe", "get_text_recipe", "plan_text_types"), ".text_recipes"),
}

if TYPE_CHECKING:
    from .components import COMPONENTS, TEXT_ENCODER, TRANSFORMER, Component
    from .convert import Summary, quantize_checkpoint
    from .recipes import ALIASES, RECIPES, Recipe, get_recipe, parse_keep, plan_types, recipe_names, tensor_class
    from .sources import open_source
    from .tensor import SUPPORTED_TYPES, quantize_tensor
    from .text_recipes import TEXT_RECIPES, TextRecipe, get_text_recipe, plan_text_types

__all__ = [
    "ALIASES",
    "COMPONENTS",
    "RECIPES",
    "SUPPORTED_TYPES",
    "TEXT_ENCODER",
    "TEXT_RECIPES",
    "TRANSFORMER",
    "Component",
    "Recipe",
    "Summary",
    "TextRecipe",
    "get_recipe",
    "get_text_recipe",
    "open_source",
    "parse_keep",
    "plan_text_types",
    "plan_types",
    "quantize_checkpoint",
    "quantize_tensor",
    "recipe_names",
    "tensor_class",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
