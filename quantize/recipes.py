"""Quantization recipes: which GGML type each Motif-Video transformer tensor gets.

A recipe (Q4_K_M, Q5_K_S, ...) assigns a type per tensor *class* (see `tensor_class`), bumps the
first and last dual-stream and single-stream blocks, then applies the user's `--keep PATTERN=TYPE`
overrides. Types that need rows of 256 fall back to a 32-block type for tensors whose rows are not a
multiple of 256; rows that are not a multiple of 32 stay F16. docs/quantize.md gives the rationale.
"""

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TypeVar

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from motif_lite.errors import ConfigError
from motif_lite.weights.dequant import SUPPORTED_TYPES as LOADABLE_TYPES
from motif_lite.weights.dequant import packed_nbytes

from .tensor import SUPPORTED_TYPES

Q = GGMLQuantizationType
R = TypeVar("R")


@dataclass(frozen=True)
class Recipe:
    """Per-class types. `sensitive` = attention value projections and FF down projections."""

    name: str
    base: GGMLQuantizationType
    sensitive: GGMLQuantizationType
    modulation: GGMLQuantizationType
    edge: GGMLQuantizationType  # every matrix of the first/last dual block and first/last single block
    embed: GGMLQuantizationType  # x/context/image/time embedders and the output head


def _r(name, base, sensitive=None, modulation=None, edge=None, embed=Q.Q8_0):
    return Recipe(name, base, sensitive or base, modulation or base, edge or base, embed)


RECIPES = {
    r.name: r
    for r in (
        _r("F32", Q.F32, embed=Q.F32),
        _r("F16", Q.F16, embed=Q.F16),
        _r("BF16", Q.BF16, embed=Q.BF16),
        _r("Q8_0", Q.Q8_0),
        _r("Q6_K", Q.Q6_K),
        _r("Q5_K_M", Q.Q5_K, sensitive=Q.Q6_K, edge=Q.Q6_K),
        _r("Q5_K_S", Q.Q5_K, edge=Q.Q6_K),
        _r("Q5_1", Q.Q5_1),
        _r("Q5_0", Q.Q5_0),
        _r("Q4_K_M", Q.Q4_K, sensitive=Q.Q5_K, modulation=Q.Q5_K, edge=Q.Q6_K),
        _r("Q4_K_S", Q.Q4_K, modulation=Q.Q5_K, edge=Q.Q5_K),
        _r("Q4_1", Q.Q4_1),
        _r("Q4_0", Q.Q4_0),
        _r("Q3_K_L", Q.Q3_K, sensitive=Q.Q5_K, modulation=Q.Q5_K, edge=Q.Q5_K),
        _r("Q3_K_M", Q.Q3_K, sensitive=Q.Q4_K, modulation=Q.Q4_K, edge=Q.Q5_K),
        _r("Q3_K_S", Q.Q3_K, modulation=Q.Q4_K, edge=Q.Q4_K, embed=Q.Q6_K),
        _r("Q2_K", Q.Q2_K, sensitive=Q.Q3_K, modulation=Q.Q4_K, edge=Q.Q4_K, embed=Q.Q6_K),
    )
}

# llama.cpp's `llama-quantize` takes the bare K names as their _M recipes; sd.cpp users type lower case; FP16 and
# FP32 are the names `motif-lite run --dtype` (and diffusers, ComfyUI) use for F16 and F32.
ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "FP16": "F16", "FP32": "F32"}

# Fallbacks for rows that are not a multiple of 256 (llama.cpp's choices, minus IQ4_NL which gguf-py
# cannot encode).
_ROW_FALLBACK = {Q.Q2_K: Q.Q4_0, Q.Q3_K: Q.Q4_0, Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}

_EMBED_PREFIXES = ("x_embedder.", "context_embedder.", "image_embedder.", "time_text_embed.", "norm_out.", "proj_out.")
_BLOCK_RE = re.compile(r"^(transformer_blocks|single_transformer_blocks)\.(\d+)\.")
_MODULATION_RE = re.compile(r"\.norm1?(_context)?\.linear\.weight$")
_SENSITIVE_RE = re.compile(
    r"\.(to_v|add_v_proj)\.weight$|\.net\.2\.weight$|^single_transformer_blocks\.\d+\.proj_out\."
)


def get_recipe(name: str) -> Recipe:
    """The recipe called `name` in any letter case, or one of its `ALIASES` (Q4_K = Q4_K_M); `ConfigError` listing
    the choices otherwise."""
    return find_recipe(RECIPES, name, "quantization type")


