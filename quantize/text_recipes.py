"""Recipes for the T5Gemma2 text encoder (`--component text_encoder`): llama.cpp's mixes over a Gemma encoder.

Tensor names are the `T5Gemma2Encoder` state-dict keys. Classes (`text_tensor_class`):

- `token_embd`: `text_model.embed_tokens.weight` (262144 x 2560, 16 % of the encoder). Gemma ties it to the output
  head, so llama.cpp gives it the output head's type: Q6_K unless the recipe is Q8_0. Here it is only looked up.
- `attn_v/ffn_down`: `self_attn.v_proj` and `mlp.down_proj` of the text layers. llama.cpp's _M recipes give them Q6_K
  on the first and last eighth of the layers and on every third layer between (`more_bits_layer`), else the base.
- `text_linear`: the other text-layer linears (q/k/o projections, gate and up projections): the base type.
- `vision`: the SigLIP tower's linears. Its widths (1152, 4304) are not multiples of 256, so K-quants cannot apply;
  every quantized recipe stores them Q8_0 (rows of 4304 are not whole 32-blocks either: those stay BF16).
- `float`: other matrices that no linear layer multiplies (SigLIP's position embedding, the unused image
  projector): BF16 (the checkpoint's own dtype), as llama.cpp keeps positional embeddings unquantized.
- `vector/conv`: norms, biases, the patch-embedding convolution, the end-of-image embedding: F32.

docs/quantize.md gives the sizes and the measured errors.
"""

import re
from dataclasses import dataclass

from gguf import GGMLQuantizationType

from .recipes import RECIPES, find_recipe, finish_plan, table_names

Q = GGMLQuantizationType
FLOAT_TYPES = (Q.F32, Q.F16, Q.BF16)  # the recipes that store every tensor as floats

EMBED_NAME = "text_model.embed_tokens.weight"
_LAYER_RE = re.compile(r"^text_model\.layers\.(\d+)\.")
_TEXT_LINEAR_RE = re.compile(r"^text_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$")
_MORE_BITS_RE = re.compile(r"\.(self_attn\.v_proj|mlp\.down_proj)\.weight$")
_VISION_LINEAR_RE = re.compile(r"^vision_tower\..*\.(self_attn\.\w+_proj|mlp\.fc\d)\.weight$")


@dataclass(frozen=True)
class TextRecipe:
    """Types per text encoder tensor class (see the module docstring)."""

    name: str
    base: GGMLQuantizationType
    more_bits: GGMLQuantizationType  # attn_v/ffn_down on `more_bits_layer` layers
    token_embd: GGMLQuantizationType
    vision: GGMLQuantizationType

    @property
    def quantizes_linears(self) -> bool:
        """Whether the text layers' linears get a block type (they run on packed blocks once loaded): not for
        the F32, F16 and BF16 recipes."""
        return self.base not in FLOAT_TYPES


TEXT_RECIPES = {
    r.name: r
    for r in (
        TextRecipe("F32", Q.F32, Q.F32, Q.F32, Q.F32),
        TextRecipe("F16", Q.F16, Q.F16, Q.F16, Q.F16),
        TextRecipe("BF16", Q.BF16, Q.BF16, Q.BF16, Q.BF16),
        TextRecipe("Q8_0", Q.Q8_0, Q.Q8_0, Q.Q8_0, Q.Q8_0),
        TextRecipe("Q6_K", Q.Q6_K, Q.Q6_K, Q.Q6_K, Q.Q8_0),
        TextRecipe("Q5_K_M", Q.Q5_K, Q.Q6_K, Q.Q6_K, Q.Q8_0),
        TextRecipe("Q4_K_M", Q.Q4_K, Q.Q6_K, Q.Q6_K, Q.Q8_0),
    )
}


def get_text_recipe(name: str) -> TextRecipe:
    """The text encoder recipe called `name` (any letter case; Q4_K = Q4_K_M, Q5_K = Q5_K_M); `ConfigError`
    listing the choices otherwise (a recipe only the transformer has is said to be one)."""
    transformer_only = (RECIPES, "a transformer recipe, not one of the text encoder's")
    return find_recipe(TEXT_RECIPES, name, "text encoder quantization type", transformer_only)


def text_recipe_names() -> str:
    """The text encoder recipe names and aliases, for help texts and errors."""
    return table_names(TEXT_RECIPES)


def more_bits_layer(index: int, n_layers: int) -> bool:
    """llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third layer between."""
    return index < n_layers // 8 or index >= 7 * n_layers // 8 or (index - n_layers // 8) % 3 == 2


def text_tensor_class(name: str, shape: tuple[int, ...]) -> str:
    """Coarse role of a text encoder tensor, for type rules and error reports."""
    if len(shape) != 2:
        return "vector/conv"
    if name == EMBED_NAME:
        return "token_embd"
    if _TEXT_LINEAR_RE.match(name):
        return "attn_v/ffn_down" if _MORE_BITS_RE.search(name) else "text_linear"
    if _VISION_LINEAR_RE.match(name):
        return "vision"
    return "float"


def plan_text_types(
    shapes: dict[str, tuple[int, ...]], recipe: TextRecipe, keep: list[tuple[str, GGMLQuantizationType]] = ()
) -> dict[str, GGMLQuantizationType]:
    """Type for every text encoder tensor: the class rules, then `keep` (last match wins), then the row fallback."""
    layers = {int(m.group(1)) for name in shapes if (m := _LAYER_RE.match(name))}
    n_layers = max(layers) + 1 if layers else 0
    # The checkpoint is bf16: BF16 keeps what no block type fits exactly, and a bf16 run maps it without a copy.
    float_2d = Q.BF16 if recipe.quantizes_linears else recipe.base
    plan = {}
    for name, shape in shapes.items():
        cls = text_tensor_class(name, shape)
        if cls == "attn_v/ffn_down":
            bumped = more_bits_layer(int(_LAYER_RE.match(name).group(1)), n_layers)
            plan[name] = recipe.more_bits if bumped else recipe.base
        else:
            types = {"token_embd": recipe.token_embd, "text_linear": recipe.base, "vision": recipe.vision}
            plan[name] = types.get(cls, Q.F32 if cls == "vector/conv" else float_2d)
    return finish_plan(plan, shapes, keep, float_2d)
