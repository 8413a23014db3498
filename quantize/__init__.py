"""The GGUF quantizer (`python -m motif_lite.quantize`): K-quants, recipes and the conversion tool."""

from .convert import Summary, quantize_checkpoint
from .recipes import ALIASES, RECIPES, Recipe, get_recipe, parse_keep, plan_types, recipe_names, tensor_class
from .sources import open_source
from .tensor import SUPPORTED_TYPES, quantize_tensor

__all__ = [
    "ALIASES",
    "RECIPES",
    "SUPPORTED_TYPES",
    "Recipe",
    "Summary",
    "get_recipe",
    "open_source",
    "parse_keep",
    "plan_types",
    "quantize_checkpoint",
    "quantize_tensor",
    "recipe_names",
    "tensor_class",
]