def size_stand_in(name: str) -> tuple[Recipe, str | None]:
    """The recipe whose file size stands for GGUF variant `name` before its file is at hand (a dry run's plan):
    its own; for a type motif-lite runs but this quantizer does not make (IQ4_XS, IQ4_NL), the nearest recipe, with
    the words that say so (else None); `ConfigError` as `get_recipe` gives it for any other name."""
    upper = name.strip().upper()
    made = ALIASES.get(upper, upper) in RECIPES
    if not made and upper in Q.__members__ and Q[upper] in LOADABLE_TYPES and (nearest := nearest_recipe(upper)):
        return RECIPES[nearest], f"the nearest to {upper}, a type it does not make"
    return get_recipe(name), None


def recipe_names() -> str:
    """The recipe names and aliases, for help texts and errors."""
    return table_names(RECIPES)


def find_recipe(
    table: Mapping[str, R], name: str, what: str, other: tuple[Mapping[str, object], str] | None = None
) -> R:
    """The entry of a recipe table called `name` in any letter case, or by an `ALIASES` name whose target the table
    has; a `ConfigError` listing the choices otherwise: "unknown {what} ...", or, for a recipe of the `other` table
    only, "{name} is {other's words}"; with the nearest recipe when the name says its bits."""
    upper = name.strip().upper()
    key = ALIASES.get(upper, upper)
    recipe = table.get(key)
    if recipe is None:
        why = f"{key} is {other[1]}" if other is not None and key in other[0] else _unknown(name, upper, what)
        raise ConfigError(f"{why}; {_nearest_said(upper, table)}choose one of: {table_names(table)}")
    return recipe


# The recipe a name that gives only its bits per weight (q8, int8, fp8, q4, nf4, Q4_K_XL) most likely means.
_RECIPE_OF_BITS = {2: "Q2_K", 3: "Q3_K_M", 4: "Q4_K_M", 5: "Q5_K_M", 6: "Q6_K", 8: "Q8_0", 16: "F16", 32: "F32"}


def _nearest_said(upper: str, table: Mapping[str, object]) -> str:
    """ "the nearest recipe is Q8_0, or " for a name `nearest_recipe` finds one for; "" for others."""
    nearest = nearest_recipe(upper, table)
    return f"the nearest recipe is {nearest}, or " if nearest is not None else ""


def nearest_recipe(name: str, table: Mapping[str, object] = RECIPES) -> str | None:
    """The recipe of `table` a name that is none most likely means: one spelled with other separators or none
    (Q4KM, q4-k-s: Q4_K_M, Q4_K_S), else the longest that starts the name before a "_" (Q4_0_4_4: Q4_0), else,
    for a name that says its bits per weight (q8, int8, fp8, 4bit, Q4_K_XL), the table's recipe of those bits
    (`_RECIPE_OF_BITS`), else of the next larger ones it has (Q3 -> Q4_K_M for the text encoder); None for
    others."""
    upper = name.strip().upper()
    unseparated = {re.sub(r"[\W_]", "", recipe): recipe for recipe in table}
    if (spelled := unseparated.get(re.sub(r"[\W_]", "", upper))) is not None:
        return spelled
    # A recipe's name with a suffix of llama.cpp's (Q4_0_4_4, Q4_0_8_8: Q4_0 repacked for ARM) or of a model
    # repo's (Q8_0_L, Q6_K_L: that type, its embeddings kept larger): that recipe, not the one of its bits.
    if extended := [recipe for recipe in table if upper.startswith(recipe + "_")]:
        return max(extended, key=len)
    bits = _bits_named(upper)
    if bits is None:
        return None
    if bits == 16 and upper.startswith("BF"):
        return "BF16"
    larger = [_RECIPE_OF_BITS[b] for b in sorted(_RECIPE_OF_BITS) if b >= bits and _RECIPE_OF_BITS[b] in table]
    return larger[0] if larger else None


def _bits_named(upper: str) -> int | None:
    """The bits per weight a type's name says (FP8, INT8, Q4_K_XL, NF4, E4M3: 8, 8, 4, 4, 8); None for a name
    without them, or with a number that is no weight's width (Q9_K)."""
    if "E4M3" in upper or "E5M2" in upper:  # fp8's two formats, named by their exponent and mantissa bits
        return 8
    number = re.search(r"\d+", upper)
    bits = int(number.group()) if number else None
    return bits if bits in (*range(1, 9), 16, 32) else None


def _unknown(name: str, upper: str, what: str) -> str:
    """Why `name` is no recipe: a GGML type llama.cpp makes (IQ4_XS, TQ1_0, ...) is named as one, with whether
    motif-lite runs files that use it, rather than called unknown."""
    if upper not in Q.__members__ or Q[upper] in SUPPORTED_TYPES:  # Q2_K given for the text encoder: no recipe
        return f"unknown {what} {name!r}"
    runs = "motif-lite runs files made elsewhere with it" if Q[upper] in LOADABLE_TYPES else "motif-lite cannot run it"
    return f"{upper} is a GGUF type this quantizer does not make ({runs})"


