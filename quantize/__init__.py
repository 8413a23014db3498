"""The GGUF quantizer (`python -m motif_lite.quantize`): K-quants, recipes and the conversion tool, for the
transformer and (`--component text_encoder`) the T5Gemma2 text encoder."""

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