def table_names(table: Mapping[str, object]) -> str:
    """A recipe table's names and the aliases that lead into it, for help texts and errors."""
    aliases = ", ".join(f"{alias} = {target}" for alias, target in ALIASES.items() if target in table)
    return f"{', '.join(table)} (aliases: {aliases}; any letter case)"


def file_type(recipe: Recipe) -> int | None:
    """The llama.cpp `general.file_type` value for this recipe, or None if none matches."""
    member = "ALL_F32" if recipe.name == "F32" else f"MOSTLY_{recipe.name}"
    return LlamaFileType[member].value if member in LlamaFileType.__members__ else None


def tensor_class(name: str, shape: tuple[int, ...]) -> str:
    """Coarse role of a tensor, used for type rules and error reports."""
    if len(shape) != 2:
        return "vector/conv"
    if name.startswith(_EMBED_PREFIXES):
        return "embed/head"
    if _MODULATION_RE.search(name):
        return "modulation"
    if _SENSITIVE_RE.search(name):
        return "attn_v/ff_down"
    if ".to_out." in name or ".to_add_out." in name:
        return "attn_out"
    if ".ff" in name or ".proj_mlp." in name:
        return "ff_up"
    return "attn_qk"


def _bits(qtype: GGMLQuantizationType) -> tuple[float, bool]:
    """Sort key: bits per weight, then K-quant over legacy at equal size."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    return type_size * 8 / block_size, qtype.name.endswith("_K")


def parse_keep(specs: list[str]) -> list[tuple[str, GGMLQuantizationType]]:
    """Parse `--keep PATTERN=TYPE` values (fnmatch pattern on tensor names, a GGML tensor type)."""
    rules = []
    for spec in specs:
        pattern, sep, type_name = spec.rpartition("=")
        if not sep or not pattern.strip():
            raise ConfigError(f"bad --keep {spec!r}: expected PATTERN=TYPE, e.g. 'transformer_blocks.0.*=Q8_0'")
        upper = type_name.strip().upper()
        qtype = Q.__members__.get(ALIASES.get(upper, upper) if upper.startswith("FP") else upper)
        if qtype not in SUPPORTED_TYPES:
            names = ", ".join(t.name for t in SUPPORTED_TYPES)
            raise ConfigError(f"bad --keep {spec!r}: {_not_a_tensor_type(type_name, upper)}; choose one of: {names}")
        rules.append((pattern.strip(), qtype))
    return rules


def _not_a_tensor_type(name: str, upper: str) -> str:
    """Why a --keep rule's type is none we make: a recipe (Q4_K_M, a mix of types) is named as one, with its base
    type; a GGUF type this quantizer does not make (IQ4_XS) as that (`_unknown`), else "unknown tensor type"."""
    recipe = RECIPES.get(ALIASES.get(upper, upper))
    if recipe is not None:
        return (
            f"{upper} is a recipe, a mix of tensor types (--type {upper}); a --keep rule sets one tensor type, such "
            f"as {recipe.base.name}, its base type"
        )
    return _unknown(name, upper, "tensor type")


def _edge_blocks(names: list[str]) -> set[tuple[str, int]]:
    """The first and last block index of each block stack present in `names`."""
    indices: dict[str, set[int]] = {}
    for name in names:
        if m := _BLOCK_RE.match(name):
            indices.setdefault(m.group(1), set()).add(int(m.group(2)))
    return {(stack, i) for stack, found in indices.items() for i in (min(found), max(found))}


def _recipe_type(recipe: Recipe, name: str, shape: tuple[int, ...], edges) -> GGMLQuantizationType:
    cls = tensor_class(name, shape)
    if cls == "vector/conv":
        return Q.F32
    if cls == "embed/head":
        return recipe.embed
    chosen = {"modulation": recipe.modulation, "attn_v/ff_down": recipe.sensitive}.get(cls, recipe.base)
    m = _BLOCK_RE.match(name)
    if m and (m.group(1), int(m.group(2))) in edges:
        chosen = max(chosen, recipe.edge, key=_bits)
    return chosen


def fit_row(qtype: GGMLQuantizationType, row: int, float_type: GGMLQuantizationType = Q.F16) -> GGMLQuantizationType:
    """`qtype`, or the fallback type when a row of `row` values is not a whole number of its blocks (`float_type`
    when not even a 32-block fits)."""
    if row % GGML_QUANT_SIZES[qtype][0] == 0:
        return qtype
    fallback = _ROW_FALLBACK.get(qtype, float_type)
    return fallback if row % GGML_QUANT_SIZES[fallback][0] == 0 else float_type


def plan_types(
    shapes: dict[str, tuple[int, ...]], recipe: Recipe, keep: list[tuple[str, GGMLQuantizationType]] = ()
) -> dict[str, GGMLQuantizationType]:
    """Type for every tensor: recipe class rules, then edge-block bumps, then `finish_plan` (`keep`, row fallback)."""
    edges = _edge_blocks(list(shapes))
    plan = {name: _recipe_type(recipe, name, shape, edges) for name, shape in shapes.items()}
    return finish_plan(plan, shapes, keep)


def finish_plan(
    plan: dict[str, GGMLQuantizationType],
    shapes: dict[str, tuple[int, ...]],
    keep: list[tuple[str, GGMLQuantizationType]] = (),
    float_type: GGMLQuantizationType = Q.F16,
) -> dict[str, GGMLQuantizationType]:
    """A recipe's `plan` with the `keep` rules applied (last match wins), then the row fallback (`fit_row`, to
    `float_type` where no block fits).

    Raises `ConfigError` for a keep pattern that matches no tensor (almost always a typo)."""
    plan = dict(plan)
    for pattern, qtype in keep:
        plan.update(dict.fromkeys(_kept(shapes, pattern, qtype), qtype))
    return {name: fit_row(qtype, shapes[name][-1] if shapes[name] else 1, float_type) for name, qtype in plan.items()}


def _kept(shapes: dict[str, tuple[int, ...]], pattern: str, qtype: GGMLQuantizationType) -> list[str]:
    """The tensors a `--keep PATTERN=TYPE` rule sets. A block type sets matrices only: biases and norms stay as the
    recipe has them (F32), as llama.cpp never quantizes 1-D tensors, so that 'transformer_blocks.0.*=Q8_0' raises
    block 0 without lowering its norms; a float type sets every tensor the pattern matches."""
    matched = [name for name in shapes if fnmatchcase(name, pattern)]
    if not matched:
        raise ConfigError(f"--keep pattern {pattern!r} matches no tensor (names look like {next(iter(shapes))!r})")
    if qtype in (Q.F32, Q.F16, Q.BF16):
        return matched
    matrices = [name for name in matched if len(shapes[name]) >= 2]
    if not matrices:
        raise ConfigError(
            f"--keep pattern {pattern!r} matches only 1-D tensors (biases, norms), which stay F32; {qtype.name} "
            "applies to matrices (a float type such as F16 applies to any tensor)"
        )
    return matrices


def keep_fallbacks(
    shapes: dict[str, tuple[int, ...]],
    plan: dict[str, GGMLQuantizationType],
    keep: list[tuple[str, GGMLQuantizationType]],
) -> list[str]:
    """One line per `--keep` rule whose type some of its tensors could not take (rows that are not whole blocks of
    it): which tensors, and the type they got instead. The rule "forces" a type; the user should hear where not."""
    last_rule = {}
    for rule in keep:
        last_rule.update(dict.fromkeys(_kept(shapes, *rule), rule))  # later rules win, as in `finish_plan`
    lines = []
    for pattern, qtype in keep:
        moved = [name for name, rule in last_rule.items() if rule == (pattern, qtype) and plan[name] != qtype]
        if moved:
            got = ", ".join(sorted({plan[name].name for name in moved}))
            lines.append(
                f"--keep '{pattern}={qtype.name}': {len(moved)} tensor(s) ({moved[0]}, ...) have rows that are not "
                f"whole {qtype.name} blocks: stored as {got}"
            )
    return lines


def official_sizes() -> list[tuple[str, int, float]]:
    """(recipe, tensor data bytes, bits per weight) of the file each recipe makes of the official 2.04B transformer,
    counted from its shapes on the meta device (no weights; a fraction of a second), for `--help`."""
    from motif_lite.config import TransformerConfig
    from motif_lite.weights.shapes import build_model, expected_shapes

    shapes = expected_shapes(build_model(TransformerConfig()))
    weights = sum(math.prod(shape) for shape in shapes.values())
    return [
        (name, size, 8 * size / weights) for name, recipe in RECIPES.items() if (size := packed_bytes(shapes, recipe))
    ]


def packed_bytes(shapes: dict[str, tuple[int, ...]], recipe: Recipe) -> int:
    """The tensor data bytes of the GGUF file `recipe` makes of tensors with these shapes (before any quantizing)."""
    return plan_bytes(shapes, plan_types(shapes, recipe))


def plan_bytes(shapes: dict[str, tuple[int, ...]], plan: dict[str, GGMLQuantizationType]) -> int:
    """The tensor data bytes of tensors with these shapes stored with these types."""
    # A 0-d tensor is one value, as `finish_plan`'s row fallback counts it.
    return sum(packed_nbytes(qtype, shapes[name] or (1,), name) for name, qtype in plan.items())
